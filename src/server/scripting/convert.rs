//! Type conversions between replies and Lua values, as Redis 7.0 does them
//! (`redisProtocolToLuaType*` and `luaReplyToRedisReply` in script_lua.c).

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use super::engine::error_table;
use crate::resp::{format_double, Frame};

/// Redis converts a script's reply on its Lua stack (Lua 5.1's LUAI_MAXCSTACK, 8000 slots):
/// every value converted first checks for 4 free slots, an array level holds one more, a
/// map or set level three (measured against Redis 7.0). A value past the limit becomes
/// "reached lua stack limit", which also ends a table that contains itself. The runtime's
/// threads have a stack sized for this recursion (`server::SCRIPT_THREAD_STACK`).
const LUA_STACK_LIMIT: usize = 7995;
const ARRAY_LEVEL_SLOTS: usize = 1;
const MAP_LEVEL_SLOTS: usize = 3;

/// A command's reply as the script sees it. `resp3` is the protocol the script chose with
/// `redis.setresp`: under RESP2 the RESP3-only types arrive as their RESP2 forms.
pub fn reply_to_lua(lua: &Lua, frame: &Frame, resp3: bool) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Simple(s) => Value::Table(single_field(lua, "ok", lua.create_string(s)?)?),
        Frame::Error(e) => {
            let mut buf = Vec::with_capacity(e.len() + 1);
            buf.push(b'-');
            buf.extend_from_slice(e.as_bytes());
            Value::Table(error_table(lua, &buf)?)
        }
        Frame::Integer(n) => Value::Number(*n as f64),
        Frame::Bulk(b) => Value::String(lua.create_string(b)?),
        Frame::Null | Frame::NullArray if !resp3 => Value::Boolean(false),
        Frame::NullArray => Value::Boolean(false),
        // Attributes are metadata before a reply, not a reply: a script sees nothing.
        Frame::Null | Frame::Attribute(_) => Value::Nil,
        Frame::Array(items) | Frame::Push(items) => Value::Table(sequence(lua, items, resp3)?),
        Frame::Set(items) if !resp3 => Value::Table(sequence(lua, items, resp3)?),
        Frame::Set(items) => {
            let set = lua.create_table_with_capacity(0, items.len())?;
            for item in items {
                set.raw_set(reply_to_lua(lua, item, resp3)?, true)?;
            }
            Value::Table(single_field(lua, "set", set)?)
        }
        Frame::Map(pairs) if !resp3 => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                t.raw_set(2 * i + 1, reply_to_lua(lua, k, resp3)?)?;
                t.raw_set(2 * i + 2, reply_to_lua(lua, v, resp3)?)?;
            }
            Value::Table(t)
        }
        Frame::Map(pairs) => {
            let map = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
            }
            Value::Table(single_field(lua, "map", map)?)
        }
        Frame::Double(d) if !resp3 => Value::String(lua.create_string(format_double(*d))?),
        Frame::Double(d) => Value::Table(single_field(lua, "double", *d)?),
        Frame::DoubleText(text) if !resp3 => Value::String(lua.create_string(text)?),
        Frame::DoubleText(text) => Value::Table(single_field(lua, "double", text.parse::<f64>().unwrap_or(0.0))?),
        Frame::Boolean(b) if !resp3 => Value::Number(if *b { 1.0 } else { 0.0 }),
        Frame::Boolean(b) => Value::Boolean(*b),
        Frame::BigNumber(n) if !resp3 => Value::String(lua.create_string(n)?),
        Frame::BigNumber(n) => Value::Table(single_field(lua, "big_number", lua.create_string(n)?)?),
        Frame::Verbatim(_, text) if !resp3 => Value::String(lua.create_string(text)?),
        Frame::Verbatim(format, text) => {
            let inner = lua.create_table_with_capacity(0, 2)?;
            inner.raw_set("string", lua.create_string(text)?)?;
            inner.raw_set("format", lua.create_string(format)?)?;
            Value::Table(single_field(lua, "verbatim_string", inner)?)
        }
    })
}

fn single_field(lua: &Lua, name: &str, value: impl mlua::IntoLua) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(name, value)?;
    Ok(t)
}

fn sequence(lua: &Lua, items: &[Frame], resp3: bool) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, reply_to_lua(lua, item, resp3)?)?;
    }
    Ok(t)
}

/// The reply for a script's return value. `resp3` is the script's protocol (booleans are
/// `:1` / null under RESP2 and true booleans under RESP3).
pub fn lua_to_reply(value: &Value, resp3: bool) -> Frame {
    convert_value(value, resp3, 0)
}

/// Redis's error for a value past its Lua stack. mlua holds every open level of the
/// conversion in its reference stack, which Lua 5.1 bounds at 8000 slots too: when that is
/// full (a few levels short of Redis's limit) the value gets the same error.
fn stack_limit_error() -> Frame {
    Frame::error("ERR reached lua stack limit")
}

fn convert_value(value: &Value, resp3: bool, slots: usize) -> Frame {
    if slots >= LUA_STACK_LIMIT {
        return stack_limit_error();
    }
    match value {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) if resp3 => Frame::Boolean(*b),
        Value::Boolean(true) => Frame::Integer(1),
        Value::Integer(n) => Frame::Integer(*n),
        Value::Number(n) => Frame::Integer(c_double_to_i64(*n)),
        Value::Table(t) => convert_table(t, resp3, slots),
        _ => Frame::Null,
    }
}

