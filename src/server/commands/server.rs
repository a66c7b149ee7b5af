//! Server commands: INFO, CONFIG, COMMAND, TIME, LASTSAVE, MONITOR, SLOWLOG, MEMORY,
//! DEBUG, ACL (default user only), SHUTDOWN.

use crate::server::types::stream::StreamId;
use std::collections::BTreeMap;

use bytes::Bytes;

use crate::resp::{Frame, ProtocolVersion};
use crate::server::acl;
use crate::server::command::{cmd, parse_int, syntax_error, CommandSpec, Ctx};
use crate::server::commands::keys::container_help;
use crate::server::config::{REDIS_VERSION, RF_VERSION};
use crate::server::types::glob::string_match;
use crate::server::state::ShutdownRequest;
use crate::server::value::Value;

pub fn commands() -> Vec<CommandSpec> {
    let s = |c: CommandSpec| c.group("server");
    vec![
        s(cmd("info", -1, "loading stale", 0, 0, 0, "slow dangerous", info).summary("Get information and statistics about the server").tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])),
        s(cmd("config", -2, "", 0, 0, 0, "slow", container_help).since("2.0.0").summary("A container for server configuration commands").subs(vec![
            cmd("get", -3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", config_get).since("2.0.0").summary("Get the values of configuration parameters"),
            cmd("set", -4, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", config_set).since("2.0.0").summary("Set configuration parameters to the given values").tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("resetstat", 2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", config_resetstat).since("2.0.0").summary("Reset the stats returned by INFO").tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("rewrite", 2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", config_rewrite).since("2.8.0").summary("Rewrite the configuration file with the in memory configuration").tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow", config_help).since("5.0.0").summary("Show helpful text about the different subcommands"),
        ])),
        s(cmd("command", -1, "loading stale", 0, 0, 0, "slow connection", command_list_all).since("2.8.13").summary("Get array of Redis command details").tips(&["nondeterministic_output_order"]).subs(vec![
            cmd("count", 2, "loading stale", 0, 0, 0, "slow connection", command_count).since("2.8.13").summary("Get total number of Redis commands"),
            cmd("info", -2, "loading stale", 0, 0, 0, "slow connection", command_info).since("2.8.13").summary("Get array of specific Redis command details, or all when no argument is given.").tips(&["nondeterministic_output_order"]),
            cmd("docs", -2, "loading stale", 0, 0, 0, "slow connection", command_docs).since("7.0.0").summary("Get array of specific Redis command documentation").tips(&["nondeterministic_output_order"]),
            cmd("list", -2, "loading stale", 0, 0, 0, "slow connection", command_list).since("7.0.0").summary("Get an array of Redis command names").tips(&["nondeterministic_output_order"]),
            cmd("getkeys", -4, "loading stale", 0, 0, 0, "slow connection", command_getkeys).since("2.8.13").summary("Extract keys given a full Redis command"),
            cmd("getkeysandflags", -4, "loading stale", 0, 0, 0, "slow connection", command_getkeysandflags).since("7.0.0").summary("Extract keys and access flags given a full Redis command"),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow connection", command_help).since("5.0.0").summary("Show helpful text about the different subcommands"),
        ])),
        s(cmd("time", 1, "loading stale fast", 0, 0, 0, "fast", time).since("2.6.0").summary("Return the current server time").tips(&["nondeterministic_output"])),
        s(cmd("lastsave", 1, "loading stale fast", 0, 0, 0, "admin fast dangerous", lastsave).summary("Get the UNIX time stamp of the last successful save to disk").tips(&["nondeterministic_output"])),
        s(cmd("monitor", 1, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", monitor).summary("Listen for all requests received by the server in real time")),
        s(cmd("slowlog", -2, "", 0, 0, 0, "slow", container_help).since("2.2.12").summary("A container for slow log commands").subs(vec![
            cmd("get", -2, "admin loading stale", 0, 0, 0, "admin slow dangerous", slowlog_get).since("2.2.12").summary("Get the slow log's entries").tips(&["request_policy:all_nodes", "nondeterministic_output"]),
            cmd("len", 2, "admin loading stale", 0, 0, 0, "admin slow dangerous", slowlog_len).since("2.2.12").summary("Get the slow log's length").tips(&["request_policy:all_nodes", "response_policy:agg_sum", "nondeterministic_output"]),
            cmd("reset", 2, "admin loading stale", 0, 0, 0, "admin slow dangerous", slowlog_reset).since("2.2.12").summary("Clear all entries from the slow log").tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow", slowlog_help).since("6.2.0").summary("Show helpful text about the different subcommands"),
        ])),
        s(cmd("memory", -2, "", 0, 0, 0, "slow", container_help).since("4.0.0").summary("A container for memory diagnostics commands").subs(vec![
            cmd("usage", -3, "readonly", 2, 2, 1, "read slow", memory_usage).since("4.0.0").summary("Estimate the memory usage of a key"),
            cmd("doctor", 2, "", 0, 0, 0, "slow", memory_doctor).since("4.0.0").summary("Outputs memory problems report").tips(&["nondeterministic_output"]),
            cmd("stats", 2, "", 0, 0, 0, "slow", memory_stats).since("4.0.0").summary("Show memory usage details").tips(&["nondeterministic_output"]),
            cmd("purge", 2, "", 0, 0, 0, "slow", memory_purge).since("4.0.0").summary("Ask the allocator to release memory"),
            cmd("malloc-stats", 2, "", 0, 0, 0, "slow", memory_doctor).since("4.0.0").summary("Show allocator internal stats").tips(&["nondeterministic_output"]),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow", memory_help).since("4.0.0").summary("Show helpful text about the different subcommands"),
        ])),
        s(cmd("debug", -2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", debug).summary("A container for debugging commands")),
        s(cmd("acl", -2, "", 0, 0, 0, "slow", container_help).since("6.0.0").summary("A container for Access List Control commands ").subs(vec![
            cmd("cat", -2, "noscript loading stale", 0, 0, 0, "slow", acl::acl_cat).since("6.0.0").summary("List the ACL categories or the commands inside a category"),
            cmd("deluser", -3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_deluser).since("6.0.0").summary("Remove the specified ACL users and the associated rules").tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("dryrun", -4, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_dryrun).since("7.0.0").summary("Returns whether the user can execute the given command without executing the command."),
            cmd("genpass", -2, "noscript loading stale", 0, 0, 0, "slow", acl::acl_genpass).since("6.0.0").summary("Generate a pseudorandom secure password to use for ACL users"),
            cmd("getuser", 3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_getuser).since("6.0.0").summary("Get the rules for a specific ACL user"),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow", acl::acl_help).since("6.0.0").summary("Show helpful text about the different subcommands"),
            cmd("list", 2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_list).since("6.0.0").summary("List the current ACL rules in ACL config file format"),
            cmd("load", 2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_load).since("6.0.0").summary("Reload the ACLs from the configured ACL file"),
            cmd("log", -2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_log).since("6.0.0").summary("List latest events denied because of ACLs in place"),
            cmd("save", 2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_save).since("6.0.0").summary("Save the current ACL rules in the configured ACL file").tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("setuser", -3, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_setuser).since("6.0.0").summary("Modify or create the rules for a specific ACL user").tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            cmd("users", 2, "admin noscript loading stale", 0, 0, 0, "admin slow dangerous", acl::acl_users).since("6.0.0").summary("List the username of all the configured ACL rules"),
            cmd("whoami", 2, "noscript loading stale", 0, 0, 0, "slow", acl::acl_whoami).since("6.0.0").summary("Return the name of the user associated to the current connection"),
        ])),
        s(cmd("shutdown", -1, "admin noscript loading stale no_multi allow_busy", 0, 0, 0, "admin slow dangerous", shutdown).summary("Synchronously save the dataset to disk and then shut down the server")),
    ]
}

// ---------- INFO ----------

const DEFAULT_SECTIONS: &[&str] = &["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules", "errorstats", "cluster", "keyspace"];
const ALL_EXTRA: &[&str] = &["commandstats", "latencystats"];

fn info(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut wanted: Vec<String> = args[1..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted.retain(|w| w != "default");
        wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    if wanted.iter().any(|w| w == "all" || w == "everything") {
        wanted = DEFAULT_SECTIONS.iter().chain(ALL_EXTRA.iter()).map(|s| s.to_string()).collect();
    }
    let mut out = String::new();
    let order: Vec<&str> = DEFAULT_SECTIONS.iter().chain(ALL_EXTRA.iter()).copied().collect();
    for section in order {
        if !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let title = match section {
            "cpu" => "CPU".to_string(),
            s => {
                let mut c = s.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            }
        };
        out.push_str(&format!("# {title}\r\n"));
        out.push_str(&info_section(ctx, section));
    }
    Frame::Verbatim("txt".into(), Bytes::from(out))
}

fn info_section(ctx: &mut Ctx, section: &str) -> String {
    let srv = &*ctx.srv;
    let now = ctx.now_ms;
    match section {
        "server" => {
            let uptime = srv.uptime_secs();
            format!(
                "redis_version:{REDIS_VERSION}\r\nrf_version:{RF_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\n",
                std::env::consts::OS,
                std::env::consts::ARCH,
                std::process::id(),
                srv.run_id,
                srv.port,
                now * 1000,
                uptime,
                uptime / 86400,
                srv.config.get("hz"),
                srv.config.get("hz"),
                srv.lru_clock,
                srv.executable,
                srv.config_file
            )
        }
        "clients" => {
            let all: Vec<&crate::server::client::ClientState> = srv.clients.values().chain(std::iter::once(&*ctx.client)).collect();
            let in_timeout_table = all.iter().filter(|c| c.blocked).count();
            let blocked = in_timeout_table + crate::server::conn::paused_clients();
            let pubsub = all.iter().filter(|c| c.subscriptions() > 0).count();
            let watching = all.iter().filter(|c| !c.watched.is_empty()).count();
            let normal = all.iter().filter(|c| !c.is_replica).count();
            let tracking = srv.tracking.tracking_clients();
            let (max_input, max_output) = srv.clients_peak.recent_max();
            format!(
                "connected_clients:{normal}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:{max_input}\r\nclient_recent_max_output_buffer:{max_output}\r\nblocked_clients:{blocked}\r\ntracking_clients:{tracking}\r\npubsub_clients:{pubsub}\r\nwatching_clients:{watching}\r\nclients_in_timeout_table:{in_timeout_table}\r\ntotal_watched_keys:{}\r\ntotal_blocking_keys:{}\r\ntotal_blocking_keys_on_nokey:0\r\n",
                srv.limits.maxclients,
                srv.watched.len(),
                srv.blocking_keys.len()
            )
        }
        "memory" => {
            let used = srv.used_memory();
            let rss = rss_bytes();
            let peak = srv.stat_peak_memory.max(used);
            let dataset: usize = srv.dbs.iter().map(|d| d.memory()).sum();
            let (lazy_pending, lazy_freed) = crate::server::lazyfree::stats();
            let (repl_backlog, repl_clients, repl_total) = srv.repl.repl.buffer_memory();
            format!(
                "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{}\r\nused_memory_startup:1048576\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{used}\r\nallocator_active:{rss}\r\nallocator_resident:{rss}\r\ntotal_system_memory:{}\r\ntotal_system_memory_human:{}\r\n{}maxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:1.00\r\nallocator_frag_bytes:0\r\nallocator_rss_ratio:1.00\r\nallocator_rss_bytes:0\r\nrss_overhead_ratio:1.00\r\nrss_overhead_bytes:0\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:{repl_backlog}\r\nmem_total_replication_buffers:{repl_total}\r\nmem_clients_slaves:{repl_clients}\r\nmem_clients_normal:{}\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\nmem_allocator:libc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:{lazy_pending}\r\nlazyfreed_objects:{lazy_freed}\r\n",
                human(used as u64),
                human(rss as u64),
                human(peak as u64),
                used as f64 * 100.0 / peak.max(1) as f64,
                used.saturating_sub(dataset),
                dataset as f64 * 100.0 / used.max(1) as f64,
                total_system_memory(),
                human(total_system_memory()),
                srv.scripting.info_memory(),
                srv.limits.maxmemory,
                human(srv.limits.maxmemory),
                srv.config.get("maxmemory-policy"),
                rss as f64 / used.max(1) as f64,
                rss as i64 - used as i64,
                srv.clients.len() * 20 * 1024
            )
        }
        "persistence" => crate::server::persistence::info_section(srv),
        "replication" => crate::server::replication::info_section(srv),
        "stats" => {
            let repl_stats = srv.repl.stats();
            let st = &srv.stats;
            let pubsub_channels = srv.pubsub.channels.len();
            let pubsub_patterns = srv.pubsub.patterns.len();
            let pubsubshard_channels = srv.pubsub.shard_channels.len();
            let (tracking_keys, tracking_items, tracking_prefixes) = srv.tracking.totals();
            let slave_expires_tracked_keys = srv.replica_keys_with_expire.len();
            let unexpected_error_replies = st.unexpected_error_replies;
            format!(
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:0.00\r\ninstantaneous_output_kbps:0.00\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:0\r\nevicted_keys:{}\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{pubsub_channels}\r\npubsub_patterns:{pubsub_patterns}\r\npubsubshard_channels:{pubsubshard_channels}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:{slave_expires_tracked_keys}\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{tracking_keys}\r\ntracking_total_items:{tracking_items}\r\ntracking_total_prefixes:{tracking_prefixes}\r\nunexpected_error_replies:{unexpected_error_replies}\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\nreply_buffer_expands:0\r\n",
                st.total_connections,
                st.total_commands,
                st.net_input_bytes,
                st.net_output_bytes,
                st.rejected_connections,
                repl_stats.sync_full,
                repl_stats.sync_partial_ok,
                repl_stats.sync_partial_err,
                st.expired_keys,
                st.evicted_keys,
                st.keyspace_hits,
                st.keyspace_misses,
                st.total_error_replies,
                st.total_commands,
                st.total_commands
            )
        }
        "cpu" => crate::common::proc_stats::cpu_section(),
        "modules" => String::new(),
        "errorstats" => {
            let mut errs: Vec<(&String, &u64)> = srv.stats.errors.iter().collect();
            errs.sort();
            errs.iter().map(|(k, v)| format!("errorstat_{k}:count={v}\r\n")).collect()
        }
        "cluster" => "cluster_enabled:0\r\n".to_string(),
        "keyspace" => {
            let mut s = String::new();
            for (i, db) in srv.dbs.iter().enumerate() {
                if db.is_empty() {
                    continue;
                }
                s.push_str(&format!("db{i}:keys={},expires={},avg_ttl={}\r\n", db.len(), db.expires_len(), db.avg_ttl));
            }
            s
        }
        "commandstats" => {
            use std::sync::atomic::Ordering::Relaxed;
            let mut specs: Vec<std::sync::Arc<crate::server::command::CommandSpec>> = Vec::new();
            for s in &srv.commands.all {
                specs.push(s.clone());
                specs.extend(s.subcommands.iter().cloned());
            }
            specs.sort_by(|a, b| a.name.cmp(&b.name));
            specs
                .iter()
                .filter(|s| s.stats.calls.load(Relaxed) + s.stats.rejected.load(Relaxed) + s.stats.failed.load(Relaxed) > 0)
                .map(|s| {
                    let (calls, usec) = (s.stats.calls.load(Relaxed), s.stats.usec.load(Relaxed));
                    format!(
                        "cmdstat_{}:calls={calls},usec={usec},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                        s.name,
                        if calls > 0 { usec as f64 / calls as f64 } else { 0.0 },
                        s.stats.rejected.load(Relaxed),
                        s.stats.failed.load(Relaxed)
                    )
                })
                .collect()
        }
        "latencystats" => crate::server::commands::latency::info_latencystats(srv),
        _ => String::new(),
    }
}

/// Redis's `bytesToHuman`.
pub fn human(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{}B", n as u64)
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", n / (1024.0 * 1024.0))
    } else if n < 1024.0f64.powi(4) {
        format!("{:.2}G", n / 1024.0f64.powi(3))
    } else {
        format!("{:.2}T", n / 1024.0f64.powi(4))
    }
}

/// Resident set size from /proc (0 where unavailable).
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()))
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

// ---------- CONFIG ----------

fn config_get(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut found = BTreeMap::new();
    for pattern in &args[2..] {
        ctx.srv.config.get_matching(pattern, &mut found);
    }
    Frame::Map(found.into_iter().map(|(k, v)| (Frame::bulk(k), Frame::bulk(v))).collect())
}

fn config_set(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() % 2 != 0 {
        return crate::server::command::wrong_args("config|set");
    }
    let pairs: Vec<(String, String)> = args[2..].chunks(2).map(|c| (String::from_utf8_lossy(&c[0]).into_owned(), String::from_utf8_lossy(&c[1]).into_owned())).collect();
    // The values before, to roll everything back when applying the listeners fails.
    let before: Vec<(String, String)> = pairs
        .iter()
        .filter_map(|(n, _)| crate::server::config::find_param(n).map(|p| (p.name.to_string(), ctx.srv.config.get(p.name).to_string())))
        .collect();
    match ctx.srv.config.set_many(&pairs) {
        Ok(changed) => {
            let (port_changed, bind_changed) = (changed.contains(&"port"), changed.contains(&"bind"));
            if port_changed || bind_changed {
                if let Err(why) = crate::server::apply_listen_config(&ctx.srv.config, bind_changed) {
                    // Redis rolls the whole CONFIG SET back; the listeners stay as they were
                    let _ = ctx.srv.config.set_many(&before);
                    let name = if bind_changed { "bind" } else { "port" };
                    return Frame::error(format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"));
                }
            }
            ctx.srv.refresh_limits();
            crate::server::replication::apply_config(ctx.srv);
            crate::server::persistence::apply_config(ctx.srv);
            for name in changed {
                match name {
                    "appendonly" => {
                        if let Err(e) = crate::server::persistence::apply_appendonly(ctx.srv) {
                            crate::server::log::warning(&format!("Can't turn the append only file on: {e}"));
                            ctx.srv.config.set_raw("appendonly", "no".into());
                            return Frame::error("ERR CONFIG SET failed (possibly related to argument 'appendonly') - Unable to turn on AOF. Check server logs.");
                        }
                    }
                    "oom-score-adj" | "oom-score-adj-values" => {
                        if !crate::server::oom::apply_logged(&ctx.srv.config) {
                            return Frame::error("ERR CONFIG SET failed (possibly related to argument 'oom-score-adj') - Failed to set current oom_score_adj. Check server logs.");
                        }
                    }
                    "use-exit-on-panic" => crate::server::log::set_exit_on_panic(ctx.srv.config.get_bool("use-exit-on-panic")),
                    "loglevel" => crate::server::log::set_level(crate::server::log::Level::parse(ctx.srv.config.get("loglevel"))),
                    "maxmemory" => {
                        crate::server::evict::perform_evictions(ctx.srv, Some(ctx.client));
                    }
                    "requirepass" => {
                        let pass = ctx.srv.config.get("requirepass").to_string();
                        let acl = &mut ctx.srv.acl;
                        if let Some(u) = acl.users.get_mut("default") {
                            crate::server::acl::set_default_password(u, &acl.catalog, acl.opts, &pass);
                        }
                    }
                    _ => {}
                }
            }
            Frame::ok()
        }
        Err(e) => Frame::error(e),
    }
}

fn config_resetstat(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    ctx.srv.stats = Default::default();
    crate::server::lazyfree::reset_stats();
    // Redis's resetServerStats clears the sync counters too (sync_full, sync_partial_*).
    ctx.srv.repl.repl.reset_stats();
    for s in &ctx.srv.commands.all {
        s.stats.reset();
        for sub in &s.subcommands {
            sub.stats.reset();
        }
    }
    ctx.srv.slowlog.clear();
    Frame::ok()
}

fn config_rewrite(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let users = ctx.srv.acl.file.is_empty().then(|| ctx.srv.acl.lines().iter().map(|l| crate::common::conf_rewrite::user_config_line(l)).collect::<Vec<_>>());
    match ctx.srv.config.rewrite(users.as_deref()) {
        Ok(()) => {
            crate::server::log::notice("CONFIG REWRITE executed with success.");
            Frame::ok()
        }
        Err(e) => Frame::error(e),
    }
}

pub fn help_lines(lines: &[&str]) -> Frame {
    Frame::Array(lines.iter().map(|l| Frame::Simple(l.to_string())).collect())
}

fn config_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_lines(&[
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "REWRITE",
        "    Rewrite the configuration file.",
        "HELP",
        "    Prints this help.",
    ])
}

// ---------- COMMAND ----------

fn command_list_all(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let table = ctx.srv.commands.clone();
    Frame::Array(table.all.iter().map(|s| s.info_frame()).collect())
}

fn command_count(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Integer(ctx.srv.commands.len() as i64)
}

fn find_spec(ctx: &Ctx, name: &[u8]) -> Option<std::sync::Arc<crate::server::command::CommandSpec>> {
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    if let Some((parent, _)) = lower.split_once('|') {
        let p = ctx.srv.commands.original(parent.as_bytes())?;
        return p.subcommands.iter().find(|s| s.name == lower).cloned();
    }
    ctx.srv.commands.original(name).cloned()
}

fn command_info(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() == 2 {
        return command_list_all(ctx, args);
    }
    Frame::Array(args[2..].iter().map(|n| find_spec(ctx, n).map(|s| s.info_frame()).unwrap_or(Frame::Null)).collect())
}

fn command_docs(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let table = ctx.srv.commands.clone();
    let specs: Vec<_> = if args.len() == 2 { table.all.clone() } else { args[2..].iter().filter_map(|n| find_spec(ctx, n)).collect() };
    Frame::Map(specs.iter().map(|s| (Frame::bulk(s.name.clone()), s.docs_frame())).collect())
}

fn command_list(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let table = ctx.srv.commands.clone();
    let mut filter: Option<(String, String)> = None;
    if args.len() == 5 && args[2].eq_ignore_ascii_case(b"FILTERBY") {
        filter = Some((String::from_utf8_lossy(&args[3]).to_ascii_lowercase(), String::from_utf8_lossy(&args[4]).into_owned()));
    } else if args.len() != 2 {
        return syntax_error();
    }
    let mut names = Vec::new();
    for s in &table.all {
        let mut all = vec![s.clone()];
        all.extend(s.subcommands.iter().cloned());
        for c in all {
            let keep = match &filter {
                None => true,
                Some((k, v)) if k == "aclcat" => c.acl.iter().any(|a| a.eq_ignore_ascii_case(v.trim_start_matches('@'))),
                Some((k, v)) if k == "pattern" => string_match(v.as_bytes(), c.name.as_bytes(), true),
                Some((k, _)) if k == "module" => false,
                Some(_) => return syntax_error(),
            };
            if keep {
                names.push(Frame::bulk(c.name.clone()));
            }
        }
    }
    Frame::Array(names)
}

fn getkeys_indices(ctx: &mut Ctx, args: &[Bytes]) -> Result<(Vec<usize>, std::sync::Arc<crate::server::command::CommandSpec>), Frame> {
    let cmd_args = &args[2..];
    let Some(top) = ctx.srv.commands.original(&cmd_args[0]).cloned() else {
        return Err(Frame::error("ERR Invalid command specified"));
    };
    let spec = crate::server::dispatch::resolve(&top, cmd_args).map_err(|_| Frame::error("ERR Invalid command specified"))?.clone();
    if !spec.check_arity(cmd_args.len()) {
        return Err(Frame::error("ERR Invalid number of arguments specified for command"));
    }
    // Channel "keys" of the sharded pub/sub commands are not keys (flag not_key).
    let keys = if spec.key_flags.contains(&"not_key") { Vec::new() } else { spec.key_indices(cmd_args) };
    // EVAL & co. (no_mandatory_keys) may name no key at all.
    if keys.is_empty() && !spec.has(crate::server::command::flags::NO_MANDATORY_KEYS) {
        return Err(Frame::error("ERR The command has no key arguments"));
    }
    Ok((keys, spec))
}

fn command_getkeys(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match getkeys_indices(ctx, args) {
        Ok((keys, _)) => Frame::Array(keys.iter().map(|&i| Frame::Bulk(args[2 + i].clone())).collect()),
        Err(e) => e,
    }
}

fn command_getkeysandflags(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match getkeys_indices(ctx, args) {
        Ok((keys, spec)) => {
            let default: Vec<&str> = if !spec.key_flags.is_empty() {
                spec.key_flags.clone()
            } else if spec.has(crate::server::command::flags::WRITE) {
                vec!["RW", "update"]
            } else {
                vec!["RO", "access"]
            };
            let cmd_args = &args[2..];
            Frame::Array(
                keys.iter()
                    .map(|&i| {
                        let flags = key_arg_flags(spec.full_name(), cmd_args, i).unwrap_or_else(|| default.clone());
                        Frame::Array(vec![Frame::Bulk(args[2 + i].clone()), Frame::Set(flags.iter().map(|f| Frame::Simple(f.to_string())).collect())])
                    })
                    .collect(),
            )
        }
        Err(e) => e,
    }
}

/// The flags of the key at `args[i]` as Redis's COMMAND GETKEYSANDFLAGS gives them: those of
/// the key spec the argument belongs to (the spec whose first key is the closest before it:
/// its begin_search index, or the argument after its keyword), and for SET and BITFIELD
/// (variable_flags) those their getkeys procs compute from the arguments.
fn key_arg_flags(name: &str, args: &[Bytes], i: usize) -> Option<Vec<&'static str>> {
    use super::docs::Node;
    match name {
        "set" => {
            let get = args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get"));
            return Some(if get { vec!["RW", "access", "update"] } else { vec!["OW", "update"] });
        }
        "bitfield" => {
            let mut readonly = true;
            let mut j = 2;
            while j < args.len() {
                let rem = args.len() - j - 1;
                let a = args[j].to_ascii_lowercase();
                if a == b"get" && rem >= 2 {
                    j += 3;
                } else if a == b"overflow" && rem >= 1 {
                    j += 2;
                } else {
                    readonly = false;
                    break;
                }
            }
            return Some(if readonly { vec!["RO", "access"] } else { vec!["RW", "access", "update"] });
        }
        // sortGetKeys / georadiusGetKeys: the sorted (searched) key, then the STORE one.
        "sort" | "georadius" | "georadiusbymember" => return Some(if i == 1 { vec!["RO", "access"] } else { vec!["OW", "update"] }),
        _ => {}
    }
    let info = super::docs::find_info(name)?;
    let Node::Set(specs) = &info.key_specs else { return None };
    let field = |m: &'static [(&'static str, Node)], k: &str| m.iter().find(|(n, _)| *n == k).map(|(_, v)| v);
    let mut best: Option<(usize, Vec<&'static str>)> = None;
    for spec in specs.iter() {
        let Node::Map(m) = spec else { continue };
        let flags: Vec<&'static str> = match field(m, "flags") {
            Some(Node::Set(fs)) => fs.iter().filter_map(|f| if let Node::Simple(s) = f { Some(*s) } else { None }).collect(),
            _ => continue,
        };
        let Some(Node::Map(bs)) = field(m, "begin_search") else { continue };
        let Some(Node::Map(bspec)) = field(bs, "spec") else { continue };
        let begin = match (field(bs, "type"), field(bspec, "index"), field(bspec, "keyword")) {
            (Some(Node::Bulk("index")), Some(Node::Int(n)), _) if *n > 0 => Some(*n as usize),
            (Some(Node::Bulk("keyword")), _, Some(Node::Bulk(kw))) => (1..i).rev().find(|&j| args[j].eq_ignore_ascii_case(kw.as_bytes())).map(|j| j + 1),
            _ => None,
        };
        if let Some(b) = begin.filter(|&b| b <= i) {
            if best.as_ref().map_or(true, |(pb, _)| b > *pb) {
                best = Some((b, flags));
            }
        }
    }
    best.map(|(_, f)| f)
}

