//! Bitmap commands on string values (see `types::bitops` for the bit-level semantics).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, wrongtype, Ctx, CommandSpec};
use crate::server::notify;
use crate::server::types::access::{err, int_arg};
use crate::server::types::bitops::{self, BitOp, FieldType, Overflow, RangeUnit};
use crate::server::value::Value;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("bitcount", -2, "readonly", 1, 1, 1, "read bitmap slow", bitcount)
            .group("bitmap").since("2.6.0").summary("Count set bits in a string").key_flags(&["RO", "access"]),
        cmd("bitfield", -2, "write denyoom", 1, 1, 1, "write bitmap slow", bitfield)
            .group("bitmap").since("3.2.0").summary("Perform arbitrary bitfield integer operations on strings").key_flags(&["RW", "access", "update", "variable_flags"]),
        cmd("bitfield_ro", -2, "readonly fast", 1, 1, 1, "read bitmap fast", bitfield_ro)
            .group("bitmap").since("6.0.0").summary("Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD").key_flags(&["RO", "access"]),
        cmd("bitop", -4, "write denyoom", 2, -1, 1, "write bitmap slow", bitop)
            .group("bitmap").since("2.6.0").summary("Perform bitwise operations between strings").key_flags(&["OW", "update"]),
        cmd("bitpos", -3, "readonly", 1, 1, 1, "read bitmap slow", bitpos)
            .group("bitmap").since("2.8.7").summary("Find first bit set or clear in a string").key_flags(&["RO", "access"]),
        cmd("getbit", 3, "readonly fast", 1, 1, 1, "read bitmap fast", getbit)
            .group("bitmap").since("2.2.0").summary("Returns the bit value at offset in the string value stored at key").key_flags(&["RO", "access"]),
        cmd("setbit", 4, "write denyoom", 1, 1, 1, "write bitmap slow", setbit)
            .group("bitmap").since("2.2.0").summary("Sets or clears the bit at offset in the string value stored at key").key_flags(&["RW", "access", "update"]),
    ]
}

fn max_bulk(ctx: &Ctx) -> u64 {
    ctx.srv.limits.proto_max_bulk_len as u64
}

fn offset_arg(ctx: &Ctx, b: &[u8], hash_bits: Option<u32>) -> Result<u64, Frame> {
    bitops::parse_bit_offset(b, hash_bits, max_bulk(ctx)).ok_or_else(|| err(bitops::ERR_BIT_OFFSET))
}

/// The string at `key` grown so that bit `maxbit` exists (created when missing).
/// Returns (bytes, grew-or-created).
fn string_for_bits<'c>(ctx: &'c mut Ctx, key: &[u8], maxbit: u64) -> Result<(&'c mut Vec<u8>, bool), Frame> {
    let (pos, created) = match ctx.lookup_write(key) {
        Some(pos) => (pos, false),
        None => (ctx.add_value(key, Value::string(b"")), true),
    };
    match ctx.value_at(pos) {
        Value::Str(s) => {
            let v = s.make_growable();
            let grew = bitops::grow_for_bit(v, maxbit);
            Ok((v, grew || created))
        }
        _ => Err(wrongtype()),
    }
}

/// Read-only view of a string key: Ok(None) when missing.
fn read_string(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, Frame> {
    match ctx.read_value(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.as_slice().to_vec())),
        Some(_) => Err(wrongtype()),
    }
}

fn setbit(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let offset = match offset_arg(ctx, &args[2], None) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let on = match crate::server::types::parse_canonical_i64(&args[3]) {
        Some(v) if v & !1 == 0 => v == 1,
        _ => return err(bitops::ERR_BIT_VALUE),
    };
    // Type check before creating anything.
    if let Some(pos) = ctx.lookup_write(&args[1]) {
        if !matches!(ctx.value_at(pos), Value::Str(_)) {
            return wrongtype();
        }
    }
    let (v, dirty) = match string_for_bits(ctx, &args[1], offset) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let old = bitops::get_bit(v, offset);
    bitops::set_bit(v, offset, on);
    if dirty || (old == 1) != on {
        ctx.notify(notify::STRING, "setbit", &args[1]);
        ctx.dirty(1);
    }
    Frame::Integer(old as i64)
}

fn getbit(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let offset = match offset_arg(ctx, &args[2], None) {
        Ok(o) => o,
        Err(e) => return e,
    };
    match ctx.read_value(&args[1]) {
        None => Frame::Integer(0),
        Some(Value::Str(s)) => Frame::Integer(bitops::get_bit(s.as_slice(), offset) as i64),
        Some(_) => wrongtype(),
    }
}

fn bitcount(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let s = match read_string(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(0),
        Ok(Some(s)) => s,
    };
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let (a, b) = match (int_arg(&args[2]), int_arg(&args[3])) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            if a < 0 && b < 0 && a > b {
                return Frame::Integer(0);
            }
            let unit = if args.len() == 5 {
                match RangeUnit::parse(&args[4]) {
                    Some(u) => u,
                    None => return err("ERR syntax error"),
                }
            } else {
                RangeUnit::Byte
            };
            Some((a, b, unit))
        }
        _ => return err("ERR syntax error"),
    };
    Frame::Integer(bitops::bitcount(&s, range))
}