/// C's `(long long)` cast of a double on x86-64: out of range and NaN give i64::MIN.
fn c_double_to_i64(n: f64) -> i64 {
    if n.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// A string field of a reply table; Err when mlua's reference stack is full.
fn string_field(t: &Table, name: &str) -> mlua::Result<Option<mlua::LuaString>> {
    Ok(match t.raw_get::<Value>(name)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// Redis's single-line text of a status or big number: CR and LF become spaces.
fn one_line(s: &mlua::LuaString) -> String {
    String::from_utf8_lossy(&s.as_bytes()).replace(['\r', '\n'], " ")
}

fn convert_table(t: &Table, resp3: bool, slots: usize) -> Frame {
    table_frame(t, resp3, slots).unwrap_or_else(|_| stack_limit_error())
}

fn table_frame(t: &Table, resp3: bool, slots: usize) -> mlua::Result<Frame> {
    if let Some(err) = string_field(t, "err")? {
        return Ok(Frame::Error(script_error_text(&err.as_bytes())));
    }
    if let Some(ok) = string_field(t, "ok")? {
        let ok = ok.as_bytes();
        // Redis copies it with sdsnew: it stops at the first NUL.
        let end = ok.iter().position(|&b| b == 0).unwrap_or(ok.len());
        return Ok(Frame::Simple(String::from_utf8_lossy(&ok[..end]).replace(['\r', '\n'], " ")));
    }
    match t.raw_get::<Value>("double")? {
        Value::Number(d) => return Ok(Frame::Double(d)),
        Value::Integer(d) => return Ok(Frame::Double(d as f64)),
        _ => {}
    }
    if let Some(n) = string_field(t, "big_number")? {
        return Ok(Frame::BigNumber(one_line(&n)));
    }
    if let Value::Table(v) = t.raw_get::<Value>("verbatim_string")? {
        if let (Some(format), Some(text)) = (string_field(&v, "format")?, string_field(&v, "string")?) {
            let format = String::from_utf8_lossy(&format.as_bytes()).chars().take(3).collect();
            return Ok(Frame::Verbatim(format, Bytes::copy_from_slice(&text.as_bytes())));
        }
    }
    if let Value::Table(map) = t.raw_get::<Value>("map")? {
        let mut pairs = Vec::new();
        for pair in map.pairs::<Value, Value>() {
            let (k, v) = pair?;
            pairs.push((convert_value(&k, resp3, slots + MAP_LEVEL_SLOTS), convert_value(&v, resp3, slots + MAP_LEVEL_SLOTS)));
        }
        return Ok(Frame::Map(pairs));
    }
    if let Value::Table(set) = t.raw_get::<Value>("set")? {
        let mut items = Vec::new();
        for pair in set.pairs::<Value, Value>() {
            let (k, _) = pair?;
            items.push(convert_value(&k, resp3, slots + MAP_LEVEL_SLOTS));
        }
        return Ok(Frame::Set(items));
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i)? {
            Value::Nil => break,
            v => items.push(convert_value(&v, resp3, slots + ARRAY_LEVEL_SLOTS)),
        }
    }
    Ok(Frame::Array(items))
}

/// An error reply made from a script's `{err=...}`: Redis writes it as `-<text>` after
/// trimming CR/LF at the ends and turning inner ones into spaces.
pub fn script_error_text(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    s.trim_matches(['\r', '\n']).replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_truncate_as_c_casts() {
        assert_eq!(lua_to_reply(&Value::Number(3.99), false), Frame::Integer(3));
        assert_eq!(lua_to_reply(&Value::Number(-3.99), false), Frame::Integer(-3));
        assert_eq!(lua_to_reply(&Value::Number(f64::NAN), false), Frame::Integer(i64::MIN));
        assert_eq!(lua_to_reply(&Value::Boolean(false), false), Frame::Null);
        assert_eq!(lua_to_reply(&Value::Boolean(false), true), Frame::Boolean(false));
    }

    #[test]
    fn arrays_stop_at_the_first_nil_and_nested_self_references_end() {
        let lua = Lua::new();
        let t: Table = lua.load("return {1, 'two', nil, 4}").eval().expect("table");
        assert_eq!(lua_to_reply(&Value::Table(t), false), Frame::Array(vec![Frame::Integer(1), Frame::bulk("two")]));
        // Deep but finite: the innermost level reports the stack limit. The recursion needs
        // the stack the server's threads have.
        let deepest = std::thread::Builder::new()
            .stack_size(crate::server::SCRIPT_THREAD_STACK)
            .spawn(|| {
                let lua = Lua::new();
                let t: Table = lua.load("local t = {}; t[1] = t; return t").eval().expect("table");
                let mut f = lua_to_reply(&Value::Table(t), false);
                let mut depth = 0;
                while let Frame::Array(mut items) = f {
                    f = items.remove(0);
                    depth += 1;
                }
                (depth, f)
            })
            .expect("thread")
            .join()
            .expect("conversion");
        // Redis's limit, or a few levels before it where mlua's reference stack is full.
        assert!(deepest.0 <= LUA_STACK_LIMIT && deepest.0 + 16 >= LUA_STACK_LIMIT, "depth {}", deepest.0);
        assert!(deepest.1.is_error());
    }

    #[test]
    fn replies_become_lua_values_per_protocol() {
        let lua = Lua::new();
        let map = Frame::Map(vec![(Frame::bulk("f"), Frame::Integer(1))]);
        let Value::Table(flat) = reply_to_lua(&lua, &map, false).expect("convert") else { panic!() };
        assert_eq!(flat.raw_len(), 2);
        let Value::Table(wrapped) = reply_to_lua(&lua, &map, true).expect("convert") else { panic!() };
        assert!(matches!(wrapped.raw_get::<Value>("map"), Ok(Value::Table(_))));
        assert_eq!(reply_to_lua(&lua, &Frame::Null, false).expect("convert"), Value::Boolean(false));
        assert_eq!(reply_to_lua(&lua, &Frame::Null, true).expect("convert"), Value::Nil);
    }
}
