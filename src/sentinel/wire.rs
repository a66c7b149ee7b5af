//! Minimal RESP framing used by the sentinel until the shared `crate::resp` module lands.
//! Only what the sentinel needs: encode replies (RESP2/RESP3), parse client requests,
//! parse replies from monitored instances.

use bytes::{Buf, BytesMut};

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    NullArray,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Push(Vec<Frame>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Resp2,
    Resp3,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("Protocol error: invalid multibulk length")]
    MultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    #[error("Protocol error: bad reply frame")]
    BadReply,
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }
    pub fn bulk(s: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(s.as_ref().to_vec())
    }
    pub fn as_text(&self) -> Option<String> {
        match self {
            Frame::Simple(s) | Frame::Error(s) => Some(s.clone()),
            Frame::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Frame::Integer(i) => Some(i.to_string()),
            _ => None,
        }
    }

    pub fn encode(&self, proto: Proto, out: &mut Vec<u8>) {
        match self {
            Frame::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Frame::Error(s) => {
                out.push(b'-');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Frame::Integer(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
            Frame::Bulk(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Null => out.extend_from_slice(if proto == Proto::Resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Frame::NullArray => out.extend_from_slice(if proto == Proto::Resp3 { b"_\r\n" } else { b"*-1\r\n" }),
            Frame::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for f in items {
                    f.encode(proto, out);
                }
            }
            Frame::Push(items) => {
                let head = if proto == Proto::Resp3 { '>' } else { '*' };
                out.extend_from_slice(format!("{head}{}\r\n", items.len()).as_bytes());
                for f in items {
                    f.encode(proto, out);
                }
            }
            Frame::Map(pairs) => {
                if proto == Proto::Resp3 {
                    out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                } else {
                    out.extend_from_slice(format!("*{}\r\n", pairs.len() * 2).as_bytes());
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
        }
    }
}

/// Encodes a command as a multibulk array of bulk strings.
pub fn encode_command<S: AsRef<[u8]>>(args: &[S], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..].windows(2).position(|w| w == b"\r\n").map(|p| p + from)
}

const MAX_INLINE: usize = 64 * 1024;
const MAX_BULK: i64 = 512 * 1024 * 1024;

/// Parses one client request (multibulk or inline). `Ok(None)` until complete.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<Vec<Vec<u8>>>, WireError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        let Some(end) = buf.iter().position(|&c| c == b'\n') else {
            if buf.len() > MAX_INLINE {
                return Err(WireError::InlineTooBig);
            }
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&buf[..end]).trim_end_matches('\r').to_string();
        buf.advance(end + 1);
        let args = super::config::split_args(&line).map_err(|_| WireError::UnbalancedQuotes)?;
        return Ok(Some(args.into_iter().map(String::into_bytes).collect()));
    }
    let Some(end) = find_crlf(buf, 0) else {
        if buf.len() > MAX_INLINE {
            return Err(WireError::MultibulkLength);
        }
        return Ok(None);
    };
    let n: i64 = std::str::from_utf8(&buf[1..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(WireError::MultibulkLength)?;
    if n > 1024 * 1024 {
        return Err(WireError::MultibulkLength);
    }
    let mut pos = end + 2;
    let mut args = Vec::new();
    for _ in 0..n.max(0) {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(WireError::ExpectedDollar(buf[pos] as char));
        }
        let Some(e) = find_crlf(buf, pos) else { return Ok(None) };
        let len: i64 = std::str::from_utf8(&buf[pos + 1..e])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(WireError::BulkLength)?;
        if !(0..=MAX_BULK).contains(&len) {
            return Err(WireError::BulkLength);
        }
        let start = e + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        args.push(buf[start..stop].to_vec());
        pos = stop + 2;
    }
    buf.advance(pos);
    Ok(Some(args))
}

/// Parses one reply frame (RESP2 or RESP3) from an instance. `Ok(None)` until complete.
pub fn parse_reply(buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
    match parse_at(buf, 0)? {
        Some((frame, used)) => {
            buf.advance(used);
            Ok(Some(frame))
        }
        None => Ok(None),
    }
}

fn parse_at(buf: &[u8], pos: usize) -> Result<Option<(Frame, usize)>, WireError> {
    if pos >= buf.len() {
        return Ok(None);
    }
    let Some(e) = find_crlf(buf, pos) else { return Ok(None) };
    let line = std::str::from_utf8(&buf[pos + 1..e]).map_err(|_| WireError::BadReply)?;
    let next = e + 2;
    let num = || line.parse::<i64>().map_err(|_| WireError::BadReply);
    match buf[pos] {
        b'+' => Ok(Some((Frame::Simple(line.into()), next))),
        b'-' => Ok(Some((Frame::Error(line.into()), next))),
        b':' => Ok(Some((Frame::Integer(num()?), next))),
        b'_' => Ok(Some((Frame::Null, next))),
        b'#' => Ok(Some((Frame::Integer((line == "t") as i64), next))),
        b',' | b'(' => Ok(Some((Frame::Simple(line.into()), next))),
        b'$' | b'=' | b'!' => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((Frame::Null, next)));
            }
            let stop = next + n as usize;
            if buf.len() < stop + 2 {
                return Ok(None);
            }
            Ok(Some((Frame::Bulk(buf[next..stop].to_vec()), stop + 2)))
        }
        kind @ (b'*' | b'~' | b'>' | b'%' | b'|') => {
            let n = num()?;
            if n < 0 {
                return Ok(Some((Frame::NullArray, next)));
            }
            let count = if kind == b'%' || kind == b'|' { n * 2 } else { n };
            let mut items = Vec::with_capacity(count.min(1024) as usize);
            let mut p = next;
            for _ in 0..count {
                match parse_at(buf, p)? {
                    Some((f, np)) => {
                        items.push(f);
                        p = np;
                    }
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // attribute: skip it and return the frame that follows
                return parse_at(buf, p);
            }
            let frame = if kind == b'>' { Frame::Push(items) } else { Frame::Array(items) };
            Ok(Some((frame, p)))
        }
        _ => Err(WireError::BadReply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_multibulk_and_inline() {
        let mut b = BytesMut::from(&b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\nPING x\r\n"[..]);
        assert_eq!(parse_request(&mut b).unwrap().unwrap(), vec![b"PING".to_vec(), b"hi".to_vec()]);
        assert_eq!(parse_request(&mut b).unwrap().unwrap(), vec![b"PING".to_vec(), b"x".to_vec()]);
        assert!(b.is_empty());
        let mut partial = BytesMut::from(&b"*2\r\n$4\r\nPI"[..]);
        assert_eq!(parse_request(&mut partial).unwrap(), None);
        let mut bad = BytesMut::from(&b"*x\r\n"[..]);
        assert_eq!(parse_request(&mut bad), Err(WireError::MultibulkLength));
    }

    #[test]
    fn reply_nested() {
        let mut b = BytesMut::from(&b"*3\r\n:1\r\n$1\r\n*\r\n:0\r\n"[..]);
        assert_eq!(
            parse_reply(&mut b).unwrap().unwrap(),
            Frame::Array(vec![Frame::Integer(1), Frame::bulk("*"), Frame::Integer(0)])
        );
        let mut partial = BytesMut::from(&b"*2\r\n:1\r\n"[..]);
        assert_eq!(parse_reply(&mut partial).unwrap(), None);
    }

    #[test]
    fn map_encodes_flat_in_resp2() {
        let f = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        let mut v = Vec::new();
        f.encode(Proto::Resp2, &mut v);
        assert_eq!(v, b"*2\r\n$1\r\na\r\n:1\r\n");
        v.clear();
        f.encode(Proto::Resp3, &mut v);
        assert_eq!(v, b"%1\r\n$1\r\na\r\n:1\r\n");
    }
}
