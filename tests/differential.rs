//! Differential test: the same command sequences run against Debian's `redis-server` (the
//! reference) and against `rf-server`, in RESP2 and again in RESP3; replies are compared as
//! exact wire bytes unless a step says how Redis itself is nondeterministic there.
//!
//! Cases live in `tests/differential/<family>.txt`:
//!
//! ```text
//! # comment
//! === case-name [resp2|resp3]      starts a case (optionally run in one protocol only)
//! SET k "a value"                  a step: arguments split as redis-cli / sdssplitargs does
//! @set SMEMBERS s                  modifiers (tokens starting with @) before the command
//! ```
//!
//! Modifiers: `@c2` (use connection 2 of the case; connections open lazily, RESP3 ones send
//! `HELLO 3` first), `@send` (send, do not read), `@recv` (no command: read one reply),
//! `@silent` (no command: expect no reply within 200 ms), `@sleep=MS` (no command),
//! `@replies=N` (read N replies), `@raw` (send the argument bytes as they are),
//! `@resp2` / `@resp3` (step only in that protocol), and how to compare where Redis itself
//! is not deterministic: `@set` (top-level elements as a multiset), `@pairs` (key/value pairs
//! as a set), `@shape` (types and aggregate lengths only), `@count` (type and top-level
//! length), `@approx=N` (integers within N), `@scanall` (iterate the SCAN-family cursor to 0
//! and compare the union of elements), `@cmdinfo` (COMMAND INFO: name, arity, flags, key
//! positions, ACL categories), `@info-keys` (INFO: every section header and field name Redis
//! gives is present; extra fields are allowed), `@info-fields=a,b` (INFO: those fields'
//! values), `@ignore=a,b` (map replies: those fields' values ignored), `@kv-fields=a,b`
//! (`k=v k=v` texts such as CLIENT INFO: those fields). Error replies are always compared
//! exactly, whatever the mode. An argument `$id:cN` is replaced, on each side, by the CLIENT
//! ID of connection N (asked on that connection the first time; CLIENT TRACKING REDIRECT).
//!
//! Every step is compared; a mismatch fails the test unless its step (`family/case:N`), case
//! (`family/case`) or family (`family/*`) is listed in `tests/differential/known-gaps.txt`
//! with a reason; a listed gap that no longer differs fails the test too (prune it).
//!
//! Environment: `RF_DIFF_SERVER_BIN` replaces the rf-server binary (point it at
//! /usr/bin/redis-server to check that the cases are deterministic), `RF_DIFF_FILTER` runs
//! only cases whose id contains one of its comma-separated parts, `RF_DIFF_SHOW` = how many
//! mismatches to print, `RF_DIFF_TRACE=1` prints every step with the reference reply.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use redis_failover::resp::{encode_command, split_args, Frame, ProtocolVersion, ReplyParser};

const REFERENCE_BIN: &str = "/usr/bin/redis-server";
/// How long a reply may take; after many timeouts (a server that hangs) it shrinks so that a
/// broken server cannot make the run take forever, though not below what the cases' own
/// blocking commands take (`BLPOP a 1` answers after a second, later on a loaded machine;
/// cases whose commands both servers leave unanswered count as timeouts too).
fn reply_timeout() -> Duration {
    if TIMEOUTS.load(Ordering::Relaxed) > 10 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(4)
    }
}
static TIMEOUTS: AtomicU32 = AtomicU32::new(0);
const SILENCE_WINDOW: Duration = Duration::from_millis(200);
const MAX_RESTARTS: u32 = 20;
const MAX_SCAN_ROUNDS: usize = 10_000;

// ---------------------------------------------------------------------------------------
// Server processes

