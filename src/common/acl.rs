//! Redis 7.0's ACL model, shared by rf-server and rf-sentinel: users, selectors, the rule
//! language of `ACL SETUSER` / `user` lines, the description `ACL LIST` and `GETUSER` show,
//! and the permission checks. Commands are known through a [`Catalog`] (name, ACL
//! categories, subcommands) that each program builds from its own command table.

use std::collections::{BTreeMap, HashMap};

/// Redis 7.0's categories, in its order (ACL CAT, the category bit of each).
pub const CATEGORIES: &[&str] = &[
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog", "geo", "stream", "pubsub",
    "admin", "fast", "slow", "blocking", "dangerous", "connection", "transaction", "scripting",
];

pub fn category_bit(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    CATEGORIES.iter().position(|c| *c == lower).map(|i| 1u32 << i)
}

/// Key pattern permissions.
pub const PERM_READ: u8 = 1;
pub const PERM_WRITE: u8 = 2;
pub const PERM_ALL: u8 = PERM_READ | PERM_WRITE;

#[derive(Debug, Clone)]
pub struct CatalogCmd {
    /// Full lowercase name (`config|get` for a subcommand).
    pub name: String,
    pub categories: u32,
    pub parent: Option<usize>,
    pub subs: Vec<usize>,
}

/// A command for [`Catalog::build`]: name, ACL categories, subcommands (full name, categories).
pub type CatalogEntry = (String, Vec<String>, Vec<(String, Vec<String>)>);

/// The commands ACL rules can name, in a fixed order (top-level commands sorted by name,
/// each followed by its subcommands).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub cmds: Vec<CatalogCmd>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// `entries`: (name, categories, subcommands as (full name, categories)).
    pub fn build(mut entries: Vec<CatalogEntry>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mask = |cats: &[String]| cats.iter().filter_map(|c| category_bit(c)).fold(0, |a, b| a | b);
        let mut cat = Catalog::default();
        for (name, cats, subs) in entries {
            let id = cat.cmds.len();
            cat.by_name.insert(name.clone(), id);
            cat.cmds.push(CatalogCmd { name, categories: mask(&cats), parent: None, subs: Vec::new() });
            for (sname, scats) in subs {
                let sid = cat.cmds.len();
                cat.by_name.insert(sname.clone(), sid);
                cat.cmds.push(CatalogCmd { name: sname, categories: mask(&scats), parent: Some(id), subs: Vec::new() });
                cat.cmds[id].subs.push(sid);
            }
        }
        cat
    }

    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// ACL CAT <category>: the commands of a category, in catalog order.
    pub fn in_category(&self, bit: u32) -> Vec<&str> {
        self.cmds.iter().filter(|c| c.categories & bit != 0).map(|c| c.name.as_str()).collect()
    }
}

/// Why a rule was refused (Redis's `ACLSetUserStringError` texts).
impl RuleError {
    /// Redis's text for the error (what `Display` shows).
    pub fn text(&self) -> &'static str {
        match self {
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::AfterAllKeys => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::AfterAllChannels => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Unknown command or category name in ACL")]
    UnknownCommand,
    #[error("Syntax error")]
    Syntax,
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    AfterAllKeys,
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    AfterAllChannels,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    #[error("Allowing first-arg of a subcommand is not supported")]
    SubcommandFirstArg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub flags: u8,
    pub pattern: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub root: bool,
    pub allkeys: bool,
    pub allchannels: bool,
    pub allcommands: bool,
    /// The reserved "future commands" bit that only +@all sets.
    pub future: bool,
    pub allowed: Vec<bool>,
    /// Allowed first arguments of otherwise denied commands (`+select|0`).
    pub firstargs: BTreeMap<usize, Vec<String>>,
    pub patterns: Vec<KeyPattern>,
    pub channels: Vec<Vec<u8>>,
}

/// Result of a permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    Command,
    Key,
    Channel,
}

impl Denied {
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::Command => "command",
            Denied::Key => "key",
            Denied::Channel => "channel",
        }
    }
}

/// What a command touches, for a check: its catalog id, its arguments, its keys (argument
/// index and the permissions it needs) and its channels (argument index, is a pattern).
pub struct Access<'a> {
    pub cmd: usize,
    pub no_auth: bool,
    pub args: &'a [&'a [u8]],
    /// Index of the first argument after the (sub)command name.
    pub keys: &'a [(usize, u8)],
    pub channels: &'a [(usize, bool)],
}

