//! `rf-operator exporter`: our own Prometheus exporter for one server, run as the
//! metrics sidecar of every server pod (no third-party image). Each scrape connects to
//! the server, reads `INFO ALL` and renders it. Metric names follow oliver006's
//! redis_exporter wherever it has one (`redis_up`, `redis_connected_clients`,
//! `redis_db_keys{db}`, `redis_commands_total{cmd}`, ...), so its dashboards keep working;
//! what it lacks is prefixed `rf_exporter_` (role changes seen by this exporter).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use tracing::{debug, info};

use crate::operator::tracking::{connect, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("invalid --redis-addr {0:?}: expected host:port")]
    RedisAddr(String),
    #[error("invalid --listen {0:?}: expected [host]:port, e.g. :9121")]
    Listen(String),
    #[error("reading the password file {path}: {source}")]
    PasswordFile { path: String, source: std::io::Error },
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Debug)]
pub struct ExporterConfig {
    pub redis: Endpoint,
    pub password: Option<String>,
    /// Bound on connecting to the server and on each reply.
    pub timeout: Duration,
}

/// `host:port`, `[v6]:port`.
pub fn parse_redis_addr(s: &str) -> Result<Endpoint, ExporterError> {
    let err = || ExporterError::RedisAddr(s.to_string());
    let (host, port) = s.rsplit_once(':').ok_or_else(err)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| err())?;
    if host.is_empty() || port == 0 {
        return Err(err());
    }
    Ok(Endpoint::new(host, port))
}

/// `:9121` (all IPv4 interfaces), `0.0.0.0:9121`, `[::]:9121`, `127.0.0.1:0`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ExporterError> {
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_string() };
    full.parse().map_err(|_| ExporterError::Listen(s.to_string()))
}

/// The password: `--password-file` wins over `$REDIS_PASSWORD`; empty means none.
pub fn read_password(file: Option<&str>, env: Option<String>) -> Result<Option<String>, ExporterError> {
    let pw = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ExporterError::PasswordFile { path: path.to_string(), source })?;
            Some(text.trim_end_matches(['\r', '\n']).to_string())
        }
        None => env,
    };
    Ok(pw.filter(|p| !p.is_empty()))
}

// ------------------------------------------------------------------ rendering

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

struct Family {
    kind: Kind,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Metric families in the Prometheus text format (0.0.4), in insertion order.
#[derive(Default)]
pub struct Exposition {
    order: Vec<String>,
    families: BTreeMap<String, Family>,
}

impl Exposition {
    fn add(&mut self, name: &str, kind: Kind, help: &'static str, labels: Vec<(&'static str, String)>, value: f64) {
        if !self.families.contains_key(name) {
            self.order.push(name.to_string());
            self.families.insert(name.to_string(), Family { kind, help, samples: vec![] });
        }
        if let Some(f) = self.families.get_mut(name) {
            f.samples.push((labels, value));
        }
    }

    fn gauge(&mut self, name: &str, help: &'static str, labels: Vec<(&'static str, String)>, value: f64) {
        self.add(name, Kind::Gauge, help, labels, value);
    }

    fn counter(&mut self, name: &str, help: &'static str, labels: Vec<(&'static str, String)>, value: f64) {
        self.add(name, Kind::Counter, help, labels, value);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for name in &self.order {
            let f = &self.families[name];
            let kind = match f.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &f.samples {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(*value));
            }
        }
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        v.to_string()
    }
}

/// `INFO` as field → value (sections flattened; later duplicates win).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `a=1,b=x` → map (keyspace, slaveN, cmdstat_* values).
fn parse_kv_list(v: &str) -> BTreeMap<&str, &str> {
    v.split(',').filter_map(|kv| kv.split_once('=')).collect()
}

