//! rf-server's ACL: the users (shared model in `common::acl`), the check the dispatcher,
//! EXEC and scripts run before a command, the ACL LOG, the ACL file, and the ACL command.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::client::{ClientState, Outbound};
use super::command::{flags, CommandSpec, CommandTable, Ctx};
use super::commands::docs::{find_info, Node};
use super::state::ServerState;
use crate::common::acl::{self, Access, AclOptions, Catalog, Denied, User, PERM_READ, PERM_WRITE};
use crate::resp::Frame;

/// ACL LOG entries of the same kind within this many ms are grouped.
const LOG_GROUPING_MS: i64 = 60_000;

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub ctime_ms: i64,
    pub cinfo: String,
}

#[derive(Debug, Clone)]
pub struct AclState {
    pub catalog: Arc<Catalog>,
    pub users: BTreeMap<String, User>,
    pub log: VecDeque<LogEntry>,
    pub opts: AclOptions,
    pub log_max_len: usize,
    /// `aclfile` (empty: none).
    pub file: String,
}

/// The catalog of every command rf-server has (original names: ACL rules ignore renames).
pub fn catalog() -> Arc<Catalog> {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    CATALOG.get_or_init(|| Arc::new(catalog_of(&super::commands::all()))).clone()
}

fn catalog_of(specs: &[CommandSpec]) -> Catalog {
    let cats = |s: &CommandSpec| s.acl.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    Catalog::build(specs.iter().map(|s| (s.name.clone(), cats(s), s.subcommands.iter().map(|sub| (sub.name.clone(), cats(sub))).collect())).collect())
}

impl AclState {
    pub fn new(requirepass: &str, pubsub_default_all: bool) -> Self {
        let catalog = catalog();
        let opts = AclOptions { pubsub_default_all };
        let mut default = User::default_user(&catalog, opts);
        set_default_password(&mut default, &catalog, opts, requirepass);
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), default);
        AclState { catalog, users, log: VecDeque::new(), opts, log_max_len: 128, file: String::new() }
    }

    pub fn default_user(&self) -> Option<&User> {
        self.users.get("default")
    }

    /// Whether a new connection is authenticated at once (default user on and nopass).
    pub fn default_open(&self) -> bool {
        self.default_user().is_some_and(|u| u.enabled && u.nopass)
    }

    /// Applies `rules` to `name` (created if missing), all or nothing. Err: Redis's text.
    pub fn set_user(&mut self, name: &str, rules: &[Vec<u8>]) -> Result<(Option<User>, User), String> {
        let merged = acl::merge_selector_args(rules)
            .map_err(|i| format!("Unmatched parenthesis in acl selector starting at '{}'.", String::from_utf8_lossy(&rules[i])))?;
        let old = self.users.get(name).cloned();
        let mut u = old.clone().unwrap_or_else(|| User::new(name, &self.catalog, self.opts));
        for r in &merged {
            u.apply(&self.catalog, self.opts, r).map_err(|e| format!("Error in ACL SETUSER modifier '{}': {e}", String::from_utf8_lossy(r)))?;
        }
        self.users.insert(name.to_string(), u.clone());
        Ok((old, u))
    }

    /// The users of an ACL file's text; Err: Redis's error list.
    pub fn parse_file(&self, text: &str, filename: &str) -> Result<BTreeMap<String, User>, String> {
        let mut users: BTreeMap<String, User> = BTreeMap::new();
        let mut errors = String::new();
        for (i, raw) in text.split('\n').enumerate() {
            let linenum = i + 1;
            let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&str> = line.split(' ').collect();
            if argv[0] != "user" || argv.len() < 2 {
                errors.push_str(&format!("{filename}:{linenum} should start with user keyword followed by the username. "));
                continue;
            }
            if !acl::valid_username(argv[1].as_bytes()) || argv[1].is_empty() {
                errors.push_str(&format!("'{filename}:{linenum}: username '{}' contains invalid characters. ", argv[1]));
                continue;
            }
            if users.contains_key(argv[1]) {
                errors.push_str(&format!("WARNING: Duplicate user '{}' found on line {linenum}. ", argv[1]));
                continue;
            }
            let mut u = User::new(argv[1], &self.catalog, self.opts);
            let rules: Vec<Vec<u8>> = argv[2..].iter().map(|a| a.as_bytes().to_vec()).collect();
            let merged = match acl::merge_selector_args(&rules) {
                Ok(m) => m,
                Err(_) => {
                    errors.push_str(&format!("{filename}:{linenum}: Unmatched parenthesis in selector definition."));
                    Vec::new()
                }
            };
            let mut syntax_error = false;
            for r in &merged {
                let r: Vec<u8> = String::from_utf8_lossy(r).trim_matches(|c| c == '\t' || c == '\r' || c == '\n').as_bytes().to_vec();
                if let Err(e) = u.apply(&self.catalog, self.opts, &r) {
                    if e == acl::RuleError::UnknownCommand {
                        errors.push_str(&format!("{filename}:{linenum}: Error in applying operation '{}': {e}. ", String::from_utf8_lossy(&r)));
                    } else if !syntax_error {
                        errors.push_str(&format!("{filename}:{linenum}: {e}. "));
                        syntax_error = true;
                    }
                }
            }
            users.insert(argv[1].to_string(), u);
        }
        if !errors.is_empty() {
            errors.push_str("WARNING: ACL errors detected, no change to the previously active ACL rules was performed");
            return Err(errors);
        }
        if !users.contains_key("default") {
            users.insert("default".into(), User::default_user(&self.catalog, self.opts));
        }
        Ok(users)
    }

    /// The ACL file / ACL LIST lines.
    pub fn lines(&self) -> Vec<String> {
        self.users.values().map(|u| format!("user {} {}", u.name, u.describe(&self.catalog))).collect()
    }
}