impl Selector {
    pub fn new(catalog: &Catalog, root: bool, pubsub_default_all: bool) -> Self {
        Selector {
            root,
            allkeys: false,
            allchannels: pubsub_default_all,
            allcommands: false,
            future: false,
            allowed: vec![false; catalog.len()],
            firstargs: BTreeMap::new(),
            patterns: Vec::new(),
            channels: Vec::new(),
        }
    }

    fn set_bit(&mut self, id: usize, v: bool) {
        if let Some(b) = self.allowed.get_mut(id) {
            *b = v;
        }
        if !v {
            self.allcommands = false;
        }
    }

    fn change_perm(&mut self, catalog: &Catalog, id: usize, allow: bool) {
        self.set_bit(id, allow);
        self.firstargs.remove(&id);
        for &s in &catalog.cmds[id].subs {
            self.set_bit(s, allow);
        }
    }

    fn set_category(&mut self, catalog: &Catalog, bit: u32, allow: bool) {
        for id in 0..catalog.len() {
            if catalog.cmds[id].categories & bit != 0 {
                self.change_perm(catalog, id, allow);
            }
        }
    }

    fn set_all(&mut self, allow: bool) {
        self.allowed.iter_mut().for_each(|b| *b = allow);
        self.allcommands = allow;
        self.future = allow;
        self.firstargs.clear();
    }