struct ServerProcess {
    child: Child,
    port: u16,
    log_path: PathBuf,
    // Kept alive for the life of the process; removed on drop.
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

include!("ports/free_port.rs");
include!("ports/own_process.rs");

/// Settings given identically to both servers.
fn server_args(port: u16, dir: &Path) -> Vec<String> {
    vec![
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        "".into(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--daemonize".into(),
        "no".into(),
        // DEBUG SLEEP / SET-ACTIVE-EXPIRE / DIGEST cases; Redis 7.0 refuses DEBUG by default.
        "--enable-debug-command".into(),
        "yes".into(),
    ]
}

fn start_server(bin: &Path) -> Result<ServerProcess, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log_path = dir.path().join("server.log");
    let spawn = |port: u16| {
        let log = fs::File::create(&log_path)?;
        let log_err = log.try_clone()?;
        Command::new(bin).args(server_args(port, dir.path())).stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log_err)).spawn()
    };
    // Only our child counts: a probed free port can be bound by a server of a parallel
    // test first, and the comparison would then run against that foreign server.
    let mut last = String::new();
    let failed = |port: u16, why: NotStarted| last = format!("port {port}: {why:?}; log:\n{}", log_tail(&log_path));
    match start_own_child(3, Duration::from_secs(10), spawn, failed) {
        Ok((child, port)) => Ok(ServerProcess { child, port, log_path, _dir: dir }),
        Err(e) => Err(format!("{}: {e}; last attempt {last}", bin.display())),
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// One side of the comparison: a binary, its running process, restarted if it dies.
struct Side {
    name: &'static str,
    bin: PathBuf,
    process: Option<ServerProcess>,
    restarts: u32,
    crashes: Vec<String>,
    /// The last case run against this process, named when it is found dead.
    last_case: String,
}

impl Side {
    fn new(name: &'static str, bin: PathBuf) -> Result<Side, String> {
        let process = start_server(&bin)?;
        Ok(Side { name, bin, process: Some(process), restarts: 0, crashes: Vec::new(), last_case: String::new() })
    }

    fn port(&self) -> u16 {
        self.process.as_ref().map(|p| p.port).unwrap_or(1)
    }

    /// Restarts the server if it died (noting which case killed it); false if it cannot.
    fn ensure_alive(&mut self) -> bool {
        let dead = match self.process.as_mut() {
            Some(p) => !matches!(p.child.try_wait(), Ok(None)),
            None => true,
        };
        if !dead {
            return true;
        }
        if let Some(p) = self.process.take() {
            self.crashes.push(format!(
                "{} exited during or right after {}; log tail:\n{}",
                self.name,
                self.last_case,
                log_tail(&p.log_path)
            ));
        }
        if self.restarts >= MAX_RESTARTS {
            return false;
        }
        self.restarts += 1;
        match start_server(&self.bin) {
            Ok(p) => {
                self.process = Some(p);
                true
            }
            Err(e) => {
                self.crashes.push(format!("{} could not be restarted: {e}", self.name));
                false
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Connections and replies

#[derive(Debug, Clone)]
enum Outcome {
    /// The parsed frame and the exact bytes it came in.
    Reply(Frame, Vec<u8>),
    Timeout,
    Closed,
    Broken(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Reply(_, raw) => {
                let text: String = String::from_utf8_lossy(raw).escape_debug().collect();
                if text.len() > 400 {
                    let mut cut = 400;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    format!("{}... ({} bytes)", &text[..cut], raw.len())
                } else {
                    text
                }
            }
            Outcome::Timeout => "<no reply within the timeout>".into(),
            Outcome::Closed => "<connection closed>".into(),
            Outcome::Broken(e) => format!("<broken: {e}>"),
        }
    }

    fn is_failure(&self) -> bool {
        !matches!(self, Outcome::Reply(..))
    }
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    closed: bool,
}

impl Conn {
    fn connect(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Conn { stream, buf: BytesMut::with_capacity(4096), closed: false })
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut out = BytesMut::new();
        encode_command(args, &mut out);
        self.send_raw(&out);
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).is_err() {
            self.closed = true;
        }
    }

    fn recv(&mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        loop {
            let snapshot = self.buf.clone();
            match ReplyParser::parse(&mut self.buf) {
                Ok(Some(frame)) => {
                    let used = snapshot.len() - self.buf.len();
                    return Outcome::Reply(frame, snapshot[..used].to_vec());
                }
                Ok(None) => {}
                Err(e) => {
                    self.buf.clear();
                    return Outcome::Broken(format!("unparsable reply: {e}"));
                }
            }
            if self.closed {
                return Outcome::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Outcome::Timeout;
            }
            let _ = self.stream.set_read_timeout(Some(deadline - now));
            // Large reads: every read is followed by a parse attempt of the whole buffer,
            // which for a 100,000-element reply in small chunks took seconds (debug build).
            let mut chunk = vec![0u8; 1 << 20];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    if timeout > SILENCE_WINDOW {
                        TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                    }
                    return Outcome::Timeout;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                }
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------------------
// Case files

#[derive(Debug, Clone, PartialEq)]
enum Compare {
    Exact,
    Set,
    Pairs,
    Shape,
    Count,
    Approx(i64),
    ScanAll,
    CmdInfo,
    InfoKeys,
    InfoFields(Vec<String>),
    Ignore(Vec<String>),
    KvFields(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Command,
    Send,
    Recv,
    Silent,
    Sleep(u64),
}

#[derive(Debug, Clone)]
struct Step {
    line: usize,
    text: String,
    conn: usize,
    action: Action,
    compare: Compare,
    replies: usize,
    raw: bool,
    only: Option<ProtocolVersion>,
    args: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Case {
    id: String,
    family: String,
    only: Option<ProtocolVersion>,
    steps: Vec<Step>,
}

fn parse_list(v: &str) -> Vec<String> {
    v.split(',').filter(|s| !s.is_empty()).map(|s| s.to_string()).collect()
}

fn parse_case_file(family: &str, path: &Path) -> Result<Vec<Case>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cases: Vec<Case> = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |msg: String| format!("{}:{line_no}: {msg}: {raw_line}", path.display());
        if let Some(header) = line.strip_prefix("===") {
            let mut words = header.split_whitespace();
            let name = words.next().ok_or_else(|| at("case without a name".into()))?;
            let mut only = None;
            for flag in words {
                only = Some(match flag {
                    "resp2" => ProtocolVersion::Resp2,
                    "resp3" => ProtocolVersion::Resp3,
                    other => return Err(at(format!("unknown case flag {other}"))),
                });
            }
            let id = format!("{family}/{name}");
            if !seen.insert(id.clone()) {
                return Err(at(format!("duplicate case id {id}")));
            }
            cases.push(Case { id, family: family.to_string(), only, steps: Vec::new() });
            continue;
        }
        let case = cases.last_mut().ok_or_else(|| at("step before the first === case".into()))?;
        let tokens = split_args(line.as_bytes()).ok_or_else(|| at("unbalanced quotes".into()))?;
        let mut step = Step {
            line: line_no,
            text: line.to_string(),
            conn: 1,
            action: Action::Command,
            compare: Compare::Exact,
            replies: 1,
            raw: false,
            only: None,
            args: Vec::new(),
        };
        let mut rest = tokens.into_iter().peekable();
        while let Some(tok) = rest.peek() {
            if tok.first() != Some(&b'@') {
                break;
            }
            let tok = String::from_utf8_lossy(&rest.next().unwrap()[1..]).into_owned();
            let (key, value) = match tok.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (tok.clone(), String::new()),
            };
            let number = |v: &str| v.parse::<u64>().map_err(|_| at(format!("@{key} needs a number")));
            match key.as_str() {
                k if k.len() >= 2 && k.starts_with('c') && k[1..].chars().all(|c| c.is_ascii_digit()) => {
                    step.conn = k[1..].parse().unwrap();
                }
                "send" => step.action = Action::Send,
                "recv" => step.action = Action::Recv,
                "silent" => step.action = Action::Silent,
                "sleep" => step.action = Action::Sleep(number(&value)?),
                "replies" => step.replies = number(&value)? as usize,
                "raw" => step.raw = true,
                "resp2" => step.only = Some(ProtocolVersion::Resp2),
                "resp3" => step.only = Some(ProtocolVersion::Resp3),
                "set" => step.compare = Compare::Set,
                "pairs" => step.compare = Compare::Pairs,
                "shape" => step.compare = Compare::Shape,
                "count" => step.compare = Compare::Count,
                "approx" => step.compare = Compare::Approx(number(&value)? as i64),
                "scanall" => step.compare = Compare::ScanAll,
                "cmdinfo" => step.compare = Compare::CmdInfo,
                "info-keys" => step.compare = Compare::InfoKeys,
                "info-fields" => step.compare = Compare::InfoFields(parse_list(&value)),
                "ignore" => step.compare = Compare::Ignore(parse_list(&value)),
                "kv-fields" => step.compare = Compare::KvFields(parse_list(&value)),
                _ => return Err(at(format!("unknown modifier @{key}"))),
            }
        }
        step.args = rest.collect();
        let needs_args = matches!(step.action, Action::Command | Action::Send);
        if needs_args == step.args.is_empty() {
            return Err(at("a command needs arguments; @recv/@silent/@sleep take none".into()));
        }
        if step.compare == Compare::ScanAll && step.action != Action::Command {
            return Err(at("@scanall only on a plain command".into()));
        }
        case.steps.push(step);
    }
    Ok(cases)
}

struct KnownGaps {
    entries: BTreeMap<String, String>,
}

impl KnownGaps {
    fn load(path: &Path) -> Result<KnownGaps, String> {
        let mut entries = BTreeMap::new();
        let text = fs::read_to_string(path).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            if reason.trim().is_empty() {
                return Err(format!("{}:{}: a known gap needs a reason: {line}", path.display(), i + 1));
            }
            entries.insert(id.to_string(), reason.trim().to_string());
        }
        Ok(KnownGaps { entries })
    }

    /// A gap names a step (`family/case:N`), a case (`family/case`) or a family (`family/*`).
    fn covers(&self, case_id: &str, step_no: usize) -> Option<&str> {
        let family = case_id.split('/').next().unwrap_or_default();
        self.entries
            .get(case_id)
            .or_else(|| self.entries.get(&format!("{case_id}:{step_no}")))
            .or_else(|| self.entries.get(&format!("{family}/*")))
            .map(|s| s.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// Comparison

/// A canonical byte form used to sort and compare elements (RESP3 keeps every type apart).
fn canon(f: &Frame) -> Vec<u8> {
    f.to_bytes(ProtocolVersion::Resp3).to_vec()
}

fn shape(f: &Frame) -> String {
    let inner = |items: &[Frame]| items.iter().map(shape).collect::<Vec<_>>().join(",");
    match f {
        Frame::Simple(_) => "simple".into(),
        Frame::Error(_) => "error".into(),
        Frame::Integer(_) => "integer".into(),
        Frame::Bulk(_) => "bulk".into(),
        Frame::Null => "null".into(),
        Frame::NullArray => "null-array".into(),
        Frame::Array(items) => format!("array[{}]", inner(items)),
        Frame::Set(items) => format!("set[{}]", inner(items)),
        Frame::Push(items) => format!("push[{}]", inner(items)),
        Frame::Map(pairs) => format!(
            "map[{}]",
            pairs.iter().map(|(k, v)| format!("{}:{}", shape(k), shape(v))).collect::<Vec<_>>().join(",")
        ),
        Frame::Double(_) | Frame::DoubleText(_) => "double".into(),
        Frame::Boolean(_) => "boolean".into(),
        Frame::BigNumber(_) => "bignumber".into(),
        Frame::Verbatim(..) => "verbatim".into(),
        Frame::Attribute(pairs) => format!(
            "attribute[{}]",
            pairs.iter().map(|(k, v)| format!("{}:{}", shape(k), shape(v))).collect::<Vec<_>>().join(",")
        ),
    }
}

fn kind(f: &Frame) -> &'static str {
    match f {
        Frame::Array(_) => "array",
        Frame::Set(_) => "set",
        Frame::Push(_) => "push",
        Frame::Map(_) => "map",
        _ => "scalar",
    }
}

fn elements(f: &Frame) -> Option<&[Frame]> {
    match f {
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => Some(items),
        _ => None,
    }
}

/// Key/value pairs of a map, or of a flat RESP2 array, in canonical sorted form.
fn pairs_of(f: &Frame) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = match f {
        Frame::Map(pairs) => pairs.iter().map(|(k, v)| (canon(k), canon(v))).collect(),
        other => {
            let items = elements(other)?;
            let nested: Option<Vec<(Vec<u8>, Vec<u8>)>> = items
                .iter()
                .map(|item| match elements(item) {
                    Some([k, v]) => Some((canon(k), canon(v))),
                    _ => None,
                })
                .collect();
            match nested {
                // RESP3 replies such as ZRANDMEMBER ... WITHSCORES nest each pair.
                Some(pairs) if !items.is_empty() => pairs,
                _ if items.len() % 2 == 0 => items.chunks(2).map(|c| (canon(&c[0]), canon(&c[1]))).collect(),
                _ => return None,
            }
        }
    };
    out.sort();
    Some(out)
}

fn text_of(f: &Frame) -> Option<String> {
    match f {
        Frame::Bulk(b) | Frame::Verbatim(_, b) => Some(String::from_utf8_lossy(b).into_owned()),
        Frame::Simple(s) => Some(s.clone()),
        _ => None,
    }
}

fn info_keys(f: &Frame) -> Option<BTreeSet<String>> {
    let text = text_of(f)?;
    Some(
        text.lines()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(|l| l.split_once(':').map(|(k, _)| k.to_string()).unwrap_or_else(|| l.to_string()))
            .collect(),
    )
}

fn info_fields(f: &Frame, wanted: &[String]) -> Option<Vec<(String, Option<String>)>> {
    let text = text_of(f)?;
    let map: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.trim().split_once(':')).collect();
    Some(wanted.iter().map(|w| (w.clone(), map.get(w.as_str()).map(|v| v.to_string()))).collect())
}

fn kv_fields(f: &Frame, wanted: &[String]) -> Option<Vec<Vec<(String, Option<String>)>>> {
    let text = text_of(f)?;
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let map: BTreeMap<&str, &str> = line.split_whitespace().filter_map(|kv| kv.split_once('=')).collect();
                wanted.iter().map(|w| (w.clone(), map.get(w.as_str()).map(|v| v.to_string()))).collect()
            })
            .collect(),
    )
}