/// `requirepass`: the default user's only password, or nopass when empty.
pub fn set_default_password(u: &mut User, catalog: &Catalog, opts: AclOptions, pass: &str) {
    let _ = u.apply(catalog, opts, b"resetpass");
    if pass.is_empty() {
        let _ = u.apply(catalog, opts, b"nopass");
    } else {
        let mut op = b">".to_vec();
        op.extend_from_slice(pass.as_bytes());
        let _ = u.apply(catalog, opts, &op);
    }
}

/// Validates a `user` config line (Redis's `ACLAppendUserForLoading`): unknown commands
/// pass (they are reported when the users load). Err: Redis's reason text.
pub fn validate_user_line(argv: &[String], seen: &[Vec<String>]) -> Result<(), String> {
    if seen.iter().any(|l| l.first() == argv.get(1)) {
        return Err(format!("Error in user declaration '{}': Duplicate user found. A user can only be defined once in config files", argv.get(1).map(String::as_str).unwrap_or("")));
    }
    let cat = catalog();
    let opts = AclOptions::default();
    let mut fake = User::new("__fakeuser__", &cat, opts);
    let rules: Vec<Vec<u8>> = argv[2..].iter().map(|a| a.as_bytes().to_vec()).collect();
    let merged = acl::merge_selector_args(&rules).map_err(|i| format!("Error in user declaration '{}': Wrong format", argv.get(i).map(String::as_str).unwrap_or("")))?;
    for (j, r) in merged.iter().enumerate() {
        if let Err(e) = fake.apply(&cat, opts, r) {
            if e != acl::RuleError::UnknownCommand {
                // Redis names argv[j] (the index among the rules, applied to the whole line).
                return Err(format!("Error in user declaration '{}': {e}", argv.get(j).map(String::as_str).unwrap_or("")));
            }
        }
    }
    Ok(())
}

