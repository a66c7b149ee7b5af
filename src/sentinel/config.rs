//! sentinel.conf: parsing exactly as Redis Sentinel 7.0 reads it, and the atomic rewrite
//! that keeps the file readable by Debian's `redis-sentinel`.

use crate::server::types::glob::string_match;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

pub const REDIS_VERSION: &str = "7.0.15";
pub const DEFAULT_PORT: u16 = 26379;
pub const DEFAULT_DOWN_AFTER_MS: u64 = 30_000;
pub const DEFAULT_FAILOVER_TIMEOUT_MS: u64 = 180_000;
pub const DEFAULT_PARALLEL_SYNCS: u32 = 1;

/// A config error in Redis's own words, with the offending line; `line_no` 0 is an error
/// about a whole file (an `include` that cannot be read), printed as Redis logs it.
#[derive(Debug, PartialEq)]
pub struct ConfigError {
    pub line_no: usize,
    pub line: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line_no == 0 {
            return f.write_str(&self.reason);
        }
        write!(
            f,
            "\n*** FATAL CONFIG FILE ERROR (Redis {REDIS_VERSION}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
            self.line_no, self.line, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// How deep `include`s may nest (a file including itself must not loop forever).
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("can't write config file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownSentinel {
    pub host: String,
    pub port: u16,
    pub run_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterConfig {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    pub parallel_syncs: u32,
    pub auth_pass: Option<String>,
    pub auth_user: Option<String>,
    pub notification_script: Option<String>,
    pub client_reconfig_script: Option<String>,
    pub config_epoch: u64,
    pub leader_epoch: u64,
    pub master_reboot_down_after_ms: u64,
    pub known_replicas: Vec<(String, u16)>,
    pub known_sentinels: Vec<KnownSentinel>,
    /// `sentinel rename-command <master> <command> <renamed>`
    pub renamed_commands: Vec<(String, String)>,
}

impl MasterConfig {
    pub fn new(name: &str, host: &str, port: u16, quorum: u32) -> Self {
        MasterConfig {
            name: name.to_string(),
            host: host.to_string(),
            port,
            quorum,
            down_after_ms: DEFAULT_DOWN_AFTER_MS,
            failover_timeout_ms: DEFAULT_FAILOVER_TIMEOUT_MS,
            parallel_syncs: DEFAULT_PARALLEL_SYNCS,
            auth_pass: None,
            auth_user: None,
            notification_script: None,
            client_reconfig_script: None,
            config_epoch: 0,
            leader_epoch: 0,
            master_reboot_down_after_ms: 0,
            known_replicas: Vec::new(),
            known_sentinels: Vec::new(),
            renamed_commands: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SentinelConfig {
    pub port: u16,
    pub bind: Vec<String>,
    pub daemonize: bool,
    pub pidfile: Option<String>,
    pub logfile: Option<String>,
    pub dir: Option<String>,
    pub protected_mode: bool,
    pub requirepass: Option<String>,
    pub loglevel: Option<String>,
    pub myid: Option<String>,
    pub current_epoch: u64,
    pub announce_ip: Option<String>,
    pub announce_port: u16,
    pub resolve_hostnames: bool,
    pub announce_hostnames: bool,
    pub deny_scripts_reconfig: bool,
    pub sentinel_user: Option<String>,
    pub sentinel_pass: Option<String>,
    /// The sentinel's own users (`user` lines, `requirepass` as the default user's password).
    pub acl: super::acl::Acl,
    /// The `user` lines read (name, rules), in order: Redis applies them after the rest
    /// of the config, so they win over `requirepass`.
    pub declared_users: Vec<(String, Vec<String>)>,
    pub masters: Vec<MasterConfig>,
    /// Non-sentinel lines exactly as read (comments included), kept on rewrite.
    pub preserved_lines: Vec<String>,
}

impl SentinelConfig {
    pub fn empty() -> Self {
        SentinelConfig {
            port: DEFAULT_PORT,
            protected_mode: true,
            deny_scripts_reconfig: true,
            ..Default::default()
        }
    }

    pub fn master(&self, name: &str) -> Option<&MasterConfig> {
        self.masters.iter().find(|m| m.name.eq_ignore_ascii_case(name))
    }

    /// A `user` line's rules as Redis loads them: users are created fresh, except
    /// `default`, which exists already and is reset first.
    fn load_rules(name: &str, rules: &[String]) -> Vec<String> {
        let mut all = Vec::with_capacity(rules.len() + 1);
        if name == "default" {
            all.push("reset".to_string());
        }
        all.extend(rules.iter().cloned());
        all
    }

    /// The users as Redis has them after loading: `requirepass` first, then the `user`
    /// lines (already checked, so they apply).
    fn rebuild_acl(&mut self) {
        let mut acl = super::acl::Acl::default();
        acl.set_requirepass(self.requirepass.as_deref());
        for (name, rules) in &self.declared_users {
            let _ = acl.set_user(name, &SentinelConfig::load_rules(name, rules));
        }
        self.acl = acl;
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("Unbalanced quotes in configuration line")]
pub struct UnbalancedQuotes;

/// Splits a line into arguments like Redis's `sdssplitargs`.
pub fn split_args(line: &str) -> Result<Vec<String>, UnbalancedQuotes> {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            return Ok(out);
        }
        let mut cur: Vec<u8> = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= bytes.len() {
                    return Err(UnbalancedQuotes);
                }
                let c = bytes[i];
                if c == b'\\' && i + 3 < bytes.len() && bytes[i + 1] == b'x' && is_hex(bytes.get(i + 2)) && is_hex(bytes.get(i + 3)) {
                    let v = u8::from_str_radix(std::str::from_utf8(&bytes[i + 2..i + 4]).map_err(|_| UnbalancedQuotes)?, 16).map_err(|_| UnbalancedQuotes)?;
                    cur.push(v);
                    i += 3;
                } else if c == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                    cur.push(match bytes[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // closing quote must be followed by a space or nothing
                    if i + 1 < bytes.len() && !bytes[i + 1].is_ascii_whitespace() {
                        return Err(UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else if in_sq {
                if i >= bytes.len() {
                    return Err(UnbalancedQuotes);
                }
                let c = bytes[i];
                if c == b'\\' && i + 1 < bytes.len() && bytes[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < bytes.len() && !bytes[i + 1].is_ascii_whitespace() {
                        return Err(UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
                i += 1;
            } else {
                if i >= bytes.len() {
                    break;
                }
                match bytes[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        out.push(String::from_utf8_lossy(&cur).into_owned());
    }
}

fn is_hex(c: Option<&u8>) -> bool {
    c.is_some_and(|c| c.is_ascii_hexdigit())
}

/// Quotes a value the way Redis's rewrite does when it needs quoting.
pub fn repr(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\');
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.bytes() {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c as char),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// Generic redis.conf directives accepted (and preserved) in a sentinel config.
const PASSTHROUGH: &[&str] = &[
    "loglevel", "supervised", "tcp-keepalive", "tcp-backlog", "timeout", "hz", "maxclients",
    "latency-tracking-info-percentiles", "unixsocket", "unixsocketperm", "syslog-enabled", "syslog-ident",
    "syslog-facility", "always-show-logo", "set-proc-title", "proc-title-template", "aclfile",
    "acllog-max-len", "dynamic-hz", "masterauth", "masteruser", "io-threads", "oom-score-adj",
    "disable-thp", "crash-log-enabled", "crash-memcheck-enabled", "enable-debug-command",
    "rename-command", "tls-port", "tls-cert-file", "tls-key-file", "tls-ca-cert-file",
    "tls-replication", "locale-collate", "save", "appendonly", "databases", "maxmemory",
    "lazyfree-lazy-user-flush", "jemalloc-bg-thread", "activerehashing", "bind-source-addr",
    "socket-mark-id", "client-output-buffer-limit", "latency-monitor-threshold",
    "slowlog-log-slower-than", "slowlog-max-len", "enable-protected-configs",
];

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn parse_port(v: &str) -> Option<u16> {
    v.parse::<u16>().ok()
}

pub fn parse(text: &str) -> Result<SentinelConfig, ConfigError> {
    let mut cfg = SentinelConfig::empty();
    apply_text(&mut cfg, text)?;
    Ok(cfg)
}

/// Applies config text on top of `cfg` (used for the file and then command-line options).
pub fn apply_text(cfg: &mut SentinelConfig, text: &str) -> Result<(), ConfigError> {
    apply_text_at(cfg, text, 0)
}

/// `depth` 0 is the main file, whose lines the rewrite keeps; the lines of included files
/// stay in those files (Redis's CONFIG REWRITE only rewrites the main file).
fn apply_text_at(cfg: &mut SentinelConfig, text: &str, depth: usize) -> Result<(), ConfigError> {
    let keep_lines = depth == 0;
    // below the rewrite's marker, the lines the rewrite regenerates are not kept
    let mut after_marker = false;
    for (idx, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if line == "# Generated by CONFIG REWRITE" {
            after_marker = true;
        }
        if line.is_empty() || line.starts_with('#') {
            if line != "# Generated by CONFIG REWRITE" && keep_lines {
                cfg.preserved_lines.push(raw.trim_end_matches('\r').to_string());
            }
            continue;
        }
        let err = |reason: &str| ConfigError { line_no: idx + 1, line: line.to_string(), reason: reason.to_string() };
        let args = split_args(line).map_err(|_| err("Unbalanced quotes in configuration line"))?;
        if args.is_empty() {
            continue;
        }
        let directive = args[0].to_ascii_lowercase();
        if directive == "sentinel" {
            if args.len() < 2 {
                // a lone `sentinel` (from `--sentinel` on the command line) only selects the mode
                continue;
            }
            apply_sentinel(cfg, &args[1..]).map_err(|r| err(&r))?;
            continue;
        }
        if directive == "include" && args.len() == 2 {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(err("Too many nested includes"));
            }
            include(cfg, &args[1], depth + 1)?;
        } else {
            apply_generic(cfg, &directive, &args).map_err(|r| err(&r))?;
        }
        let regenerated = after_marker && matches!(directive.as_str(), "user" | "port" | "loglevel");
        if keep_lines && !regenerated {
            cfg.preserved_lines.push(raw.trim_end_matches('\r').to_string());
        }
    }
    Ok(())
}

/// `include <path>`: relative to the current directory; with `*`, `?` or `[` a glob whose
/// matches are read in sorted order and may be none (Redis 7.0), else the file must exist.
fn include(cfg: &mut SentinelConfig, pattern: &str, depth: usize) -> Result<(), ConfigError> {
    let cant_open = |path: &str, e: std::io::Error| ConfigError {
        line_no: 0,
        line: String::new(),
        reason: format!("Fatal error, can't open config file '{path}': {}", io_reason(&e)),
    };
    // Redis changes directory on a `dir` line while reading, so a later relative include
    // is relative to that directory
    let joined;
    let pattern = match &cfg.dir {
        Some(d) if !pattern.starts_with('/') => {
            joined = format!("{}/{pattern}", d.trim_end_matches('/'));
            joined.as_str()
        }
        _ => pattern,
    };
    let files = if pattern.contains(['*', '?', '[']) { glob_paths(pattern) } else { vec![pattern.to_string()] };
    // like Redis, the matches are read as one text (line numbers count across them)
    let mut text = String::new();
    for f in files {
        let content = std::fs::read_to_string(&f).map_err(|e| cant_open(&f, e))?;
        text.push_str(&content);
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
    }
    apply_text_at(cfg, &text, depth)
}

/// The message of `strerror`, without Rust's " (os error N)".
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// The paths matching a glob pattern (wildcards allowed in every component), sorted as
/// glob(3) returns them; hidden files only match a pattern starting with a dot.
pub fn glob_paths(pattern: &str) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let mut current: Vec<String> = vec![if absolute { "/".to_string() } else { String::new() }];
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &current {
            let join = |name: &str| if base.is_empty() { name.to_string() } else if base.ends_with('/') { format!("{base}{name}") } else { format!("{base}/{name}") };
            if !part.contains(['*', '?', '[']) {
                let p = join(part);
                if std::path::Path::new(&p).exists() {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.is_empty() { "." } else { base.as_str() };
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut names: Vec<String> = entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
            names.sort();
            for name in names {
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if string_match(part.as_bytes(), name.as_bytes(), false) {
                    let p = join(&name);
                    if last || std::path::Path::new(&p).is_dir() {
                        next.push(p);
                    }
                }
            }
        }
        current = next;
    }
    if parts.is_empty() {
        return Vec::new();
    }
    current
}

fn apply_generic(cfg: &mut SentinelConfig, directive: &str, args: &[String]) -> Result<(), String> {
    const BAD: &str = "Bad directive or wrong number of arguments";
    let one = || -> Result<&str, String> {
        if args.len() == 2 {
            Ok(args[1].as_str())
        } else {
            Err(BAD.to_string())
        }
    };
    let yes_no = |v: &str| parse_bool(v).ok_or_else(|| "argument must be 'yes' or 'no'".to_string());
    match directive {
        "port" => {
            cfg.port = one()?.parse::<u16>().map_err(|_| "argument must be between 0 and 65535 inclusive".to_string())?;
        }
        "bind" => {
            if args.len() < 2 {
                return Err(BAD.into());
            }
            cfg.bind = args[1..].to_vec();
        }
        "daemonize" => cfg.daemonize = yes_no(one()?)?,
        "protected-mode" => cfg.protected_mode = yes_no(one()?)?,
        "pidfile" => cfg.pidfile = Some(one()?.to_string()).filter(|s| !s.is_empty()),
        "logfile" => cfg.logfile = Some(one()?.to_string()).filter(|s| !s.is_empty()),
        "dir" => {
            let d = one()?;
            if !Path::new(d).is_dir() {
                return Err("No such file or directory".into());
            }
            cfg.dir = Some(d.to_string());
        }
        "requirepass" => {
            cfg.requirepass = Some(one()?.to_string()).filter(|s| !s.is_empty());
            cfg.rebuild_acl();
        }
        "user" => {
            if args.len() < 2 {
                return Err(BAD.into());
            }
            let name = &args[1];
            let declared = |reason: &str| format!("Error in user declaration '{name}': {reason}");
            if cfg.declared_users.iter().any(|(n, _)| n == name) {
                return Err(declared("Duplicate user found. A user can only be defined once in config files"));
            }
            // check the rules on a scratch list before keeping the line
            let mut scratch = super::acl::Acl::default();
            scratch.set_user(name, &SentinelConfig::load_rules(name, &args[2..])).map_err(|e| match e {
                super::acl::AclError::BadModifier { reason, .. } => declared(reason),
                other => other.to_string(),
            })?;
            cfg.declared_users.push((name.clone(), args[2..].to_vec()));
            cfg.rebuild_acl();
        }
        "loglevel" => {
            let v = one()?.to_ascii_lowercase();
            if !["debug", "verbose", "notice", "warning", "nothing"].contains(&v.as_str()) {
                return Err("argument(s) must be one of the following: debug, verbose, notice, warning, nothing".into());
            }
            cfg.loglevel = Some(v);
        }
        d if PASSTHROUGH.contains(&d) => {
            if args.len() < 2 && d != "save" {
                return Err(BAD.into());
            }
        }
        _ => return Err(BAD.into()),
    }
    Ok(())
}

fn apply_sentinel(cfg: &mut SentinelConfig, a: &[String]) -> Result<(), String> {
    const UNRECOGNIZED: &str = "Unrecognized sentinel configuration statement.";
    let opt = a[0].to_ascii_lowercase();
    let n = a.len();
    let find = |cfg: &mut SentinelConfig, name: &str| -> Result<usize, String> {
        cfg.masters
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| "No such master with specified name.".to_string())
    };
    let positive = |v: &str| -> Result<u64, String> {
        match v.parse::<i64>() {
            Ok(x) if x > 0 => Ok(x as u64),
            _ => Err("negative or zero time parameter.".to_string()),
        }
    };
    let epoch = |v: &str| -> u64 { v.parse::<u64>().unwrap_or(0) };
    match (opt.as_str(), n) {
        ("monitor", 5) => {
            let quorum: i64 = a[4].parse().unwrap_or(0);
            if quorum <= 0 {
                return Err("Quorum must be 1 or greater.".into());
            }
            if cfg.masters.iter().any(|m| m.name == a[1]) {
                return Err("Duplicate master name.".into());
            }
            let port = parse_port(&a[3]).filter(|p| *p > 0).ok_or("Invalid port number")?;
            let host = resolve_host(&a[2], cfg.resolve_hostnames).ok_or("Can't resolve instance hostname.")?;
            cfg.masters.push(MasterConfig::new(&a[1], &host, port, quorum as u32));
        }
        ("down-after-milliseconds", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].down_after_ms = positive(&a[2])?;
        }
        ("failover-timeout", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].failover_timeout_ms = positive(&a[2])?;
        }
        ("parallel-syncs", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].parallel_syncs = a[2].parse::<i64>().unwrap_or(0).max(0) as u32;
        }
        ("master-reboot-down-after-period", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].master_reboot_down_after_ms = a[2].parse::<i64>().map_err(|_| "negative time parameter.")?.max(0) as u64;
        }
        ("notification-script", 3) | ("client-reconfig-script", 3) => {
            let i = find(cfg, &a[1])?;
            if !is_executable(&a[2]) {
                return Err(if opt == "notification-script" {
                    "Notification script seems non existing or non executable.".into()
                } else {
                    "Client reconfiguration script seems non existing or non executable.".into()
                });
            }
            if opt == "notification-script" {
                cfg.masters[i].notification_script = Some(a[2].clone());
            } else {
                cfg.masters[i].client_reconfig_script = Some(a[2].clone());
            }
        }
        ("auth-pass", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].auth_pass = Some(a[2].clone());
        }
        ("auth-user", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].auth_user = Some(a[2].clone());
        }
        ("current-epoch", 2) => cfg.current_epoch = epoch(&a[1]).max(cfg.current_epoch),
        ("myid", 2) => {
            if a[1].len() != 40 {
                return Err("Malformed Sentinel id in myid option.".into());
            }
            cfg.myid = Some(a[1].clone());
        }
        ("config-epoch", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].config_epoch = epoch(&a[2]);
            cfg.current_epoch = cfg.current_epoch.max(cfg.masters[i].config_epoch);
        }
        ("leader-epoch", 3) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].leader_epoch = epoch(&a[2]);
        }
        ("known-slave", 4) | ("known-replica", 4) => {
            let i = find(cfg, &a[1])?;
            let port = parse_port(&a[3]).filter(|p| *p > 0).ok_or("Wrong hostname or port for replica.")?;
            let host = resolve_host(&a[2], cfg.resolve_hostnames).ok_or("Wrong hostname or port for replica.")?;
            if !cfg.masters[i].known_replicas.contains(&(host.clone(), port)) {
                cfg.masters[i].known_replicas.push((host, port));
            }
        }
        ("known-sentinel", 4) | ("known-sentinel", 5) => {
            let i = find(cfg, &a[1])?;
            let port = parse_port(&a[3]).filter(|p| *p > 0).ok_or("Wrong hostname or port for sentinel.")?;
            let host = resolve_host(&a[2], cfg.resolve_hostnames).ok_or("Wrong hostname or port for sentinel.")?;
            let run_id = a.get(4).cloned().unwrap_or_default();
            cfg.masters[i].known_sentinels.push(KnownSentinel { host, port, run_id });
        }
        ("rename-command", 4) => {
            let i = find(cfg, &a[1])?;
            cfg.masters[i].renamed_commands.push((a[2].to_ascii_uppercase(), a[3].clone()));
        }
        ("announce-ip", 2) => cfg.announce_ip = Some(a[1].clone()).filter(|s| !s.is_empty()),
        ("announce-port", 2) => cfg.announce_port = a[1].parse::<u16>().unwrap_or(0),
        ("deny-scripts-reconfig", 2) => {
            cfg.deny_scripts_reconfig = parse_bool(&a[1]).ok_or("Please specify yes or no for the deny-scripts-reconfig options.")?
        }
        ("sentinel-user", 2) => cfg.sentinel_user = Some(a[1].clone()).filter(|s| !s.is_empty()),
        ("sentinel-pass", 2) => cfg.sentinel_pass = Some(a[1].clone()).filter(|s| !s.is_empty()),
        ("resolve-hostnames", 2) => {
            cfg.resolve_hostnames = parse_bool(&a[1]).ok_or("Please specify yes or no for the resolve-hostnames option.")?
        }
        ("announce-hostnames", 2) => {
            cfg.announce_hostnames = parse_bool(&a[1]).ok_or("Please specify yes or no for the announce-hostnames option.")?
        }
        _ => return Err(UNRECOGNIZED.into()),
    }
    Ok(())
}

fn is_executable(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// With `resolve-hostnames no` (the default) Redis keeps only IP addresses: a name is
/// resolved once. With `yes` the name is kept as given.
pub fn resolve_host(host: &str, keep_names: bool) -> Option<String> {
    if host.parse::<std::net::IpAddr>().is_ok() || keep_names {
        return Some(host.to_string());
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (host, 0u16).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip().to_string())
}

/// Turns `--port 26380 --sentinel monitor m 127.0.0.1 6379 2` into config lines, as Redis does.
pub fn command_line_to_text(opts: &[String]) -> String {
    let mut text = String::new();
    let mut first = true;
    for o in opts {
        if let Some(name) = o.strip_prefix("--") {
            if !first {
                text.push('\n');
            }
            text.push_str(name);
            first = false;
        } else {
            text.push(' ');
            text.push_str(&repr(o));
        }
    }
    text.push('\n');
    text
}

/// Renders the config as the file content: preserved generic lines, then the state.
pub fn render(cfg: &SentinelConfig) -> String {
    let mut out = String::new();
    let mut saw_port = false;
    let mut saw_loglevel = false;
    let mut users = cfg.acl.config_lines().into_iter();
    let mut lines: Vec<&String> = cfg.preserved_lines.iter().collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    for line in lines {
        let first = split_args(line.trim()).ok().and_then(|a| a.first().map(|s| s.to_ascii_lowercase()));
        if first.as_deref() == Some("port") {
            if saw_port {
                continue;
            }
            saw_port = true;
            let _ = writeln!(out, "port {}", cfg.port);
            continue;
        }
        if first.as_deref() == Some("loglevel") {
            // SENTINEL CONFIG SET loglevel changes it: rewritten in place, as Redis does
            if saw_loglevel {
                continue;
            }
            saw_loglevel = true;
            let _ = writeln!(out, "loglevel {}", cfg.loglevel.as_deref().unwrap_or("notice"));
            continue;
        }
        if first.as_deref() == Some("user") {
            // Redis rewrites `user` lines in place, users in name order; extra lines go
            if let Some(u) = users.next() {
                out.push_str(&u);
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n# Generated by CONFIG REWRITE\n");
    if !saw_port && cfg.port != DEFAULT_PORT {
        let _ = writeln!(out, "port {}", cfg.port);
    }
    if let Some(level) = cfg.loglevel.as_deref().filter(|l| !saw_loglevel && *l != "notice") {
        let _ = writeln!(out, "loglevel {level}");
    }
    for u in users {
        out.push_str(&u);
        out.push('\n');
    }
    if let Some(id) = &cfg.myid {
        let _ = writeln!(out, "sentinel myid {id}");
    }
    for m in &cfg.masters {
        let _ = writeln!(out, "sentinel monitor {} {} {} {}", repr(&m.name), repr(&m.host), m.port, m.quorum);
        if m.down_after_ms != DEFAULT_DOWN_AFTER_MS {
            let _ = writeln!(out, "sentinel down-after-milliseconds {} {}", repr(&m.name), m.down_after_ms);
        }
        if m.failover_timeout_ms != DEFAULT_FAILOVER_TIMEOUT_MS {
            let _ = writeln!(out, "sentinel failover-timeout {} {}", repr(&m.name), m.failover_timeout_ms);
        }
        if m.parallel_syncs != DEFAULT_PARALLEL_SYNCS {
            let _ = writeln!(out, "sentinel parallel-syncs {} {}", repr(&m.name), m.parallel_syncs);
        }
        if m.master_reboot_down_after_ms != 0 {
            let _ = writeln!(out, "sentinel master-reboot-down-after-period {} {}", repr(&m.name), m.master_reboot_down_after_ms);
        }
        if let Some(p) = &m.auth_pass {
            let _ = writeln!(out, "sentinel auth-pass {} {}", repr(&m.name), repr(p));
        }
        if let Some(u) = &m.auth_user {
            let _ = writeln!(out, "sentinel auth-user {} {}", repr(&m.name), repr(u));
        }
        if let Some(s) = &m.notification_script {
            let _ = writeln!(out, "sentinel notification-script {} {}", repr(&m.name), repr(s));
        }
        if let Some(s) = &m.client_reconfig_script {
            let _ = writeln!(out, "sentinel client-reconfig-script {} {}", repr(&m.name), repr(s));
        }
        for (cmd, renamed) in &m.renamed_commands {
            let _ = writeln!(out, "sentinel rename-command {} {} {}", repr(&m.name), repr(cmd), repr(renamed));
        }
        let _ = writeln!(out, "sentinel config-epoch {} {}", repr(&m.name), m.config_epoch);
        let _ = writeln!(out, "sentinel leader-epoch {} {}", repr(&m.name), m.leader_epoch);
        for (h, p) in &m.known_replicas {
            let _ = writeln!(out, "sentinel known-replica {} {} {}", repr(&m.name), repr(h), p);
        }
        for s in &m.known_sentinels {
            let _ = writeln!(out, "sentinel known-sentinel {} {} {} {}", repr(&m.name), repr(&s.host), s.port, s.run_id);
        }
    }
    let _ = writeln!(out, "sentinel current-epoch {}", cfg.current_epoch);
    if let Some(ip) = &cfg.announce_ip {
        let _ = writeln!(out, "sentinel announce-ip {}", repr(ip));
    }
    if cfg.announce_port != 0 {
        let _ = writeln!(out, "sentinel announce-port {}", cfg.announce_port);
    }
    if cfg.resolve_hostnames {
        out.push_str("sentinel resolve-hostnames yes\n");
    }
    if cfg.announce_hostnames {
        out.push_str("sentinel announce-hostnames yes\n");
    }
    if !cfg.deny_scripts_reconfig {
        out.push_str("sentinel deny-scripts-reconfig no\n");
    }
    if let Some(u) = &cfg.sentinel_user {
        let _ = writeln!(out, "sentinel sentinel-user {}", repr(u));
    }
    if let Some(p) = &cfg.sentinel_pass {
        let _ = writeln!(out, "sentinel sentinel-pass {}", repr(p));
    }
    out
}

/// Writes the file atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn write_atomically(path: &Path, content: &str) -> Result<(), RewriteError> {
    let io = |source| RewriteError::Io { path: path.display().to_string(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // unique per call: the rewrite thread and SHUTDOWN/FLUSHCONFIG may write at the same time
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.tmp-{}-{seq}", path.file_name().and_then(|n| n.to_str()).unwrap_or("sentinel.conf"), std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        if let Err(e) = f.write_all(content.as_bytes()).and_then(|_| f.sync_all()) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
    }
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A fresh 40-hex-character id, as Redis's `getRandomHexChars`.
pub fn random_run_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_args_like_redis() {
        assert_eq!(split_args(r#"logfile "/var/log/a b.log""#).unwrap(), vec!["logfile", "/var/log/a b.log"]);
        assert_eq!(split_args(r#"x "a\x41\n" 'it\'s'"#).unwrap(), vec!["x", "aA\n", "it's"]);
        assert!(split_args(r#"port "27390"#).is_err());
        assert!(split_args(r#"a "b"c"#).is_err());
        assert_eq!(split_args("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn seed_config_parses() {
        let text = "bind 127.0.0.1\nport 16379\nsentinel monitor redis-cluster 127.0.0.1 6379 2\n\
                    sentinel down-after-milliseconds redis-cluster 5000\nsentinel parallel-syncs redis-cluster 1\n\
                    sentinel failover-timeout redis-cluster 10000\ndaemonize yes\npidfile \"/tmp/sentinel_6379.pid\"\ndir \"/tmp\"\n";
        let cfg = parse(text).unwrap();
        assert_eq!(cfg.port, 16379);
        assert!(cfg.daemonize);
        assert_eq!(cfg.pidfile.as_deref(), Some("/tmp/sentinel_6379.pid"));
        let m = cfg.master("redis-cluster").unwrap();
        assert_eq!((m.host.as_str(), m.port, m.quorum, m.down_after_ms, m.failover_timeout_ms), ("127.0.0.1", 6379, 2, 5000, 10000));
    }

    #[test]
    fn errors_name_the_line_as_redis() {
        let e = parse("port 27390\nsentinel monitor\n").unwrap_err();
        assert_eq!(e.line_no, 2);
        assert_eq!(
            e.to_string(),
            "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 2\n>>> 'sentinel monitor'\nUnrecognized sentinel configuration statement."
        );
        assert_eq!(parse("foo bar\n").unwrap_err().reason, "Bad directive or wrong number of arguments");
        assert_eq!(parse("sentinel down-after-milliseconds x 100").unwrap_err().reason, "No such master with specified name.");
        assert_eq!(
            parse("sentinel monitor m 127.0.0.1 6379 2\nsentinel down-after-milliseconds m abc").unwrap_err().reason,
            "negative or zero time parameter."
        );
        assert_eq!(parse("port \"27390").unwrap_err().reason, "Unbalanced quotes in configuration line");
        assert_eq!(parse("sentinel monitor m 127.0.0.1 6379 0").unwrap_err().reason, "Quorum must be 1 or greater.");
        assert_eq!(parse("sentinel myid abc").unwrap_err().reason, "Malformed Sentinel id in myid option.");
        assert_eq!(parse("daemonize maybe").unwrap_err().reason, "argument must be 'yes' or 'no'");
    }

    #[test]
    fn render_round_trips() {
        let text = "# my comment\nport 16379\nsentinel monitor m 127.0.0.1 6379 2\nsentinel down-after-milliseconds m 1000\nlogfile \"\"\n";
        let mut cfg = parse(text).unwrap();
        cfg.myid = Some("a".repeat(40));
        cfg.current_epoch = 3;
        cfg.masters[0].config_epoch = 3;
        cfg.masters[0].known_replicas.push(("127.0.0.1".into(), 6380));
        cfg.masters[0].known_sentinels.push(KnownSentinel { host: "127.0.0.1".into(), port: 26380, run_id: "b".repeat(40) });
        cfg.port = 16400;
        let out = render(&cfg);
        assert!(out.starts_with("# my comment\nport 16400\n"), "{out}");
        let again = parse(&out).unwrap();
        assert_eq!(again.masters, cfg.masters);
        assert_eq!(again.current_epoch, 3);
        assert_eq!(again.myid, cfg.myid);
        assert_eq!(again.port, 16400);
        // no duplicated generated block; the only change of a re-read is Redis's own: the
        // `default` user line is applied after a reset, which adds sanitize-payload
        let second = render(&again);
        assert_eq!(second, out.replace("user default on nopass ~* &* +@all", "user default on nopass sanitize-payload ~* &* +@all"));
        assert_eq!(render(&parse(&second).unwrap()), second, "stable from then on");
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sentinel.conf");
        std::fs::write(&p, "old\n").unwrap();
        write_atomically(&p, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // a directory that does not exist: an error, not a panic
        assert!(write_atomically(&dir.path().join("nope/sentinel.conf"), "x").is_err());
    }

    #[test]
    fn command_line_options_become_lines() {
        let t = command_line_to_text(&["--port".into(), "26380".into(), "--sentinel".into(), "monitor".into(), "m".into(), "127.0.0.1".into(), "6379".into(), "2".into()]);
        assert_eq!(t, "port 26380\nsentinel monitor m 127.0.0.1 6379 2\n");
        let cfg = parse(&t).unwrap();
        assert_eq!(cfg.port, 26380);
        assert_eq!(cfg.masters.len(), 1);
        // the seed's `rf-server sentinel.conf --sentinel` form: a bare flag, skipped
        let t = command_line_to_text(&["--sentinel".into(), "--port".into(), "1".into()]);
        assert_eq!(t, "sentinel\nport 1\n");
        let cfg = parse(&t).unwrap();
        assert_eq!((cfg.port, cfg.masters.len()), (1, 0));
    }

    #[test]
    fn include_reads_globs_in_order_and_keeps_only_the_include_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("conf.d/b.conf"), "sentinel down-after-milliseconds m 3000\n").unwrap();
        std::fs::write(dir.path().join("conf.d/a.conf"), "sentinel monitor m 127.0.0.1 6379 2\nloglevel warning").unwrap();
        std::fs::write(dir.path().join("conf.d/.hidden.conf"), "bogus line\n").unwrap();
        let main = format!("port 26390\ninclude {d}/conf.d/*.conf\n");
        let cfg = parse(&main).unwrap();
        let m = cfg.master("m").unwrap();
        assert_eq!((m.port, m.down_after_ms), (6379, 3000), "a.conf read before b.conf");
        assert_eq!(cfg.loglevel.as_deref(), Some("warning"));
        // the rewrite keeps the include line and writes the state into the main file only
        let out = render(&cfg);
        assert!(out.contains(&format!("include {d}/conf.d/*.conf\n")), "{out}");
        assert!(out.contains("sentinel monitor m 127.0.0.1 6379 2\n"), "{out}");
        assert!(out.contains("loglevel warning\n"), "{out}");
        // a glob matching nothing is fine; a missing plain file is fatal, as Redis
        assert!(parse(&format!("include {d}/none*.conf\n")).is_ok());
        let e = parse(&format!("port 1\ninclude {d}/missing.conf\n")).unwrap_err();
        assert_eq!(e.to_string(), format!("Fatal error, can't open config file '{d}/missing.conf': No such file or directory"));
        assert_eq!(parse("include\n").unwrap_err().reason, "Bad directive or wrong number of arguments");
        // after `dir`, a relative include is relative to it (Redis chdirs while reading)
        let cfg = parse(&format!("dir {d}\ninclude conf.d/a.conf\n")).unwrap();
        assert!(cfg.master("m").is_some());
    }

    #[test]
    fn a_bad_included_line_is_fatal_with_its_own_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let inc = dir.path().join("inc.conf");
        std::fs::write(&inc, "# first\nsentinel foo\n").unwrap();
        let e = parse(&format!("port 1\n\ninclude {}\n", inc.display())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 2\n>>> 'sentinel foo'\nUnrecognized sentinel configuration statement."
        );
        // a file including itself stops with an error, not a stack overflow
        std::fs::write(&inc, format!("include {}\n", inc.display())).unwrap();
        assert_eq!(parse(&format!("include {}\n", inc.display())).unwrap_err().reason, "Too many nested includes");
    }

    #[test]
    fn user_lines_are_checked_and_rewritten_in_place() {
        let e = parse("port 1\nuser bob on foo\n").unwrap_err();
        assert_eq!((e.line_no, e.reason.as_str()), (2, "Error in user declaration 'bob': Syntax error"));
        assert_eq!(parse("user\n").unwrap_err().reason, "Bad directive or wrong number of arguments");
        let cfg = parse("port 1\nrequirepass sekret\nuser bob on >bp +@all\nsentinel monitor m 127.0.0.1 6379 2\n").unwrap();
        assert!(cfg.acl.authenticate("default", "sekret").is_some());
        assert!(cfg.acl.authenticate("bob", "bp").is_some());
        let out = render(&cfg);
        // as Redis 7.0.15 wrote this very file: bob in place, default added below the marker
        assert!(
            out.starts_with(
                "port 1\nrequirepass sekret\nuser bob on #226a193ae269296d44f3efd3d66fead575a9ed15e14320b088c7c3d3cb2b9d8d resetchannels +@all\nsentinel"
            ) || out.starts_with("port 1\nrequirepass sekret\nuser bob on #226a193ae269296d44f3efd3d66fead575a9ed15e14320b088c7c3d3cb2b9d8d resetchannels +@all\n\n# Generated"),
            "{out}"
        );
        assert!(out.contains("# Generated by CONFIG REWRITE\nuser default on #bb757689c39373a6cac9ef6ba55616c6249d7500ca4d443f1130c4766453a412 ~* &* +@all\n"), "{out}");
        let again = parse(&out).unwrap();
        assert_eq!(again.acl.config_lines(), vec![
            "user bob on #226a193ae269296d44f3efd3d66fead575a9ed15e14320b088c7c3d3cb2b9d8d resetchannels +@all".to_string(),
            // Redis resets `default` before applying its line: sanitize-payload appears
            "user default on sanitize-payload #bb757689c39373a6cac9ef6ba55616c6249d7500ca4d443f1130c4766453a412 ~* &* +@all".into(),
        ]);
        let stable = render(&again);
        assert_eq!(render(&parse(&stable).unwrap()), stable, "stable");
        // user lines win over requirepass, wherever it is (Redis loads them last)
        let cfg = parse("user default on nopass +@all\nrequirepass zzz\n").unwrap();
        assert_eq!(cfg.acl.config_lines(), vec!["user default on nopass sanitize-payload resetchannels +@all".to_string()]);
        let e = parse("user carl on >c1\nuser carl >c2\n").unwrap_err();
        assert_eq!(
            (e.line_no, e.reason.as_str()),
            (2, "Error in user declaration 'carl': Duplicate user found. A user can only be defined once in config files")
        );
    }

    #[test]
    fn loglevel_is_rewritten_in_place_or_added() {
        let mut cfg = parse("port 1\nloglevel notice\n").unwrap();
        cfg.loglevel = Some("warning".into());
        let out = render(&cfg);
        assert!(out.starts_with("port 1\nloglevel warning\n"), "{out}");
        let mut cfg = parse("port 1\n").unwrap();
        cfg.loglevel = Some("debug".into());
        let out = render(&cfg);
        assert!(out.contains("# Generated by CONFIG REWRITE\nloglevel debug\n"), "{out}");
        let again = parse(&out).unwrap();
        assert_eq!(again.loglevel.as_deref(), Some("debug"));
        assert_eq!(render(&again).matches("loglevel").count(), 1);
    }
}