fn mask_fields(f: &Frame, ignored: &[String]) -> Vec<u8> {
    let hide = |k: &Frame| k.as_bytes().map(|b| ignored.iter().any(|i| i.as_bytes() == b)).unwrap_or(false);
    let masked = match f {
        // A list of maps (ACL LOG): each entry masked.
        Frame::Array(items) if !items.is_empty() && items.iter().all(|i| matches!(i, Frame::Map(_) | Frame::Array(_))) => {
            let inner: Vec<Frame> = items.iter().map(|i| Frame::Bulk(mask_fields(i, ignored).into())).collect();
            Frame::Array(inner)
        }
        Frame::Map(pairs) => Frame::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), if hide(k) { Frame::Simple("<ignored>".into()) } else { v.clone() }))
                .collect(),
        ),
        Frame::Array(items) if items.len() % 2 == 0 => Frame::Array(
            items
                .chunks(2)
                .flat_map(|c| [c[0].clone(), if hide(&c[0]) { Frame::Simple("<ignored>".into()) } else { c[1].clone() }])
                .collect(),
        ),
        other => other.clone(),
    };
    canon(&masked)
}

/// COMMAND INFO entries: name, arity, flags (as a set), first/last key, step, ACL categories (as a set).
fn cmdinfo_view(f: &Frame) -> Option<Vec<Vec<Vec<u8>>>> {
    let entries = elements(f)?;
    let mut out = Vec::new();
    for entry in entries {
        let Some(fields) = elements(entry) else {
            out.push(vec![canon(entry)]);
            continue;
        };
        let mut view = Vec::new();
        for (i, field) in fields.iter().take(7).enumerate() {
            if i == 2 || i == 6 {
                let mut set: Vec<Vec<u8>> = elements(field).map(|xs| xs.iter().map(canon).collect()).unwrap_or_default();
                set.sort();
                view.push(set.concat());
            } else {
                view.push(canon(field));
            }
        }
        out.push(view);
    }
    Some(out)
}