    /// Applies one selector rule (Redis's `ACLSetSelector`).
    pub fn apply(&mut self, catalog: &Catalog, op: &[u8]) -> Result<(), RuleError> {
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" | "~*" => {
                self.allkeys = true;
                self.patterns.clear();
                return Ok(());
            }
            "resetkeys" => {
                self.allkeys = false;
                self.patterns.clear();
                return Ok(());
            }
            "allchannels" | "&*" => {
                self.allchannels = true;
                self.channels.clear();
                return Ok(());
            }
            "resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
                return Ok(());
            }
            "allcommands" | "+@all" => {
                self.set_all(true);
                return Ok(());
            }
            "nocommands" | "-@all" => {
                self.set_all(false);
                return Ok(());
            }
            _ => {}
        }
        match op.first() {
            Some(b'~') | Some(b'%') => {
                if self.allkeys {
                    return Err(RuleError::AfterAllKeys);
                }
                let mut flags = 0u8;
                let mut offset = 1;
                if op[0] == b'%' {
                    while let Some(&c) = op.get(offset) {
                        match c.to_ascii_uppercase() {
                            b'R' if flags & PERM_READ == 0 => flags |= PERM_READ,
                            b'W' if flags & PERM_WRITE == 0 => flags |= PERM_WRITE,
                            b'~' => {
                                offset += 1;
                                break;
                            }
                            _ => return Err(RuleError::Syntax),
                        }
                        offset += 1;
                    }
                } else {
                    flags = PERM_ALL;
                }
                let pat = &op[offset.min(op.len())..];
                if has_spaces(pat) {
                    return Err(RuleError::Syntax);
                }
                match self.patterns.iter_mut().find(|p| p.pattern == pat) {
                    Some(p) => p.flags |= flags,
                    None => self.patterns.push(KeyPattern { flags, pattern: pat.to_vec() }),
                }
                self.allkeys = false;
            }
            Some(b'&') => {
                if self.allchannels {
                    return Err(RuleError::AfterAllChannels);
                }
                let pat = &op[1..];
                if has_spaces(pat) {
                    return Err(RuleError::Syntax);
                }
                if !self.channels.iter().any(|c| c == pat) {
                    self.channels.push(pat.to_vec());
                }
                self.allchannels = false;
            }
            Some(b'+') if op.get(1) != Some(&b'@') => {
                let name = String::from_utf8_lossy(&op[1..]).into_owned();
                match name.rfind('|') {
                    None => {
                        let id = catalog.lookup(&name).ok_or(RuleError::UnknownCommand)?;
                        self.change_perm(catalog, id, true);
                    }
                    Some(bar) => {
                        let (parent, sub) = (&name[..bar], &name[bar + 1..]);
                        let id = catalog.lookup(parent).ok_or(RuleError::UnknownCommand)?;
                        if catalog.cmds[id].parent.is_some() {
                            return Err(RuleError::SubcommandFirstArg);
                        }
                        if sub.is_empty() {
                            return Err(RuleError::Syntax);
                        }
                        if !catalog.cmds[id].subs.is_empty() {
                            let sid = catalog.lookup(&name).ok_or(RuleError::UnknownCommand)?;
                            self.change_perm(catalog, sid, true);
                        } else {
                            let list = self.firstargs.entry(id).or_default();
                            if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                                list.push(sub.to_string());
                            }
                        }
                    }
                }
            }
            Some(b'-') if op.get(1) != Some(&b'@') => {
                let name = String::from_utf8_lossy(&op[1..]).into_owned();
                let id = catalog.lookup(&name).ok_or(RuleError::UnknownCommand)?;
                self.change_perm(catalog, id, false);
            }
            Some(b'+') | Some(b'-') => {
                let bit = category_bit(&String::from_utf8_lossy(&op[2..])).ok_or(RuleError::UnknownCommand)?;
                self.set_category(catalog, bit, op[0] == b'+');
            }
            _ => return Err(RuleError::Syntax),
        }
        Ok(())
    }

    fn count_category(&self, catalog: &Catalog, bit: u32) -> (usize, usize) {
        let (mut on, mut off) = (0, 0);
        for (id, c) in catalog.cmds.iter().enumerate() {
            if c.categories & bit != 0 {
                if self.allowed[id] {
                    on += 1;
                } else {
                    off += 1;
                }
            }
        }
        (on, off)
    }

    /// The command rules (Redis's `ACLDescribeSelectorCommandRules`).
    pub fn describe_commands(&self, catalog: &Catalog) -> String {
        let additive = !self.future;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new(catalog, false, false);
        fake.set_all(!additive);
        let mut temp = self.clone();
        let mut applied = vec![false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, _) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(catalog, 1 << j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else { break };
            fake.set_category(catalog, 1 << j, additive);
            temp.set_category(catalog, 1 << j, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(CATEGORIES[j]);
            rules.push(' ');
            applied[j] = true;
        }
        for id in 0..catalog.len() {
            let user = self.allowed[id];
            if user != fake.allowed[id] {
                rules.push(if user { '+' } else { '-' });
                rules.push_str(&catalog.cmds[id].name);
                rules.push(' ');
                fake.change_perm(catalog, id, user);
            }
            if !user {
                if let Some(args) = self.firstargs.get(&id) {
                    for a in args {
                        rules.push_str(&format!("+{}|{} ", catalog.cmds[id].name, a));
                    }
                }
            }
        }
        rules.pop();
        rules
    }

    pub fn describe_keys(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        self.patterns.iter().map(pattern_string).collect::<Vec<_>>().join(" ")
    }

    pub fn describe_channels(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        self.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))).collect::<Vec<_>>().join(" ")
    }

    /// Redis's `ACLDescribeSelector` (ACL LIST form).
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut res = String::new();
        if self.allkeys {
            res.push_str("~* ");
        } else {
            for p in &self.patterns {
                res.push_str(&pattern_string(p));
                res.push(' ');
            }
        }
        if self.allchannels {
            res.push_str("&* ");
        } else {
            res.push_str("resetchannels ");
            for c in &self.channels {
                res.push('&');
                res.push_str(&String::from_utf8_lossy(c));
                res.push(' ');
            }
        }
        res.push_str(&self.describe_commands(catalog));
        res
    }

    fn check_key(&self, key: &[u8], need: u8) -> bool {
        if self.allkeys {
            return true;
        }
        self.patterns.iter().any(|p| p.flags & need == need && glob_match(&p.pattern, key))
    }

    fn check_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.allchannels || channel_in_list(&self.channels, channel, is_pattern)
    }

    /// Redis's `ACLSelectorCheckCmd`: Ok, or the denial and the argument index at fault.
    fn check(&self, a: &Access, catalog: &Catalog) -> Result<(), (Denied, usize)> {
        if !self.allcommands && !a.no_auth && !self.allowed.get(a.cmd).copied().unwrap_or(false) {
            let idx = if catalog.cmds[a.cmd].parent.is_some() { 2 } else { 1 };
            let ok = match (self.firstargs.get(&a.cmd), a.args.get(idx)) {
                (Some(list), Some(arg)) => list.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(arg)),
                _ => false,
            };
            if !ok {
                return Err((Denied::Command, 0));
            }
        }
        if !self.allkeys {
            for &(i, need) in a.keys {
                if !self.check_key(a.args.get(i).copied().unwrap_or_default(), need) {
                    return Err((Denied::Key, i));
                }
            }
        }
        if !self.allchannels {
            for &(i, pat) in a.channels {
                if !self.check_channel(a.args.get(i).copied().unwrap_or_default(), pat) {
                    return Err((Denied::Channel, i));
                }
            }
        }
        Ok(())
    }

    /// Has `need` access to every key (`~*`, `%R~*`...).
    fn unrestricted_keys(&self, need: u8) -> bool {
        self.allkeys || self.patterns.iter().any(|p| p.flags & need == need && p.pattern == b"*")
    }
}