/// The keys of a command with the permissions each needs, from Redis's key specs.
pub fn key_perms(spec: &CommandSpec, args: &[Bytes]) -> Vec<(usize, u8)> {
    let idx = spec.key_indices(args);
    if idx.is_empty() {
        return Vec::new();
    }
    let specs = parse_key_specs(spec);
    // Shard channels (SPUBLISH, SSUBSCRIBE) sit in `not_key` specs: no key permission.
    idx.into_iter()
        .filter(|&i| !specs.iter().any(|ks| ks.not_key && (ks.covers(i, args) || ks.keyword)))
        .map(|i| {
            let perm = specs.iter().find(|ks| ks.covers(i, args)).or_else(|| specs.iter().find(|ks| ks.keyword)).map(|ks| ks.perm);
            let perm = perm.unwrap_or_else(|| specs.iter().fold(0, |a, ks| a | ks.perm));
            (i, variable_flags(spec, args).unwrap_or(perm))
        })
        .collect()
}

/// Redis's `variable_flags` key specs: SET reads its key only with GET; BITFIELD writes only
/// with SET or INCRBY.
fn variable_flags(spec: &CommandSpec, args: &[Bytes]) -> Option<u8> {
    match spec.name.as_str() {
        "set" => Some(if args[3..].iter().any(|a| a.eq_ignore_ascii_case(b"get")) { PERM_READ | PERM_WRITE } else { PERM_WRITE }),
        "bitfield" => Some(if args[2..].iter().any(|a| a.eq_ignore_ascii_case(b"set") || a.eq_ignore_ascii_case(b"incrby")) { PERM_READ | PERM_WRITE } else { PERM_READ }),
        _ => None,
    }
}

struct KeySpec {
    perm: u8,
    not_key: bool,
    keyword: bool,
    index: i64,
    /// Range: last key (relative) and step; keynum: (keynum index, first key, step).
    range: Option<(i64, i64)>,
    keynum: Option<(i64, i64, i64)>,
}

impl KeySpec {
    fn covers(&self, i: usize, args: &[Bytes]) -> bool {
        if self.keyword || self.index <= 0 {
            return false;
        }
        let i = i as i64;
        let argc = args.len() as i64;
        let start = self.index;
        if let Some((last, step)) = self.range {
            let end = if last >= 0 { start + last } else { argc + last };
            return i >= start && i <= end && (i - start) % step.max(1) == 0;
        }
        if let Some((numidx, first, step)) = self.keynum {
            let n: i64 = args.get((start + numidx) as usize).and_then(|a| std::str::from_utf8(a).ok()?.parse().ok()).unwrap_or(0);
            let from = start + first;
            let to = from + (n - 1) * step.max(1);
            return i >= from && i <= to && (i - from) % step.max(1) == 0;
        }
        false
    }
}

fn parse_key_specs(spec: &CommandSpec) -> Vec<KeySpec> {
    let Some(info) = find_info(&spec.name) else { return Vec::new() };
    let Node::Set(items) = &info.key_specs else { return Vec::new() };
    let get = |m: &'static [(&'static str, Node)], k: &str| m.iter().find(|(n, _)| *n == k).map(|(_, v)| v);
    let int = |n: Option<&Node>| match n {
        Some(Node::Int(i)) => *i,
        _ => 0,
    };
    let mut out = Vec::new();
    for item in items.iter() {
        let Node::Map(m) = item else { continue };
        let mut perm = 0;
        let mut not_key = false;
        if let Some(Node::Set(fl)) = get(m, "flags") {
            for f in fl.iter() {
                if let Node::Simple(s) = f {
                    match *s {
                        "not_key" => not_key = true,
                        "access" => perm |= PERM_READ,
                        "insert" | "delete" | "update" => perm |= PERM_WRITE,
                        _ => {}
                    }
                }
            }
        }
        let (mut keyword, mut index) = (false, 0);
        if let Some(Node::Map(bs)) = get(m, "begin_search") {
            match get(bs, "type") {
                Some(Node::Bulk("index")) => {
                    if let Some(Node::Map(s)) = get(bs, "spec") {
                        index = int(get(s, "index"));
                    }
                }
                Some(Node::Bulk("keyword")) => keyword = true,
                // `unknown` specs: SORT's BY/GET (read, names no argument) and STORE.
                _ => {
                    if let Some(Node::Set(fl)) = get(m, "flags") {
                        if fl.iter().any(|f| matches!(f, Node::Simple("insert" | "delete" | "update"))) {
                            keyword = true;
                        } else {
                            continue;
                        }
                    }
                }
            }
        }
        let (mut range, mut keynum) = (None, None);
        if let Some(Node::Map(fk)) = get(m, "find_keys") {
            if let Some(Node::Map(s)) = get(fk, "spec") {
                match get(fk, "type") {
                    Some(Node::Bulk("range")) => range = Some((int(get(s, "lastkey")), int(get(s, "keystep")))),
                    Some(Node::Bulk("keynum")) => keynum = Some((int(get(s, "keynumidx")), int(get(s, "firstkey")), int(get(s, "keystep")))),
                    _ => {}
                }
            }
        }
        out.push(KeySpec { perm, not_key, keyword, index, range, keynum });
    }
    out
}