/// What to show for a mismatch: for views that look inside a reply (INFO fields, k=v texts),
/// the parts that were compared rather than the whole reply.
fn describe_pair(compare: &Compare, reference: &Outcome, ours: &Outcome) -> (String, String) {
    let (Outcome::Reply(a, _), Outcome::Reply(b, _)) = (reference, ours) else {
        return (reference.describe(), ours.describe());
    };
    match compare {
        Compare::InfoFields(wanted) => (format!("{:?}", info_fields(a, wanted)), format!("{:?}", info_fields(b, wanted))),
        Compare::KvFields(wanted) => (format!("{:?}", kv_fields(a, wanted)), format!("{:?}", kv_fields(b, wanted))),
        Compare::InfoKeys => match (info_keys(a), info_keys(b)) {
            (Some(ka), Some(kb)) => {
                let missing: Vec<&String> = ka.difference(&kb).collect();
                (format!("{} sections/fields", ka.len()), format!("missing {missing:?}"))
            }
            _ => (reference.describe(), ours.describe()),
        },
        _ => (reference.describe(), ours.describe()),
    }
}

/// Whether two replies to the same step agree under the step's comparison.
fn agree(compare: &Compare, reference: &Outcome, ours: &Outcome) -> bool {
    let (Outcome::Reply(a, raw_a), Outcome::Reply(b, raw_b)) = (reference, ours) else {
        return std::mem::discriminant(reference) == std::mem::discriminant(ours);
    };
    if raw_a == raw_b {
        return true;
    }
    // Errors are always compared exactly, whatever the mode.
    if a.is_error() || b.is_error() {
        return false;
    }
    match compare {
        Compare::Exact | Compare::ScanAll => false,
        Compare::Set => match (elements(a), elements(b)) {
            (Some(xa), Some(xb)) if kind(a) == kind(b) => {
                let mut ca: Vec<_> = xa.iter().map(canon).collect();
                let mut cb: Vec<_> = xb.iter().map(canon).collect();
                ca.sort();
                cb.sort();
                ca == cb
            }
            _ => false,
        },
        Compare::Pairs => kind(a) == kind(b) && pairs_of(a).is_some() && pairs_of(a) == pairs_of(b),
        Compare::Shape => shape(a) == shape(b),
        Compare::Count => match (elements(a), elements(b)) {
            (Some(xa), Some(xb)) => kind(a) == kind(b) && xa.len() == xb.len(),
            _ => match (a, b) {
                (Frame::Map(pa), Frame::Map(pb)) => pa.len() == pb.len(),
                _ => false,
            },
        },
        Compare::Approx(tolerance) => match (a, b) {
            (Frame::Integer(x), Frame::Integer(y)) => (x - y).abs() <= *tolerance,
            _ => false,
        },
        Compare::CmdInfo => cmdinfo_view(a).is_some() && cmdinfo_view(a) == cmdinfo_view(b),
        // Every section and field Redis reports must be there; extra fields of our own are fine.
        Compare::InfoKeys => match (info_keys(a), info_keys(b)) {
            (Some(ka), Some(kb)) => shape(a) == shape(b) && ka.is_subset(&kb),
            _ => false,
        },
        Compare::InfoFields(wanted) => shape(a) == shape(b) && info_fields(a, wanted) == info_fields(b, wanted),
        Compare::Ignore(ignored) => shape(a) == shape(b) && mask_fields(a, ignored) == mask_fields(b, ignored),
        Compare::KvFields(wanted) => shape(a) == shape(b) && kv_fields(a, wanted) == kv_fields(b, wanted),
    }
}

