//! The Lua C libraries Redis bundles, in Rust (mlua ships none of them): `bit` (LuaBitOp)
//! and `cjson` (lua-cjson 2.1's encode/decode with its defaults), `cmsgpack` (lua_cmsgpack
//! 0.4's pack/unpack/unpack_one/unpack_limit) and `struct` (lua_struct's pack/unpack/size).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::engine::{lua_type_name, raise, where_prefix};
use crate::resp::format_g;

/// `cjson.null`: a NULL light userdata, as lua-cjson's.
fn json_null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// Registers `bit` and `cjson` as globals of the (not yet protected) sandbox.
pub fn register(lua: &Lua, globals: &Table, runtime: &Table) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    type BitOp = fn(&[i32]) -> i32;
    let ops: [(&str, usize, BitOp); 12] = [
        ("tobit", 1, |a| a[0]),
        ("bnot", 1, |a| !a[0]),
        ("band", 0, |a| a.iter().fold(-1, |x, y| x & y)),
        ("bor", 0, |a| a.iter().fold(0, |x, y| x | y)),
        ("bxor", 0, |a| a.iter().fold(0, |x, y| x ^ y)),
        ("lshift", 2, |a| ((a[0] as u32) << (a[1] & 31)) as i32),
        ("rshift", 2, |a| ((a[0] as u32) >> (a[1] & 31)) as i32),
        ("arshift", 2, |a| a[0] >> (a[1] & 31)),
        ("rol", 2, |a| (a[0] as u32).rotate_left((a[1] & 31) as u32) as i32),
        ("ror", 2, |a| (a[0] as u32).rotate_right((a[1] & 31) as u32) as i32),
        ("bswap", 1, |a| a[0].swap_bytes()),
        ("tohex", 0, |_| 0),
    ];
    for (name, fixed, op) in ops {
        let rt = runtime.clone();
        let f = if name == "tohex" {
            lua.create_function(move |lua, args: MultiValue| {
                let x = bit_arg(lua, &rt, &args, 0, "tohex")?;
                let mut n = if args.len() > 1 { bit_arg(lua, &rt, &args, 1, "tohex")? } else { 8 };
                let upper = n < 0;
                if upper {
                    n = n.wrapping_neg();
                }
                let n = n.clamp(0, 8) as usize;
                let hex = if upper { format!("{:08X}", x as u32) } else { format!("{:08x}", x as u32) };
                Ok(hex[8 - n..].to_string())
            })?
        } else {
            lua.create_function(move |lua, args: MultiValue| {
                let count = if fixed == 0 { args.len().max(1) } else { fixed };
                let mut values = Vec::with_capacity(count);
                for i in 0..count {
                    values.push(bit_arg(lua, &rt, &args, i, name)?);
                }
                Ok(op(&values) as f64)
            })?
        };
        bit.raw_set(name, f)?;
    }
    globals.raw_set("bit", bit)?;

    let cjson = lua.create_table()?;
    let cfg = Arc::new(CjsonCfg {
        encode_max_depth: AtomicUsize::new(MAX_DEPTH),
        decode_max_depth: AtomicUsize::new(MAX_DEPTH),
        encode_invalid_numbers: AtomicU8::new(0),
        decode_invalid_numbers: AtomicU8::new(1),
        encode_keep_buffer: AtomicU8::new(1),
    });
    type IntSetting = fn(&CjsonCfg) -> &AtomicUsize;
    let ints: [(&str, IntSetting, i64, i64); 2] = [("encode_max_depth", |c| &c.encode_max_depth, 1, i32::MAX as i64), ("decode_max_depth", |c| &c.decode_max_depth, 1, i32::MAX as i64)];
    for (name, setting, min, max) in ints {
        let (rt, cfg) = (runtime.clone(), cfg.clone());
        cjson.raw_set(name, lua.create_function(move |lua, args: MultiValue| int_option(&rt, lua, name, &args, setting(&cfg), min, max))?)?;
    }
    type EnumSetting = fn(&CjsonCfg) -> &AtomicU8;
    let enums: [(&str, EnumSetting, &'static [&'static str]); 3] = [
        ("encode_invalid_numbers", |c| &c.encode_invalid_numbers, &["off", "on", "null"]),
        ("decode_invalid_numbers", |c| &c.decode_invalid_numbers, &["off", "on"]),
        ("encode_keep_buffer", |c| &c.encode_keep_buffer, &["off", "on"]),
    ];
    for (name, setting, options) in enums {
        let (rt, cfg) = (runtime.clone(), cfg.clone());
        cjson.raw_set(name, lua.create_function(move |lua, args: MultiValue| enum_option(&rt, lua, name, &args, setting(&cfg), options))?)?;
    }
    let rt = runtime.clone();
    let enc_cfg = cfg.clone();
    cjson.raw_set(
        "encode",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return raise(&rt, format!("{}bad argument #1 to 'encode' (expected 1 argument)", where_prefix(lua)));
            }
            let mut out = Vec::new();
            let c = EncCfg { max_depth: enc_cfg.encode_max_depth.load(Ordering::Relaxed), invalid: enc_cfg.encode_invalid_numbers.load(Ordering::Relaxed) };
            match encode(&args[0], 0, &mut out, c) {
                Ok(()) => Ok(lua.create_string(out)?),
                Err(e) => raise(&rt, format!("{}{e}", where_prefix(lua))),
            }
        })?,
    )?;
    let rt = runtime.clone();
    let dec_cfg = cfg.clone();
    cjson.raw_set(
        "decode",
        lua.create_function(move |lua, args: MultiValue| {
            let text = match args.front() {
                Some(Value::String(s)) if args.len() == 1 => s.as_bytes().to_vec(),
                // luaL_checklstring: a number is its string form.
                Some(v @ (Value::Integer(_) | Value::Number(_))) if args.len() == 1 => {
                    lua.coerce_string(v.clone())?.map(|s| s.as_bytes().to_vec()).unwrap_or_default()
                }
                Some(v) if args.len() == 1 => {
                    return raise(&rt, format!("{}bad argument #1 to 'decode' (string expected, got {})", where_prefix(lua), lua_type_name(v)));
                }
                _ => return raise(&rt, format!("{}bad argument #1 to 'decode' (expected 1 argument)", where_prefix(lua))),
            };
            let mut p = Parser { s: &text, pos: 0, lua, max_depth: dec_cfg.decode_max_depth.load(Ordering::Relaxed) };
            match p.document() {
                Ok(v) => Ok(v),
                Err(e) => raise(&rt, format!("{}{e}", where_prefix(lua))),
            }
        })?,
    )?;
    cjson.raw_set("null", json_null())?;
    globals.raw_set("cjson", cjson)?;
    Ok(())
}

