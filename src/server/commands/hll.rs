//! HyperLogLog commands over Redis's exact string format (see `types::hll`).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, wrongtype, Ctx, CommandSpec};
use crate::server::notify;
use crate::server::types::access::{self, err};
use crate::server::types::hll::{self, HllError};
use crate::server::value::Value;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("pfadd", -2, "write denyoom fast", 1, 1, 1, "write hyperloglog fast", pfadd)
            .group("hyperloglog").since("2.8.9").summary("Adds the specified elements to the specified HyperLogLog.").key_flags(&["RW", "insert"]),
        cmd("pfcount", -2, "readonly may_replicate", 1, -1, 1, "read hyperloglog slow", pfcount)
            .group("hyperloglog").since("2.8.9").summary("Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).").key_flags(&["RW", "access"]),
        cmd("pfdebug", 3, "write denyoom admin", 2, 2, 1, "write hyperloglog admin slow dangerous", pfdebug)
            .group("hyperloglog").since("2.8.9").summary("Internal commands for debugging HyperLogLog values").key_flags(&["RW", "access"]),
        cmd("pfmerge", -2, "write denyoom", 1, -1, 1, "write hyperloglog slow", pfmerge)
            .group("hyperloglog").since("2.8.9").summary("Merge N different HyperLogLogs into a single one.").key_flags(&["RW", "access", "insert"]),
        cmd("pfselftest", 1, "admin", 0, 0, 0, "hyperloglog admin slow dangerous", pfselftest)
            .group("hyperloglog").since("2.8.9").summary("An internal command for testing HyperLogLog values"),
    ]
}

fn hll_err(e: HllError) -> Frame {
    Frame::error(e.to_string())
}

/// The HLL string at `key` for writing: Ok(None) missing, WRONGTYPE for non-strings, the
/// HLL-specific WRONGTYPE for strings that are not HyperLogLogs.
fn hll_for_write<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut Vec<u8>>, Frame> {
    let Some(pos) = ctx.lookup_write(key) else { return Ok(None) };
    match ctx.value_at(pos) {
        Value::Str(s) => {
            hll::validate(s.as_slice()).map_err(hll_err)?;
            Ok(Some(s.make_growable()))
        }
        _ => Err(wrongtype()),
    }
}

fn pfadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let sparse_max = access::limits(ctx).hll_sparse_max_bytes;
    let key = &args[1];
    let mut updated = false;
    let created = match hll_for_write(ctx, key) {
        Err(e) => return e,
        Ok(Some(_)) => false,
        Ok(None) => {
            ctx.add_value(key, Value::string(&hll::new_hll()));
            updated = true;
            true
        }
    };
    let _ = created;
    let buf = match hll_for_write(ctx, key) {
        Ok(Some(b)) => b,
        Ok(None) => return Frame::Integer(0),
        Err(e) => return e,
    };
    for e in &args[2..] {
        match hll::add(buf, e, sparse_max) {
            Ok(changed) => updated |= changed,
            Err(e) => return hll_err(e),
        }
    }
    if updated {
        hll::invalidate_cache(buf);
        ctx.notify(notify::STRING, "pfadd", key);
        ctx.dirty(1);
    }
    Frame::Integer(updated as i64)
}

fn pfcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    if args.len() > 2 {
        let mut max = vec![0u8; hll::HLL_REGISTERS];
        for k in &args[1..] {
            match ctx.read_value(k) {
                None => continue,
                Some(Value::Str(s)) => {
                    if let Err(e) = hll::validate(s.as_slice()).and_then(|_| hll::merge_into(&mut max, s.as_slice())) {
                        return hll_err(e);
                    }
                }
                Some(_) => return wrongtype(),
            }
        }
        return Frame::Integer(hll::count_raw(&max) as i64);
    }
    let key = &args[1];
    if ctx.read_value(key).is_none() {
        return Frame::Integer(0);
    }
    let buf = match hll_for_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(b)) => b,
    };
    match hll::count_cached(buf) {
        Err(e) => hll_err(e),
        Ok((card, rewritten)) => {
            if rewritten {
                // The cached cardinality changed the stored bytes: a write, as in Redis.
                ctx.dirty(1);
            }
            Frame::Integer(card as i64)
        }
    }
}