/// INFO field → (redis_exporter metric name, help), plain numbers.
const GAUGES: &[(&str, &str, &str)] = &[
    ("uptime_in_seconds", "redis_uptime_in_seconds", "Seconds since the server started"),
    ("process_id", "redis_process_id", "Process id of the server"),
    ("connected_clients", "redis_connected_clients", "Client connections (replicas excluded)"),
    ("blocked_clients", "redis_blocked_clients", "Clients in a blocking call"),
    ("tracking_clients", "redis_tracking_clients", "Clients with client-side caching tracking"),
    ("pubsub_clients", "redis_pubsub_clients", "Clients in pub/sub mode"),
    ("maxclients", "redis_max_clients", "maxclients setting"),
    ("client_recent_max_input_buffer", "redis_client_recent_max_input_buffer_bytes", "Largest recent client input buffer"),
    ("client_recent_max_output_buffer", "redis_client_recent_max_output_buffer_bytes", "Largest recent client output buffer"),
    ("used_memory", "redis_memory_used_bytes", "Bytes allocated by the server"),
    ("used_memory_rss", "redis_memory_used_rss_bytes", "Resident set size of the server"),
    ("used_memory_peak", "redis_memory_used_peak_bytes", "Peak of used_memory"),
    ("used_memory_overhead", "redis_memory_used_overhead_bytes", "Memory used for internal structures"),
    ("used_memory_startup", "redis_memory_used_startup_bytes", "Memory used at startup"),
    ("used_memory_dataset", "redis_memory_used_dataset_bytes", "Memory used by the dataset"),
    ("used_memory_lua", "redis_memory_used_lua_bytes", "Memory used by the Lua engine"),
    ("used_memory_scripts", "redis_memory_used_scripts_bytes", "Memory used by cached scripts"),
    ("maxmemory", "redis_memory_max_bytes", "maxmemory setting (0 = unlimited)"),
    ("total_system_memory", "redis_total_system_memory_bytes", "Memory of the host"),
    ("mem_fragmentation_ratio", "redis_mem_fragmentation_ratio", "used_memory_rss / used_memory"),
    ("mem_clients_slaves", "redis_mem_clients_slaves", "Memory used by replica connections"),
    ("mem_clients_normal", "redis_mem_clients_normal", "Memory used by normal client connections"),
    ("mem_replication_backlog", "redis_mem_replication_backlog_bytes", "Memory used by the replication backlog"),
    ("loading", "redis_loading_dump_file", "1 while loading a dump file"),
    ("rdb_changes_since_last_save", "redis_rdb_changes_since_last_save", "Changes since the last RDB save"),
    ("rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress", "1 while a BGSAVE runs"),
    ("rdb_last_save_time", "redis_rdb_last_save_timestamp_seconds", "Unix time of the last successful RDB save"),
    ("rdb_last_bgsave_time_sec", "redis_rdb_last_bgsave_duration_sec", "Duration of the last BGSAVE"),
    ("rdb_current_bgsave_time_sec", "redis_rdb_current_bgsave_duration_sec", "Duration of the running BGSAVE"),
    ("aof_enabled", "redis_aof_enabled", "1 when the AOF is on"),
    ("aof_rewrite_in_progress", "redis_aof_rewrite_in_progress", "1 while an AOF rewrite runs"),
    ("aof_rewrite_scheduled", "redis_aof_rewrite_scheduled", "1 when an AOF rewrite is scheduled"),
    ("aof_last_rewrite_time_sec", "redis_aof_last_rewrite_duration_sec", "Duration of the last AOF rewrite"),
    ("pubsub_channels", "redis_pubsub_channels", "Channels with subscribers"),
    ("pubsub_patterns", "redis_pubsub_patterns", "Patterns with subscribers"),
    ("instantaneous_ops_per_sec", "redis_instantaneous_ops_per_sec", "Commands per second (recent sample)"),
    ("instantaneous_input_kbps", "redis_instantaneous_input_kbps", "Network input rate (recent sample)"),
    ("instantaneous_output_kbps", "redis_instantaneous_output_kbps", "Network output rate (recent sample)"),
    ("connected_slaves", "redis_connected_slaves", "Replicas connected to this server"),
    ("master_repl_offset", "redis_master_repl_offset", "Replication offset of this server's history"),
    ("second_repl_offset", "redis_second_repl_offset", "Offset up to which replid2 is valid"),
    ("repl_backlog_active", "redis_repl_backlog_is_active", "1 when the replication backlog exists"),
    ("repl_backlog_size", "redis_replication_backlog_bytes", "Size of the replication backlog"),
    ("repl_backlog_first_byte_offset", "redis_repl_backlog_first_byte_offset", "First offset held in the backlog"),
    ("repl_backlog_histlen", "redis_repl_backlog_history_bytes", "Bytes of history in the backlog"),
    ("cluster_enabled", "redis_cluster_enabled", "1 in cluster mode"),
];