fn command_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_lines(COMMAND_HELP)
}

/// COMMAND HELP, the server's and the sentinel's.
pub const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

// ---------- misc ----------

fn time(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let us = crate::server::now_us();
    let _ = ctx;
    Frame::Array(vec![Frame::Bulk(Bytes::from((us / 1_000_000).to_string())), Frame::Bulk(Bytes::from((us % 1_000_000).to_string()))])
}

fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Integer(ctx.srv.lastsave)
}

fn monitor(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    if ctx.client.multi.is_some() {
        return Frame::error("ERR MONITOR isn't allowed for DENY BLOCKING client");
    }
    if !ctx.client.is_monitor {
        ctx.client.is_monitor = true;
        ctx.srv.monitors.push(ctx.client.id);
    }
    Frame::ok()
}

fn slowlog_get(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let count = match args.get(2) {
        None => 10,
        Some(a) => match parse_int(a) {
            Ok(n) if n >= -1 => {
                if n == -1 {
                    usize::MAX
                } else {
                    n as usize
                }
            }
            _ => return Frame::error("ERR count should be greater than or equal to -1"),
        },
    };
    Frame::Array(
        ctx.srv
            .slowlog
            .iter()
            .take(count)
            .map(|e| {
                Frame::Array(vec![
                    Frame::Integer(e.id as i64),
                    Frame::Integer(e.time),
                    Frame::Integer(e.micros as i64),
                    Frame::Array(e.args.iter().map(|a| Frame::Bulk(a.clone())).collect()),
                    Frame::bulk(e.addr.clone()),
                    Frame::bulk(e.name.clone()),
                ])
            })
            .collect(),
    )
}

