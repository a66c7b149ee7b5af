//! Parsers: requests from clients (multi-bulk and inline, as Redis reads them) and replies
//! from servers (every RESP2/RESP3 type). Both only consume a frame once it is whole,
//! and neither panics on any input.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use super::frame::Frame;

/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest line (inline request or count line) accepted.
pub const INLINE_MAX_SIZE: usize = 64 * 1024;
/// Redis's default `proto-max-bulk-len` (512mb).
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Redis accepts multi-bulk counts up to INT_MAX.
const MAX_MULTIBULK_LEN: i64 = i32::MAX as i64;
/// Below these sizes a client that still has to authenticate may send (Redis's limits).
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;
const UNAUTHENTICATED_MAX_BULK: i64 = 16384;

/// Why a byte stream is not RESP. `Display` gives Redis's own text; reply with
/// `-ERR <text>` and close the connection, as Redis does.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    #[error("Protocol error: invalid {0} in reply")]
    InvalidReply(&'static str),
    #[error("Protocol error: unknown reply type byte '{0}'")]
    UnknownReplyType(char),
}

/// Reads client requests out of a connection buffer. Keeps the arguments of a partially
/// received multi-bulk request, so a large pipeline or a huge bulk is never re-scanned.
#[derive(Debug)]
pub struct RequestParser {
    max_bulk_len: usize,
    /// Arguments still expected for the multi-bulk request in progress.
    pending_args: usize,
    /// Length of the bulk being waited for, once its `$<len>` line is read.
    pending_bulk: Option<usize>,
    args: Vec<Bytes>,
    authenticated: bool,
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestParser {
    pub fn new() -> Self {
        RequestParser {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            pending_args: 0,
            pending_bulk: None,
            args: Vec::new(),
            authenticated: true,
        }
    }

    pub fn with_max_bulk_len(mut self, n: usize) -> Self {
        self.max_bulk_len = n;
        self
    }

    pub fn set_max_bulk_len(&mut self, n: usize) {
        self.max_bulk_len = n;
    }

    /// While a password is required and not given, Redis caps request sizes.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.authenticated = authenticated;
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// True while part of a request is buffered (used for query-buffer limits).
    pub fn in_progress(&self) -> bool {
        self.pending_args > 0
    }

    /// Parses the next request. `Ok(None)`: need more bytes. `Ok(Some(vec![]))`: an empty
    /// request (blank inline line, `*0`), which Redis silently skips.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        if self.pending_args == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                return self.parse_inline(buf);
            }
            let Some(count) = read_count_line(buf, ParseError::TooBigMultibulkCount)? else {
                return Ok(None);
            };
            let count = count.ok_or(ParseError::InvalidMultibulkLength)?;
            if count > MAX_MULTIBULK_LEN {
                return Err(ParseError::InvalidMultibulkLength);
            }
            if !self.authenticated && count > UNAUTHENTICATED_MAX_ARGS {
                return Err(ParseError::UnauthenticatedMultibulkLength);
            }
            if count <= 0 {
                return Ok(Some(Vec::new()));
            }
            self.pending_args = count as usize;
            self.args = Vec::with_capacity((count as usize).min(1024));
        }
        while self.pending_args > 0 {
            let len = match self.pending_bulk {
                Some(len) => len,
                None => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if buf[0] != b'$' {
                        let got = buf[0] as char;
                        return Err(ParseError::ExpectedBulk(got));
                    }
                    let Some(len) = read_count_line(buf, ParseError::TooBigBulkCount)? else {
                        return Ok(None);
                    };
                    let len = len.ok_or(ParseError::InvalidBulkLength)?;
                    if len < 0 || len as u64 > self.max_bulk_len as u64 {
                        return Err(ParseError::InvalidBulkLength);
                    }
                    if !self.authenticated && len > UNAUTHENTICATED_MAX_BULK {
                        return Err(ParseError::UnauthenticatedBulkLength);
                    }
                    self.pending_bulk = Some(len as usize);
                    len as usize
                }
            };
            if buf.len() < len + 2 {
                // Reserve room for the whole bulk once, so a big value is not copied around.
                buf.reserve(len + 2 - buf.len());
                return Ok(None);
            }
            let data = buf.split_to(len).freeze();
            // Redis does not check the two bytes after a bulk; it just skips them.
            buf.advance(2);
            self.args.push(data);
            self.pending_bulk = None;
            self.pending_args -= 1;
        }
        Ok(Some(std::mem::take(&mut self.args)))
    }

    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > INLINE_MAX_SIZE {
                return Err(ParseError::TooBigInline);
            }
            return Ok(None);
        };
        let mut line = buf.split_to(newline + 1);
        line.truncate(newline);
        if line.last() == Some(&b'\r') {
            line.truncate(newline - 1);
        }
        let args = split_args(&line).ok_or(ParseError::UnbalancedQuotes)?;
        Ok(Some(args.into_iter().map(Bytes::from).collect()))
    }
}

