//! ACL users of the sentinel itself, the subset of Redis 7.0's ACL that Sentinel setups
//! use: `on`/`off`, `>pass`, `<pass`, `#hash`, `!hash`, `nopass`, `resetpass`, `reset`,
//! `+@all`/`allcommands`, `-@all`/`nocommands`, `+<command>`/`-<command>`, and key /
//! channel patterns (kept for the description; the sentinel has no keys).
//!
//! `requirepass` is the password of the `default` user, as in Redis. Passwords are kept as
//! SHA-256 hex digests, as Redis shows them (`#<hash>`).

use std::collections::BTreeMap;

use crate::resp::Frame;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    #[error("Error in ACL SETUSER modifier '{modifier}': {reason}")]
    BadModifier { modifier: String, reason: &'static str },
    #[error("The 'default' user cannot be removed")]
    DefaultUser,
    #[error("Usernames can't contain spaces or null characters")]
    BadUsername,
}

const SYNTAX: &str = "Syntax error";

/// Redis's ACLStringHasSpaces: C's isspace (which counts \v) or NUL. Names and patterns
/// with them are refused: they could not be written to a config file and read again.
fn has_spaces(s: &str) -> bool {
    s.bytes().any(|b| b == 0 || b == 0x0b || b.is_ascii_whitespace())
}
const UNKNOWN_COMMAND: &str = "Unknown command or category name in ACL";
const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";
const NO_SUCH_PASSWORD: &str = "The password you are trying to remove from the user does not exist";

/// Commands the sentinel serves (for `+<command>` rules): Redis Sentinel 7.0's 15.
const SENTINEL_COMMANDS: &[&str] = &[
    "ping", "auth", "hello", "client", "info", "role", "sentinel", "subscribe", "psubscribe", "unsubscribe",
    "punsubscribe", "publish", "shutdown", "command", "acl",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    pub sanitize_payload: bool,
    /// SHA-256 hex digests, in the order added.
    pub passwords: Vec<String>,
    pub all_keys: bool,
    pub key_patterns: Vec<String>,
    pub all_channels: bool,
    pub channel_patterns: Vec<String>,
    pub all_commands: bool,
    /// Exceptions to `all_commands`: denied ones when it is set, allowed ones otherwise.
    pub command_exceptions: Vec<String>,
}

