//! LATENCY: the latency monitor (events sampled when a command or an internal step is
//! slower than `latency-monitor-threshold`, with DOCTOR / GRAPH / HISTORY / LATEST / RESET)
//! and the per-command latency histograms (`latency-tracking`: LATENCY HISTOGRAM and the
//! INFO `latencystats` section).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, CommandSpec, Ctx};
use crate::server::commands::keys::container_help;
use crate::server::state::ServerState;

pub fn commands() -> Vec<CommandSpec> {
    const FLAGS: &str = "admin noscript loading stale";
    const ACL: &str = "admin slow dangerous";
    const TIPS: &[&str] = &["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"];
    vec![cmd("latency", -2, "", 0, 0, 0, "slow", container_help)
        .group("server")
        .since("2.8.13")
        .summary("A container for latency diagnostics commands")
        
        .subs(vec![
            cmd("doctor", 2, FLAGS, 0, 0, 0, ACL, latency_doctor)
                .since("2.8.13")
                .summary("Return a human readable latency analysis report.")
                
                .tips(&["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"]),
            cmd("graph", 3, FLAGS, 0, 0, 0, ACL, latency_graph)
                .since("2.8.13")
                .summary("Return a latency graph for the event.")
                
                .tips(TIPS),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow", latency_help)
                .since("2.8.13")
                .summary("Show helpful text about the different subcommands.")
                ,
            cmd("histogram", -2, FLAGS, 0, 0, 0, ACL, latency_histogram)
                .since("7.0.0")
                .summary("Return the cumulative distribution of latencies of a subset of commands or all.")
                
                .tips(TIPS),
            cmd("history", 3, FLAGS, 0, 0, 0, ACL, latency_history)
                .since("2.8.13")
                .summary("Return timestamp-latency samples for the event.")
                
                .tips(TIPS),
            cmd("latest", 2, FLAGS, 0, 0, 0, ACL, latency_latest)
                .since("2.8.13")
                .summary("Return the latest latency samples for all events.")
                
                .tips(TIPS),
            cmd("reset", -2, FLAGS, 0, 0, 0, ACL, latency_reset)
                .since("2.8.13")
                .summary("Reset latency data for one or more events.")
                
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
        ])]
}

// ------------------------------------------------------------------ histograms

/// Redis records command durations (µs × 1000, i.e. ns) clamped to [1 ns, 1 s].
const HIST_MIN_NS: u64 = 1;
const HIST_MAX_NS: u64 = 1_000_000_000;
/// An HdrHistogram with 2 significant digits (as Redis configures it): 256 sub-buckets per
/// power of two, of which the upper half (128) is new in each bucket.
const SUB_BUCKET_HALF_MAG: u32 = 7;
const SUB_BUCKET_HALF: u64 = 1 << SUB_BUCKET_HALF_MAG;
const SUB_BUCKET_COUNT_MAG: u32 = SUB_BUCKET_HALF_MAG + 1;
/// Buckets needed to reach HIST_MAX_NS: 256 << 22 > 1e9.
const BUCKETS: usize = 23;
const COUNTS_LEN: usize = (BUCKETS + 1) * SUB_BUCKET_HALF as usize;

/// One command's latency distribution. Allocated on the first recorded call (most commands
/// are never called) and updated with relaxed atomics, like the other command counters.
#[derive(Default, Debug)]
pub struct LatencyHistogram {
    /// One counter per HDR bucket; the total is their sum (computed only when read, so a
    /// call costs one relaxed increment).
    counts: OnceLock<Box<[AtomicU64]>>,
}

fn bucket_index(v: u64) -> u32 {
    // Position of the highest bit of v (at least the sub-bucket range), minus the range.
    let pow2ceiling = 64 - (v | (SUB_BUCKET_HALF * 2 - 1)).leading_zeros();
    pow2ceiling - SUB_BUCKET_COUNT_MAG
}

fn counts_index(v: u64) -> usize {
    let bucket = bucket_index(v);
    let sub = v >> bucket;
    // In bucket 0 the sub-bucket may be below the half count (values under 128 are exact).
    (((bucket as u64 + 1) << SUB_BUCKET_HALF_MAG) + sub - SUB_BUCKET_HALF) as usize
}