/// The channels of a command: (argument index, is a pattern).
pub fn channels(spec: &CommandSpec, args: &[Bytes]) -> Vec<(usize, bool)> {
    match spec.name.as_str() {
        "publish" | "spublish" => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..args.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..args.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}

/// Checks `user` may run `spec` with `args`: Err(denial, argument index).
pub fn check_user(catalog: &Catalog, user: &User, spec: &CommandSpec, args: &[Bytes]) -> Result<(), (Denied, usize)> {
    let no_auth = spec.has(flags::NO_AUTH);
    // The default user's case (every command, key and channel) costs no key extraction.
    if user.selectors.iter().any(|s| (s.allcommands || no_auth) && s.allkeys && s.allchannels) {
        return Ok(());
    }
    let Some(id) = catalog.lookup(&spec.name) else { return Ok(()) };
    let keys = if user.selectors.iter().all(|s| s.allkeys) { Vec::new() } else { key_perms(spec, args) };
    let chans = if user.selectors.iter().all(|s| s.allchannels) { Vec::new() } else { channels(spec, args) };
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
    user.check(catalog, &Access { cmd: id, no_auth, args: &argv, keys: &keys, channels: &chans })
}

/// The dispatcher's check for the client's user (a client whose user is gone runs nothing).
pub fn check_client(srv: &ServerState, client: &ClientState, spec: &CommandSpec, args: &[Bytes]) -> Result<(), (Denied, usize)> {
    if client.is_master_link || client.addr.is_empty() && client.tx.is_none() {
        return Ok(());
    }
    match srv.acl.users.get(&client.user) {
        Some(u) => check_user(&srv.acl.catalog, u, spec, args),
        None => Err((Denied::Command, 0)),
    }
}

/// Whether the client's user may run the command with read access to every key (SORT's
/// BY and GET patterns; Redis's `ACLUserCheckCmdWithUnrestrictedKeyAccess`).
pub fn full_key_access(srv: &ServerState, client: &ClientState, args: &[Bytes]) -> bool {
    if client.is_master_link || client.addr.is_empty() && client.tx.is_none() {
        return true;
    }
    let Some(u) = srv.acl.users.get(&client.user) else { return false };
    let Some(spec) = srv.commands.original(&args[0]).cloned() else { return true };
    let Some(id) = srv.acl.catalog.lookup(&spec.name) else { return true };
    let keys = key_perms(&spec, args);
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
    u.check_unrestricted(&srv.acl.catalog, &Access { cmd: id, no_auth: spec.has(flags::NO_AUTH), args: &argv, keys: &keys, channels: &[] }, PERM_READ)
}

/// The arguments as the slow log and MONITOR show them: passwords and ACL rules become
/// `(redacted)` (Redis's `redactClientCommandArgument` calls in AUTH, HELLO, ACL SETUSER
/// and CONFIG SET of its sensitive parameters). None: nothing to hide.
pub fn redact(args: &[Bytes]) -> Option<Vec<Bytes>> {
    let name = args.first()?.to_ascii_lowercase();
    let sub = args.get(1).map(|a| a.to_ascii_lowercase());
    let mut hide: Vec<usize> = Vec::new();
    match (name.as_slice(), sub.as_deref()) {
        (b"auth", _) if args.len() <= 3 => hide.extend(1..args.len()),
        (b"hello", _) => {
            let mut j = if args.len() >= 2 && std::str::from_utf8(&args[1]).ok().and_then(|s| s.parse::<i64>().ok()).is_some() { 2 } else { 1 };
            while j < args.len() {
                let more = args.len() - 1 - j;
                if args[j].eq_ignore_ascii_case(b"auth") && more >= 2 {
                    hide.extend([j + 1, j + 2]);
                    j += 3;
                } else if args[j].eq_ignore_ascii_case(b"setname") && more >= 1 {
                    j += 2;
                } else {
                    break;
                }
            }
        }
        (b"acl", Some(b"setuser")) => hide.extend(2..args.len()),
        // MIGRATE's AUTH password, AUTH2 user and password (before KEYS)
        (b"migrate", _) => {
            let mut j = 6;
            while j < args.len() {
                if args[j].eq_ignore_ascii_case(b"auth") && j + 1 < args.len() {
                    hide.push(j + 1);
                    j += 2;
                } else if args[j].eq_ignore_ascii_case(b"auth2") && j + 2 < args.len() {
                    hide.extend([j + 1, j + 2]);
                    j += 3;
                } else if args[j].eq_ignore_ascii_case(b"keys") {
                    break;
                } else {
                    j += 1;
                }
            }
        }
        (b"config", Some(b"set")) => {
            let mut i = 2;
            while i + 1 < args.len() {
                if matches!(args[i].to_ascii_lowercase().as_slice(), b"masteruser" | b"masterauth" | b"requirepass") {
                    hide.push(i + 1);
                }
                i += 2;
            }
        }
        _ => {}
    }
    if hide.is_empty() {
        return None;
    }
    Some(args.iter().enumerate().map(|(i, a)| if hide.contains(&i) { Bytes::from_static(b"(redacted)") } else { a.clone() }).collect())
}

/// Adds an ACL LOG entry (Redis's `addACLLogEntry`).
pub fn log_denial(srv: &mut ServerState, client: &ClientState, reason: &'static str, context: &'static str, object: String, username: Option<&str>, now_ms: i64) {
    let cinfo = super::commands::connection::client_line(client, now_ms, None);
    let username = username.unwrap_or(&client.user).to_string();
    let log = &mut srv.acl.log;
    let found = log.iter().take(10).position(|e| {
        e.reason == reason && e.context == context && (e.ctime_ms - now_ms).abs() <= LOG_GROUPING_MS && e.object == object && e.username == username
    });
    if let Some(pos) = found {
        if let Some(mut e) = log.remove(pos) {
            e.count += 1;
            e.cinfo = cinfo;
            e.ctime_ms = now_ms;
            log.push_front(e);
        }
        return;
    }
    log.push_front(LogEntry { count: 1, reason, context, object, username, ctime_ms: now_ms, cinfo });
    while log.len() > srv.acl.log_max_len {
        log.pop_back();
    }
}

/// Logs a denial of `spec` (object: the command, key or channel).
#[allow(clippy::too_many_arguments)]
pub fn log_command_denial(srv: &mut ServerState, client: &ClientState, spec: &CommandSpec, args: &[Bytes], d: Denied, idx: usize, context: &'static str, now_ms: i64) {
    let object = match d {
        Denied::Command => spec.name.clone(),
        _ => String::from_utf8_lossy(args.get(idx).map(|a| a.as_ref()).unwrap_or_default()).into_owned(),
    };
    log_denial(srv, client, d.reason(), context, object, None, now_ms);
}

/// The dispatcher's -NOPERM text.
pub fn noperm_error(d: Denied, spec: &CommandSpec) -> Frame {
    match d {
        Denied::Command => Frame::error(format!("NOPERM this user has no permissions to run the '{}' command", spec.name)),
        Denied::Key => Frame::error("NOPERM this user has no permissions to access one of the keys used as arguments"),
        Denied::Channel => Frame::error("NOPERM this user has no permissions to access one of the channels used as arguments"),
    }
}

/// Closes the connections of a deleted user (they go back to the default user, not
/// authenticated, as Redis leaves them until they close).
pub fn kill_user_clients(ctx: &mut Ctx, name: &str) {
    for c in ctx.srv.clients.values_mut() {
        if c.user == name && !c.is_master_link {
            c.user = "default".into();
            c.authenticated = false;
            c.killed = true;
            if let Some(tx) = &c.tx {
                let _ = tx.send(Outbound::Close);
            }
        }
    }
    if ctx.client.user == name {
        ctx.client.user = "default".into();
        ctx.client.authenticated = false;
        ctx.client.killed = true;
    }
}

/// Closes the pub/sub connections of `old` that `new` no longer allows.
fn kill_pubsub_clients_if_needed(ctx: &mut Ctx, old: &User, new: &User) {
    let Some(list) = old.revoked_channels(new) else { return };
    let violates = |c: &ClientState| {
        c.user == old.name
            && (c.patterns.iter().any(|p| !acl::channel_allowed(&list, p, true))
                || c.channels.iter().chain(c.shard_channels.iter()).any(|ch| !acl::channel_allowed(&list, ch, false)))
    };
    for c in ctx.srv.clients.values_mut() {
        if violates(c) {
            c.killed = true;
            if let Some(tx) = &c.tx {
                let _ = tx.send(Outbound::Close);
            }
        }
    }
    if violates(ctx.client) {
        ctx.client.killed = true;
    }
}

/// Authenticates `client` as `user` (Redis's `ACLAuthenticateUser`), logging failures with
/// the command name as the client typed it (`argv0`).
pub fn authenticate(ctx: &mut Ctx, argv0: &[u8], user: &[u8], pass: &[u8]) -> bool {
    let name = String::from_utf8_lossy(user).into_owned();
    let ok = ctx.srv.acl.users.get(&name).is_some_and(|u| u.check_password(pass));
    if ok {
        ctx.client.authenticated = true;
        ctx.client.user = name;
    } else {
        let context = if ctx.client.multi.is_some() { "multi" } else { "toplevel" };
        log_denial(ctx.srv, ctx.client, "auth", context, text(argv0), Some(&name), ctx.now_ms);
    }
    ok
}

// ---------- ACL subcommands ----------

fn text(a: &[u8]) -> String {
    String::from_utf8_lossy(a).into_owned()
}

pub fn acl_setuser(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if !acl::valid_username(&args[2]) {
        return Frame::error("ERR Usernames can't contain spaces or null characters");
    }
    let name = text(&args[2]);
    let rules: Vec<Vec<u8>> = args[3..].iter().map(|a| a.to_vec()).collect();
    match ctx.srv.acl.set_user(&name, &rules) {
        Ok((Some(old), new)) => {
            kill_pubsub_clients_if_needed(ctx, &old, &new);
            Frame::ok()
        }
        Ok((None, _)) => Frame::ok(),
        Err(e) => Frame::error(format!("ERR {e}")),
    }
}

pub fn acl_deluser(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args[2..].iter().any(|a| a.as_ref() == b"default") {
        return Frame::error("ERR The 'default' user cannot be removed");
    }
    let mut deleted = 0;
    for a in &args[2..] {
        let name = text(a);
        if ctx.srv.acl.users.remove(&name).is_some() {
            kill_user_clients(ctx, &name);
            deleted += 1;
        }
    }
    Frame::Integer(deleted)
}

fn selector_fields(catalog: &Catalog, s: &acl::Selector) -> Vec<(Frame, Frame)> {
    vec![
        (Frame::bulk("commands"), Frame::bulk(s.describe_commands(catalog))),
        (Frame::bulk("keys"), Frame::bulk(s.describe_keys())),
        (Frame::bulk("channels"), Frame::bulk(s.describe_channels())),
    ]
}

pub fn acl_getuser(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(u) = ctx.srv.acl.users.get(&text(&args[2])) else { return Frame::Null };
    let catalog = &ctx.srv.acl.catalog;
    let mut fields = vec![
        (Frame::bulk("flags"), Frame::Set(u.flags().into_iter().map(Frame::bulk).collect())),
        (Frame::bulk("passwords"), Frame::Array(u.passwords.iter().map(|p| Frame::bulk(p.clone())).collect())),
    ];
    fields.extend(selector_fields(catalog, u.root()));
    fields.push((Frame::bulk("selectors"), Frame::Array(u.selectors[1..].iter().map(|s| Frame::Map(selector_fields(catalog, s))).collect())));
    Frame::Map(fields)
}

pub fn acl_list(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Array(ctx.srv.acl.lines().into_iter().map(Frame::bulk).collect())
}

pub fn acl_users(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Array(ctx.srv.acl.users.keys().map(|k| Frame::bulk(k.clone())).collect())
}

pub fn acl_whoami(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::bulk(ctx.client.user.clone())
}

/// Redis's `addReplySubcommandSyntaxError`.
fn subcommand_syntax_error(args: &[Bytes]) -> Frame {
    let sub: String = text(&args[1]).chars().take(128).collect();
    Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {} HELP.", text(&args[0]).to_ascii_uppercase()))
}

pub fn acl_cat(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return subcommand_syntax_error(args);
    }
    match args.get(2) {
        None => Frame::Array(acl::CATEGORIES.iter().map(|c| Frame::bulk(*c)).collect()),
        Some(cat) => match acl::category_bit(&text(cat)) {
            None => Frame::error(format!("ERR Unknown category '{}'", text(cat).chars().take(128).collect::<String>())),
            Some(bit) => Frame::Array(ctx.srv.acl.catalog.in_category(bit).into_iter().map(|n| Frame::bulk(n.to_string())).collect()),
        },
    }
}