/// LuaBitOp's argument conversion: the number rounded to an integer, its low 32 bits.
fn bit_arg(lua: &Lua, runtime: &Table, args: &MultiValue, i: usize, name: &str) -> mlua::Result<i32> {
    let v = args.get(i).cloned().unwrap_or(Value::Nil);
    match lua.coerce_number(v.clone()) {
        Ok(Some(x)) => {
            // (x + 2^52 + 2^51): rounds to nearest even, the low word holds the integer.
            let b = (x + 6_755_399_441_055_744.0).to_bits();
            Ok(b as u32 as i32)
        }
        _ => {
            let got = if i >= args.len() { "no value" } else { lua_type_name(&v) };
            raise(runtime, format!("{}bad argument #{} to '{name}' (number expected, got {got})", where_prefix(lua), i + 1))
        }
    }
}

const MAX_DEPTH: usize = 1000;

/// lua-cjson's per-state settings (`cjson.encode_max_depth` & co.).
#[derive(Debug)]
struct CjsonCfg {
    encode_max_depth: AtomicUsize,
    decode_max_depth: AtomicUsize,
    /// 0 off (error), 1 on, 2 null.
    encode_invalid_numbers: AtomicU8,
    decode_invalid_numbers: AtomicU8,
    encode_keep_buffer: AtomicU8,
}

#[derive(Debug, Clone, Copy)]
struct EncCfg {
    max_depth: usize,
    invalid: u8,
}