fn slowlog_len(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Integer(ctx.srv.slowlog.len() as i64)
}

fn slowlog_reset(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    ctx.srv.slowlog.clear();
    Frame::ok()
}

fn slowlog_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_lines(&[
        "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET [<count>]",
        "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
        "    Entries are made of:",
        "    id, timestamp, time in microseconds, arguments array, client IP and port,",
        "    client name",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
        "HELP",
        "    Prints this help.",
    ])
}

fn memory_usage(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 3 && !(args.len() == 5 && args[3].eq_ignore_ascii_case(b"SAMPLES") && parse_int(&args[4]).is_ok()) {
        return syntax_error();
    }
    let Some(pos) = ctx.db().find(&args[2]) else {
        return Frame::Null;
    };
    let slot = ctx.db().slot(pos);
    let size = std::mem::size_of::<crate::server::keyspace::Slot>() + 5 + slot.key.heap_size() + slot.value.heap_size();
    Frame::Integer(size as i64)
}

fn memory_doctor(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Verbatim("txt".into(), Bytes::from_static(b"Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base."))
}

fn memory_stats(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let used = ctx.srv.used_memory() as i64;
    let keys: usize = ctx.srv.dbs.iter().map(|d| d.len()).sum();
    Frame::Map(vec![
        (Frame::bulk("peak.allocated"), Frame::Integer(ctx.srv.stat_peak_memory.max(used as usize) as i64)),
        (Frame::bulk("total.allocated"), Frame::Integer(used)),
        (Frame::bulk("startup.allocated"), Frame::Integer(1024 * 1024)),
        (Frame::bulk("keys.count"), Frame::Integer(keys as i64)),
        (Frame::bulk("keys.bytes-per-key"), Frame::Integer(if keys > 0 { used / keys as i64 } else { 0 })),
        (Frame::bulk("dataset.bytes"), Frame::Integer(ctx.srv.dbs.iter().map(|d| d.memory() as i64).sum())),
    ])
}