// ---------------------------------------------------------------------------------------
// Running

struct Mismatch {
    case_id: String,
    proto: ProtocolVersion,
    step_no: usize,
    line: usize,
    text: String,
    reference: String,
    ours: String,
    known: Option<String>,
}

#[derive(Default)]
struct FamilyStats {
    steps: usize,
    mismatches: usize,
    known: usize,
}

/// The connections one case opened on one side.
struct SideConns {
    port: u16,
    proto: ProtocolVersion,
    conns: BTreeMap<usize, Conn>,
    /// CLIENT ID of each connection, asked the first time a step names it (`$id:cN`).
    ids: BTreeMap<usize, Vec<u8>>,
}

impl SideConns {
    fn get(&mut self, n: usize) -> Result<&mut Conn, String> {
        if !self.conns.contains_key(&n) {
            let mut conn = Conn::connect(self.port).map_err(|e| format!("connect: {e}"))?;
            if self.proto == ProtocolVersion::Resp3 {
                conn.send(&[b"HELLO", b"3"]);
                match conn.recv(reply_timeout()) {
                    Outcome::Reply(Frame::Map(_), _) => {}
                    other => return Err(format!("HELLO 3 failed: {}", other.describe())),
                }
            }
            self.conns.insert(n, conn);
        }
        Ok(self.conns.get_mut(&n).unwrap())
    }
}

/// `$id:cN` -> N: an argument that stands for connection N's CLIENT ID on each side.
fn client_id_ref(arg: &[u8]) -> Option<usize> {
    std::str::from_utf8(arg).ok()?.strip_prefix("$id:c")?.parse().ok()
}