fn pattern_string(p: &KeyPattern) -> String {
    let prefix = match p.flags {
        PERM_READ => "%R~",
        PERM_WRITE => "%W~",
        _ => "~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(&p.pattern))
}

fn channel_in_list(list: &[Vec<u8>], channel: &[u8], is_pattern: bool) -> bool {
    list.iter().any(|p| if is_pattern { p == channel } else { glob_match(p, channel) })
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|&c| c.is_ascii_whitespace() || c == 0)
}

/// Usernames can't contain spaces or null characters.
pub fn valid_username(name: &[u8]) -> bool {
    !has_spaces(name)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// None: neither flag; Some(true) sanitize-payload; Some(false) skip-sanitize-payload.
    pub sanitize: Option<bool>,
    /// SHA-256 hex digests, in the order added.
    pub passwords: Vec<String>,
    /// The root selector first.
    pub selectors: Vec<Selector>,
}

/// Options that shape new users and selectors.
#[derive(Debug, Clone, Copy, Default)]
pub struct AclOptions {
    /// `acl-pubsub-default allchannels`.
    pub pubsub_default_all: bool,
}

impl User {
    pub fn new(name: &str, catalog: &Catalog, opts: AclOptions) -> Self {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new(catalog, true, opts.pubsub_default_all)],
        }
    }

    pub fn default_user(catalog: &Catalog, opts: AclOptions) -> Self {
        let mut u = User::new("default", catalog, opts);
        for r in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(catalog, opts, r.as_bytes());
        }
        u
    }

    pub fn root(&self) -> &Selector {
        &self.selectors[0]
    }

    /// Applies one rule (Redis's `ACLSetUser`).
    pub fn apply(&mut self, catalog: &Catalog, opts: AclOptions, op: &[u8]) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let lower = String::from_utf8_lossy(op).to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "sanitize-payload" => self.sanitize = Some(true),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "clearselectors" => self.selectors.truncate(1),
            "reset" => {
                self.nopass = false;
                self.passwords.clear();
                let root = &mut self.selectors[0];
                root.allkeys = false;
                root.patterns.clear();
                root.allchannels = opts.pubsub_default_all;
                root.channels.clear();
                self.enabled = false;
                self.sanitize = Some(true);
                self.selectors.truncate(1);
                self.selectors[0].set_all(false);
            }
            _ => match op[0] {
                b'>' | b'#' => {
                    let hash = if op[0] == b'>' { sha256_hex(&op[1..]) } else { checked_hash(&op[1..])? };
                    if !self.passwords.contains(&hash) {
                        self.passwords.push(hash);
                    }
                    self.nopass = false;
                }
                b'<' | b'!' => {
                    let hash = if op[0] == b'<' { sha256_hex(&op[1..]) } else { checked_hash(&op[1..])? };
                    let pos = self.passwords.iter().position(|p| *p == hash).ok_or(RuleError::NoSuchPassword)?;
                    self.passwords.remove(pos);
                }
                b'(' if op.last() == Some(&b')') => {
                    let inner = &op[1..op.len() - 1];
                    let words = split_args(inner).ok_or(RuleError::Syntax)?;
                    let mut s = Selector::new(catalog, false, opts.pubsub_default_all);
                    for w in words {
                        s.apply(catalog, &w)?;
                    }
                    self.selectors.push(s);
                }
                _ => self.selectors[0].apply(catalog, op)?,
            },
        }
        Ok(())
    }

    /// Redis's `ACLDescribeUser`: the rules of `ACL LIST` / an ACL file line.
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut res = String::new();
        res.push_str(if self.enabled { "on " } else { "off " });
        if self.nopass {
            res.push_str("nopass ");
        }
        match self.sanitize {
            Some(false) => res.push_str("skip-sanitize-payload "),
            Some(true) => res.push_str("sanitize-payload "),
            None => {}
        }
        for p in &self.passwords {
            res.push('#');
            res.push_str(p);
            res.push(' ');
        }
        for s in &self.selectors {
            let d = s.describe(catalog);
            if s.root {
                res.push_str(&d);
            } else {
                res.push_str(&format!(" ({d})"));
            }
        }
        res
    }

    /// The flags GETUSER shows.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    /// Whether `pass` opens this user (disabled users never authenticate).
    pub fn check_password(&self, pass: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let h = sha256_hex(pass);
        self.passwords.iter().any(|p| constant_time_eq(p.as_bytes(), h.as_bytes()))
    }

    /// Redis's `ACLCheckAllUserCommandPerm`.
    pub fn check(&self, catalog: &Catalog, a: &Access) -> Result<(), (Denied, usize)> {
        let mut relevant = (Denied::Command, 0usize);
        for s in &self.selectors {
            match s.check(a, catalog) {
                Ok(()) => return Ok(()),
                Err((d, i)) => {
                    if d > relevant.0 || (d == relevant.0 && i > relevant.1) {
                        relevant = (d, i);
                    }
                }
            }
        }
        Err(relevant)
    }

    /// A command allowed with `need` access to every key (scripts' SCAN, KEYS...).
    pub fn check_unrestricted(&self, catalog: &Catalog, a: &Access, need: u8) -> bool {
        self.selectors.iter().any(|s| s.check(a, catalog).is_ok() && s.unrestricted_keys(need))
    }

    pub fn check_key(&self, key: &[u8], need: u8) -> bool {
        self.selectors.iter().any(|s| s.check_key(key, need))
    }

    pub fn check_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.selectors.iter().any(|s| s.check_channel(channel, is_pattern))
    }

    /// Whether some of this user's channel rights were revoked in `new` (Redis's
    /// `ACLKillPubsubClientsIfNeeded` first steps): if so, returns the new channel list
    /// subscribers are checked against.
    pub fn revoked_channels(&self, new: &User) -> Option<Vec<Vec<u8>>> {
        if new.selectors.iter().any(|s| s.allchannels) {
            return None;
        }
        let upcoming: Vec<Vec<u8>> = new.selectors.iter().flat_map(|s| s.channels.iter().cloned()).collect();
        let still = self.selectors.iter().all(|s| !s.allchannels && s.channels.iter().all(|c| upcoming.contains(c)));
        if still {
            None
        } else {
            Some(upcoming)
        }
    }
}