fn pfmerge(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let sparse_max = access::limits(ctx).hll_sparse_max_bytes;
    let mut sources: Vec<Vec<u8>> = Vec::new();
    for k in &args[2..] {
        match ctx.read_value(k) {
            None => continue,
            Some(Value::Str(s)) => {
                if let Err(e) = hll::validate(s.as_slice()) {
                    return hll_err(e);
                }
                sources.push(s.as_slice().to_vec());
            }
            Some(_) => return wrongtype(),
        }
    }
    let dest = &args[1];
    let existing = match hll_for_write(ctx, dest) {
        Err(e) => return e,
        Ok(b) => b.map(|b| b.clone()),
    };
    let refs: Vec<&[u8]> = sources.iter().map(|v| v.as_slice()).collect();
    let merged = match hll::merge(existing, &refs, sparse_max) {
        Ok(m) => m,
        Err(e) => return hll_err(e),
    };
    match ctx.lookup_write(dest) {
        Some(pos) => {
            if let Value::Str(s) = ctx.value_at(pos) {
                *s.make_growable() = merged;
            }
        }
        None => {
            ctx.add_value(dest, Value::string(&merged));
        }
    }
    ctx.notify(notify::STRING, "pfadd", dest);
    ctx.dirty(1);
    Frame::ok()
}

fn pfselftest(_ctx: &mut Ctx, _args: &[Bytes]) -> Frame {
    // Register packing round trip on every register with a pseudo-random pattern.
    let mut h = hll::new_hll();
    if hll::sparse_to_dense(&mut h).is_err() {
        return err("ERR TESTFAILED dense conversion");
    }
    let mut expect = vec![0u8; hll::HLL_REGISTERS];
    let mut x: u32 = 0x9e37_79b9;
    for (i, e) in expect.iter_mut().enumerate() {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = ((x >> 24) % 64) as u8;
        if hll::set_register(&mut h, i, v, 0).is_err() {
            return err("ERR TESTFAILED set register");
        }
        *e = v;
    }
    let mut got = vec![0u8; hll::HLL_REGISTERS];
    if hll::merge_into(&mut got, &h).is_err() || got != expect {
        return err("ERR TESTFAILED Register mismatch");
    }
    Frame::ok()
}

fn pfdebug(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let sub = args[1].to_ascii_lowercase();
    let key = &args[2];
    let buf = match hll_for_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return err("ERR The specified key does not exist"),
        Ok(Some(b)) => b,
    };
    match sub.as_slice() {
        b"getreg" => {
            if args.len() != 3 {
                return err("ERR Wrong number of arguments for the 'getreg' subcommand");
            }
            let mut regs = vec![0u8; hll::HLL_REGISTERS];
            if hll::is_sparse(buf) {
                if hll::sparse_to_dense(buf).is_err() {
                    return hll_err(HllError::Corrupted);
                }
            }
            if let Err(e) = hll::merge_into(&mut regs, buf) {
                return hll_err(e);
            }
            Frame::Array(regs.into_iter().map(|r| Frame::Integer(r as i64)).collect())
        }
        b"encoding" => {
            if args.len() != 3 {
                return err("ERR Wrong number of arguments for the 'encoding' subcommand");
            }
            Frame::Simple(if hll::is_sparse(buf) { "sparse" } else { "dense" }.to_string())
        }
        b"todense" => {
            if args.len() != 3 {
                return err("ERR Wrong number of arguments for the 'todense' subcommand");
            }
            let was_sparse = hll::is_sparse(buf);
            if hll::sparse_to_dense(buf).is_err() {
                return hll_err(HllError::Corrupted);
            }
            Frame::Integer(was_sparse as i64)
        }
        _ => err(&format!("ERR Unknown PFDEBUG subcommand '{}'", String::from_utf8_lossy(&args[1]))),
    }
}