const COUNTERS: &[(&str, &str, &str)] = &[
    ("total_connections_received", "redis_connections_received_total", "Connections accepted"),
    ("total_commands_processed", "redis_commands_processed_total", "Commands processed"),
    ("rejected_connections", "redis_rejected_connections_total", "Connections rejected (maxclients)"),
    ("total_net_input_bytes", "redis_net_input_bytes_total", "Bytes read from the network"),
    ("total_net_output_bytes", "redis_net_output_bytes_total", "Bytes written to the network"),
    ("total_net_repl_input_bytes", "redis_net_repl_input_bytes_total", "Replication bytes read"),
    ("total_net_repl_output_bytes", "redis_net_repl_output_bytes_total", "Replication bytes written"),
    ("expired_keys", "redis_expired_keys_total", "Keys expired"),
    ("evicted_keys", "redis_evicted_keys_total", "Keys evicted (maxmemory)"),
    ("keyspace_hits", "redis_keyspace_hits_total", "Successful key lookups"),
    ("keyspace_misses", "redis_keyspace_misses_total", "Failed key lookups"),
    ("sync_full", "redis_replica_resyncs_full", "Full resynchronisations served"),
    ("sync_partial_ok", "redis_replica_partial_resync_accepted", "Partial resynchronisations accepted"),
    ("sync_partial_err", "redis_replica_partial_resync_denied", "Partial resynchronisations denied"),
    ("total_error_replies", "redis_total_error_replies", "Error replies sent"),
    ("used_cpu_sys", "redis_cpu_sys_seconds_total", "System CPU used by the server"),
    ("used_cpu_user", "redis_cpu_user_seconds_total", "User CPU used by the server"),
    ("used_cpu_sys_children", "redis_cpu_sys_children_seconds_total", "System CPU used by children"),
    ("used_cpu_user_children", "redis_cpu_user_children_seconds_total", "User CPU used by children"),
    ("aof_rewrites", "redis_aof_rewrites_total", "AOF rewrites done"),
    ("rdb_saves", "redis_rdb_saves_total", "RDB saves done"),
];

/// What the exporter itself observed across scrapes (role changes = failovers seen
/// from this server's side).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleHistory {
    pub role: Option<String>,
    pub changes: u64,
    /// Unix seconds of the last role change seen.
    pub last_change: Option<f64>,
}

impl RoleHistory {
    /// Records the role read now; a change from a known role counts.
    pub fn observe(&mut self, role: &str, now_unix: f64) {
        if self.role.as_deref().is_some_and(|r| r != role) {
            self.changes += 1;
            self.last_change = Some(now_unix);
        }
        self.role = Some(role.to_string());
    }
}

/// Renders one scrape: `info` is the `INFO ALL` text, None when the server could not be
/// read (then only `redis_up 0` and the exporter's own metrics).
pub fn render_scrape(info: Option<&str>, history: &RoleHistory, scrape: Duration, scrapes: u64, error: Option<&str>) -> String {
    let mut e = Exposition::default();
    e.gauge("redis_up", "1 when the last scrape read the server's INFO", vec![], if info.is_some() { 1.0 } else { 0.0 });
    if let Some(text) = info {
        add_info(&mut e, &parse_info(text));
    }
    e.counter("rf_exporter_role_changes_total", "Role changes (master <-> replica) seen by this exporter", vec![], history.changes as f64);
    if let Some(t) = history.last_change {
        e.gauge("rf_exporter_last_role_change_timestamp_seconds", "Unix time of the last role change seen by this exporter", vec![], t);
    }
    e.gauge("redis_exporter_last_scrape_duration_seconds", "Duration of the last scrape", vec![], scrape.as_secs_f64());
    e.counter("redis_exporter_scrapes_total", "Scrapes served", vec![], scrapes as f64);
    e.gauge("redis_exporter_last_scrape_error", "1 when the last scrape failed", vec![("err", error.unwrap_or("").to_string())], if error.is_some() { 1.0 } else { 0.0 });
    e.render()
}