fn bitpos(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let bit = match int_arg(&args[2]) {
        Ok(b) => b,
        Err(e) => return e,
    };
    if bit != 0 && bit != 1 {
        return err(bitops::ERR_BITPOS_BIT);
    }
    let s = match read_string(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Frame::Integer(if bit == 1 { -1 } else { 0 }),
        Ok(Some(s)) => s,
    };
    if args.len() > 6 {
        return err("ERR syntax error");
    }
    let start = match args.get(3).map(|a| int_arg(a)).transpose() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let unit = match args.get(5) {
        None => RangeUnit::Byte,
        Some(u) => match RangeUnit::parse(u) {
            Some(u) => u,
            None => return err("ERR syntax error"),
        },
    };
    let end = match args.get(4).map(|a| int_arg(a)).transpose() {
        Ok(v) => v,
        Err(e) => return e,
    };
    Frame::Integer(bitops::bitpos(&s, bit as u8, start, end, unit))
}

fn bitop(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let Some(op) = BitOp::parse(&args[1]) else {
        return err("ERR syntax error");
    };
    if op == BitOp::Not && args.len() != 4 {
        return err(bitops::ERR_BITOP_NOT);
    }
    let mut sources: Vec<Vec<u8>> = Vec::with_capacity(args.len() - 3);
    for k in &args[3..] {
        match read_string(ctx, k) {
            Err(e) => return e,
            Ok(v) => sources.push(v.unwrap_or_default()),
        }
    }
    let refs: Vec<&[u8]> = sources.iter().map(|v| v.as_slice()).collect();
    let result = bitops::bitop(op, &refs);
    let dest = &args[2];
    let n = result.len();
    if n > 0 {
        ctx.set_value(dest, Value::string(&result), false);
        ctx.notify(notify::STRING, "set", dest);
        ctx.dirty(1);
    } else if ctx.lookup_write(dest).is_some() {
        let db = ctx.db_index();
        ctx.srv.dbs[db].remove(dest);
        ctx.notify(notify::GENERIC, "del", dest);
        ctx.dirty(1);
    }
    Frame::Integer(n as i64)
}

enum FieldOp {
    Get(FieldType, u64),
    Write { ty: FieldType, offset: u64, arg: i64, incr: bool, ow: Overflow },
}

fn bitfield_generic(ctx: &mut Ctx, args: &[Bytes], readonly_cmd: bool) -> Frame {
    let mut ops = Vec::new();
    let mut ow = Overflow::Wrap;
    let mut readonly = true;
    let mut highest: u64 = 0;
    let mut j = 2;
    while j < args.len() {
        let rem = args.len() - j - 1;
        let sub = &args[j];
        let kind = if sub.eq_ignore_ascii_case(b"get") && rem >= 2 {
            0
        } else if sub.eq_ignore_ascii_case(b"set") && rem >= 3 {
            1
        } else if sub.eq_ignore_ascii_case(b"incrby") && rem >= 3 {
            2
        } else if sub.eq_ignore_ascii_case(b"overflow") && rem >= 1 {
            match Overflow::parse(&args[j + 1]) {
                Some(o) => ow = o,
                None => return err(bitops::ERR_OVERFLOW_TYPE),
            }
            j += 2;
            continue;
        } else {
            return err("ERR syntax error");
        };
        let Some(ty) = FieldType::parse(&args[j + 1]) else {
            return err(bitops::ERR_BITFIELD_TYPE);
        };
        let offset = match offset_arg(ctx, &args[j + 2], Some(ty.bits)) {
            Ok(o) => o,
            Err(e) => return e,
        };
        if kind == 0 {
            ops.push(FieldOp::Get(ty, offset));
            j += 3;
        } else {
            readonly = false;
            highest = highest.max(offset + ty.bits as u64 - 1);
            let arg = match int_arg(&args[j + 3]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            ops.push(FieldOp::Write { ty, offset, arg, incr: kind == 2, ow });
            j += 4;
        }
    }
    if readonly {
        let s = match read_string(ctx, &args[1]) {
            Err(e) => return e,
            Ok(v) => v.unwrap_or_default(),
        };
        return Frame::Array(
            ops.iter()
                .map(|op| match op {
                    FieldOp::Get(ty, off) => Frame::Integer(bitops::field_get(&s, *ty, *off)),
                    FieldOp::Write { .. } => Frame::Null,
                })
                .collect(),
        );
    }
    if readonly_cmd {
        return err(bitops::ERR_BITFIELD_RO);
    }
    if let Some(pos) = ctx.lookup_write(&args[1]) {
        if !matches!(ctx.value_at(pos), Value::Str(_)) {
            return wrongtype();
        }
    }
    let (v, dirty) = match string_for_bits(ctx, &args[1], highest) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let mut changes = 0u64;
    let mut out = Vec::with_capacity(ops.len());
    for op in &ops {
        match op {
            FieldOp::Get(ty, off) => out.push(Frame::Integer(bitops::field_get(v, *ty, *off))),
            FieldOp::Write { ty, offset, arg, incr, ow } => {
                let w = bitops::field_write(v, *ty, *offset, *arg, *incr, *ow);
                match w.reply {
                    Some(r) => {
                        if dirty || w.changed {
                            changes += 1;
                        }
                        out.push(Frame::Integer(r));
                    }
                    None => out.push(Frame::Null),
                }
            }
        }
    }
    if changes > 0 {
        ctx.notify(notify::STRING, "setbit", &args[1]);
        ctx.dirty(changes);
    }
    Frame::Array(out)
}

fn bitfield(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    bitfield_generic(ctx, args, true)
}
