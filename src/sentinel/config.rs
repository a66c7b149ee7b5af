//! sentinel.conf: parsing exactly as Redis Sentinel 7.0 reads it, and the atomic rewrite
//! that keeps the file readable by Debian's `redis-sentinel`.

use crate::common::conf_rewrite::RewriteState;
use crate::server::config::quote as server_quote;
use crate::server::types::glob::string_match;
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
    /// `maxclients` (None: Redis's default, see `max_clients`).
    pub maxclients: Option<u32>,
    pub sentinel_user: Option<String>,
    pub sentinel_pass: Option<String>,
    /// The sentinel's own users (`user` lines, `requirepass` as the default user's password).
    pub acl: super::acl::Acl,
    /// The `user` lines read (name, rules), in order: Redis applies them after the rest
    /// of the config, so they win over `requirepass`.
    pub declared_users: Vec<(String, Vec<String>)>,
    pub masters: Vec<MasterConfig>,
    /// `sentinel ...` lines read but not applied yet: Redis applies them once the whole
    /// config is read, `sentinel monitor` before the lines that name a master.
    queued: Vec<QueuedLine>,
}

/// A `sentinel ...` line waiting for [`apply_queued`], with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueuedLine {
    line_no: usize,
    line: String,
    /// The arguments after `sentinel`.
    args: Vec<String>,
}

/// The `sentinel` options applied before `sentinel monitor` lines (Redis's
/// `preMonitorCfgName`); every other option comes after them.
const PRE_MONITOR_OPTIONS: &[&str] = &[
    "announce-ip", "announce-port", "deny-scripts-reconfig", "sentinel-user", "sentinel-pass",
    "current-epoch", "myid", "resolve-hostnames", "announce-hostnames",
];

impl SentinelConfig {
    pub fn empty() -> Self {
        SentinelConfig {
            port: DEFAULT_PORT,
            protected_mode: true,
            deny_scripts_reconfig: true,
            ..Default::default()
        }
    }

    /// How many client connections are accepted at once (Redis's default: 10000).
    pub fn max_clients(&self) -> u32 {
        self.maxclients.unwrap_or(10_000)
    }

    pub fn master(&self, name: &str) -> Option<&MasterConfig> {
        self.masters.iter().find(|m| m.name.eq_ignore_ascii_case(name))
    }