impl SideConns {
    /// The CLIENT ID of connection `n` (asked once on that connection, then remembered).
    fn client_id(&mut self, n: usize) -> Result<Vec<u8>, String> {
        if let Some(id) = self.ids.get(&n) {
            return Ok(id.clone());
        }
        let conn = self.get(n)?;
        conn.send(&[b"CLIENT", b"ID"]);
        match conn.recv(reply_timeout()) {
            Outcome::Reply(Frame::Integer(id), _) => {
                let id = id.to_string().into_bytes();
                self.ids.insert(n, id.clone());
                Ok(id)
            }
            other => Err(format!("CLIENT ID on connection {n} failed: {}", other.describe())),
        }
    }
}

fn send_step(side: &mut SideConns, step: &Step) -> Result<(), String> {
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(step.args.len());
    for a in &step.args {
        match client_id_ref(a) {
            Some(n) => args.push(side.client_id(n)?),
            None => args.push(a.clone()),
        }
    }
    let conn = side.get(step.conn)?;
    if step.raw {
        let bytes: Vec<u8> = args.join(&b" "[..]);
        conn.send_raw(&bytes);
    } else {
        conn.send(&args.iter().map(|a| a.as_slice()).collect::<Vec<_>>());
    }
    Ok(())
}

fn recv_n(side: &mut SideConns, step: &Step, n: usize) -> Outcome {
    let conn = match side.get(step.conn) {
        Ok(c) => c,
        Err(e) => return Outcome::Broken(e),
    };
    if n == 1 {
        return conn.recv(reply_timeout());
    }
    let mut frames = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..n {
        match conn.recv(reply_timeout()) {
            Outcome::Reply(f, r) => {
                frames.push(f);
                raw.extend_from_slice(&r);
            }
            other => return other,
        }
    }
    Outcome::Reply(Frame::Array(frames), raw)
}

/// Runs a SCAN-family command until the cursor returns to 0; the union of elements, as a set.
fn scan_all(side: &mut SideConns, step: &Step) -> Outcome {
    let name = String::from_utf8_lossy(&step.args[0]).to_ascii_lowercase();
    let cursor_at = if name == "scan" { 1 } else { 2 };
    let paired = name == "hscan" || name == "zscan";
    let mut args = step.args.clone();
    let conn = match side.get(step.conn) {
        Ok(c) => c,
        Err(e) => return Outcome::Broken(e),
    };
    let mut seen: BTreeSet<Vec<u8>> = BTreeSet::new();
    for _ in 0..MAX_SCAN_ROUNDS {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        conn.send(&refs);
        let outcome = conn.recv(reply_timeout());
        let (frame, _) = match &outcome {
            Outcome::Reply(f, r) => (f.clone(), r.clone()),
            _ => return outcome,
        };
        let Some([cursor, batch]) = elements(&frame).and_then(|x| <&[Frame; 2]>::try_from(x).ok()) else {
            return outcome; // an error or an unexpected shape: compared exactly
        };
        let Some(items) = elements(batch) else { return outcome };
        if paired {
            if items.len() % 2 != 0 {
                return outcome;
            }
            for pair in items.chunks(2) {
                seen.insert([canon(&pair[0]), canon(&pair[1])].concat());
            }
        } else {
            seen.extend(items.iter().map(canon));
        }
        let Some(next) = cursor.as_bytes().map(|b| b.to_vec()) else { return outcome };
        if next == b"0" {
            let summary = Frame::Array(seen.iter().map(|s| Frame::Bulk(s.clone().into())).collect());
            let raw = canon(&summary);
            return Outcome::Reply(summary, raw);
        }
        args[cursor_at] = next;
    }
    Outcome::Broken("SCAN cursor never returned to 0".into())
}

/// Runs one step on both sides (sent to both before reading either, so timing matches).
fn run_step(sides: &mut [SideConns; 2], step: &Step) -> Option<[Outcome; 2]> {
    match &step.action {
        Action::Sleep(ms) => {
            thread::sleep(Duration::from_millis(*ms));
            None
        }
        Action::Send => {
            let results: Vec<Outcome> = sides
                .iter_mut()
                .map(|s| match send_step(s, step) {
                    Ok(()) => Outcome::Reply(Frame::Simple("sent".into()), b"sent".to_vec()),
                    Err(e) => Outcome::Broken(e),
                })
                .collect();
            // Let both servers take the request in (and block, for blocking commands) before a
            // later step on another connection races it.
            thread::sleep(Duration::from_millis(30));
            Some([results[0].clone(), results[1].clone()])
        }
        Action::Recv => {
            let a = recv_n(&mut sides[0], step, step.replies);
            let b = recv_n(&mut sides[1], step, step.replies);
            Some([a, b])
        }
        Action::Silent => {
            // One window for both sides, so timing-dependent silences (CLIENT PAUSE) line up.
            thread::sleep(SILENCE_WINDOW);
            let mut out = Vec::new();
            for side in sides.iter_mut() {
                out.push(match side.get(step.conn) {
                    Ok(conn) => conn.recv(Duration::from_millis(10)),
                    Err(e) => Outcome::Broken(e),
                });
            }
            Some([out[0].clone(), out[1].clone()])
        }
        Action::Command if step.compare == Compare::ScanAll => {
            let a = scan_all(&mut sides[0], step);
            let b = scan_all(&mut sides[1], step);
            Some([a, b])
        }
        Action::Command => {
            let sent: Vec<Result<(), String>> = sides.iter_mut().map(|s| send_step(s, step)).collect();
            let mut out = Vec::new();
            for (side, sent) in sides.iter_mut().zip(sent) {
                out.push(match sent {
                    Ok(()) => recv_n(side, step, step.replies),
                    Err(e) => Outcome::Broken(e),
                });
            }
            Some([out[0].clone(), out[1].clone()])
        }
    }
}