/// Reads a `<prefix><number>\r\n` line. `Ok(None)`: incomplete; `Ok(Some(None))`: not a number.
fn read_count_line(buf: &mut BytesMut, too_big: ParseError) -> Result<Option<Option<i64>>, ParseError> {
    let Some(cr) = find_crlf(buf) else {
        if buf.len() > INLINE_MAX_SIZE {
            return Err(too_big);
        }
        return Ok(None);
    };
    let number = parse_i64(&buf[1..cr]);
    buf.advance(cr + 2);
    Ok(Some(number))
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Strict decimal i64 as Redis's `string2ll`: optional '-', digits, no spaces, no '+'.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    let mut value: i128 = 0;
    for d in digits {
        value = value * 10 + (d - b'0') as i128;
    }
    if neg {
        value = -value;
        if digits == b"0" {
            return None; // "-0" is not a valid integer for Redis
        }
    }
    i64::try_from(value).ok()
}

/// Splits an inline request or a config line into arguments, as Redis's `sdssplitargs`:
/// spaces separate, "double quotes" take \n \r \t \b \a \\ \" and \xHH escapes,
/// 'single quotes' take only \'. A closing quote must be followed by a space or the end.
/// `None` means unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Redis reads the line as a C string: a NUL ends it, and C's isspace (\t \n \v \f \r,
    // space) separates arguments and must follow a closing quote.
    let is_space = |b: u8| b == b' ' || (b'\t'..=b'\r').contains(&b);
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' && line[i + 2].is_ascii_hexdigit() && line[i + 3].is_ascii_hexdigit() {
                    let hex = std::str::from_utf8(&line[i + 2..i + 4]).ok()?;
                    current.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 4;
                    continue;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    current.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_single {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    c => current.push(c),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

/// Reads replies (any RESP2/RESP3 frame) — the client side, for sentinels, replicas and tests.
pub struct ReplyParser;

impl ReplyParser {
    /// Parses one whole frame off the front of `buf`; `Ok(None)` until it is all there.
    pub fn parse(buf: &mut BytesMut) -> Result<Option<Frame>, ParseError> {
        match parse_reply_at(buf, 0, 0)? {
            Some((frame, used)) => {
                buf.advance(used);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }
}

const MAX_REPLY_DEPTH: usize = 512;

/// Parses a frame starting at `pos` without consuming; returns the frame and the end offset.
fn parse_reply_at(buf: &[u8], pos: usize, depth: usize) -> Result<Option<(Frame, usize)>, ParseError> {
    if depth > MAX_REPLY_DEPTH {
        return Err(ParseError::InvalidReply("nesting depth"));
    }
    if pos >= buf.len() {
        return Ok(None);
    }
    let Some(rel) = find_crlf(&buf[pos..]) else {
        if buf.len() - pos > INLINE_MAX_SIZE {
            return Err(ParseError::InvalidReply("line length"));
        }
        return Ok(None);
    };
    // An empty line has no type byte (found by fuzzing: it used to panic on the slice below).
    if rel == 0 {
        return Err(ParseError::UnknownReplyType('\r'));
    }
    let kind = buf[pos];
    let body = &buf[pos + 1..pos + rel];
    let after_line = pos + rel + 2;
    let text = || String::from_utf8_lossy(body).into_owned();
    let count = |what: &'static str| parse_i64(body).ok_or(ParseError::InvalidReply(what));
    let frame_end = match kind {
        b'+' => (Frame::Simple(text()), after_line),
        b'-' => (Frame::Error(text()), after_line),
        b':' => (Frame::Integer(count("integer")?), after_line),
        b'_' => (Frame::Null, after_line),
        b'#' => match body {
            b"t" => (Frame::Boolean(true), after_line),
            b"f" => (Frame::Boolean(false), after_line),
            _ => return Err(ParseError::InvalidReply("boolean")),
        },
        b',' => {
            let t = text();
            let d = match t.as_str() {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" => f64::NAN,
                other => other.parse().map_err(|_| ParseError::InvalidReply("double"))?,
            };
            (Frame::Double(d), after_line)
        }
        b'(' => (Frame::BigNumber(text()), after_line),
        b'$' | b'=' | b'!' => {
            let len = count("bulk length")?;
            if len < 0 {
                (Frame::Null, after_line)
            } else {
                let len = len as usize;
                if buf.len() < after_line + len + 2 {
                    return Ok(None);
                }
                let data = &buf[after_line..after_line + len];
                let end = after_line + len + 2;
                match kind {
                    b'$' => (Frame::Bulk(Bytes::copy_from_slice(data)), end),
                    b'!' => (Frame::Error(String::from_utf8_lossy(data).into_owned()), end),
                    _ => {
                        // The format is 3 ASCII bytes (found by fuzzing: other bytes became
                        // replacement characters and the frame no longer re-encoded).
                        if len < 4 || data[3] != b':' || !data[..3].is_ascii() {
                            return Err(ParseError::InvalidReply("verbatim string"));
                        }
                        let format = String::from_utf8_lossy(&data[..3]).into_owned();
                        (Frame::Verbatim(format, Bytes::copy_from_slice(&data[4..])), end)
                    }
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = count("aggregate length")?;
            if n < 0 {
                (Frame::NullArray, after_line)
            } else {
                let items_needed = if kind == b'%' || kind == b'|' { 2 * n as usize } else { n as usize };
                let mut items = Vec::with_capacity(items_needed.min(4096));
                let mut at = after_line;
                for _ in 0..items_needed {
                    match parse_reply_at(buf, at, depth + 1)? {
                        Some((f, end)) => {
                            items.push(f);
                            at = end;
                        }
                        None => return Ok(None),
                    }
                }
                let frame = match kind {
                    b'*' => Frame::Array(items),
                    b'~' => Frame::Set(items),
                    b'>' => Frame::Push(items),
                    _ => {
                        let mut pairs = Vec::with_capacity(items.len() / 2);
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            pairs.push((k, v));
                        }
                        Frame::Map(pairs)
                    }
                };
                if kind == b'|' {
                    // An attribute precedes the real reply: skip it, return what follows.
                    return match parse_reply_at(buf, at, depth + 1)? {
                        Some((f, end)) => Ok(Some((f, end))),
                        None => Ok(None),
                    };
                }
                (frame, at)
            }
        }
        other => return Err(ParseError::UnknownReplyType(other as char)),
    };
    Ok(Some(frame_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::resp::ProtocolVersion;

    /// Found by fuzzing (fuzz/fuzz_targets/resp_reply.rs): an empty line where a reply
    /// starts panicked instead of being a protocol error.
    #[test]
    fn an_empty_line_is_a_reply_protocol_error() {
        let mut buf = BytesMut::from(&b"+OK\r\n\r\n:1\r\n"[..]);
        assert_eq!(ReplyParser::parse(&mut buf), Ok(Some(Frame::Simple("OK".into()))));
        assert_eq!(ReplyParser::parse(&mut buf), Err(ParseError::UnknownReplyType('\r')));
        let mut buf = BytesMut::from(&b"=7\r\ntx\x86:abc\r\n"[..]);
        assert_eq!(ReplyParser::parse(&mut buf), Err(ParseError::InvalidReply("verbatim string")));
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ParseError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(args) = p.parse(&mut buf)? {
            out.push(args);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline_and_pipelines() {
        let reqs = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset a \"b c\"\n").unwrap();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(reqs[1], vec![Bytes::from("PING")]);
        assert_eq!(reqs[2], vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b c")]);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_request() {
        let input = b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$10\r\n0123456789\r\n";
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(args) = p.parse(&mut buf).unwrap() {
                got = Some(args);
            }
        }
        assert_eq!(got.unwrap()[2], Bytes::from("0123456789"));
        assert!(buf.is_empty());
    }

    #[test]
    fn redis_protocol_errors() {
        assert_eq!(parse_all(b"*x\r\n"), Err(ParseError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*1\r\n+foo\r\n"), Err(ParseError::ExpectedBulk('+')));
        assert_eq!(parse_all(b"*1\r\n$-5\r\n"), Err(ParseError::InvalidBulkLength));
        assert_eq!(parse_all(b"*1\r\n$abc\r\n"), Err(ParseError::InvalidBulkLength));
        assert_eq!(parse_all(b"set a \"b\n"), Err(ParseError::UnbalancedQuotes));
        assert_eq!(parse_all(b"*3000000000\r\n"), Err(ParseError::InvalidMultibulkLength));
        let big = vec![b'a'; INLINE_MAX_SIZE + 10];
        assert_eq!(parse_all(&big), Err(ParseError::TooBigInline));
        assert_eq!(
            ParseError::ExpectedBulk('+').to_string(),
            "Protocol error: expected '$', got '+'"
        );
        let mut p = RequestParser::new().with_max_bulk_len(4);
        assert_eq!(p.parse(&mut BytesMut::from(&b"*1\r\n$5\r\n"[..])), Err(ParseError::InvalidBulkLength));
    }

    #[test]
    fn empty_requests_are_skippable() {
        assert_eq!(parse_all(b"\r\n*0\r\n*-1\r\n").unwrap(), vec![Vec::<Bytes>::new(), vec![], vec![]]);
    }

    #[test]
    fn split_args_like_sdssplitargs() {
        let a = split_args(br#"set "a\x41\n" 'it\'s' plain"#).unwrap();
        assert_eq!(a, vec![b"set".to_vec(), b"aA\n".to_vec(), b"it's".to_vec(), b"plain".to_vec()]);
        assert!(split_args(br#""abc"def"#).is_none());
        assert!(split_args(b"'abc").is_none());
        assert_eq!(split_args(b"   ").unwrap().len(), 0);
        // C string and isspace semantics: a NUL ends the line, \v and \f separate.
        assert_eq!(split_args(b"bind\0\0\0x").unwrap(), vec![b"bind".to_vec()]);
        assert_eq!(split_args(b"\x0ba\x0c'b'\x0bc").unwrap(), vec![b"a\x0cb".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn integers_parse_as_string2ll() {
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b""), None);
    }

    #[test]
    fn replies_round_trip_through_encoder() {
        let frames = vec![
            Frame::ok(),
            Frame::Error("ERR bad".into()),
            Frame::Integer(-42),
            Frame::bulk("hello"),
            Frame::Null,
            Frame::Array(vec![Frame::Integer(1), Frame::Array(vec![Frame::bulk("x")])]),
            Frame::Map(vec![(Frame::bulk("k"), Frame::Double(2.5))]),
            Frame::Set(vec![Frame::bulk("m")]),
            Frame::Boolean(true),
            Frame::BigNumber("12345678901234567890".into()),
            Frame::Verbatim("txt".into(), Bytes::from("some text")),
            Frame::Push(vec![Frame::bulk("message")]),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(ProtocolVersion::Resp3, &mut buf);
        }
        let mut back = Vec::new();
        while let Some(f) = ReplyParser::parse(&mut buf).unwrap() {
            back.push(f);
        }
        assert_eq!(back, frames);
    }

    #[test]
    fn partial_replies_wait() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nfoo\r\n$3\r\nba"[..]);
        assert_eq!(ReplyParser::parse(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"r\r\n");
        assert!(ReplyParser::parse(&mut buf).unwrap().is_some());
        assert!(buf.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn request_parser_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_all(&data);
        }

        #[test]
        fn reply_parser_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = ReplyParser::parse(&mut buf) {}
        }

        #[test]
        fn truncated_valid_requests_wait_for_more(args in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..6), cut in 0usize..400) {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let mut whole = BytesMut::new();
            crate::resp::encode_command(&refs, &mut whole);
            let cut = cut.min(whole.len().saturating_sub(1));
            let mut p = RequestParser::new();
            let mut buf = BytesMut::from(&whole[..cut]);
            proptest::prop_assert_eq!(p.parse(&mut buf).unwrap(), None);
            buf.extend_from_slice(&whole[cut..]);
            let got = p.parse(&mut buf).unwrap().unwrap();
            let expected: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