fn num(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok()
}

fn add_info(e: &mut Exposition, info: &BTreeMap<String, String>) {
    let get = |k: &str| info.get(k).map(String::as_str).unwrap_or("");
    let role = get("role").to_string();
    e.gauge(
        "redis_instance_info",
        "Server identity (value 1)",
        vec![
            ("role", role.clone()),
            ("redis_version", get("redis_version").into()),
            ("redis_build_id", get("redis_build_id").into()),
            ("redis_mode", get("redis_mode").into()),
            ("os", get("os").into()),
            ("maxmemory_policy", get("maxmemory_policy").into()),
            ("tcp_port", get("tcp_port").into()),
            ("run_id", get("run_id").into()),
            ("process_id", get("process_id").into()),
            ("master_replid", get("master_replid").into()),
        ],
        1.0,
    );
    // Not in redis_exporter (it only has the role label above); handy for alerts.
    e.gauge("rf_exporter_is_master", "1 when the server reports role:master", vec![], if role == "master" { 1.0 } else { 0.0 });
    if let (Some(now_us), Some(up)) = (info.get("server_time_usec").and_then(|v| num(v)), info.get("uptime_in_seconds").and_then(|v| num(v))) {
        e.gauge("redis_start_time_seconds", "Unix time the server started", vec![], (now_us / 1e6 - up).floor());
    }
    for (field, name, help) in GAUGES {
        if let Some(v) = info.get(*field).and_then(|v| num(v)) {
            e.gauge(name, help, vec![], v);
        }
    }
    for (field, name, help) in COUNTERS {
        if let Some(v) = info.get(*field).and_then(|v| num(v)) {
            e.counter(name, help, vec![], v);
        }
    }
    for (field, name, help) in [
        ("rdb_last_bgsave_status", "redis_rdb_last_bgsave_status", "1 when the last BGSAVE succeeded"),
        ("aof_last_bgrewrite_status", "redis_aof_last_bgrewrite_status", "1 when the last AOF rewrite succeeded"),
        ("aof_last_write_status", "redis_aof_last_write_status", "1 when the last AOF write succeeded"),
    ] {
        if let Some(v) = info.get(field) {
            e.gauge(name, help, vec![], if v == "ok" { 1.0 } else { 0.0 });
        }
    }
    // Replica side: the link to the master.
    if role == "slave" {
        let master = || vec![("master_host", get("master_host").to_string()), ("master_port", get("master_port").to_string())];
        e.gauge("redis_master_link_up", "1 when the link to the master is up", master(), if get("master_link_status") == "up" { 1.0 } else { 0.0 });
        if let Some(v) = num(get("master_last_io_seconds_ago")) {
            e.gauge("redis_master_last_io_seconds_ago", "Seconds since the last interaction with the master", master(), v);
        }
        if let Some(v) = num(get("master_sync_in_progress")) {
            e.gauge("redis_master_sync_in_progress", "1 while syncing from the master", master(), v);
        }
        if let Some(v) = num(get("slave_repl_offset")) {
            e.gauge("redis_slave_repl_offset", "Replication offset of this replica", master(), v);
        }
        if let Some(v) = num(get("slave_priority")).or_else(|| num(get("replica_priority"))) {
            e.gauge("redis_slave_priority", "replica-priority (0 = never promoted)", master(), v);
        }
        let mut labels = master();
        labels.push(("read_only", get("slave_read_only").to_string()));
        e.gauge("redis_slave_info", "Replica settings (value 1)", labels, 1.0);
    }
    // Master side: one line per connected replica.
    for (k, v) in info {
        let Some(n) = k.strip_prefix("slave") else { continue };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let kv = parse_kv_list(v);
        let labels = vec![
            ("slave_ip", kv.get("ip").copied().unwrap_or("").to_string()),
            ("slave_port", kv.get("port").copied().unwrap_or("").to_string()),
            ("slave_state", kv.get("state").copied().unwrap_or("").to_string()),
        ];
        if let Some(off) = kv.get("offset").and_then(|o| num(o)) {
            e.gauge("redis_connected_slave_offset_bytes", "Offset acknowledged by a connected replica", labels.clone(), off);
            if let Some(master_off) = info.get("master_repl_offset").and_then(|o| num(o)) {
                // Not in redis_exporter: the lag in bytes, the number the operator waits on.
                e.gauge("rf_exporter_connected_slave_lag_bytes", "master_repl_offset minus the replica's acknowledged offset", labels.clone(), (master_off - off).max(0.0));
            }
        }
        if let Some(lag) = kv.get("lag").and_then(|o| num(o)) {
            e.gauge("redis_connected_slave_lag_seconds", "Seconds since the replica's last ACK", labels, lag);
        }
    }
    // Keyspace: db0:keys=1,expires=0,avg_ttl=0
    for (k, v) in info {
        let Some(n) = k.strip_prefix("db") else { continue };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let kv = parse_kv_list(v);
        let db = || vec![("db", k.clone())];
        if let Some(x) = kv.get("keys").and_then(|x| num(x)) {
            e.gauge("redis_db_keys", "Keys in a database", db(), x);
        }
        if let Some(x) = kv.get("expires").and_then(|x| num(x)) {
            e.gauge("redis_db_keys_expiring", "Keys with an expiry in a database", db(), x);
        }
        if let Some(x) = kv.get("avg_ttl").and_then(|x| num(x)) {
            e.gauge("redis_db_avg_ttl_seconds", "Average TTL of keys with an expiry", db(), x / 1000.0);
        }
    }
    // Command statistics: cmdstat_get:calls=2,usec=27,...
    for (k, v) in info {
        let Some(cmd) = k.strip_prefix("cmdstat_") else { continue };
        let kv = parse_kv_list(v);
        let c = || vec![("cmd", cmd.to_string())];
        if let Some(x) = kv.get("calls").and_then(|x| num(x)) {
            e.counter("redis_commands_total", "Calls per command", c(), x);
        }
        if let Some(x) = kv.get("usec").and_then(|x| num(x)) {
            e.counter("redis_commands_duration_seconds_total", "Time spent per command", c(), x / 1e6);
        }
        if let Some(x) = kv.get("rejected_calls").and_then(|x| num(x)) {
            e.counter("redis_commands_rejected_calls_total", "Rejected calls per command", c(), x);
        }
        if let Some(x) = kv.get("failed_calls").and_then(|x| num(x)) {
            e.counter("redis_commands_failed_calls_total", "Failed calls per command", c(), x);
        }
    }
    // Error statistics: errorstat_ERR:count=3
    for (k, v) in info {
        let Some(err) = k.strip_prefix("errorstat_") else { continue };
        if let Some(x) = parse_kv_list(v).get("count").and_then(|x| num(x)) {
            e.counter("redis_errors_total", "Error replies by error prefix", vec![("err", err.to_string())], x);
        }
    }
}