/// Settings that cases change, put back before every case so that a case cut short on one
/// side cannot leak its configuration into the next ones.
const CONFIG_DEFAULTS: &[(&str, &str)] = &[
    ("notify-keyspace-events", ""),
    ("maxmemory", "0"),
    ("maxmemory-policy", "noeviction"),
    ("proto-max-bulk-len", "512mb"),
    ("timeout", "0"),
    ("hz", "10"),
    ("save", ""),
    ("list-max-listpack-size", "-2"),
    ("latency-monitor-threshold", "0"),
    ("latency-tracking", "yes"),
    ("latency-tracking-info-percentiles", "50 99 99.9"),
];

/// Resets a server between cases: all databases emptied and the settings cases touch restored,
/// over a fresh admin connection. Only FLUSHALL must succeed; the CONFIG SETs are best effort.
fn reset_side(port: u16) -> Result<(), String> {
    let mut conn = Conn::connect(port).map_err(|e| format!("connect: {e}"))?;
    for (name, value) in CONFIG_DEFAULTS {
        conn.send(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()]);
        if let Outcome::Timeout | Outcome::Closed | Outcome::Broken(_) = conn.recv(reply_timeout()) {
            return Err(format!("no reply to CONFIG SET {name}"));
        }
    }
    // Scripts and libraries of one case must not answer another's EVALSHA / FCALL.
    for flush in [&[&b"SCRIPT"[..], b"FLUSH"], &[b"FUNCTION", b"FLUSH"]] {
        conn.send(flush);
        if let Outcome::Timeout | Outcome::Closed | Outcome::Broken(_) = conn.recv(reply_timeout()) {
            return Err(format!("no reply to {}", String::from_utf8_lossy(&flush.concat())));
        }
    }
    conn.send(&[b"FLUSHALL"]);
    match conn.recv(reply_timeout()) {
        Outcome::Reply(Frame::Simple(s), _) if s == "OK" => Ok(()),
        other => Err(format!("FLUSHALL failed: {}", other.describe())),
    }
}

fn run_case(
    case: &Case,
    proto: ProtocolVersion,
    sides: &mut [Side; 2],
    gaps: &KnownGaps,
    stats: &mut FamilyStats,
    mismatches: &mut Vec<Mismatch>,
) {
    let label = format!("{} ({proto:?})", case.id);
    let steps: Vec<(usize, &Step)> =
        case.steps.iter().enumerate().map(|(i, s)| (i + 1, s)).filter(|(_, s)| s.only.is_none_or(|p| p == proto)).collect();
    let fail_all = |reason: String, from: usize, stats: &mut FamilyStats, mismatches: &mut Vec<Mismatch>| {
        for (no, step) in steps.iter().filter(|(no, _)| *no >= from) {
            stats.steps += 1;
            let known = gaps.covers(&case.id, *no).map(|s| s.to_string());
            if known.is_some() {
                stats.known += 1;
            } else {
                stats.mismatches += 1;
            }
            mismatches.push(Mismatch {
                case_id: case.id.clone(),
                proto,
                step_no: *no,
                line: step.line,
                text: step.text.clone(),
                reference: "<not run>".into(),
                ours: reason.clone(),
                known,
            });
        }
    };
    for side in sides.iter_mut() {
        if !side.ensure_alive() {
            fail_all(format!("{} is down and cannot be restarted", side.name), 0, stats, mismatches);
            return;
        }
        if let Err(e) = reset_side(side.port()) {
            fail_all(format!("{}: {e}", side.name), 0, stats, mismatches);
            return;
        }
    }
    for side in sides.iter_mut() {
        side.last_case = label.clone();
    }
    let trace = std::env::var_os("RF_DIFF_TRACE").is_some();
    let mut conns = [
        SideConns { port: sides[0].port(), proto, conns: BTreeMap::new(), ids: BTreeMap::new() },
        SideConns { port: sides[1].port(), proto, conns: BTreeMap::new(), ids: BTreeMap::new() },
    ];
    for (no, step) in &steps {
        let Some([reference, ours]) = run_step(&mut conns, step) else { continue };
        stats.steps += 1;
        if trace {
            eprintln!("{}:{no} {:?} {} -> {}", case.id, proto, step.text, reference.describe());
        }
        if agree(&step.compare, &reference, &ours) {
            continue;
        }
        let known = gaps.covers(&case.id, *no).map(|s| s.to_string());
        if known.is_some() {
            stats.known += 1;
        } else {
            stats.mismatches += 1;
        }
        let one_side_failed = ours.is_failure() != reference.is_failure();
        let (reference_text, ours_text) = describe_pair(&step.compare, &reference, &ours);
        mismatches.push(Mismatch {
            case_id: case.id.clone(),
            proto,
            step_no: *no,
            line: step.line,
            text: step.text.clone(),
            reference: reference_text,
            ours: ours_text,
            known,
        });
        if one_side_failed {
            // One side hung or dropped the connection: its later replies would be out of step.
            fail_all(format!("not run: step {no} left the connection unusable"), no + 1, stats, mismatches);
            break;
        }
    }
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt") && p.file_stem().is_some_and(|s| s != "known-gaps"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let family = file.file_stem().unwrap().to_string_lossy().into_owned();
        cases.extend(parse_case_file(&family, &file).unwrap_or_else(|e| panic!("bad case file: {e}")));
    }
    cases
}