fn memory_purge(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::ok()
}

fn memory_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    help_lines(&[
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return memory problems reports.",
        "MALLOC-STATS",
        "    Return internal statistics report from the memory allocator.",
        "PURGE",
        "    Attempt to purge dirty pages for reclamation by the allocator.",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Prints this help.",
    ])
}

// ---------- DEBUG ----------

fn debug(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match sub.as_str() {
        "segfault" => {
            crate::server::log::warning("DEBUG SEGFAULT: crashing the server as requested");
            crate::server::log::crash_report(11, ctx.srv.config.get_bool("crash-log-enabled"));
            std::process::abort();
        }
        "panic" => {
            crate::server::log::warning("DEBUG PANIC: crashing the server as requested");
            crate::server::log::crash_report(6, ctx.srv.config.get_bool("crash-log-enabled"));
            std::process::abort();
        }
        "sleep" if args.len() == 3 => {
            let secs = crate::server::command::parse_float(&args[2]).unwrap_or(0.0).max(0.0);
            std::thread::sleep(std::time::Duration::from_micros((secs * 1e6) as u64));
            Frame::ok()
        }
        "replicate" if args.len() >= 3 => {
            ctx.srv.repl.repl.propagate_in_stream_db(&args[2..]);
            Frame::ok()
        }
        "set-skip-checksum-validation" if args.len() == 3 => {
            // Redis's atoi: anything but a non-zero number is 0
            crate::server::persistence::dump::set_skip_checksum_validation(parse_int(&args[2]).unwrap_or(0) != 0);
            Frame::ok()
        }
        "aof-flush-sleep" if args.len() == 3 => {
            // Redis's atoi: a non-number is 0, a negative value sleeps for nothing
            let us = parse_int(&args[2]).unwrap_or(0).max(0) as u64;
            crate::server::persistence::aof_writer::set_flush_sleep_us(us);
            Frame::ok()
        }
        "set-active-expire" if args.len() == 3 => {
            ctx.srv.active_expire_enabled = parse_int(&args[2]).unwrap_or(1) != 0;
            Frame::ok()
        }
        "set-disable-deny-scripts" if args.len() == 3 => {
            ctx.srv.scripting.disable_deny_scripts = parse_int(&args[2]).unwrap_or(0) != 0;
            Frame::ok()
        }
        "pause-cron" if args.len() == 3 => {
            // atoi: anything that does not start with a non-zero number is 0
            ctx.srv.pause_cron = atoi(&args[2]) != 0;
            Frame::ok()
        }
        "object" if args.len() == 3 => {
            let Some(pos) = ctx.db().find(&args[2]) else {
                return Frame::error("ERR no such key");
            };
            let clock = ctx.srv.lru_clock;
            let slot = ctx.db().slot(pos);
            let idle = crate::server::evict::idle_secs(slot.lru, clock);
            let serlen = match &slot.value {
                Value::Str(s) => s.len(),
                v => v.heap_size(),
            };
            Frame::Simple(format!("Value at:0x0 refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}", slot.value.encoding(), serlen, slot.lru, idle))
        }
        "htstats-key" if args.len() == 3 => {
            let Some(pos) = ctx.db().find(&args[2]) else {
                return Frame::error("ERR no such key");
            };
            let stats = match &ctx.db().slot(pos).value {
                Value::Set(s) => s.table_stats(),
                Value::Hash(h) => h.table_stats(),
                Value::ZSet(z) => z.table_stats(),
                _ => None,
            };
            match stats {
                Some((size, used)) => Frame::Verbatim("txt".into(), ht_stats_text(size, used).into()),
                None => Frame::error("ERR The value stored at the specified key is not represented using an hash table"),
            }
        }
        "digest" if args.len() == 2 => Frame::Simple(hex::encode(dataset_digest(ctx))),
        "digest-value" => {
            let mut out = Vec::new();
            for key in &args[2..] {
                let d = key_value_digest(ctx, key);
                out.push(Frame::Simple(hex::encode(d)));
            }
            Frame::Array(out)
        }
        "reload" => match crate::server::persistence::debug_reload(ctx.srv, &args[2..]) {
            Ok(()) => Frame::ok(),
            Err(e) => Frame::error(e),
        },
        "populate" if (3..=5).contains(&args.len()) => debug_populate(ctx, args),
        "loadaof" => match crate::server::persistence::debug_loadaof(ctx.srv) {
            Ok(()) => Frame::ok(),
            Err(e) => Frame::error(e),
        },
        "change-repl-id" if args.len() == 2 => {
            crate::server::log::warning("Changing replication IDs after receiving DEBUG change-repl-id");
            ctx.srv.repl.repl.change_replication_id();
            Frame::ok()
        }
        "protocol" if args.len() == 3 => debug_protocol(ctx, &args[2]),
        "quicklist-packed-threshold" if args.len() == 3 => {
            // Our lists keep no packed/plain node distinction, so there is nothing to set;
            // the argument is still checked as Redis checks it.
            match crate::server::config::parse_memory(&String::from_utf8_lossy(&args[2])) {
                Some(n) if (0..=(1i64 << 32) - (1 << 20)).contains(&n) => Frame::ok(),
                _ => Frame::error("ERR argument must be a memory value bigger than 1 and smaller than 4gb"),
            }
        }
        "jmap" | "log" if args.len() >= 3 => {
            crate::server::log::warning(&format!("DEBUG LOG: {}", String::from_utf8_lossy(&args[2])));
            Frame::ok()
        }
        "help" => help_lines(&[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "LOG <message>",
            "    Write <message> to the server log.",
            "OBJECT <key>",
            "    Show low level info about the key and associated value.",
            "RELOAD",
            "    Save the RDB on disk and reload it back to memory.",
            "SEGFAULT",
            "    Crash the server with sigsegv.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not",
            "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
            "    default.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
        ]),
        // Redis's addReplySubcommandSyntaxError: the subcommand as given, at most 128 chars.
        _ => {
            let shown: String = String::from_utf8_lossy(&args[1]).chars().take(128).collect();
            Frame::error(format!("ERR unknown subcommand or wrong number of arguments for '{shown}'. Try DEBUG HELP."))
        }
    }
}