/// (lowest value, size of the range) that counts index `i` stands for.
fn index_range(i: usize) -> (u64, u64) {
    let mut bucket = (i as i64 >> SUB_BUCKET_HALF_MAG) - 1;
    let mut sub = (i as u64 & (SUB_BUCKET_HALF - 1)) + SUB_BUCKET_HALF;
    if bucket < 0 {
        sub -= SUB_BUCKET_HALF;
        bucket = 0;
    }
    (sub << bucket, 1u64 << bucket)
}

fn highest_equivalent(i: usize) -> u64 {
    let (low, size) = index_range(i);
    low + size - 1
}

impl LatencyHistogram {
    pub fn record_micros(&self, micros: u64) {
        let ns = micros.saturating_mul(1000).clamp(HIST_MIN_NS, HIST_MAX_NS);
        let counts = self.counts.get_or_init(|| (0..COUNTS_LEN).map(|_| AtomicU64::new(0)).collect());
        counts[counts_index(ns)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        if let Some(counts) = self.counts.get() {
            for c in counts.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.get().map_or(0, |c| c.iter().map(|a| a.load(Ordering::Relaxed)).sum())
    }

    fn snapshot(&self) -> Vec<u64> {
        match self.counts.get() {
            Some(c) => c.iter().map(|a| a.load(Ordering::Relaxed)).collect(),
            None => Vec::new(),
        }
    }

    /// `hdr_value_at_percentile`, in ns: the highest value equivalent to the one at `p`.
    pub fn value_at_percentile(&self, p: f64) -> u64 {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        let wanted = (((p.min(100.0) / 100.0) * total as f64) + 0.5) as u64;
        let wanted = wanted.max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= wanted {
                return if p == 0.0 { index_range(i).0 } else { highest_equivalent(i) };
            }
        }
        0
    }

    /// LATENCY HISTOGRAM's buckets: (µs, cumulative calls) at 1, 2, 4... µs (the reporting
    /// levels of a logarithmic iteration from 1024 ns, base 2), only where the count grows.
    pub fn cumulative_buckets(&self) -> Vec<(u64, u64)> {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        let mut out = Vec::new();
        let mut level: u64 = 1024;
        let mut cumulative = 0u64;
        let mut next_index = 0usize;
        let mut previous = 0u64;
        while cumulative < total {
            let upto = counts_index(level.min(u64::MAX / 4));
            while next_index <= upto && next_index < counts.len() {
                cumulative += counts[next_index];
                next_index += 1;
            }
            if cumulative > previous {
                out.push((highest_equivalent(upto) / 1000, cumulative));
            }
            previous = cumulative;
            if level > HIST_MAX_NS * 2 {
                break;
            }
            level *= 2;
        }
        out
    }
}

/// `trimDoubleString("%f")`: 50 -> "50", 99.9 -> "99.9".
pub fn percentile_name(p: f64) -> String {
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Parses `latency-tracking-info-percentiles` ("50 99 99.9"), with Redis's errors.
pub fn parse_percentiles(text: &str) -> Result<Vec<f64>, String> {
    text.split_whitespace()
        .map(|w| match crate::server::command::parse_float(w.as_bytes()) {
            Some(v) if (0.0..=100.0).contains(&v) => Ok(v),
            Some(_) => Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".to_string()),
            None => Err("Invalid latency-tracking-info-percentiles parameters".to_string()),
        })
        .collect()
}

/// INFO `latencystats`: one `latency_percentiles_usec_<cmd>` line per called command.
pub fn info_latencystats(srv: &ServerState) -> String {
    let percentiles = parse_percentiles(srv.config.get("latency-tracking-info-percentiles")).unwrap_or_default();
    let mut specs = Vec::new();
    for s in &srv.commands.all {
        specs.push(s.clone());
        specs.extend(s.subcommands.iter().cloned());
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for s in specs.iter().filter(|s| s.stats.latency.total() > 0) {
        let fields: Vec<String> = percentiles
            .iter()
            .map(|&p| format!("p{}={:.3}", percentile_name(p), s.stats.latency.value_at_percentile(p) as f64 / 1000.0))
            .collect();
        out.push_str(&format!("latency_percentiles_usec_{}:{}\r\n", s.name, fields.join(",")));
    }
    out
}

fn histogram_frame(h: &LatencyHistogram) -> Frame {
    Frame::Map(vec![
        (Frame::bulk("calls"), Frame::Integer(h.total() as i64)),
        (
            Frame::bulk("histogram_usec"),
            Frame::Map(h.cumulative_buckets().into_iter().map(|(us, n)| (Frame::Integer(us as i64), Frame::Integer(n as i64))).collect()),
        ),
    ])
}

fn latency_histogram(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let table = ctx.srv.commands.clone();
    let mut out = Vec::new();
    let mut add = |spec: &CommandSpec| {
        if spec.stats.latency.total() > 0 {
            out.push((Frame::bulk(spec.name.clone()), histogram_frame(&spec.stats.latency)));
        }
    };
    if args.len() == 2 {
        let mut specs: Vec<_> = table.all.iter().collect();
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        for s in specs {
            add(s);
            s.subcommands.iter().for_each(|sub| add(sub));
        }
    } else {
        // Each name as given (`config|get` too); unknown names are skipped, as in Redis.
        for name in &args[2..] {
            let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
            let spec = match lower.split_once('|') {
                Some((parent, _)) => table.original(parent.as_bytes()).and_then(|p| p.subcommands.iter().find(|s| s.name == lower)),
                None => table.original(name),
            };
            if let Some(spec) = spec {
                add(spec);
                spec.subcommands.iter().for_each(|sub| add(sub));
            }
        }
    }
    Frame::Map(out)
}

// ------------------------------------------------------------------ latency monitor

/// Samples kept per event (Redis's LATENCY_TS_LEN).
const SAMPLES: usize = 160;
const GRAPH_COLUMNS: usize = 80;

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Unix seconds; 0 = empty slot.
    time: i64,
    latency_ms: u64,
}

#[derive(Debug, Clone)]
struct TimeSeries {
    samples: Vec<Sample>,
    /// Next slot to write.
    idx: usize,
    max: u64,
}

impl TimeSeries {
    /// Samples oldest first.
    fn in_order(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..SAMPLES).map(move |j| self.samples[(self.idx + j) % SAMPLES]).filter(|s| s.time != 0)
    }
}

/// The latency monitor: events in creation order (Redis iterates a dict; any stable order
/// is as good).
#[derive(Debug, Clone, Default)]
pub struct LatencyMonitor {
    events: Vec<(String, TimeSeries)>,
}

impl LatencyMonitor {
    /// `latencyAddSample`: one sample per second per event, the worst of that second.
    pub fn add_sample(&mut self, event: &str, latency_ms: u64, now_secs: i64) {
        let pos = match self.events.iter().position(|(e, _)| e == event) {
            Some(p) => p,
            None => {
                self.events.push((event.to_string(), TimeSeries { samples: vec![Sample::default(); SAMPLES], idx: 0, max: 0 }));
                self.events.len() - 1
            }
        };
        let ts = &mut self.events[pos].1;
        ts.max = ts.max.max(latency_ms);
        let prev = (ts.idx + SAMPLES - 1) % SAMPLES;
        if ts.samples[prev].time == now_secs {
            ts.samples[prev].latency_ms = ts.samples[prev].latency_ms.max(latency_ms);
            return;
        }
        ts.samples[ts.idx] = Sample { time: now_secs, latency_ms };
        ts.idx = (ts.idx + 1) % SAMPLES;
    }