/// Whether a subscriber's channel or pattern is still allowed by `list`.
pub fn channel_allowed(list: &[Vec<u8>], channel: &[u8], is_pattern: bool) -> bool {
    channel_in_list(list, channel, is_pattern)
}

fn checked_hash(h: &[u8]) -> Result<String, RuleError> {
    if h.len() != 64 || !h.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)) {
        return Err(RuleError::BadHash);
    }
    Ok(String::from_utf8_lossy(h).into_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Merges selector rules spread over several words (`(~x` `+get)`), as Redis's
/// `ACLMergeSelectorArguments`; Err(index of the opening word) when unbalanced.
pub fn merge_selector_args(args: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, op) in args.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(op);
            if op.last() == Some(&b')') {
                out.push(open.take().map(|(_, s)| s).unwrap_or_default());
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((j, op.clone()));
            continue;
        }
        out.push(op.clone());
    }
    match open {
        Some((j, _)) => Err(j),
        None => Ok(out),
    }
}

/// Splits words as Redis's `sdssplitargs` does (quotes and escapes).
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 3 < n && line[i + 1] == b'x' && line[i + 2].is_ascii_hexdigit() && line[i + 3].is_ascii_hexdigit() {
                    let h = std::str::from_utf8(&line[i + 2..i + 4]).ok().and_then(|s| u8::from_str_radix(s, 16).ok()).unwrap_or(0);
                    cur.push(h);
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Redis's glob (`stringmatchlen`, case-sensitive).
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    fn m(p: &[u8], s: &[u8], depth: usize) -> bool {
        if depth > 1000 {
            return false;
        }
        let (mut pi, mut si) = (0, 0);
        while pi < p.len() {
            match p[pi] {
                b'*' => {
                    while pi + 1 < p.len() && p[pi + 1] == b'*' {
                        pi += 1;
                    }
                    if pi + 1 == p.len() {
                        return true;
                    }
                    for k in si..=s.len() {
                        if m(&p[pi + 1..], &s[k..], depth + 1) {
                            return true;
                        }
                    }
                    return false;
                }
                b'?' => {
                    if si >= s.len() {
                        return false;
                    }
                    si += 1;
                }
                b'[' => {
                    if si >= s.len() {
                        return false;
                    }
                    pi += 1;
                    let not = p.get(pi) == Some(&b'^');
                    if not {
                        pi += 1;
                    }
                    let mut matched = false;
                    loop {
                        if pi >= p.len() {
                            pi -= 1;
                            break;
                        }
                        if p[pi] == b'\\' && pi + 1 < p.len() {
                            pi += 1;
                            if p[pi] == s[si] {
                                matched = true;
                            }
                        } else if p[pi] == b']' {
                            break;
                        } else if pi + 2 < p.len() && p[pi + 1] == b'-' {
                            let (mut a, mut b) = (p[pi], p[pi + 2]);
                            if a > b {
                                std::mem::swap(&mut a, &mut b);
                            }
                            if s[si] >= a && s[si] <= b {
                                matched = true;
                            }
                            pi += 2;
                        } else if p[pi] == s[si] {
                            matched = true;
                        }
                        pi += 1;
                    }
                    if not {
                        matched = !matched;
                    }
                    if !matched {
                        return false;
                    }
                    si += 1;
                }
                b'\\' if pi + 1 < p.len() => {
                    pi += 1;
                    if si >= s.len() || p[pi] != s[si] {
                        return false;
                    }
                    si += 1;
                }
                c => {
                    if si >= s.len() || c != s[si] {
                        return false;
                    }
                    si += 1;
                }
            }
            pi += 1;
        }
        si == s.len()
    }
    m(pattern, string, 0)
}