pub fn acl_genpass(_ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return subcommand_syntax_error(args);
    }
    let bits = match args.get(2) {
        None => 256,
        Some(a) => match std::str::from_utf8(a).ok().and_then(|s| s.parse::<i64>().ok()) {
            Some(b) => b,
            None => return Frame::error("ERR value is not an integer or out of range"),
        },
    };
    if bits <= 0 || bits > 4096 {
        return Frame::error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
    }
    let chars = ((bits + 3) / 4) as usize;
    let hex: String = (0..chars).map(|_| char::from_digit(rand::random::<u32>() % 16, 16).unwrap_or('0')).collect();
    Frame::bulk(hex)
}

pub fn acl_log(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return subcommand_syntax_error(args);
    }
    let mut count = 10i64;
    if let Some(a) = args.get(2) {
        if a.eq_ignore_ascii_case(b"reset") {
            ctx.srv.acl.log.clear();
            return Frame::ok();
        }
        match std::str::from_utf8(a).ok().and_then(|s| s.parse::<i64>().ok()) {
            Some(c) => count = c.max(0),
            None => return Frame::error("ERR value is not an integer or out of range"),
        }
    }
    let now = ctx.now_ms;
    Frame::Array(
        ctx.srv
            .acl
            .log
            .iter()
            .take(count as usize)
            .map(|e| {
                Frame::Map(vec![
                    (Frame::bulk("count"), Frame::Integer(e.count as i64)),
                    (Frame::bulk("reason"), Frame::bulk(e.reason)),
                    (Frame::bulk("context"), Frame::bulk(e.context)),
                    (Frame::bulk("object"), Frame::bulk(e.object.clone())),
                    (Frame::bulk("username"), Frame::bulk(e.username.clone())),
                    (Frame::bulk("age-seconds"), Frame::Double((now - e.ctime_ms) as f64 / 1000.0)),
                    (Frame::bulk("client-info"), Frame::bulk(e.cinfo.clone())),
                ])
            })
            .collect(),
    )
}