/// C's atoi: optional blanks and sign, then the leading digits (0 when there are none).
fn atoi(b: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(b);
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).take(18).collect();
    let n: i64 = digits.parse().unwrap_or(0);
    if neg { -n } else { n }
}

/// DEBUG HTSTATS-KEY's text in the shape of Redis's `dictGetStats`, with our table's own
/// figures: the index is open-addressed (one element per slot, no chains) and grows in one
/// step, so every element has its own slot, the longest "chain" is 1 and there is never a
/// "rehashing target" section.
fn ht_stats_text(size: usize, used: usize) -> String {
    if used == 0 {
        return "Hash table 0 stats (main hash table):\nNo stats available for empty dictionaries\n".to_string();
    }
    let size = size.max(used);
    let pct = |n: usize| n as f64 / size as f64 * 100.0;
    let mut s = format!(
        "Hash table 0 stats (main hash table):\n table size: {size}\n number of elements: {used}\n different slots: {used}\n max chain length: 1\n avg chain length (counted): 1.00\n avg chain length (computed): 1.00\n Chain length distribution:\n"
    );
    if size > used {
        s.push_str(&format!("   0: {} ({:.02}%)\n", size - used, pct(size - used)));
    }
    s.push_str(&format!("   1: {used} ({:.02}%)\n", pct(used)));
    s
}