/// SHA-256 as lowercase hex (how Redis stores and shows ACL passwords).
pub fn sha256_hex(data: &[u8]) -> String {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
        0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
        0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
        0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

/// ACL HELP, as Redis 7.0 prints it (the server's and the sentinel's).
pub const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Catalog::build(vec![
            ("get".into(), s(&["read", "string", "fast"]), vec![]),
            ("set".into(), s(&["write", "string", "slow"]), vec![]),
            ("select".into(), s(&["fast", "connection"]), vec![]),
            ("config".into(), s(&["slow"]), vec![("config|get".into(), s(&["admin", "slow", "dangerous"])), ("config|set".into(), s(&["admin", "slow", "dangerous"]))]),
        ])
    }

    #[test]
    fn describe_follows_categories_and_single_commands() {
        let c = catalog();
        let o = AclOptions::default();
        let mut u = User::new("u", &c, o);
        for r in ["on", ">p", "~k*", "+@string", "-set", "+config|get", "+select|0"] {
            u.apply(&c, o, r.as_bytes()).unwrap();
        }
        assert_eq!(u.describe(&c), "on #9c0ac7f6e80dca2ba4b8ab5a4b9b5e6d1ec9d1eb4a45d0be4b8b0ba0c15e4a39b ~k* resetchannels -@all +@read +config|get +select|0".replace("#9c0ac7f6e80dca2ba4b8ab5a4b9b5e6d1ec9d1eb4a45d0be4b8b0ba0c15e4a39b", &format!("#{}", sha256_hex(b"p"))));
        assert!(u.check_password(b"p") && !u.check_password(b"q"));
        let args: Vec<&[u8]> = vec![b"select", b"0"];
        let id = c.lookup("select").unwrap();
        assert!(u.check(&c, &Access { cmd: id, no_auth: false, args: &args, keys: &[], channels: &[] }).is_ok());
        let args: Vec<&[u8]> = vec![b"select", b"1"];
        assert_eq!(u.check(&c, &Access { cmd: id, no_auth: false, args: &args, keys: &[], channels: &[] }), Err((Denied::Command, 0)));
    }

    #[test]
    fn key_permissions_and_errors() {
        let c = catalog();
        let o = AclOptions::default();
        let mut u = User::new("u", &c, o);
        u.apply(&c, o, b"%R~r*").unwrap();
        assert!(u.check_key(b"r1", PERM_READ) && !u.check_key(b"r1", PERM_WRITE));
        assert_eq!(u.apply(&c, o, b"%X~a"), Err(RuleError::Syntax));
        assert_eq!(u.apply(&c, o, b"+nosuch"), Err(RuleError::UnknownCommand));
        assert_eq!(u.apply(&c, o, b"+config|get|x"), Err(RuleError::SubcommandFirstArg));
        u.apply(&c, o, b"allkeys").unwrap();
        assert_eq!(u.apply(&c, o, b"~x"), Err(RuleError::AfterAllKeys));
        assert_eq!(merge_selector_args(&[b"(~x".to_vec(), b"+get)".to_vec()]), Ok(vec![b"(~x +get)".to_vec()]));
        assert_eq!(merge_selector_args(&[b"(~x".to_vec()]), Err(0));
        assert!(glob_match(b"a[b-c]*", b"acz") && !glob_match(b"a?", b"a"));
    }
}