#[test]
fn differential_against_redis() {
    if !Path::new(REFERENCE_BIN).exists() {
        eprintln!("SKIPPED: {REFERENCE_BIN} is not installed (apt-get install redis-server); no comparison ran");
        return;
    }
    let ours_bin = std::env::var_os("RF_DIFF_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rf-server")));
    let case_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential");
    let gaps = KnownGaps::load(&case_dir.join("known-gaps.txt")).unwrap_or_else(|e| panic!("{e}"));
    let filter = std::env::var("RF_DIFF_FILTER").unwrap_or_default();
    let show: usize = std::env::var("RF_DIFF_SHOW").ok().and_then(|v| v.parse().ok()).unwrap_or(40);

    let cases: Vec<Case> = load_cases(&case_dir)
        .into_iter()
        .filter(|c| filter.split(',').any(|f| c.id.contains(f)))
        .collect();
    assert!(!cases.is_empty(), "no differential cases found under {}", case_dir.display());

    let reference = Side::new("redis-server", PathBuf::from(REFERENCE_BIN)).unwrap_or_else(|e| panic!("{e}"));
    let ours = Side::new("rf-server", ours_bin.clone()).unwrap_or_else(|e| panic!("{e}"));
    let mut sides = [reference, ours];
    eprintln!("differential: reference {REFERENCE_BIN} vs {} , {} cases", ours_bin.display(), cases.len());

    let mut stats: BTreeMap<String, FamilyStats> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let started = Instant::now();
    for proto in [ProtocolVersion::Resp2, ProtocolVersion::Resp3] {
        for case in cases.iter().filter(|c| c.only.is_none_or(|p| p == proto)) {
            let family_stats = stats.entry(case.family.clone()).or_default();
            run_case(case, proto, &mut sides, &gaps, family_stats, &mut mismatches);
        }
    }

    eprintln!("\n==== differential summary ({:.1} s) ====", started.elapsed().as_secs_f64());
    let mut total = FamilyStats::default();
    for (family, s) in &stats {
        eprintln!("{family}: {} steps, {} mismatches ({} more in known gaps)", s.steps, s.mismatches, s.known);
        total.steps += s.steps;
        total.mismatches += s.mismatches;
        total.known += s.known;
    }
    eprintln!("TOTAL: {} steps, {} mismatches ({} more in known gaps)", total.steps, total.mismatches, total.known);

    let unexpected: Vec<&Mismatch> = mismatches.iter().filter(|m| m.known.is_none()).collect();
    for m in unexpected.iter().take(show) {
        eprintln!(
            "\nMISMATCH {}:{} ({:?}, line {}): {}\n  redis: {}\n  ours:  {}",
            m.case_id, m.step_no, m.proto, m.line, m.text, m.reference, m.ours
        );
    }
    if unexpected.len() > show {
        eprintln!("\n... and {} more mismatches (RF_DIFF_SHOW=n prints more)", unexpected.len() - show);
    }
    let mut failing_cases: BTreeMap<&str, &Mismatch> = BTreeMap::new();
    for m in &unexpected {
        failing_cases.entry(m.case_id.as_str()).or_insert(m);
    }
    if !failing_cases.is_empty() {
        eprintln!("\nfailing cases ({}), each with its first mismatching step:", failing_cases.len());
        for (case, m) in &failing_cases {
            eprintln!("  {case}  (step {}: {})", m.step_no, m.text);
        }
    }
    // Known gaps that no longer fail must be pruned: a stale entry would hide a regression.
    let mut stale = Vec::new();
    let still_failing: BTreeSet<String> = mismatches.iter().flat_map(|m| [m.case_id.clone(), format!("{}:{}", m.case_id, m.step_no)]).collect();
    for id in gaps.entries.keys() {
        let family_gap = id.strip_suffix("/*");
        let in_run = cases.iter().any(|c| {
            id == &c.id || id.starts_with(&format!("{}:", c.id)) || family_gap == Some(c.family.as_str())
        });
        let still = match family_gap {
            Some(family) => mismatches.iter().any(|m| m.case_id.starts_with(&format!("{family}/"))),
            None => still_failing.contains(id),
        };
        if in_run && !still {
            eprintln!("known gap now passes (remove it from known-gaps.txt): {id}");
            stale.push(id.clone());
        }
    }
    for side in &sides {
        for crash in &side.crashes {
            eprintln!("\nCRASH: {crash}");
        }
    }
    assert!(stale.is_empty(), "known gaps that no longer differ (remove them from known-gaps.txt): {stale:?}");
    assert!(
        unexpected.is_empty(),
        "{} differential mismatches outside tests/differential/known-gaps.txt (see the summary above)",
        unexpected.len()
    );
}