    /// Resets one event (case-insensitive) or all (`None`); returns how many were reset.
    pub fn reset(&mut self, event: Option<&str>) -> usize {
        let before = self.events.len();
        match event {
            None => self.events.clear(),
            Some(e) => self.events.retain(|(name, _)| !name.eq_ignore_ascii_case(e)),
        }
        before - self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn get(&self, event: &[u8]) -> Option<&(String, TimeSeries)> {
        self.events.iter().find(|(e, _)| e.as_bytes() == event)
    }
}

/// Records a command's duration as a `command` / `fast-command` event when it reaches the
/// threshold (`latencyAddSampleIfNeeded`).
pub fn sample_command(srv: &mut ServerState, fast: bool, micros: u64, now_ms: i64) {
    let threshold = srv.limits.latency_threshold;
    let ms = micros / 1000;
    if threshold > 0 && ms as i64 >= threshold {
        srv.latency.add_sample(if fast { "fast-command" } else { "command" }, ms, now_ms.div_euclid(1000));
    }
}

/// `latencyAddSampleIfNeeded` for a named event (expire-cycle, expire-del, ...).
pub fn sample_event(srv: &mut ServerState, event: &str, elapsed: std::time::Duration, now_ms: i64) {
    let threshold = srv.limits.latency_threshold;
    let ms = elapsed.as_millis() as u64;
    if threshold > 0 && ms as i64 >= threshold {
        srv.latency.add_sample(event, ms, now_ms.div_euclid(1000));
    }
}

fn latency_latest(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Array(
        ctx.srv
            .latency
            .events
            .iter()
            .map(|(name, ts)| {
                let last = ts.samples[(ts.idx + SAMPLES - 1) % SAMPLES];
                Frame::Array(vec![Frame::bulk(name.clone()), Frame::Integer(last.time), Frame::Integer(last.latency_ms as i64), Frame::Integer(ts.max as i64)])
            })
            .collect(),
    )
}

fn latency_history(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match ctx.srv.latency.get(&args[2]) {
        Some((_, ts)) => Frame::Array(ts.in_order().map(|s| Frame::Array(vec![Frame::Integer(s.time), Frame::Integer(s.latency_ms as i64)])).collect()),
        None => Frame::Array(Vec::new()),
    }
}

fn latency_reset(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() == 2 {
        return Frame::Integer(ctx.srv.latency.reset(None) as i64);
    }
    let mut n = 0;
    for a in &args[2..] {
        n += ctx.srv.latency.reset(Some(&String::from_utf8_lossy(a)));
    }
    Frame::Integer(n as i64)
}

/// How long ago, as LATENCY GRAPH labels it: `12s`, `3m`, `5h`, `2d`.
fn elapsed_label(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Redis's sparkline (filled, linear scale): `rows` lines of `_o#|` characters for the
/// values, a blank line, then each label written vertically under its column.
fn render_sparkline(out: &mut String, values: &[(f64, String)], rows: usize) {
    const FILL: [char; 3] = ['_', 'o', '#'];
    let min = values.iter().map(|v| v.0).fold(f64::INFINITY, f64::min);
    let max = values.iter().map(|v| v.0).fold(f64::NEG_INFINITY, f64::max);
    let has_labels = values.iter().any(|v| !v.1.is_empty());
    for (chunk_no, chunk) in values.chunks(GRAPH_COLUMNS).enumerate() {
        if chunk_no > 0 {
            out.push('\n');
        }
        let relmax = if max - min == 0.0 { 1.0 } else { max - min };
        let steps = (FILL.len() * rows) as i64;
        let step_of = |v: f64| -> i64 {
            let step = (((v - min) * steps as f64) as i64 as f64 / relmax) as i64;
            step.clamp(0, steps - 1)
        };
        let mut row = 0usize;
        loop {
            let mut line = vec![' '; chunk.len()];
            let mut more = false;
            if row < rows {
                more = !chunk.is_empty();
                for (j, (v, _)) in chunk.iter().enumerate() {
                    let charidx = step_of(*v) - ((rows - row - 1) * FILL.len()) as i64;
                    if (0..FILL.len() as i64).contains(&charidx) {
                        line[j] = FILL[charidx as usize];
                    } else if charidx >= FILL.len() as i64 {
                        line[j] = '|';
                    }
                }
            } else if !has_labels {
                break;
            } else if row == rows {
                // One blank line between the graph and the labels.
                more = !chunk.is_empty();
            } else {
                let label_char = row - rows - 1;
                for (j, (_, label)) in chunk.iter().enumerate() {
                    if let Some(c) = label.chars().nth(label_char) {
                        line[j] = c;
                        more = true;
                    }
                }
            }
            if !more {
                break;
            }
            out.extend(line);
            out.push('\n');
            row += 1;
        }
    }
}

fn latency_graph(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some((name, ts)) = ctx.srv.latency.get(&args[2]) else {
        return Frame::error(format!("ERR No samples available for event '{}'", String::from_utf8_lossy(&args[2])));
    };
    let now_secs = ctx.now_ms.div_euclid(1000);
    let values: Vec<(f64, String)> = ts.in_order().map(|s| (s.latency_ms as f64, elapsed_label(now_secs - s.time))).collect();
    let high = ts.in_order().map(|s| s.latency_ms).max().unwrap_or(0);
    let low = ts.in_order().map(|s| s.latency_ms).min().unwrap_or(0);
    let mut graph = format!("{name} - high {high} ms, low {low} ms (all time high {} ms)\n", ts.max);
    graph.push_str(&"-".repeat(GRAPH_COLUMNS));
    graph.push('\n');
    render_sparkline(&mut graph, &values, 4);
    Frame::Verbatim("txt".into(), Bytes::from(graph))
}

/// Per-event figures of LATENCY DOCTOR (`analyzeLatencyForEvent`).
struct EventStats {
    samples: u64,
    avg: u64,
    mad: u64,
    period: i64,
}

fn analyze(ts: &TimeSeries, now_secs: i64) -> EventStats {
    let samples: Vec<Sample> = ts.in_order().collect();
    let n = samples.len() as u64;
    if n == 0 {
        return EventStats { samples: 0, avg: 0, mad: 0, period: 0 };
    }
    let avg = samples.iter().map(|s| s.latency_ms).sum::<u64>() / n;
    let oldest = samples.iter().map(|s| s.time).min().unwrap_or(now_secs);
    let period = (now_secs - oldest).max(0);
    let mad = samples.iter().map(|s| (avg as i64 - s.latency_ms as i64).unsigned_abs()).sum::<u64>() / n;
    EventStats { samples: n, avg, mad, period: if period == 0 { 1 } else { period } }
}

/// True if the process has transparent huge pages (AnonHugePages in smaps).
fn uses_huge_pages() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return false;
    };
    text.lines().filter_map(|l| l.strip_prefix("AnonHugePages:")).any(|v| v.split_whitespace().next().is_some_and(|n| n != "0"))
}

fn latency_doctor(ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::Verbatim("txt".into(), Bytes::from(doctor_report(ctx.srv, ctx.now_ms.div_euclid(1000))))
}

/// LATENCY DOCTOR's report: the events we can produce (`command`, `fast-command`) with
/// Redis's wording and advice.
fn doctor_report(srv: &ServerState, now_secs: i64) -> String {
    let threshold = srv.limits.latency_threshold;
    if srv.latency.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".to_string();
    }
    let mut report = String::new();
    let (mut slowlog_enabled, mut slowlog_tuning, mut slowlog_inspect, mut scheduler, mut large_objects) = (false, false, false, false, false);
    let mut advices = 0;
    for (n, (event, ts)) in srv.latency.events.iter().enumerate() {
        if n == 0 {
            report.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        }
        let st = analyze(ts, now_secs);
        report.push_str(&format!(
            "{}. {event}: {} latency spikes (average {}ms, mean deviation {}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            st.samples,
            st.avg,
            st.mad,
            st.period as f64 / st.samples.max(1) as f64,
            ts.max
        ));
        if event.eq_ignore_ascii_case("command") {
            let slower_than = srv.limits.slowlog_slower_than;
            if slower_than < 0 {
                slowlog_enabled = true;
                advices += 1;
            } else if slower_than / 1000 > threshold {
                slowlog_tuning = true;
                advices += 1;
            }
            slowlog_inspect = true;
            large_objects = true;
            advices += 2;
        }
        if event.eq_ignore_ascii_case("fast-command") {
            scheduler = true;
            advices += 1;
        }
        report.push('\n');
    }
    let huge_pages = uses_huge_pages();
    if huge_pages {
        advices += 1;
    }
    let events = srv.latency.events.len();
    if events == 0 && advices == 0 {
        report.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n");
    } else if events > 0 && advices == 0 {
        report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
    } else {
        report.push_str("\nI have a few advices for you:\n\n");
        let us = threshold.max(0) * 1000;
        if slowlog_enabled {
            report.push_str(&format!("- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {us}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n"));
        }
        if slowlog_tuning {
            report.push_str(&format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {us}'.\n"));
        }
        if slowlog_inspect {
            report.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
        }
        if scheduler {
            report.push_str(concat!(
                "- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n",
                "  1) Lower the system load.\n",
                "  2) Use a computer / VM just for Redis if you are running other software in the same system.\n",
                "  3) Check if you have a \"noisy neighbour\" problem.\n",
                "  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n",
                "  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n"
            ));
        }
        if large_objects {
            report.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
        }
        if huge_pages {
            report.push_str("- I detected a non zero amount of anonymous huge pages used by your process. This creates very serious latency events in different conditions, especially when Redis is persisting on disk. To disable THP support use the command 'echo never > /sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into /etc/rc.local so that the command will be executed again after a reboot. Note that even if you have already disabled THP, you still need to restart the Redis process to get rid of the huge pages already created.\n");
        }
    }
    report
}

fn latency_help(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    let lines = [
        "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return a human readable latency analysis report.",
        "GRAPH <event>",
        "    Return an ASCII latency graph for the <event> class.",
        "HISTORY <event>",
        "    Return time-latency samples for the <event> class.",
        "LATEST",
        "    Return the latest latency samples for all events.",
        "RESET [<event> ...]",
        "    Reset latency data of one or more <event> classes.",
        "    (default: reset all data for all event classes)",
        "HISTOGRAM [COMMAND ...]",
        "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
        "    If no commands are specified then all histograms are replied.",
        "HELP",
        "    Prints this help.",
    ];
    Frame::Array(lines.iter().map(|l| Frame::Simple(l.to_string())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_match_redis_keys() {
        // Redis 7.0.15 shows a 7 µs SET under key 8, a 64 µs call under 66, 128 µs under 132.
        let h = LatencyHistogram::default();
        h.record_micros(7);
        assert_eq!(h.cumulative_buckets(), vec![(8, 1)]);
        let h = LatencyHistogram::default();
        h.record_micros(60);
        h.record_micros(96);
        assert_eq!(h.cumulative_buckets(), vec![(66, 1), (132, 2)]);
        // Zero µs is recorded as 1 ns, the first bucket.
        let h = LatencyHistogram::default();
        h.record_micros(0);
        assert_eq!(h.cumulative_buckets(), vec![(1, 1)]);
        // The maximum (clamped to 1 s) stays reachable.
        let h = LatencyHistogram::default();
        h.record_micros(5_000_000);
        let b = h.cumulative_buckets();
        assert_eq!(b.last().map(|x| x.1), Some(1));
        assert!(b[0].0 >= 1_000_000, "{b:?}");
    }

    #[test]
    fn percentiles_use_two_significant_digits() {
        // Redis printed p50=7.007 for one 7 µs call and p50=96.255 for 96 µs.
        let h = LatencyHistogram::default();
        h.record_micros(7);
        assert_eq!(h.value_at_percentile(50.0), 7007);
        let h = LatencyHistogram::default();
        h.record_micros(96);
        assert_eq!(h.value_at_percentile(99.9), 96255);
        let h = LatencyHistogram::default();
        for us in 1..=100 {
            h.record_micros(us);
        }
        assert_eq!(h.total(), 100);
        assert!((49_000..=51_000).contains(&h.value_at_percentile(50.0)));
        h.reset();
        assert_eq!(h.total(), 0);
        assert!(h.cumulative_buckets().is_empty());
    }

    #[test]
    fn percentile_names_are_trimmed() {
        assert_eq!(percentile_name(50.0), "50");
        assert_eq!(percentile_name(99.9), "99.9");
        assert_eq!(percentile_name(99.99), "99.99");
        assert!(parse_percentiles("50 99 99.9").is_ok());
        assert!(parse_percentiles("50 101").is_err());
        assert!(parse_percentiles("x").is_err());
    }

    #[test]
    fn monitor_keeps_the_worst_sample_of_each_second() {
        let mut m = LatencyMonitor::default();
        m.add_sample("command", 5, 100);
        m.add_sample("command", 9, 100);
        m.add_sample("command", 3, 101);
        let (_, ts) = m.get(b"command").unwrap();
        let samples: Vec<(i64, u64)> = ts.in_order().map(|s| (s.time, s.latency_ms)).collect();
        assert_eq!(samples, vec![(100, 9), (101, 3)]);
        assert_eq!(ts.max, 9);
        assert_eq!(m.reset(Some("COMMAND")), 1);
        assert!(m.is_empty());
    }

    #[test]
    fn sparkline_of_one_sample_matches_redis() {
        // LATENCY GRAPH after one 20 ms DEBUG SLEEP on Redis 7.0.15.
        let mut out = String::new();
        render_sparkline(&mut out, &[(20.0, "0s".to_string())], 4);
        assert_eq!(out, " \n \n \n_\n \n0\ns\n");
        // Rising values fill upwards: the largest reaches the top row.
        let mut out = String::new();
        render_sparkline(&mut out, &[(0.0, String::new()), (12.0, String::new())], 4);
        assert_eq!(out.lines().next(), Some(" #"));
    }
}
