//! MIGRATE as Redis 7.0's `migrateCommand`: DUMP payloads sent as RESTORE commands to the
//! target over a blocking connection (Redis blocks too, up to `timeout` per step), the keys
//! deleted here (propagated as one DEL) unless COPY.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, syntax_error, CommandSpec, Ctx};
use crate::server::commands::keys::container_help;
use crate::server::notify;
use crate::server::persistence::{convert, dump};

pub fn commands() -> Vec<CommandSpec> {
    vec![
        // Cluster mode is not supported: the cluster commands answer as Redis 7.0 does with
        // cluster-enabled no.
        cmd("cluster", -2, "", 0, 0, 0, "slow", container_help).group("cluster").since("3.0.0").summary("A container for cluster commands").subs(vec![
            cmd("addslots", -3, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("addslotsrange", -4, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("bumpepoch", 2, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("count-failure-reports", 3, "admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("countkeysinslot", 3, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("delslots", -3, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("delslotsrange", -4, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("failover", -2, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("flushslots", 2, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("forget", 3, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("getkeysinslot", 4, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("help", 2, "loading stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("info", 2, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("keyslot", 3, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("links", 2, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("meet", -4, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("myid", 2, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("nodes", 2, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("replicas", 3, "admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("replicate", 3, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("reset", -2, "admin stale noscript", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("saveconfig", 2, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("set-config-epoch", 3, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("setslot", -4, "no_async_loading admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("shards", 2, "stale", 0, 0, 0, "slow", cluster_disabled),
            cmd("slaves", 3, "admin stale", 0, 0, 0, "admin slow dangerous", cluster_disabled),
            cmd("slots", 2, "stale", 0, 0, 0, "slow", cluster_disabled),
        ]),
        cmd("asking", 1, "fast", 0, 0, 0, "fast connection", cluster_disabled).group("cluster").since("3.0.0").summary("Sent by cluster clients after an -ASK redirect"),
        cmd("readonly", 1, "fast loading stale", 0, 0, 0, "fast connection", cluster_disabled).group("cluster").since("3.0.0").summary("Enables read queries for a connection to a cluster replica node"),
        cmd("readwrite", 1, "fast loading stale", 0, 0, 0, "fast connection", cluster_disabled).group("cluster").since("3.0.0").summary("Disables read queries for a connection to a cluster replica node"),
        cmd("migrate", -6, "write movablekeys", 3, 3, 1, "keyspace write slow dangerous", migrate)
        .group("generic")
        .since("2.6.0")
        .summary("Atomically transfer a key from a Redis instance to another one.")
        .key_flags(&["RW", "access", "delete"])
        .keys_fn(migrate_keys),
    ]
}

fn cluster_disabled(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    Frame::error("ERR This instance has cluster support disabled")
}

/// Redis's `migrateGetKeys`: argument 3, or the arguments after KEYS when it is empty.
fn migrate_keys(args: &[Bytes]) -> Vec<usize> {
    let mut i = 6;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"auth") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            i += 3;
        } else if a.eq_ignore_ascii_case(b"keys") && args[3].is_empty() {
            return (i + 1..args.len()).collect();
        } else {
            i += 1;
        }
    }
    if args.len() > 3 {
        vec![3]
    } else {
        Vec::new()
    }
}

fn bulk(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
}

fn io_error(what: &str) -> Frame {
    Frame::error(format!("IOERR error or timeout {what} to target instance"))
}

fn migrate(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (mut copy, mut replace) = (false, false);
    let mut auth: Option<(Option<Bytes>, Bytes)> = None;
    let mut keys: Vec<Bytes> = vec![args[3].clone()];
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - j - 1;
        let a = args[j].to_ascii_lowercase();
        match a.as_slice() {
            b"copy" => copy = true,
            b"replace" => replace = true,
            b"auth" => {
                if more < 1 {
                    return syntax_error();
                }
                auth = Some((None, args[j + 1].clone()));
                j += 1;
            }
            b"auth2" => {
                if more < 2 {
                    return syntax_error();
                }
                auth = Some((Some(args[j + 1].clone()), args[j + 2].clone()));
                j += 2;
            }
            b"keys" => {
                if !args[3].is_empty() {
                    return Frame::error("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string");
                }
                keys = args[j + 1..].to_vec();
                break;
            }
            _ => return syntax_error(),
        }
        j += 1;
    }
    let (Some(timeout), Some(dbid)) = (crate::resp::parse_i64(&args[5]), crate::resp::parse_i64(&args[4])) else {
        return Frame::error("ERR value is not an integer or out of range");
    };
    let timeout = if timeout <= 0 { 1000 } else { timeout };
    // The keys that exist (and have not expired), with their payload and TTL.
    let now = ctx.now_ms;
    let compression = ctx.srv.config.get_bool("rdbcompression");
    let mut found: Vec<(Bytes, i64, Vec<u8>)> = Vec::new();
    for k in &keys {
        let Some(pos) = ctx.lookup_read(k) else { continue };
        let ttl = match ctx.db().expiry_of(pos) {
            Some(at) if at - now < 0 => continue,
            Some(at) => (at - now).max(1),
            None => 0,
        };
        let payload = dump::dump_payload(&convert::value_to_rdb(&ctx.db().slot(pos).value), compression);
        found.push((k.clone(), ttl, payload));
    }
    if found.is_empty() {
        return Frame::Simple("NOKEY".into());
    }
    let dur = Duration::from_millis(timeout as u64);
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let port = String::from_utf8_lossy(&args[2]).into_owned();
    let stream = format!("{host}:{port}")
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find_map(|a| TcpStream::connect_timeout(&a, dur).ok()));
    let Some(mut stream) = stream else {
        return Frame::error("IOERR error or timeout connecting to the client");
    };
    let _ = stream.set_read_timeout(Some(dur));
    let _ = stream.set_write_timeout(Some(dur));
    let mut out = Vec::new();
    if let Some((user, pass)) = &auth {
        match user {
            Some(u) => bulk(&mut out, &[b"AUTH", u, pass]),
            None => bulk(&mut out, &[b"AUTH", pass]),
        }
    }
    let db = dbid.to_string();
    bulk(&mut out, &[b"SELECT", db.as_bytes()]);
    for (k, ttl, payload) in &found {
        let ttl = ttl.to_string();
        if replace {
            bulk(&mut out, &[b"RESTORE", k, ttl.as_bytes(), payload, b"REPLACE"]);
        } else {
            bulk(&mut out, &[b"RESTORE", k, ttl.as_bytes(), payload]);
        }
    }
    if stream.write_all(&out).is_err() {
        return io_error("writing");
    }
    let Ok(read_half) = stream.try_clone() else { return io_error("reading") };
    let mut reader = BufReader::new(read_half);
    let line = |reader: &mut BufReader<TcpStream>| -> Option<String> {
        let mut s = String::new();
        match reader.read_line(&mut s) {
            Ok(n) if n > 0 => Some(s.trim_end_matches(['\r', '\n']).to_string()),
            _ => None,
        }
    };
    let mut first_error: Option<String> = None;
    if auth.is_some() {
        match line(&mut reader) {
            Some(l) if l.starts_with('-') => first_error = Some(l),
            Some(_) => {}
            None => return io_error("reading"),
        }
    }
    match line(&mut reader) {
        Some(l) if l.starts_with('-') => first_error = first_error.or(Some(l)),
        Some(_) => {}
        None => return io_error("reading"),
    }
    let mut deleted: Vec<Bytes> = vec![Bytes::from_static(b"DEL")];
    let mut socket_error = false;
    for (k, _, _) in &found {
        let Some(l) = line(&mut reader) else {
            socket_error = true;
            break;
        };
        if first_error.is_some() || l.starts_with('-') {
            if first_error.is_none() {
                first_error = Some(l);
            }
        } else if !copy && ctx.delete(k) {
            ctx.notify(notify::GENERIC, "del", k);
            ctx.dirty(1);
            deleted.push(k.clone());
        }
    }
    if deleted.len() > 1 {
        ctx.propagate_as(deleted);
    } else if !copy {
        ctx.prevent_propagation = true;
    }
    if let Some(e) = first_error {
        return Frame::error(format!("ERR Target instance replied with error: {}", &e[1..]));
    }
    if socket_error {
        return io_error("reading");
    }
    Frame::ok()
}