/// lua-cjson's `json_integer_option`: nil leaves the setting, returns it.
fn int_option(rt: &Table, lua: &Lua, name: &str, args: &MultiValue, setting: &AtomicUsize, min: i64, max: i64) -> mlua::Result<Value> {
    if args.len() > 1 {
        return raise(rt, format!("{}bad argument #2 to '{name}' (found too many arguments)", where_prefix(lua)));
    }
    match args.front() {
        None | Some(Value::Nil) => {}
        Some(v) => match lua.coerce_number(v.clone()).ok().flatten() {
            Some(n) if (min as f64..=max as f64).contains(&n.trunc()) => setting.store(n.trunc() as usize, Ordering::Relaxed),
            Some(_) => return raise(rt, format!("{}bad argument #1 to '{name}' (expected integer between {min} and {max})", where_prefix(lua))),
            None => return raise(rt, format!("{}bad argument #1 to '{name}' (number expected, got {})", where_prefix(lua), lua_type_name(v))),
        },
    }
    Ok(Value::Integer(setting.load(Ordering::Relaxed) as _))
}

/// lua-cjson's `json_enum_option` with `options` ("off", "on"[, "null"]): a boolean or one
/// of the names; returns a boolean for off/on, else the name.
fn enum_option(rt: &Table, lua: &Lua, name: &str, args: &MultiValue, setting: &AtomicU8, options: &[&str]) -> mlua::Result<Value> {
    if args.len() > 1 {
        return raise(rt, format!("{}bad argument #2 to '{name}' (found too many arguments)", where_prefix(lua)));
    }
    match args.front() {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => setting.store(*b as u8, Ordering::Relaxed),
        Some(v) => {
            let text = lua.coerce_string(v.clone()).ok().flatten().map(|s| s.as_bytes().to_vec()).unwrap_or_default();
            match options.iter().position(|o| o.as_bytes() == text.as_slice()) {
                Some(i) => setting.store(i as u8, Ordering::Relaxed),
                None => {
                    let shown = String::from_utf8_lossy(&text);
                    return raise(rt, format!("{}bad argument #1 to '{name}' (invalid option '{shown}')", where_prefix(lua)));
                }
            }
        }
    }
    let v = setting.load(Ordering::Relaxed);
    Ok(if v <= 1 { Value::Boolean(v == 1) } else { Value::String(lua.create_string(options[v as usize])?) })
}

fn encode(v: &Value, depth: usize, out: &mut Vec<u8>, cfg: EncCfg) -> Result<(), String> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(format_g(*i as f64, 14).as_bytes()),
        Value::Number(n) if !n.is_finite() => match cfg.invalid {
            0 => return Err("Cannot serialise number: must not be NaN or Inf".into()),
            1 if n.is_nan() => out.extend_from_slice(b"nan"),
            1 => out.extend_from_slice(if *n < 0.0 { b"-inf" } else { b"inf" }),
            _ => out.extend_from_slice(b"null"),
        },
        Value::Number(n) => out.extend_from_slice(format_g(*n, 14).as_bytes()),
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > cfg.max_depth {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            encode_table(t, depth, out, cfg)?;
        }
        other => return Err(format!("Cannot serialise {}: type not supported", lua_type_name(other))),
    }
    Ok(())
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// lua-cjson's `lua_array_length`: Some(n) for an array (positive integer keys only; not
/// too sparse), None for an object.
fn array_length(t: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n < 1.0 || n.floor() != n {
            return Ok(None);
        }
        max = max.max(n as usize);
        items += 1;
    }
    // encode_sparse_array defaults: convert off, ratio 2, safe 10.
    if max > 10 && max > items * 2 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(if max > 0 { Some(max) } else { None })
}

