//! Differential test of the list/hash/set/zset/hll/bitmap/sort families: the command
//! scripts in `tests/data/types/*.txt` run against Debian's `redis-server` and our
//! `rf-server` (same run, RESP2 and RESP3); every reply must be identical, except that
//! replies of commands whose order Redis leaves to its hash tables are compared as sorted
//! multisets. Skips with a message when `redis-server` is not installed.

mod common;

use redis::Value;

/// Commands whose array replies depend on hash-table order (or randomness).
const UNORDERED: &[&str] = &[
    "hgetall", "hkeys", "hvals", "hscan", "hrandfield", "smembers", "sunion", "sinter", "sdiff", "sscan", "srandmember", "spop",
    "zrandmember", "zscan",
];

fn split_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has_token = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has_token = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_token {
                    out.push(std::mem::take(&mut cur));
                    has_token = false;
                }
            }
            c => {
                cur.push(c);
                has_token = true;
            }
        }
    }
    if has_token {
        out.push(cur);
    }
    out
}

/// Flattens nested replies into sorted strings (for unordered comparisons).
fn flatten(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        other => out.push(format!("{other:?}")),
    }
}

fn render(r: redis::RedisResult<Value>, unordered: bool) -> String {
    match r {
        Err(e) => format!("error: {e}"),
        Ok(v) => {
            if unordered {
                // The cursor of a SCAN is kept in place; members are sorted.
                let mut flat = Vec::new();
                flatten(&v, &mut flat);
                flat.sort();
                format!("{flat:?}")
            } else {
                format!("{v:?}")
            }
        }
    }
}

fn run_script(name: &str, text: &str, resp3: bool, ours: &common::ServerGuard, theirs: &common::ServerGuard) -> Vec<String> {
    let proto = if resp3 { "?protocol=resp3" } else { "" };
    let open = |port: u16| redis::Client::open(format!("redis://127.0.0.1:{port}/{proto}")).unwrap().get_connection().unwrap();
    let mut a = open(theirs.port);
    let mut b = open(ours.port);
    let _: () = redis::cmd("FLUSHALL").query(&mut a).unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut b).unwrap();
    let mut diffs = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let args = split_line(line);
        let mut c = redis::cmd(&args[0]);
        for a in &args[1..] {
            c.arg(a.as_str());
        }
        let unordered = UNORDERED.contains(&args[0].to_ascii_lowercase().as_str());
        let ra = render(c.query::<Value>(&mut a), unordered);
        let rb = render(c.query::<Value>(&mut b), unordered);
        if ra != rb {
            diffs.push(format!("{name}:{} [{}] {line}\n  redis: {ra}\n  ours : {rb}", lineno + 1, if resp3 { "RESP3" } else { "RESP2" }));
        }
    }
    diffs
}

#[test]
fn type_families_match_redis() {
    if std::process::Command::new("redis-server").arg("--version").output().is_err() {
        eprintln!("SKIP: redis-server not installed");
        return;
    }
    let theirs = common::spawn_redis(&["--save", ""]);
    let ours = common::spawn_rf(&["--save", ""]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/types");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    scripts.sort();
    assert!(scripts.len() >= 5, "command scripts present");
    let mut all = Vec::new();
    let mut commands = 0;
    for path in &scripts {
        let text = std::fs::read_to_string(path).unwrap();
        commands += text.lines().filter(|l| !l.trim().is_empty()).count();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for resp3 in [false, true] {
            all.extend(run_script(&name, &text, resp3, &ours, &theirs));
        }
    }
    assert!(commands > 300, "a real table ({commands} commands)");
    assert!(all.is_empty(), "{} differences:\n{}", all.len(), all.join("\n"));
}