pub fn acl_dryrun(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let name = text(&args[2]);
    let Some(u) = ctx.srv.acl.users.get(&name) else { return Frame::error(format!("ERR User '{name}' not found")) };
    let table: Arc<CommandTable> = ctx.srv.commands.clone();
    let cmd_args = &args[3..];
    let spec = table.lookup(&cmd_args[0]).and_then(|top| super::dispatch::resolve(top, cmd_args).ok()).cloned();
    let Some(spec) = spec else { return Frame::error(format!("ERR Command '{}' not found", text(&cmd_args[0]))) };
    if !spec.check_arity(cmd_args.len()) {
        return Frame::error(format!("ERR wrong number of arguments for '{}' command", spec.name));
    }
    match check_user(&ctx.srv.acl.catalog, u, &spec, cmd_args) {
        Ok(()) => Frame::ok(),
        Err((Denied::Command, _)) => Frame::bulk(format!("This user has no permissions to run the '{}' command", spec.name)),
        Err((Denied::Key, i)) => Frame::bulk(format!("This user has no permissions to access the '{}' key", text(&cmd_args[i]))),
        Err((Denied::Channel, i)) => Frame::bulk(format!("This user has no permissions to access the '{}' channel", text(&cmd_args[i]))),
    }
}

const NO_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