/// DEBUG POPULATE count [prefix] [size]: `prefix:N` keys (default `key`) holding `value:N`,
/// zero-padded or cut to `size` bytes; keys that exist are left alone. Not propagated, as in
/// Redis (the dataset reaches replicas by a full sync).
fn debug_populate(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    // getPositiveLongFromObjectOrReply: one message for a non-number and a negative one
    let positive = |b: &[u8]| -> Result<u64, Frame> {
        match parse_int(b) {
            Ok(n) if n >= 0 => Ok(n as u64),
            _ => Err(Frame::error("ERR value is out of range, must be positive")),
        }
    };
    let count = match positive(&args[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let size = match args.get(4).map(|a| positive(a)) {
        None => 0,
        Some(Ok(n)) => n as usize,
        Some(Err(e)) => return e,
    };
    let prefix: &[u8] = args.get(3).map(|a| &a[..]).unwrap_or(b"key");
    let db = ctx.db_index();
    for j in 0..count {
        let mut key = prefix.to_vec();
        key.extend_from_slice(format!(":{j}").as_bytes());
        if ctx.lookup_write(&key).is_some() {
            continue;
        }
        let mut value = format!("value:{j}").into_bytes();
        if size != 0 {
            value.resize(size, 0);
        }
        ctx.add_value(&key, Value::string(&value));
        ctx.signal_modified(db, &key);
    }
    Frame::ok()
}

/// DEBUG PROTOCOL <type>: one reply of each RESP type, for client tests. An attribute or
/// a push goes out first (through the client's own-message queue), then a normal reply.
fn debug_protocol(ctx: &mut Ctx, kind: &[u8]) -> Frame {
    let resp3 = ctx.client.proto == ProtocolVersion::Resp3;
    match kind.to_ascii_lowercase().as_slice() {
        b"string" => Frame::bulk("Hello World"),
        b"integer" => Frame::Integer(12345),
        b"double" => Frame::Double(3.141),
        b"bignum" => Frame::BigNumber("1234567999999999999999999999999999999".into()),
        b"null" => Frame::Null,
        b"array" => Frame::Array((0..3).map(Frame::Integer).collect()),
        b"set" => Frame::Set((0..3).map(Frame::Integer).collect()),
        b"map" => Frame::Map((0..3).map(|j| (Frame::Integer(j), Frame::Boolean(j == 1))).collect()),
        b"attrib" => {
            if resp3 {
                let popularity = Frame::Array(vec![Frame::bulk("key:123"), Frame::Integer(90)]);
                ctx.client.deferred.push(Frame::Attribute(vec![(Frame::bulk("key-popularity"), popularity)]));
            }
            Frame::bulk("Some real reply following the attribute")
        }
        b"push" if !resp3 => Frame::error("ERR RESP2 is not supported by this command"),
        b"push" => {
            ctx.client.deferred.push(Frame::Push(vec![Frame::bulk("server-cpu-usage"), Frame::Integer(42)]));
            Frame::bulk("Some real reply following the push reply")
        }
        b"true" => Frame::Boolean(true),
        b"false" => Frame::Boolean(false),
        b"verbatim" => Frame::Verbatim("txt".into(), Bytes::from_static(b"This is a verbatim\nstring")),
        _ => Frame::error(
            "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ),
    }
}

/// Redis's `xorDigest`: XOR of SHA1(data) into the digest.
fn xor_digest(digest: &mut [u8; 20], data: &[u8]) {
    use sha1::{Digest, Sha1};
    let h = Sha1::digest(data);
    for (d, b) in digest.iter_mut().zip(h.iter()) {
        *d ^= b;
    }
}

/// Redis's `mixDigest`: digest = SHA1(digest XOR SHA1(data)).
fn mix_digest(digest: &mut [u8; 20], data: &[u8]) {
    use sha1::{Digest, Sha1};
    xor_digest(digest, data);
    let h = Sha1::digest(&digest[..]);
    digest.copy_from_slice(&h);
}

/// Redis's `xorObjectDigest`: the type (big-endian u32), the value's elements, and a
/// marker when the key has a TTL — so digests match between Redis and rf-server.
fn object_digest(value: &Value, has_expiry: bool, digest: &mut [u8; 20]) {
    let type_id: u32 = match value {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    };
    mix_digest(digest, &type_id.to_be_bytes());
    match value {
        Value::Str(s) => mix_digest(digest, s.as_slice()),
        Value::List(l) => {
            for item in l.iter() {
                mix_digest(digest, item);
            }
        }
        Value::Set(s) => {
            for item in s.iter() {
                xor_digest(digest, &item);
            }
        }
        Value::Hash(h) => {
            for (k, v) in h.iter() {
                let mut eledigest = [0u8; 20];
                mix_digest(&mut eledigest, k);
                mix_digest(&mut eledigest, v);
                xor_digest(digest, &eledigest);
            }
        }
        Value::ZSet(z) => {
            for ze in z.iter() {
                let (member, score) = (ze.member, &ze.score);
                let mut eledigest = [0u8; 20];
                mix_digest(&mut eledigest, member);
                mix_digest(&mut eledigest, crate::resp::format_double(*score).as_bytes());
                xor_digest(digest, &eledigest);
            }
        }
        Value::Stream(s) => {
            for e in s.range(StreamId::MIN, StreamId::MAX, false, 0) {
                mix_digest(digest, format!("{}.{}", e.id.ms, e.id.seq).as_bytes());
                for x in &e.fields {
                    mix_digest(digest, x);
                }
            }
        }
    }
    if has_expiry {
        xor_digest(digest, b"!!expire!!");
    }
}

/// DEBUG DIGEST-VALUE for one key (zeros when missing).
fn key_value_digest(ctx: &mut Ctx, key: &[u8]) -> [u8; 20] {
    let mut digest = [0u8; 20];
    if let Some(pos) = ctx.db().find(key) {
        let has_expiry = ctx.db().expiry_of(pos).is_some();
        object_digest(&ctx.db().slot(pos).value, has_expiry, &mut digest);
    }
    digest
}

/// DEBUG DIGEST: Redis's `computeDatasetDigest` (all zeros for an empty dataset).
fn dataset_digest(ctx: &mut Ctx) -> [u8; 20] {
    let mut final_digest = [0u8; 20];
    for (dbi, db) in ctx.srv.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        mix_digest(&mut final_digest, &(dbi as u32).to_be_bytes());
        for pos in 0..db.len() {
            let slot = db.slot(pos);
            let mut digest = [0u8; 20];
            mix_digest(&mut digest, slot.key.as_slice());
            object_digest(&slot.value, db.expiry_of(pos).is_some(), &mut digest);
            xor_digest(&mut final_digest, &digest);
        }
    }
    final_digest
}

// ---------- ACL / SHUTDOWN ----------






fn shutdown(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let mut save = None;
    let mut force = false;
    let mut abort = false;
    for a in &args[1..] {
        match a.to_ascii_uppercase().as_slice() {
            b"NOSAVE" => save = Some(false),
            b"SAVE" => save = Some(true),
            b"NOW" => {}
            b"FORCE" => force = true,
            b"ABORT" => abort = true,
            _ => return syntax_error(),
        }
    }
    // Contradictory flags are a syntax error, as in Redis (never "the last one wins").
    let said = |w: &[u8]| args[1..].iter().any(|a| a.eq_ignore_ascii_case(w));
    if said(b"NOSAVE") && said(b"SAVE") {
        return syntax_error();
    }
    if abort {
        if args.len() > 2 {
            return syntax_error();
        }
        return Frame::error("ERR No shutdown in progress.");
    }
    let req = ShutdownRequest { save, force };
    match crate::server::finish_shutdown(ctx.srv, req) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            crate::server::log::warning(&format!("Errors trying to SHUTDOWN: {e}"));
            Frame::error("ERR Errors trying to SHUTDOWN. Check logs.")
        }
    }
}

#[allow(dead_code)]
fn proto_number(p: ProtocolVersion) -> i64 {
    if p == ProtocolVersion::Resp3 {
        3
    } else {
        2
    }
}