    /// A path of the config as Redis sees it: Redis changes directory at a `dir` line
    /// while reading, so relative paths read afterwards are relative to `dir`.
    fn resolve(&self, path: &str) -> std::path::PathBuf {
        match &self.dir {
            Some(d) if !path.starts_with('/') => Path::new(d).join(path),
            _ => Path::new(path).to_path_buf(),
        }
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

/// Splits a line into arguments like Redis's `sdssplitargs` (the one splitter shared with
/// the server, `resp::split_args`).
pub fn split_args(line: &str) -> Result<Vec<String>, UnbalancedQuotes> {
    let args = crate::resp::split_args(line.as_bytes()).ok_or(UnbalancedQuotes)?;
    Ok(args.into_iter().map(|a| String::from_utf8_lossy(&a).into_owned()).collect())
}

/// Quotes a value the way Redis's rewrite does when it needs quoting.
pub fn repr(s: &str) -> String {
    crate::common::conf_rewrite::config_word(s)
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

/// Reads a whole config (as a file with no command-line options).
pub fn parse(text: &str) -> Result<SentinelConfig, ConfigError> {
    load(text, "")
}

/// Reads the config file's text, then the command-line options (as config text), then
/// applies the `sentinel` lines of both, as Redis loads a sentinel's config.
pub fn load(text: &str, options: &str) -> Result<SentinelConfig, ConfigError> {
    let mut cfg = SentinelConfig::empty();
    apply_text(&mut cfg, text)?;
    apply_text(&mut cfg, options)?;
    apply_queued(&mut cfg)?;
    Ok(cfg)
}

/// Applies config text on top of `cfg`; its `sentinel` lines wait for [`apply_queued`].
pub fn apply_text(cfg: &mut SentinelConfig, text: &str) -> Result<(), ConfigError> {
    apply_text_at(cfg, text, 0)
}

/// `depth` counts nested `include`s.
fn apply_text_at(cfg: &mut SentinelConfig, text: &str, depth: usize) -> Result<(), ConfigError> {
    for (idx, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: &str| ConfigError { line_no: idx + 1, line: line.to_string(), reason: reason.to_string() };
        let args = split_args(line).map_err(|_| err("Unbalanced quotes in configuration line"))?;
        if args.is_empty() {
            continue;
        }
        let directive = args[0].to_ascii_lowercase();
        if directive == "sentinel" {
            // a lone `sentinel` (from `--sentinel` on the command line) only selects the mode
            if args.len() >= 2 {
                cfg.queued.push(QueuedLine { line_no: idx + 1, line: line.to_string(), args: args[1..].to_vec() });
            }
        } else if directive == "include" && args.len() == 2 {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(err("Too many nested includes"));
            }
            include(cfg, &args[1], depth + 1)?;
        } else {
            apply_generic(cfg, &directive, &args).map_err(|r| err(&r))?;
        }
    }
    Ok(())
}

/// Applies the queued `sentinel` lines: the pre-monitor options, then `sentinel monitor`,
/// then the rest, each group in reading order (Redis's `loadSentinelConfigFromQueue`).
pub fn apply_queued(cfg: &mut SentinelConfig) -> Result<(), ConfigError> {
    let group = |q: &QueuedLine| {
        let option = q.args[0].to_ascii_lowercase();
        if PRE_MONITOR_OPTIONS.contains(&option.as_str()) {
            0
        } else if option == "monitor" {
            1
        } else {
            2
        }
    };
    let mut queued = std::mem::take(&mut cfg.queued);
    queued.sort_by_key(group);
    for q in queued {
        apply_sentinel(cfg, &q.args).map_err(|reason| ConfigError { line_no: q.line_no, line: q.line.clone(), reason })?;
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
            let d = cfg.resolve(one()?);
            if !d.is_dir() {
                return Err("No such file or directory".into());
            }
            cfg.dir = Some(d.display().to_string());
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
        "maxclients" => {
            let n = one()?.parse::<u32>().ok().filter(|n| *n >= 1).ok_or("argument must be between 1 and 4294967295 inclusive")?;
            cfg.maxclients = Some(n);
        }
        d if PASSTHROUGH.contains(&d) => {
            if args.len() < 2 && d != "save" {
                return Err(BAD.into());
            }
        }
        // any other redis.conf directive is accepted when valid, and means nothing here
        d => {
            let param = crate::server::config::find_param(d).ok_or(BAD)?;
            if args.len() > 1 || param.name != "save" {
                crate::server::config::canonical_value(param, &args[1..])?;
            }
        }
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
            if !is_executable(&cfg.resolve(&a[2])) {
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
        // The old form without a run id is accepted and ignored, as Redis does (kept, it
        // would be rewritten with an empty id that no hello can ever match).
        ("known-sentinel", 4) => {}
        ("known-sentinel", 5) => {
            let i = find(cfg, &a[1])?;
            let port = parse_port(&a[3]).filter(|p| *p > 0).ok_or("Wrong hostname or port for sentinel.")?;
            let host = resolve_host(&a[2], cfg.resolve_hostnames).ok_or("Wrong hostname or port for sentinel.")?;
            cfg.masters[i].known_sentinels.push(KnownSentinel { host, port, run_id: a[4].clone() });
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

pub fn is_executable(path: &Path) -> bool {
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

/// The address Redis's announceSentinelAddr shows: the name the instance was given (kept
/// with `resolve-hostnames yes`) when `announce-hostnames` is yes, else its IP address.
pub fn announced_host(host: &str, announce_hostnames: bool) -> String {
    if announce_hostnames {
        return host.to_string();
    }
    resolve_host(host, false).unwrap_or_else(|| host.to_string())
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

/// The option a directive's lines are kept under by the rewrite (aliases resolved); None
/// for a directive that is not a config directive at all.
fn rewrite_option_of(directive: &str) -> Option<String> {
    if let Some(param) = crate::server::config::find_param(directive) {
        return Some(param.name.to_string());
    }
    let known = ["include", "rename-command", "user", "loadmodule", "sentinel"].contains(&directive) || PASSTHROUGH.contains(&directive);
    known.then(|| directive.to_string())
}

/// The config file after a rewrite of `old` (the file's current text), laid out as Redis's
/// CONFIG REWRITE does in sentinel mode: every line stays where it was, each option that
/// the sentinel rewrites takes the place of its old lines (each `sentinel <option>` kind
/// separately), new lines go below `# Generated by CONFIG REWRITE`.
pub fn render(cfg: &SentinelConfig, old: &str) -> String {
    let mut st = RewriteState::from_old(old, |l| split_args(l).ok(), rewrite_option_of);
    // the generic options a sentinel keeps, with Redis's defaults (those of redis.conf)
    st.rewrite_line("port", format!("port {}", cfg.port), cfg.port != 6379);
    match cfg.bind.is_empty() {
        true => st.mark_processed("bind"),
        // Redis writes a bind of no address as `bind ""`; an empty address, or one with a
        // space, quote or control character, is quoted so that the line reads back the same.
        false => {
            let addrs: Vec<String> = cfg.bind.iter().map(|a| crate::common::conf_rewrite::config_word(a)).collect();
            st.rewrite_line("bind", format!("bind {}", addrs.join(" ")), true)
        }
    }
    st.rewrite_line("daemonize", format!("daemonize {}", if cfg.daemonize { "yes" } else { "no" }), cfg.daemonize);
    st.rewrite_line("protected-mode", format!("protected-mode {}", if cfg.protected_mode { "yes" } else { "no" }), !cfg.protected_mode);
    match &cfg.pidfile {
        Some(p) => st.rewrite_line("pidfile", format!("pidfile {}", server_quote(p)), true),
        None => st.mark_processed("pidfile"),
    }
    let logfile = cfg.logfile.as_deref().unwrap_or("");
    st.rewrite_line("logfile", format!("logfile {}", server_quote(logfile)), !logfile.is_empty());
    let loglevel = cfg.loglevel.as_deref().unwrap_or("notice");
    st.rewrite_line("loglevel", format!("loglevel {loglevel}"), loglevel != "notice");
    if let Ok(cwd) = std::env::current_dir() {
        st.rewrite_line("dir", format!("dir {}", server_quote(&cwd.display().to_string())), true);
    }
    // a sentinel does not save: its `save` lines go, as Redis's rewrite drops them
    st.mark_processed("save");
    st.mark_processed("user");
    for u in cfg.acl.config_lines() {
        st.rewrite_line("user", crate::common::conf_rewrite::user_config_line(u.trim_end()), true);
    }
    rewrite_sentinel_options(&mut st, cfg);
    st.finish()
}

/// The `sentinel` lines, in Redis's order (`rewriteConfigSentinelOption`).
fn rewrite_sentinel_options(st: &mut RewriteState, cfg: &SentinelConfig) {
    if let Some(id) = &cfg.myid {
        st.rewrite_line("sentinel myid", format!("sentinel myid {}", repr(id)), true);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    st.rewrite_line("sentinel deny-scripts-reconfig", format!("sentinel deny-scripts-reconfig {}", yes_no(cfg.deny_scripts_reconfig)), !cfg.deny_scripts_reconfig);
    st.rewrite_line("sentinel resolve-hostnames", format!("sentinel resolve-hostnames {}", yes_no(cfg.resolve_hostnames)), cfg.resolve_hostnames);
    st.rewrite_line("sentinel announce-hostnames", format!("sentinel announce-hostnames {}", yes_no(cfg.announce_hostnames)), cfg.announce_hostnames);
    for m in &cfg.masters {
        let name = repr(&m.name);
        let mut line = |option: &str, rest: String| st.rewrite_line(&format!("sentinel {option}"), format!("sentinel {option} {name} {rest}"), true);
        line("monitor", format!("{} {} {}", repr(&m.host), m.port, m.quorum));
        if m.down_after_ms != DEFAULT_DOWN_AFTER_MS {
            line("down-after-milliseconds", m.down_after_ms.to_string());
        }
        if m.failover_timeout_ms != DEFAULT_FAILOVER_TIMEOUT_MS {
            line("failover-timeout", m.failover_timeout_ms.to_string());
        }
        if m.parallel_syncs != DEFAULT_PARALLEL_SYNCS {
            line("parallel-syncs", m.parallel_syncs.to_string());
        }
        if let Some(s) = &m.notification_script {
            line("notification-script", repr(s));
        }
        if let Some(s) = &m.client_reconfig_script {
            line("client-reconfig-script", repr(s));
        }
        if let Some(p) = &m.auth_pass {
            line("auth-pass", repr(p));
        }
        if let Some(u) = &m.auth_user {
            line("auth-user", repr(u));
        }
        if m.master_reboot_down_after_ms != 0 {
            line("master-reboot-down-after-period", m.master_reboot_down_after_ms.to_string());
        }
        line("config-epoch", m.config_epoch.to_string());
        line("leader-epoch", m.leader_epoch.to_string());
        for (h, p) in &m.known_replicas {
            line("known-replica", format!("{} {p}", repr(h)));
        }
        for s in &m.known_sentinels {
            line("known-sentinel", format!("{} {} {}", repr(&s.host), s.port, repr(&s.run_id)));
        }
        for (cmd, renamed) in &m.renamed_commands {
            line("rename-command", format!("{} {}", repr(cmd), repr(renamed)));
        }
    }
    st.rewrite_line("sentinel current-epoch", format!("sentinel current-epoch {}", cfg.current_epoch), true);
    let optional = [
        ("announce-ip", cfg.announce_ip.as_deref().map(repr)),
        ("announce-port", (cfg.announce_port != 0).then(|| cfg.announce_port.to_string())),
        ("sentinel-user", cfg.sentinel_user.as_deref().map(repr)),
        ("sentinel-pass", cfg.sentinel_pass.as_deref().map(repr)),
    ];
    for (option, value) in optional {
        let key = format!("sentinel {option}");
        match value {
            Some(v) => st.rewrite_line(&key, format!("{key} {v}"), true),
            None => st.mark_processed(&key),
        }
    }
    // options of masters no longer monitored: their old lines go
    for option in [
        "monitor", "down-after-milliseconds", "failover-timeout", "parallel-syncs", "notification-script",
        "client-reconfig-script", "auth-pass", "auth-user", "config-epoch", "leader-epoch", "known-replica",
        "known-sentinel", "rename-command", "master-reboot-down-after-period",
    ] {
        st.mark_processed(&format!("sentinel {option}"));
    }
}

/// Rewrites the config file on disk from its current text (Redis's `sentinelFlushConfig`).
/// Serialized: the rewrite thread and SENTINEL FLUSHCONFIG / SHUTDOWN may both rewrite.
pub fn rewrite_file(path: &Path, cfg: &SentinelConfig) -> Result<(), RewriteError> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(RewriteError::Io { path: path.display().to_string(), source }),
    };
    write_atomically(path, &render(cfg, &old))?;
    tracing::info!("Sentinel new configuration saved on disk");
    Ok(())
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
        let out = render(&cfg, text);
        assert!(out.starts_with("# my comment\nport 16400\n"), "{out}");
        let again = parse(&out).unwrap();
        assert_eq!(again.masters, cfg.masters);
        assert_eq!(again.current_epoch, 3);
        assert_eq!(again.myid, cfg.myid);
        assert_eq!(again.port, 16400);
        // no duplicated generated block; the only change of a re-read is Redis's own: the
        // `default` user line is applied after a reset, which adds sanitize-payload
        let second = render(&again, &out);
        // the file's last newline leaves an empty last line that Redis's rewrite keeps
        // (squeezed to one from then on)
        let expected = out.replace("user default on nopass ~* &* +@all", "user default on nopass sanitize-payload ~* &* +@all") + "\n";
        assert_eq!(second, expected);
        assert_eq!(render(&parse(&second).unwrap(), &second), second, "stable from then on");
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
        let out = render(&cfg, &main);
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
        let text = "port 1\nrequirepass sekret\nuser bob on >bp +@all\nsentinel monitor m 127.0.0.1 6379 2\n";
        let out = render(&cfg, text);
        // as Redis 7.0.15 wrote this very file: bob in place, default added below the marker
        assert!(
            out.starts_with(
                "port 1\nrequirepass sekret\nuser bob on #226a193ae269296d44f3efd3d66fead575a9ed15e14320b088c7c3d3cb2b9d8d resetchannels +@all\nsentinel"
            ) || out.starts_with("port 1\nrequirepass sekret\nuser bob on #226a193ae269296d44f3efd3d66fead575a9ed15e14320b088c7c3d3cb2b9d8d resetchannels +@all\n\n# Generated"),
            "{out}"
        );
        assert!(out.contains("# Generated by CONFIG REWRITE\n"), "{out}");
        assert!(out.contains("\nuser default on #bb757689c39373a6cac9ef6ba55616c6249d7500ca4d443f1130c4766453a412 ~* &* +@all\n"), "{out}");
        let again = parse(&out).unwrap();
        assert_eq!(again.acl.config_lines(), vec![
            "user bob on #226a193ae269296d44f3efd3d66fead575a9ed15e14320b088c7c3d3cb2b9d8d resetchannels +@all".to_string(),
            // Redis resets `default` before applying its line: sanitize-payload appears
            "user default on sanitize-payload #bb757689c39373a6cac9ef6ba55616c6249d7500ca4d443f1130c4766453a412 ~* &* +@all".into(),
        ]);
        let stable = render(&again, &out);
        assert_eq!(render(&parse(&stable).unwrap(), &stable), stable, "stable");
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
        let out = render(&cfg, "port 1\nloglevel notice\n");
        assert!(out.starts_with("port 1\nloglevel warning\n"), "{out}");
        let mut cfg = parse("port 1\n").unwrap();
        cfg.loglevel = Some("debug".into());
        let out = render(&cfg, "port 1\n");
        assert!(out.contains("# Generated by CONFIG REWRITE\nloglevel debug\n"), "{out}");
        let again = parse(&out).unwrap();
        assert_eq!(again.loglevel.as_deref(), Some("debug"));
        assert_eq!(render(&again, &out).matches("loglevel").count(), 1);
    }
}

#[cfg(test)]
mod loading_as_redis {
    use super::*;

    /// Redis Sentinel's own test suite config (tests/sentinel/tests/includes/sentinel.conf)
    /// followed by the lines its harness appends.
    const SUITE_CONF: &str = "# assume master is down after being unresponsive for 20s\n\
        sentinel down-after-milliseconds setmaster 20000\n\
        # reconfigure one slave at a time\n\
        sentinel parallel-syncs setmaster 2\n\
        # wait for 4m before assuming failover went wrong\n\
        sentinel failover-timeout setmaster 240000\n\
        # monitoring set\n\
        sentinel monitor setmaster 10.0.0.1 30000 2\n\
        \n\
        port 26999\n\
        repl-diskless-sync-delay 0\n\
        logfile log.txt\n\
        sentinel deny-scripts-reconfig no\n\
        enable-protected-configs yes\n\
        enable-debug-command yes\n";

    #[test]
    fn sentinel_lines_apply_after_monitor_whatever_their_order() {
        let cfg = parse(SUITE_CONF).unwrap();
        let m = cfg.master("setmaster").unwrap();
        assert_eq!((m.down_after_ms, m.parallel_syncs, m.failover_timeout_ms), (20000, 2, 240000));
        assert!(!cfg.deny_scripts_reconfig);
        // a line naming a master that is never monitored is still an error, with its line
        let e = parse("port 1\nsentinel parallel-syncs nope 2\nsentinel monitor m 127.0.0.1 6379 2\n").unwrap_err();
        assert_eq!((e.line_no, e.reason.as_str()), (2, "No such master with specified name."));
        // pre-monitor options (myid, current-epoch) apply before the masters' lines
        let text = format!("sentinel config-epoch m 7\nsentinel monitor m 127.0.0.1 6379 2\nsentinel current-epoch 3\nsentinel myid {}\n", "c".repeat(40));
        let cfg = parse(&text).unwrap();
        assert_eq!((cfg.current_epoch, cfg.master("m").unwrap().config_epoch), (7, 7));
    }

    #[test]
    fn every_redis_conf_directive_is_accepted_when_valid() {
        let cfg = parse("repl-diskless-sync-delay 0\nmaxmemory-policy allkeys-lru\nappendfsync always\nsave 900 1\nsave \"\"\nslaveof 127.0.0.1 6379\n").unwrap();
        assert_eq!(cfg.port, DEFAULT_PORT);
        assert_eq!(parse("repl-diskless-sync-delay abc\n").unwrap_err().reason, "argument couldn't be parsed into an integer");
        assert_eq!(parse("appendfsync sometimes\n").unwrap_err().line_no, 1);
        assert_eq!(parse("no-such-directive 1\n").unwrap_err().reason, "Bad directive or wrong number of arguments");
    }

    #[test]
    fn relative_script_paths_are_checked_from_dir() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("notify.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // the script line comes before `dir` in the file: still relative to `dir`, as the
        // sentinel lines are applied once the whole file is read
        let text = format!("sentinel notification-script m notify.sh\nsentinel monitor m 127.0.0.1 6379 2\ndir {}\n", dir.path().display());
        let cfg = parse(&text).unwrap();
        assert_eq!(cfg.master("m").unwrap().notification_script.as_deref(), Some("notify.sh"));
        let e = parse("sentinel monitor m 127.0.0.1 6379 2\nsentinel notification-script m notify.sh\n").unwrap_err();
        assert_eq!(e.reason, "Notification script seems non existing or non executable.");
        // a relative `dir` after another is relative to the first
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let cfg = parse(&format!("dir {}\ndir sub\n", dir.path().display())).unwrap();
        assert_eq!(cfg.dir, Some(dir.path().join("sub").display().to_string()));
    }

    #[test]
    fn flushconfig_keeps_sentinel_lines_where_they_were() {
        // Redis's suite (start-init-tests) compares the head of the rewritten file with
        // its include file line by line, up to the include's first empty line
        let mut cfg = parse(SUITE_CONF).unwrap();
        cfg.myid = Some("d".repeat(40));
        let out = render(&cfg, SUITE_CONF);
        let head: Vec<&str> = SUITE_CONF.lines().take_while(|l| !l.is_empty()).collect();
        let got: Vec<&str> = out.lines().take(head.len()).collect();
        assert_eq!(got, head, "{out}");
        let cwd = std::env::current_dir().unwrap().display().to_string();
        // what Redis 7.0.15 wrote for this file (modulo the order of appended generic lines)
        assert!(out.contains("\nport 26999\nrepl-diskless-sync-delay 0\nlogfile \"log.txt\"\nsentinel deny-scripts-reconfig no\n"), "{out}");
        assert!(out.contains(&format!("\n# Generated by CONFIG REWRITE\ndir \"{cwd}\"\nuser default on nopass ~* &* +@all\nsentinel myid {}\nsentinel config-epoch setmaster 0\nsentinel leader-epoch setmaster 0\nsentinel current-epoch 0\n", "d".repeat(40))), "{out}");
        // a removed master's lines go, leaving blanks squeezed to one
        let mut removed = cfg.clone();
        removed.masters.clear();
        let again = render(&removed, &out);
        assert!(!again.contains("setmaster"), "{again}");
        assert!(!again.contains("\n\n\n"), "{again}");
    }
}