fn encode_table(t: &Table, depth: usize, out: &mut Vec<u8>, cfg: EncCfg) -> Result<(), String> {
    if let Some(len) = array_length(t)? {
        out.push(b'[');
        for i in 1..=len {
            if i > 1 {
                out.push(b',');
            }
            encode(&t.raw_get::<Value>(i).map_err(|e| e.to_string())?, depth, out, cfg)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    let mut first = true;
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        if !first {
            out.push(b',');
        }
        first = false;
        match &k {
            Value::String(s) => encode_string(&s.as_bytes(), out),
            Value::Integer(_) | Value::Number(_) => {
                out.push(b'"');
                encode(&k, depth, out, cfg)?;
                out.push(b'"');
            }
            other => return Err(format!("Cannot serialise {}: table key must be a number or string", lua_type_name(other))),
        }
        out.push(b':');
        encode(&v, depth, out, cfg)?;
    }
    out.push(b'}');
    Ok(())
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    lua: &'a Lua,
    max_depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn error(&self, expected: &str) -> String {
        let found = match self.s.get(self.pos) {
            None => "T_END".to_string(),
            Some(b'{') => "T_OBJ_BEGIN".into(),
            Some(b'}') => "T_OBJ_END".into(),
            Some(b'[') => "T_ARR_BEGIN".into(),
            Some(b']') => "T_ARR_END".into(),
            Some(b',') => "T_COMMA".into(),
            Some(b':') => "T_COLON".into(),
            Some(b'"') => "T_STRING".into(),
            Some(_) => "invalid token".into(),
        };
        format!("Expected {expected} but found {found} at character {}", self.pos + 1)
    }

    fn document(&mut self) -> Result<Value, String> {
        let v = self.value(0)?;
        self.skip_ws();
        if self.pos < self.s.len() {
            return Err(self.error("the end"));
        }
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.skip_ws();
        let lua = self.lua;
        let e = |x: mlua::Error| x.to_string();
        match self.s.get(self.pos) {
            Some(b'{') => {
                if depth >= self.max_depth {
                    return Err(format!("Found too many nested data structures ({}) at character {}", depth + 1, self.pos + 1));
                }
                self.pos += 1;
                let t = lua.create_table().map_err(e)?;
                self.skip_ws();
                if self.s.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    self.skip_ws();
                    if self.s.get(self.pos) != Some(&b'"') {
                        return Err(self.error("object key string"));
                    }
                    let key = self.string()?;
                    self.skip_ws();
                    if self.s.get(self.pos) != Some(&b':') {
                        return Err(self.error("colon"));
                    }
                    self.pos += 1;
                    let v = self.value(depth + 1)?;
                    t.raw_set(lua.create_string(key).map_err(e)?, v).map_err(e)?;
                    self.skip_ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return Err(self.error("comma or object end")),
                    }
                }
            }
            Some(b'[') => {
                if depth >= self.max_depth {
                    return Err(format!("Found too many nested data structures ({}) at character {}", depth + 1, self.pos + 1));
                }
                self.pos += 1;
                let t = lua.create_table().map_err(e)?;
                self.skip_ws();
                if self.s.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    let v = self.value(depth + 1)?;
                    t.raw_set(i, v).map_err(e)?;
                    i += 1;
                    self.skip_ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return Err(self.error("comma or array end")),
                    }
                }
            }
            Some(b'"') => Ok(Value::String(lua.create_string(self.string()?).map_err(e)?)),
            Some(b't') if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            Some(b'f') if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            Some(b'n') if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(json_null())
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => self.number(),
            _ => Err(self.error("value")),
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while self.pos < self.s.len() && matches!(self.s[self.pos], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => {
                self.pos = start;
                Err(self.error("value"))
            }
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                self.pos = start;
                return Err(self.error("value"));
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&esc) = self.s.get(self.pos) else { break };
                    self.pos += 1;
                    match esc {
                        b'"' | b'\\' | b'/' => out.push(esc),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let hex = |p: &Self, at: usize| std::str::from_utf8(p.s.get(at..at + 4)?).ok().and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(mut cp) = hex(self, self.pos) else { break };
                            self.pos += 4;
                            if (0xD800..0xDC00).contains(&cp) && self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
                                if let Some(low) = hex(self, self.pos + 2).filter(|l| (0xDC00..0xE000).contains(l)) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                                    self.pos += 6;
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => break,
                    }
                }
                c => out.push(c),
            }
        }
        self.pos = start;
        Err(self.error("value"))
    }
}

/// Nested tables deeper than this pack as nil (lua_cmsgpack's LUACMSGPACK_MAX_NESTING).
const MSGPACK_MAX_NESTING: usize = 16;

