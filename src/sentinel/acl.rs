//! ACL users of the sentinel itself: the shared model of `common::acl` (rules, selectors,
//! categories, descriptions, checks) over the sentinel's own command table (Redis Sentinel
//! 7.0's, `command_info`), with the sentinel's API on top.
//!
//! `requirepass` is the password of the `default` user, as in Redis. Passwords are kept as
//! SHA-256 hex digests, as Redis shows them (`#<hash>`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::common::acl::{self as core, Access, AclOptions, Catalog};
use crate::resp::Frame;

pub use crate::common::acl::sha256_hex;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    #[error("Error in ACL SETUSER modifier '{modifier}': {reason}")]
    BadModifier { modifier: String, reason: &'static str },
    #[error("Unmatched parenthesis in acl selector starting at '{0}'.")]
    Unmatched(String),
    #[error("The 'default' user cannot be removed")]
    DefaultUser,
    #[error("Usernames can't contain spaces or null characters")]
    BadUsername,
}

/// The sentinel's commands (Redis Sentinel 7.0's table) for ACL rules.
pub fn catalog() -> Arc<Catalog> {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    CATALOG.get_or_init(|| Arc::new(Catalog::build(super::command_info::acl_catalog_entries()))).clone()
}

/// A user: the shared model (`common::acl::User`), with the sentinel's replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(pub core::User);

impl std::ops::Deref for User {
    type Target = core::User;
    fn deref(&self) -> &core::User {
        &self.0
    }
}

impl User {
    pub fn new(name: &str) -> Self {
        User(core::User::new(name, &catalog(), AclOptions::default()))
    }

    fn default_user() -> Self {
        User(core::User::default_user(&catalog(), AclOptions::default()))
    }

    /// Applies one rule (`ACL SETUSER` modifier, or one word of a `user` config line).
    pub fn apply(&mut self, rule: &str) -> Result<(), AclError> {
        self.0.apply(&catalog(), AclOptions::default(), rule.as_bytes()).map_err(|e| AclError::BadModifier { modifier: rule.to_string(), reason: e.text() })
    }

    /// May this user run `cmd` (lower case; `sub` is its subcommand, if it has any)?
    pub fn can_run(&self, cmd: &str, sub: Option<&str>) -> bool {
        let cat = catalog();
        let full = sub.map(|s| format!("{cmd}|{s}"));
        let Some(id) = full.as_deref().and_then(|f| cat.lookup(f)).or_else(|| cat.lookup(cmd)) else { return false };
        let args: Vec<&[u8]> = std::iter::once(cmd.as_bytes()).chain(sub.map(str::as_bytes)).collect();
        let no_auth = super::command_info::is_no_auth(cmd);
        self.0.check(&cat, &Access { cmd: id, no_auth, args: &args, keys: &[], channels: &[] }).is_ok()
    }

    pub fn check_password(&self, pass: &str) -> bool {
        self.0.check_password(pass.as_bytes())
    }

    /// The rules as `ACL LIST` and the config rewrite show them (without `user <name>`).
    pub fn describe(&self) -> String {
        self.0.describe(&catalog())
    }

    /// `ACL GETUSER`, shaped as Redis 7.0's.
    pub fn getuser_reply(&self) -> Frame {
        let cat = catalog();
        let sel = |s: &core::Selector| {
            vec![
                (Frame::bulk("commands"), Frame::bulk(s.describe_commands(&cat))),
                (Frame::bulk("keys"), Frame::bulk(s.describe_keys())),
                (Frame::bulk("channels"), Frame::bulk(s.describe_channels())),
            ]
        };
        let mut fields = vec![
            (Frame::bulk("flags"), Frame::Set(self.0.flags().into_iter().map(Frame::bulk).collect())),
            (Frame::bulk("passwords"), Frame::Array(self.0.passwords.iter().map(|p| Frame::bulk(p.clone())).collect())),
        ];
        fields.extend(sel(self.0.root()));
        fields.push((Frame::bulk("selectors"), Frame::Array(self.0.selectors[1..].iter().map(|s| Frame::Map(sel(s))).collect())));
        Frame::Map(fields)
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
        if let Some(d) = self.users.get_mut("default") {
            let _ = d.apply("resetpass");
            match pass {
                Some(p) => {
                    let _ = d.apply(&format!(">{p}"));
                }
                None => {
                    let _ = d.apply("nopass");
                }
            }
        }
    }

    /// `ACL SETUSER name rules...` / a `user name rules...` line; all rules or none apply.
    pub fn set_user(&mut self, name: &str, rules: &[String]) -> Result<(), AclError> {
        // Redis's ACLStringHasSpaces: C's isspace (which counts \v) or NUL. Such a name
        // could not be written back to a config file and read again.
        if name.bytes().any(|b| b == 0 || b == 0x0b || b.is_ascii_whitespace()) {
            return Err(AclError::BadUsername);
        }
        let raw: Vec<Vec<u8>> = rules.iter().map(|r| r.as_bytes().to_vec()).collect();
        let merged = core::merge_selector_args(&raw).map_err(|i| AclError::Unmatched(rules[i].clone()))?;
        let mut user = self.users.get(name).cloned().unwrap_or_else(|| User::new(name));
        for r in &merged {
            user.apply(&String::from_utf8_lossy(r))?;
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