/// Loads the ACL file, replacing every user at once; Err: Redis's error text.
pub fn load_file(srv: &mut ServerState) -> Result<(), String> {
    let file = srv.acl.file.clone();
    let text = std::fs::read_to_string(&file).map_err(|e| format!("Error loading ACLs, opening file '{file}': {}", crate::server::config::io_reason(&e)))?;
    let users = srv.acl.parse_file(&text, &file)?;
    srv.acl.users = users;
    Ok(())
}

pub fn save_file(srv: &ServerState) -> std::io::Result<()> {
    let mut out = String::new();
    for l in srv.acl.lines() {
        out.push_str(&l);
        out.push('\n');
    }
    let tmp = format!("{}.tmp-{}-{}", srv.acl.file, std::process::id(), super::now_ms());
    let res = std::fs::write(&tmp, out).and_then(|_| std::fs::rename(&tmp, &srv.acl.file));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

pub fn acl_load(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    if ctx.srv.acl.file.is_empty() {
        return Frame::error(NO_FILE);
    }
    match load_file(ctx.srv) {
        Ok(()) => {
            // Redis frees every old user but `default` (kept in place), closing the
            // connections authenticated as them, even if the file has the user again.
            let mut names: Vec<String> = ctx.srv.clients.values().map(|c| c.user.clone()).chain(std::iter::once(ctx.client.user.clone())).collect();
            names.sort();
            names.dedup();
            for n in names.iter().filter(|n| *n != "default") {
                kill_user_clients(ctx, n);
            }
            Frame::ok()
        }
        Err(e) => Frame::error(format!("ERR {e}")),
    }
}

pub fn acl_save(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    if ctx.srv.acl.file.is_empty() {
        return Frame::error(NO_FILE);
    }
    match save_file(ctx.srv) {
        Ok(()) => Frame::ok(),
        Err(e) => {
            super::log::warning(&format!("Writing ACL file for ACL SAVE: {e}"));
            Frame::error("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
        }
    }
}

pub fn acl_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    super::commands::server::help_lines(crate::common::acl::ACL_HELP)
}