// ------------------------------------------------------------------ serving

struct ExporterState {
    cfg: ExporterConfig,
    scrapes: AtomicU64,
    history: Mutex<RoleHistory>,
}

async fn read_info(cfg: &ExporterConfig) -> Result<String, String> {
    let r = async {
        let mut c = connect(&cfg.redis, cfg.password.as_deref(), cfg.timeout).await.map_err(|e| e.to_string())?;
        redis::cmd("INFO").arg("ALL").query_async::<String>(&mut c).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(cfg.timeout * 3, r).await.map_err(|_| format!("{}: timed out", cfg.redis))?
}

async fn scrape(State(s): State<Arc<ExporterState>>) -> impl IntoResponse {
    let started = Instant::now();
    let result = read_info(&s.cfg).await;
    let scrapes = s.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
    let history = {
        let mut h = s.history.lock();
        if let Ok(text) = &result {
            if let Some(role) = parse_info(text).get("role") {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                h.observe(role, now);
            }
        }
        h.clone()
    };
    if let Err(e) = &result {
        debug!(error = %e, "scrape failed");
    }
    let body = render_scrape(result.as_deref().ok(), &history, started.elapsed(), scrapes, result.as_ref().err().map(String::as_str));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

pub fn router(cfg: ExporterConfig) -> Router {
    let state = Arc::new(ExporterState { cfg, scrapes: AtomicU64::new(0), history: Mutex::new(RoleHistory::default()) });
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok" }))
        .route("/", get(|| async { "rf-operator exporter: metrics at /metrics\n" }))
        .with_state(state)
}

/// Serves until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, cfg: ExporterConfig) -> Result<(), ExporterError> {
    info!(listen = ?listener.local_addr().ok(), redis = %cfg.redis, "exporter serving /metrics");
    axum::serve(listener, router(cfg)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER_INFO: &str = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux\r\n\
        process_id:42\r\nrun_id:abc\r\ntcp_port:6379\r\nserver_time_usec:1700000100000000\r\nuptime_in_seconds:100\r\n\
        # Clients\r\nconnected_clients:7\r\nblocked_clients:1\r\n\
        # Memory\r\nused_memory:123456\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n\
        # Persistence\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\naof_last_write_status:err\r\n\
        # Stats\r\ntotal_commands_processed:99\r\nkeyspace_hits:5\r\nkeyspace_misses:2\r\nsync_full:1\r\n\
        # Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=10.0.0.2,port=6379,state=online,offset=1000,lag=0\r\n\
        slave1:ip=10.0.0.3,port=6379,state=wait_bgsave,offset=0,lag=1\r\n\
        master_replid:r1\r\nmaster_repl_offset:1010\r\n\
        # Commandstats\r\ncmdstat_get:calls=2,usec=27,usec_per_call=13.50,rejected_calls=0,failed_calls=1\r\n\
        # Errorstats\r\nerrorstat_WRONGTYPE:count=3\r\n\
        # Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=99847\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim())
    }

    #[test]
    fn master_info_renders_redis_exporter_names() {
        let out = render_scrape(Some(MASTER_INFO), &RoleHistory::default(), Duration::from_millis(3), 4, None);
        assert_eq!(line(&out, "redis_up "), Some("1"));
        assert_eq!(line(&out, "redis_connected_clients "), Some("7"));
        assert_eq!(line(&out, "redis_memory_used_bytes "), Some("123456"));
        assert_eq!(line(&out, "redis_commands_processed_total "), Some("99"));
        assert_eq!(line(&out, "redis_keyspace_hits_total "), Some("5"));
        assert_eq!(line(&out, "redis_keyspace_misses_total "), Some("2"));
        assert_eq!(line(&out, "redis_connected_slaves "), Some("2"));
        assert_eq!(line(&out, "redis_master_repl_offset "), Some("1010"));
        assert_eq!(line(&out, "redis_start_time_seconds "), Some("1700000000"));
        assert_eq!(line(&out, "redis_db_keys{db=\"db0\"} "), Some("2"));
        assert_eq!(line(&out, "redis_db_keys{db=\"db3\"} "), Some("1"));
        assert_eq!(line(&out, "redis_db_keys_expiring{db=\"db0\"} "), Some("1"));
        assert_eq!(line(&out, "redis_db_avg_ttl_seconds{db=\"db0\"} "), Some("99.847"));
        assert_eq!(line(&out, "redis_commands_total{cmd=\"get\"} "), Some("2"));
        assert_eq!(line(&out, "redis_commands_duration_seconds_total{cmd=\"get\"} "), Some("0.000027"));
        assert_eq!(line(&out, "redis_commands_failed_calls_total{cmd=\"get\"} "), Some("1"));
        assert_eq!(line(&out, "redis_errors_total{err=\"WRONGTYPE\"} "), Some("3"));
        assert_eq!(line(&out, "redis_rdb_last_bgsave_status "), Some("1"));
        assert_eq!(line(&out, "redis_aof_last_write_status "), Some("0"));
        assert_eq!(line(&out, "rf_exporter_is_master "), Some("1"));
        let replica0 = "{slave_ip=\"10.0.0.2\",slave_port=\"6379\",slave_state=\"online\"} ";
        assert_eq!(line(&out, &format!("redis_connected_slave_offset_bytes{replica0}")), Some("1000"));
        assert_eq!(line(&out, &format!("rf_exporter_connected_slave_lag_bytes{replica0}")), Some("10"));
        assert_eq!(line(&out, &format!("redis_connected_slave_lag_seconds{replica0}")), Some("0"));
        assert!(out.contains("redis_instance_info{role=\"master\",redis_version=\"7.0.15\""), "{out}");
        assert_eq!(line(&out, "redis_exporter_scrapes_total "), Some("4"));
        assert_eq!(line(&out, "redis_exporter_last_scrape_error{err=\"\"} "), Some("0"));
        // No replica-side metrics on a master.
        assert!(!out.contains("redis_master_link_up"), "{out}");
        // Every sample's family is declared once, with HELP and TYPE.
        assert_eq!(out.matches("# TYPE redis_db_keys gauge").count(), 1);
        assert_eq!(out.matches("# TYPE redis_keyspace_hits_total counter").count(), 1);
    }

    #[test]
    fn replica_info_renders_the_master_link() {
        let info = "role:slave\r\nmaster_host:rf-server-0.rf\r\nmaster_port:6379\r\nmaster_link_status:down\r\n\
                    master_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:1\r\nslave_repl_offset:77\r\nslave_priority:0\r\nslave_read_only:1\r\n";
        let out = render_scrape(Some(info), &RoleHistory::default(), Duration::ZERO, 1, None);
        let m = "{master_host=\"rf-server-0.rf\",master_port=\"6379\"} ";
        assert_eq!(line(&out, &format!("redis_master_link_up{m}")), Some("0"));
        assert_eq!(line(&out, &format!("redis_master_sync_in_progress{m}")), Some("1"));
        assert_eq!(line(&out, &format!("redis_slave_repl_offset{m}")), Some("77"));
        assert_eq!(line(&out, &format!("redis_slave_priority{m}")), Some("0"));
        assert_eq!(line(&out, "redis_slave_info{master_host=\"rf-server-0.rf\",master_port=\"6379\",read_only=\"1\"} "), Some("1"));
        assert_eq!(line(&out, "rf_exporter_is_master "), Some("0"));
    }

    #[test]
    fn unreachable_server_is_up_zero_with_the_error() {
        let out = render_scrape(None, &RoleHistory::default(), Duration::ZERO, 2, Some("127.0.0.1:1: \"refused\"\n"));
        assert_eq!(line(&out, "redis_up "), Some("0"));
        assert_eq!(line(&out, "redis_exporter_last_scrape_error{err=\"127.0.0.1:1: \\\"refused\\\"\\n\"} "), Some("1"));
        assert!(!out.contains("redis_connected_clients"), "{out}");
    }

    #[test]
    fn role_changes_are_counted_from_the_second_observation() {
        let mut h = RoleHistory::default();
        h.observe("master", 10.0);
        h.observe("master", 11.0);
        assert_eq!((h.changes, h.last_change), (0, None));
        h.observe("slave", 12.5);
        assert_eq!((h.changes, h.last_change), (1, Some(12.5)));
        let out = render_scrape(None, &h, Duration::ZERO, 1, None);
        assert_eq!(line(&out, "rf_exporter_role_changes_total "), Some("1"));
        assert_eq!(line(&out, "rf_exporter_last_role_change_timestamp_seconds "), Some("12.5"));
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(parse_redis_addr("127.0.0.1:6379").unwrap(), Endpoint::new("127.0.0.1", 6379));
        assert_eq!(parse_redis_addr("[::1]:6380").unwrap(), Endpoint::new("::1", 6380));
        assert!(parse_redis_addr("localhost").is_err());
        assert!(parse_redis_addr(":6379").is_err());
        assert!(parse_redis_addr("h:0").is_err());
        assert_eq!(parse_listen(":9121").unwrap(), "0.0.0.0:9121".parse::<SocketAddr>().unwrap());
        assert_eq!(parse_listen("[::]:9121").unwrap(), "[::]:9121".parse::<SocketAddr>().unwrap());
        assert!(parse_listen("9121").is_err());
    }

    #[test]
    fn password_sources() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").unwrap();
        let path = f.to_str().unwrap();
        assert_eq!(read_password(Some(path), Some("env".into())).unwrap().as_deref(), Some("from-file"));
        assert_eq!(read_password(None, Some("env".into())).unwrap().as_deref(), Some("env"));
        assert_eq!(read_password(None, Some(String::new())).unwrap(), None);
        assert!(matches!(read_password(Some("/nonexistent/pw"), None), Err(ExporterError::PasswordFile { .. })));
    }
}