/// Registers `cmsgpack` (lua_cmsgpack 0.4 as Redis bundles it).
pub fn register_cmsgpack(lua: &Lua, globals: &Table, runtime: &Table) -> mlua::Result<()> {
    let m = lua.create_table()?;
    let rt = runtime.clone();
    m.raw_set(
        "pack",
        lua.create_function(move |lua, args: MultiValue| {
            if args.is_empty() {
                return raise(&rt, format!("{}bad argument #0 to 'pack' (MessagePack pack needs input.)", where_prefix(lua)));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                msgpack_encode(v, 0, &mut out).map_err(mlua::Error::runtime)?;
            }
            lua.create_string(out)
        })?,
    )?;
    for (name, kind) in [("unpack", 0), ("unpack_one", 1), ("unpack_limit", 2)] {
        let rt = runtime.clone();
        m.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let data = match args.front().cloned().map(|v| lua.coerce_string(v)) {
                    Some(Ok(Some(s))) => s.as_bytes().to_vec(),
                    _ => {
                        let got = args.front().map_or("no value", lua_type_name);
                        return raise(&rt, format!("{}bad argument #1 to '{name}' (string expected, got {got})", where_prefix(lua)));
                    }
                };
                let int_arg = |i: usize| -> i64 { args.get(i).cloned().and_then(|v| lua.coerce_number(v).ok().flatten()).map_or(0, |n| n as i64) };
                let (limit, offset) = match kind {
                    0 => (0, 0),
                    1 => (1, int_arg(1)),
                    _ => (int_arg(1), int_arg(2)),
                };
                let decode_all = limit == 0 && offset == 0;
                if offset < 0 || limit < 0 {
                    return raise(&rt, format!("{}Invalid request to unpack with offset of {offset} and limit of {}.", where_prefix(lua), data.len()));
                }
                if offset as usize > data.len() {
                    return raise(&rt, format!("{}Start offset {offset} greater than input length {}.", where_prefix(lua), data.len()));
                }
                let limit = if decode_all { i64::MAX } else { limit };
                let mut cur = MsgpackCursor { data: &data, pos: offset as usize, lua, slots: args.len() };
                let mut values = Vec::new();
                while cur.pos < data.len() && (values.len() as i64) < limit {
                    cur.slots = args.len() + values.len();
                    match cur.decode() {
                        Ok(v) => values.push(v),
                        Err(MsgpackError::Eof) => return raise(&rt, format!("{}Missing bytes in input.", where_prefix(lua))),
                        Err(MsgpackError::BadFormat) => return raise(&rt, format!("{}Bad data format in input.", where_prefix(lua))),
                        Err(MsgpackError::StackOverflow) => {
                            return raise(&rt, format!("{}stack overflow (in function mp_decode_to_lua_array)", where_prefix(lua)));
                        }
                        Err(MsgpackError::Lua(e)) => return Err(e),
                    }
                }
                if !decode_all {
                    let next = if cur.pos >= data.len() { -1 } else { cur.pos as i64 };
                    values.insert(0, Value::Integer(next));
                }
                Ok(MultiValue::from_iter(values))
            })?,
        )?;
    }
    globals.raw_set("cmsgpack", m)?;
    Ok(())
}