impl User {
    /// A new user as `ACL SETUSER name` creates it: off, no password, nothing allowed.
    pub fn new(name: &str) -> Self {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize_payload: false,
            passwords: Vec::new(),
            all_keys: false,
            key_patterns: Vec::new(),
            all_channels: false,
            channel_patterns: Vec::new(),
            all_commands: false,
            command_exceptions: Vec::new(),
        }
    }

    fn default_user() -> Self {
        User { enabled: true, nopass: true, all_keys: true, all_channels: true, all_commands: true, ..User::new("default") }
    }

    /// Applies one rule (`ACL SETUSER` modifier, or one word of a `user` config line).
    pub fn apply(&mut self, rule: &str) -> Result<(), AclError> {
        let bad = |reason| AclError::BadModifier { modifier: rule.to_string(), reason };
        if rule.is_empty() {
            // Redis: an empty modifier does nothing
            return Ok(());
        }
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "sanitize-payload" => self.sanitize_payload = true,
            "skip-sanitize-payload" => self.sanitize_payload = false,
            "allkeys" | "~*" => {
                self.all_keys = true;
                self.key_patterns.clear();
            }
            "resetkeys" => {
                self.all_keys = false;
                self.key_patterns.clear();
            }
            "allchannels" | "&*" => {
                self.all_channels = true;
                self.channel_patterns.clear();
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channel_patterns.clear();
            }
            "allcommands" | "+@all" => {
                self.all_commands = true;
                self.command_exceptions.clear();
            }
            "nocommands" | "-@all" => {
                self.all_commands = false;
                self.command_exceptions.clear();
            }
            "reset" => {
                *self = User { sanitize_payload: true, ..User::new(&self.name) };
            }
            _ => {
                // a rule starting with a multi-byte character is no rule
                let Some(first) = rule.get(..1) else {
                    return Err(bad(SYNTAX));
                };
                let rest = &rule[1..];
                match first {
                    ">" => {
                        let h = sha256_hex(rest.as_bytes());
                        if !self.passwords.contains(&h) {
                            self.passwords.push(h);
                        }
                        self.nopass = false;
                    }
                    "#" => {
                        if rest.len() != 64 || !rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                            return Err(bad(BAD_HASH));
                        }
                        if !self.passwords.iter().any(|p| p == rest) {
                            self.passwords.push(rest.to_string());
                        }
                        self.nopass = false;
                    }
                    "<" | "!" => {
                        let h = if first == "<" { sha256_hex(rest.as_bytes()) } else { rest.to_string() };
                        let Some(pos) = self.passwords.iter().position(|p| *p == h) else {
                            return Err(bad(NO_SUCH_PASSWORD));
                        };
                        self.passwords.remove(pos);
                    }
                    // patterns with spaces are refused as names are (Redis: EINVAL)
                    "~" | "&" if has_spaces(rest) => return Err(bad(SYNTAX)),
                    "~" => {
                        if !self.all_keys && !self.key_patterns.iter().any(|p| p == rest) {
                            self.key_patterns.push(rest.to_string());
                        }
                    }
                    "&" => {
                        if !self.all_channels && !self.channel_patterns.iter().any(|p| p == rest) {
                            self.channel_patterns.push(rest.to_string());
                        }
                    }
                    "+" | "-" => {
                        let cmd = rest.to_ascii_lowercase();
                        let base = cmd.split('|').next().unwrap_or("");
                        if cmd.starts_with('@') || !SENTINEL_COMMANDS.contains(&base) {
                            return Err(bad(UNKNOWN_COMMAND));
                        }
                        let allow = first == "+";
                        // an exception to the blanket rule, or the removal of one
                        self.command_exceptions.retain(|c| *c != cmd);
                        if allow != self.all_commands {
                            self.command_exceptions.push(cmd);
                        }
                    }
                    _ => return Err(bad(SYNTAX)),
                }
            }
        }
        Ok(())
    }

    /// May this user run `cmd` (lower case; `sub` is its subcommand, if it has any)?
    pub fn can_run(&self, cmd: &str, sub: Option<&str>) -> bool {
        let full = sub.map(|s| format!("{cmd}|{s}"));
        let excepted = self.command_exceptions.iter().any(|c| c == cmd || Some(c) == full.as_ref());
        self.all_commands != excepted
    }

    pub fn check_password(&self, pass: &str) -> bool {
        self.enabled && (self.nopass || self.passwords.contains(&sha256_hex(pass.as_bytes())))
    }

    /// The rules as `ACL LIST` and the config rewrite show them (without `user <name>`).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            parts.push("nopass".into());
        }
        if self.sanitize_payload {
            parts.push("sanitize-payload".into());
        }
        parts.extend(self.passwords.iter().map(|p| format!("#{p}")));
        parts.extend(self.keys_description());
        parts.push(self.channels_description());
        parts.push(self.commands_description());
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }

    fn keys_description(&self) -> Option<String> {
        if self.all_keys {
            Some("~*".into())
        } else if self.key_patterns.is_empty() {
            None
        } else {
            Some(self.key_patterns.iter().map(|p| format!("~{p}")).collect::<Vec<_>>().join(" "))
        }
    }

    fn channels_description(&self) -> String {
        if self.all_channels {
            "&*".into()
        } else {
            let mut s = String::from("resetchannels");
            for p in &self.channel_patterns {
                s.push_str(&format!(" &{p}"));
            }
            s
        }
    }

    fn commands_description(&self) -> String {
        let mut s = String::from(if self.all_commands { "+@all" } else { "-@all" });
        let sign = if self.all_commands { '-' } else { '+' };
        for c in &self.command_exceptions {
            s.push(' ');
            s.push(sign);
            s.push_str(c);
        }
        s
    }

    /// `ACL GETUSER`, shaped as Redis 7.0's.
    pub fn getuser_reply(&self) -> Frame {
        let b = |s: &str| Frame::bulk(s.to_string());
        let mut flags = vec![b(if self.enabled { "on" } else { "off" })];
        if self.nopass {
            flags.push(b("nopass"));
        }
        if self.sanitize_payload {
            flags.push(b("sanitize-payload"));
        }
        Frame::Map(vec![
            (b("flags"), Frame::Set(flags)),
            (b("passwords"), Frame::Array(self.passwords.iter().map(|p| b(p)).collect())),
            (b("commands"), b(&self.commands_description())),
            (b("keys"), b(&self.keys_description().unwrap_or_default())),
            (b("channels"), b(&if self.all_channels { "&*".into() } else { self.channel_patterns.iter().map(|p| format!("&{p}")).collect::<Vec<_>>().join(" ") })),
            (b("selectors"), Frame::Array(vec![])),
        ])
    }
}

/// All users, `default` always among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    users: BTreeMap<String, User>,
}

impl Default for Acl {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), User::default_user());
        Acl { users }
    }
}

impl Acl {
    /// `requirepass <p>`: the default user's only password (empty: `nopass`).
    pub fn set_requirepass(&mut self, pass: Option<&str>) {
        let d = self.users.get_mut("default").expect("default user exists");
        d.passwords.clear();
        match pass {
            Some(p) => {
                d.nopass = false;
                d.passwords.push(sha256_hex(p.as_bytes()));
            }
            None => d.nopass = true,
        }
    }