fn msgpack_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An aggregate header: fix (up to 15), 16-bit or 32-bit length.
fn msgpack_header(fix: u8, op16: u8, n: usize, out: &mut Vec<u8>) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(op16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(op16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn msgpack_number(n: f64, out: &mut Vec<u8>) {
    // IS_INT64_EQUIVALENT; the C cast of NaN or an out-of-range value is i64::MIN.
    let as_int = if n.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) { i64::MIN } else { n as i64 };
    if !n.is_infinite() && as_int as f64 == n {
        msgpack_int(as_int, out);
    } else if (n as f32) as f64 == n {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn msgpack_encode(v: &Value, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::String(s) => {
            let s = s.as_bytes();
            let n = s.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n <= 0xff {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else if n <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(&s);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => msgpack_number(*i as f64, out),
        Value::Number(n) => msgpack_number(*n, out),
        Value::Table(t) if level < MSGPACK_MAX_NESTING => {
            let (mut count, mut max, mut array) = (0usize, 0usize, true);
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                let n = match k {
                    Value::Integer(i) => i as f64,
                    Value::Number(n) => n,
                    _ => f64::NAN,
                };
                if n.is_nan() || n <= 0.0 || n.floor() != n {
                    array = false;
                } else {
                    max = max.max(n as usize);
                }
            }
            if array && max == count {
                msgpack_header(0x90, 0xdc, t.raw_len(), out);
                for i in 1..=t.raw_len() {
                    msgpack_encode(&t.raw_get::<Value>(i)?, level + 1, out)?;
                }
            } else {
                msgpack_header(0x80, 0xde, count, out);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    msgpack_encode(&k, level + 1, out)?;
                    msgpack_encode(&v, level + 1, out)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

enum MsgpackError {
    Eof,
    BadFormat,
    /// Nested arrays filled lua_cmsgpack's Lua stack.
    StackOverflow,
    Lua(mlua::Error),
}

/// The Lua stack slots a C function may use (Lua 5.1's LUAI_MAXCSTACK).
const LUAI_MAXCSTACK: usize = 8000;

impl From<mlua::Error> for MsgpackError {
    fn from(e: mlua::Error) -> Self {
        MsgpackError::Lua(e)
    }
}

struct MsgpackCursor<'a> {
    data: &'a [u8],
    pos: usize,
    lua: &'a Lua,
    /// Slots lua_cmsgpack's decoder would hold on its Lua stack here: the arguments, the
    /// values decoded so far, and per open array its table and index, per map its table
    /// (and the key while the value decodes). Redis's nesting limit follows from it.
    slots: usize,
}

impl MsgpackCursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MsgpackError> {
        if self.data.len() - self.pos < n {
            return Err(MsgpackError::Eof);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, MsgpackError> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn string(&mut self, len: usize) -> Result<Value, MsgpackError> {
        let bytes = self.take(len)?.to_vec();
        Ok(Value::String(self.lua.create_string(bytes)?))
    }

    fn array(&mut self, len: usize) -> Result<Value, MsgpackError> {
        // mp_decode_to_lua_array checks for one free slot once its table is pushed.
        if self.slots + 2 > LUAI_MAXCSTACK {
            return Err(MsgpackError::StackOverflow);
        }
        let t = self.lua.create_table()?;
        self.slots += 2;
        for i in 1..=len {
            let v = self.decode()?;
            t.raw_set(i, v)?;
        }
        self.slots -= 2;
        Ok(Value::Table(t))
    }

    fn map(&mut self, len: usize) -> Result<Value, MsgpackError> {
        let t = self.lua.create_table()?;
        self.slots += 1;
        for _ in 0..len {
            let k = self.decode()?;
            self.slots += 1;
            let v = self.decode()?;
            self.slots -= 1;
            if !k.is_nil() {
                t.raw_set(k, v)?;
            }
        }
        self.slots -= 1;
        Ok(Value::Table(t))
    }

    fn decode(&mut self) -> Result<Value, MsgpackError> {
        let op = self.take(1)?[0];
        Ok(match op {
            0xcc => Value::Number(self.be(1)? as f64),
            0xcd => Value::Number(self.be(2)? as f64),
            0xce => Value::Number(self.be(4)? as f64),
            0xcf => Value::Number(self.be(8)? as f64),
            0xd0 => Value::Number(self.be(1)? as u8 as i8 as f64),
            0xd1 => Value::Number(self.be(2)? as u16 as i16 as f64),
            0xd2 => Value::Number(self.be(4)? as u32 as i32 as f64),
            0xd3 => Value::Number(self.be(8)? as i64 as f64),
            0xc0 => Value::Nil,
            0xc3 => Value::Boolean(true),
            0xc2 => Value::Boolean(false),
            0xca => Value::Number(f32::from_bits(self.be(4)? as u32) as f64),
            0xcb => Value::Number(f64::from_bits(self.be(8)?)),
            0xd9 => {
                let n = self.be(1)? as usize;
                self.string(n)?
            }
            0xda => {
                let n = self.be(2)? as usize;
                self.string(n)?
            }
            0xdb => {
                let n = self.be(4)? as usize;
                self.string(n)?
            }
            0xdc => {
                let n = self.be(2)? as usize;
                self.array(n)?
            }
            0xdd => {
                let n = self.be(4)? as usize;
                self.array(n)?
            }
            0xde => {
                let n = self.be(2)? as usize;
                self.map(n)?
            }
            0xdf => {
                let n = self.be(4)? as usize;
                self.map(n)?
            }
            op if op & 0x80 == 0 => Value::Number(op as f64),
            op if op & 0xe0 == 0xe0 => Value::Number(op as i8 as f64),
            op if op & 0xe0 == 0xa0 => self.string((op & 0x1f) as usize)?,
            op if op & 0xf0 == 0x90 => self.array((op & 0x0f) as usize)?,
            op if op & 0xf0 == 0x80 => self.map((op & 0x0f) as usize)?,
            _ => return Err(MsgpackError::BadFormat),
        })
    }
}

/// Registers `struct` (Roberto Ierusalimschy's lua_struct as Redis bundles it: pack, unpack,
/// size; x86-64 sizes, little-endian native order, maximum alignment 8).
pub fn register_struct(lua: &Lua, globals: &Table, runtime: &Table) -> mlua::Result<()> {
    let st = lua.create_table()?;
    for name in ["pack", "unpack", "size"] {
        let rt = runtime.clone();
        st.raw_set(
            name,
            lua.create_function(move |lua, args: MultiValue| {
                let result = match name {
                    "pack" => struct_pack(lua, &args).and_then(|b| Ok(MultiValue::from_iter([Value::String(lua.create_string(b)?)]))),
                    "unpack" => struct_unpack(lua, &args),
                    _ => struct_size(lua, &args).map(|n| MultiValue::from_iter([Value::Integer(n as i64)])),
                };
                match result {
                    Ok(v) => Ok(v),
                    Err(StructError::Lua(e)) => Err(e),
                    Err(StructError::Arg(n, msg)) => raise(&rt, format!("{}bad argument #{n} to '{name}' ({msg})", where_prefix(lua))),
                    Err(StructError::Plain(msg)) => raise(&rt, format!("{}{msg}", where_prefix(lua))),
                }
            })?,
        )?;
    }
    globals.raw_set("struct", st)?;
    Ok(())
}

enum StructError {
    Arg(usize, String),
    Plain(String),
    Lua(mlua::Error),
}

impl From<mlua::Error> for StructError {
    fn from(e: mlua::Error) -> Self {
        StructError::Lua(e)
    }
}

const STRUCT_MAXINTSIZE: usize = 32;
const STRUCT_MAXALIGN: usize = 8;

struct StructFormat<'a> {
    fmt: &'a [u8],
    pos: usize,
    little: bool,
    align: usize,
}

impl StructFormat<'_> {
    fn getnum(&mut self, default: usize) -> Result<usize, StructError> {
        if !self.fmt.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(d) = self.fmt.get(self.pos).filter(|c| c.is_ascii_digit()) {
            a = a.checked_mul(10).and_then(|a| a.checked_add((d - b'0') as usize)).filter(|&a| a <= i32::MAX as usize).ok_or_else(|| StructError::Plain("integral size overflow".into()))?;
            self.pos += 1;
        }
        Ok(a)
    }

    /// `optsize`: the size of option `opt` (reading its digits).
    fn size(&mut self, opt: u8) -> Result<usize, StructError> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.getnum(1)?,
            b'i' | b'I' => {
                let sz = self.getnum(4)?;
                if sz > STRUCT_MAXINTSIZE {
                    return Err(StructError::Plain(format!("integral size {sz} is larger than limit of {STRUCT_MAXINTSIZE}")));
                }
                sz
            }
            _ => 0,
        })
    }

    fn to_align(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    /// `controloptions`: endianness, alignment, spaces; anything else is invalid.
    fn control(&mut self, opt: u8) -> Result<(), StructError> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.getnum(STRUCT_MAXALIGN)?;
                if a == 0 || a & (a - 1) != 0 {
                    return Err(StructError::Plain(format!("alignment {a} is not a power of 2")));
                }
                self.align = a;
            }
            other => return Err(StructError::Arg(1, format!("invalid format option '{}'", other as char))),
        }
        Ok(())
    }
}

fn struct_fmt(lua: &Lua, args: &MultiValue) -> Result<Vec<u8>, StructError> {
    match args.front().cloned().map(|v| lua.coerce_string(v)) {
        Some(Ok(Some(s))) => Ok(s.as_bytes().to_vec()),
        _ => Err(StructError::Arg(1, format!("string expected, got {}", args.front().map_or("no value", lua_type_name)))),
    }
}

fn struct_number(lua: &Lua, args: &MultiValue, arg: usize) -> Result<f64, StructError> {
    let v = args.get(arg - 1).cloned().unwrap_or(Value::Nil);
    match lua.coerce_number(v.clone()) {
        Ok(Some(n)) => Ok(n),
        _ => Err(StructError::Arg(arg, format!("number expected, got {}", if arg > args.len() { "no value" } else { lua_type_name(&v) }))),
    }
}

fn struct_pack(lua: &Lua, args: &MultiValue) -> Result<Vec<u8>, StructError> {
    let fmt = struct_fmt(lua, args)?;
    let mut f = StructFormat { fmt: &fmt, pos: 0, little: true, align: 1 };
    let mut out = Vec::new();
    let mut arg = 2;
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let mut size = f.size(opt)?;
        let pad = f.to_align(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = struct_number(lua, args, arg)?;
                arg += 1;
                let mut value: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let mut bytes = vec![0u8; size];
                for i in 0..size {
                    let at = if f.little { i } else { size - 1 - i };
                    bytes[at] = (value & 0xff) as u8;
                    value >>= 8;
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = struct_number(lua, args, arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if f.little { v.to_le_bytes() } else { v.to_be_bytes() });
            }
            b'd' => {
                let v = struct_number(lua, args, arg)?;
                arg += 1;
                out.extend_from_slice(&if f.little { v.to_le_bytes() } else { v.to_be_bytes() });
            }
            b'c' | b's' => {
                let s = match args.get(arg - 1).cloned().map(|v| lua.coerce_string(v)) {
                    Some(Ok(Some(s))) => s.as_bytes().to_vec(),
                    _ => return Err(StructError::Arg(arg, format!("string expected, got {}", args.get(arg - 1).map_or("no value", lua_type_name)))),
                };
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // lua_struct checks after moving to the next argument.
                    return Err(StructError::Arg(arg, "string too short".into()));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            other => f.control(other)?,
        }
    }
    Ok(out)
}