    /// `ACL SETUSER name rules...` / a `user name rules...` line; all rules or none apply.
    pub fn set_user(&mut self, name: &str, rules: &[String]) -> Result<(), AclError> {
        // Redis's ACLStringHasSpaces: C's isspace (which counts \v) or NUL. Such a name
        // could not be written back to a config file and read again.
        if has_spaces(name) {
            return Err(AclError::BadUsername);
        }
        let mut user = self.users.get(name).cloned().unwrap_or_else(|| User::new(name));
        for r in rules {
            user.apply(r)?;
        }
        self.users.insert(name.to_string(), user);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Deletes users; returns how many existed.
    pub fn delete(&mut self, names: &[String]) -> Result<usize, AclError> {
        if names.iter().any(|n| n == "default") {
            return Err(AclError::DefaultUser);
        }
        Ok(names.iter().filter(|n| self.users.remove(n.as_str()).is_some()).count())
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// `AUTH user pass`: the user if the pair is valid and the user enabled.
    pub fn authenticate(&self, user: &str, pass: &str) -> Option<&User> {
        self.users.get(user).filter(|u| u.check_password(pass))
    }

    /// `user ...` lines for the config rewrite (Redis writes every user, `default` too).
    pub fn config_lines(&self) -> Vec<String> {
        self.users.values().map(|u| format!("user {} {}", u.name, u.describe())).collect()
    }
}

/// SHA-256 (FIPS 180-4), hex encoded: how Redis stores and shows ACL passwords.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_digests() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        // the digest Redis 7.0.15 shows for `>pw` (ACL LIST)
        assert_eq!(sha256_hex(b"pw"), "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4");
        // longer than one block
        assert_eq!(sha256_hex(&[b'a'; 100]), "2816597888e4a0d3a36b82b83316ab32680eb8f00f8cd3b904d681246d285a0e");
    }

    #[test]
    fn descriptions_as_redis_lists_them() {
        let mut acl = Acl::default();
        assert_eq!(acl.config_lines(), vec!["user default on nopass ~* &* +@all".to_string()]);
        acl.set_user("alice", &["on".into(), ">pw".into(), "+@all".into()]).unwrap();
        assert_eq!(
            acl.get("alice").unwrap().describe(),
            "on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 resetchannels +@all"
        );
        acl.set_user("erin", &["on".into(), "-@all".into(), "+info".into()]).unwrap();
        assert_eq!(acl.get("erin").unwrap().describe(), "on resetchannels -@all +info");
        acl.set_user("alice", &["reset".into()]).unwrap();
        assert_eq!(acl.get("alice").unwrap().describe(), "off sanitize-payload resetchannels -@all");
        acl.set_user("x", &["~foo".into()]).unwrap();
        assert_eq!(acl.get("x").unwrap().describe(), "off ~foo resetchannels -@all");
    }

    #[test]
    fn bad_modifiers_are_refused_whole() {
        let mut acl = Acl::default();
        let e = acl.set_user("bob", &[">x".into(), "foo".into()]).unwrap_err();
        assert_eq!(e.to_string(), "Error in ACL SETUSER modifier 'foo': Syntax error");
        assert!(acl.get("bob").is_none(), "nothing applied");
        let e = acl.set_user("bob", &["#abc".into()]).unwrap_err();
        assert!(e.to_string().contains("exactly 64 characters"));
        let e = acl.set_user("bob", &["+nosuchcmd".into()]).unwrap_err();
        assert_eq!(e.to_string(), "Error in ACL SETUSER modifier '+nosuchcmd': Unknown command or category name in ACL");
        assert_eq!(acl.delete(&["default".into()]), Err(AclError::DefaultUser));
        assert!(acl.set_user("bob", &["".into()]).is_ok(), "empty modifier: a no-op, as Redis");
        for name in ["a b", "a\u{b}b", "a\tb", "a\0b"] {
            assert_eq!(acl.set_user(name, &[]).unwrap_err().to_string(), "Usernames can't contain spaces or null characters", "{name:?}");
        }
        for odd in ["é", "<nosuchpass"] {
            assert!(acl.set_user("bob", &[odd.into()]).is_err(), "{odd:?}");
        }
    }

    #[test]
    fn authentication_and_permissions() {
        let mut acl = Acl::default();
        acl.set_user("s", &["on".into(), ">sp".into(), "allcommands".into()]).unwrap();
        acl.set_user("off", &["off".into(), ">p".into(), "+@all".into()]).unwrap();
        acl.set_user("ro", &["on".into(), "nopass".into(), "-@all".into(), "+ping".into(), "+sentinel|masters".into()]).unwrap();
        assert!(acl.authenticate("s", "sp").is_some());
        assert!(acl.authenticate("s", "bad").is_none());
        assert!(acl.authenticate("off", "p").is_none(), "disabled user");
        assert!(acl.authenticate("ro", "anything").is_some(), "nopass");
        let ro = acl.get("ro").unwrap();
        assert!(ro.can_run("ping", None));
        assert!(ro.can_run("sentinel", Some("masters")));
        assert!(!ro.can_run("sentinel", Some("failover")));
        assert!(!ro.can_run("info", None));
        acl.set_requirepass(Some("top"));
        assert!(acl.authenticate("default", "top").is_some());
        assert!(acl.authenticate("default", "").is_none());
        assert_eq!(acl.delete(&["s".into(), "nosuch".into()]), Ok(1));
    }
}