fn struct_unpack(lua: &Lua, args: &MultiValue) -> Result<MultiValue, StructError> {
    let fmt = struct_fmt(lua, args)?;
    let data = match args.get(1).cloned().map(|v| lua.coerce_string(v)) {
        Some(Ok(Some(s))) => s.as_bytes().to_vec(),
        _ => return Err(StructError::Arg(2, format!("string expected, got {}", args.get(1).map_or("no value", lua_type_name)))),
    };
    let start = if args.len() > 2 && !args[2].is_nil() { struct_number(lua, args, 3)? as i64 } else { 1 };
    if start <= 0 {
        return Err(StructError::Arg(3, "offset must be 1 or greater".into()));
    }
    let mut pos = (start - 1) as usize;
    let ld = data.len();
    let mut f = StructFormat { fmt: &fmt, pos: 0, little: true, align: 1 };
    let mut out: Vec<Value> = Vec::new();
    let too_short = || StructError::Arg(2, "data string too short".into());
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let mut size = f.size(opt)?;
        pos += f.to_align(pos, opt, size);
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let bytes = &data[pos..pos + size];
                let mut l: u64 = 0;
                for i in 0..size {
                    let b = if f.little { bytes[size - 1 - i] } else { bytes[i] };
                    l = (l << 8) | b as u64;
                }
                let n = if opt.is_ascii_lowercase() {
                    let mask = (!0u64).checked_shl((size * 8).saturating_sub(1) as u32).unwrap_or(0);
                    if l & mask != 0 {
                        l |= mask;
                    }
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().expect("4 bytes");
                out.push(Value::Number(if f.little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) } as f64));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().expect("8 bytes");
                out.push(Value::Number(if f.little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) }));
            }
            b'c' => {
                if size == 0 {
                    let prev = match out.last() {
                        Some(Value::Number(n)) => *n,
                        Some(Value::String(s)) => std::str::from_utf8(&s.as_bytes()).ok().and_then(|t| t.trim().parse().ok()).ok_or_else(|| StructError::Plain("format 'c0' needs a previous size".into()))?,
                        _ => return Err(StructError::Plain("format 'c0' needs a previous size".into())),
                    };
                    out.pop();
                    size = prev as usize;
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(StructError::Plain("unfinished string in data".into()));
                };
                size = end + 1;
                out.push(Value::String(lua.create_string(&data[pos..pos + end])?));
            }
            other => f.control(other)?,
        }
        pos += size;
    }
    out.push(Value::Integer(pos as i64 + 1));
    Ok(MultiValue::from_iter(out))
}

fn struct_size(lua: &Lua, args: &MultiValue) -> Result<usize, StructError> {
    let fmt = struct_fmt(lua, args)?;
    let mut f = StructFormat { fmt: &fmt, pos: 0, little: true, align: 1 };
    let mut pos = 0;
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let size = f.size(opt)?;
        pos += f.to_align(pos, opt, size);
        if opt == b's' {
            return Err(StructError::Arg(1, "option 's' has no fixed size".into()));
        } else if opt == b'c' && size == 0 {
            return Err(StructError::Arg(1, "option 'c0' has no fixed size".into()));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt)?;
        }
        pos += size;
    }
    Ok(pos)
}
