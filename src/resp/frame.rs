//! The one frame type shared by the server, the sentinel and their clients, and its encoder.

use bytes::{BufMut, Bytes, BytesMut};

/// Which protocol a connection speaks: chosen by `HELLO 2|3`, RESP2 until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolVersion {
    #[default]
    Resp2,
    Resp3,
}

/// A RESP value. RESP3-only types degrade to their RESP2 shapes when encoded for RESP2,
/// the way Redis does it, so command code builds one reply for both protocols.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the full text including the error code, without `-` and CRLF.
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// Null bulk: RESP2 `$-1`, RESP3 `_`.
    Null,
    /// Null multi-bulk: RESP2 `*-1`, RESP3 `_`.
    NullArray,
    Array(Vec<Frame>),
    /// RESP3 `%`; a flat array of key, value, ... in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~`; an array in RESP2.
    Set(Vec<Frame>),
    /// RESP3 `,`; a bulk string in RESP2, formatted as Redis 7.0 does (`%.17g`).
    Double(f64),
    /// A double already in its reply text (GEO coordinates are printed as a long double
    /// with 17 decimals): RESP3 `,`, a bulk string in RESP2.
    DoubleText(String),
    /// RESP3 `#`; integer 1/0 in RESP2.
    Boolean(bool),
    /// RESP3 `(`; a bulk string in RESP2.
    BigNumber(String),
    /// RESP3 `=` with a 3-letter format (`txt`); a bulk string in RESP2.
    Verbatim(String, Bytes),
    /// RESP3 `>` (pub/sub messages, invalidations); an array in RESP2.
    Push(Vec<Frame>),
    /// RESP3 `|` attribute pairs, sent before the reply they describe; nothing in RESP2
    /// (Redis drops attributes for RESP2 clients).
    Attribute(Vec<(Frame, Frame)>),
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_string())
    }

    pub fn simple(s: impl Into<String>) -> Frame {
        Frame::Simple(s.into())
    }

    /// An error reply; `msg` carries its code, e.g. `"ERR syntax error"`.
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// The bytes of a bulk or simple string (what a client sees as "a string").
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Bulk(b) => Some(b),
            Frame::Simple(s) => Some(s.as_bytes()),
            Frame::Verbatim(_, b) => Some(b),
            _ => None,
        }
    }

    /// Encodes the frame for a connection speaking `proto`.
    pub fn encode(&self, proto: ProtocolVersion, out: &mut BytesMut) {
        let resp3 = proto == ProtocolVersion::Resp3;
        match self {
            Frame::Simple(s) => line(out, b'+', s.as_bytes()),
            Frame::Error(e) => line(out, b'-', e.as_bytes()),
            Frame::Integer(n) => {
                out.put_u8(b':');
                put_int(out, *n);
                out.put_slice(b"\r\n");
            }
            Frame::Bulk(b) => put_bulk(out, b),
            Frame::Null => out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
            Frame::NullArray => out.put_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
            Frame::Array(items) => put_aggregate(out, b'*', items, proto),
            Frame::Set(items) => put_aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
            Frame::Push(items) => put_aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
            Frame::Map(pairs) => {
                if resp3 {
                    out.put_u8(b'%');
                    put_int(out, pairs.len() as i64);
                } else {
                    out.put_u8(b'*');
                    put_int(out, 2 * pairs.len() as i64);
                }
                out.put_slice(b"\r\n");
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    put_bulk(out, text.as_bytes());
                }
            }
            Frame::DoubleText(text) => {
                if resp3 {
                    line(out, b',', text.as_bytes());
                } else {
                    put_bulk(out, text.as_bytes());
                }
            }
            Frame::Boolean(b) => {
                if resp3 {
                    out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" });
                }
            }
            Frame::BigNumber(n) => {
                if resp3 {
                    line(out, b'(', n.as_bytes());
                } else {
                    put_bulk(out, n.as_bytes());
                }
            }
            Frame::Attribute(pairs) => {
                if resp3 {
                    out.put_u8(b'|');
                    put_int(out, pairs.len() as i64);
                    out.put_slice(b"\r\n");
                    for (k, v) in pairs {
                        k.encode(proto, out);
                        v.encode(proto, out);
                    }
                }
            }
            Frame::Verbatim(format, text) => {
                if resp3 {
                    out.put_u8(b'=');
                    put_int(out, (text.len() + 4) as i64);
                    out.put_slice(b"\r\n");
                    out.put_slice(format.as_bytes());
                    out.put_u8(b':');
                    out.put_slice(text);
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, text);
                }
            }
        }
    }

    pub fn to_bytes(&self, proto: ProtocolVersion) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(proto, &mut out);
        out.freeze()
    }
}

fn line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.put_u8(prefix);
    // A CR or LF inside a status line would break framing; Redis replaces them with spaces.
    for &b in text {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

fn put_int(out: &mut BytesMut, n: i64) {
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    out.put_u8(b'$');
    put_int(out, data.len() as i64);
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn put_aggregate(out: &mut BytesMut, prefix: u8, items: &[Frame], proto: ProtocolVersion) {
    out.put_u8(prefix);
    put_int(out, items.len() as i64);
    out.put_slice(b"\r\n");
    for item in items {
        item.encode(proto, out);
    }
}

/// Encodes a command as a RESP multi-bulk array of bulk strings (what clients send).
pub fn encode_command(args: &[&[u8]], out: &mut BytesMut) {
    out.put_u8(b'*');
    put_int(out, args.len() as i64);
    out.put_slice(b"\r\n");
    for arg in args {
        put_bulk(out, arg);
    }
}

/// Formats a double as C's `%.17g`, which is what Redis 7.0 replies for doubles
/// (ZSCORE, RESP3 doubles...), with `inf` / `-inf` / `nan` spelled as Redis spells them.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".to_string() } else { "-inf".to_string() };
    }
    format_g(d, 17)
}

/// C's `%.<precision>g`.
pub fn format_g(d: f64, precision: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".to_string() } else { "0".to_string() };
    }
    let precision = precision.max(1);
    // Whole numbers that fit in `precision` digits print as themselves (the common case of
    // Lua numbers passed to redis.call; the exact float formatting below is slow).
    if d.fract() == 0.0 && d.abs() < 1e15 {
        let whole = d as i64;
        if whole.unsigned_abs().checked_ilog10().unwrap_or(0) < precision as u32 {
            return whole.to_string();
        }
    }
    format_g_exact(d, precision)
}

/// `format_g` without its whole-number shortcut: the scientific form with `precision`
/// significant digits tells the decimal exponent after rounding.
fn format_g_exact(d: f64, precision: usize) -> String {
    let precision = precision.max(1);
    let sci = format!("{:.*e}", precision - 1, d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let mantissa = trim_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim_fraction_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn trim_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, p: ProtocolVersion) -> String {
        String::from_utf8(f.to_bytes(p).to_vec()).unwrap()
    }

    #[test]
    fn format_g_whole_numbers_as_the_exact_path() {
        let mut values = vec![1.0, -1.0, 9.0, 10.0, 99999.0, 100000.0, 123456.0, 1e14, 999999999999999.0, -999999999999999.0, 1e15, 1e16];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(((x % 2_000_000_000_000_000) as f64 - 1e15).trunc());
            values.push((x % 100_000) as f64);
        }
        for d in values {
            for p in [1, 5, 6, 15, 16, 17] {
                assert_eq!(format_g(d, p), format_g_exact(d, p), "{d} at %.{p}g");
            }
        }
        assert_eq!(format_g(123456.0, 5), "1.2346e+05");
        assert_eq!(format_g(100.0, 17), "100");
    }

    #[test]
    fn resp3_types_degrade_to_resp2_shapes() {
        use ProtocolVersion::*;
        let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(enc(&map, Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Frame::Null, Resp2), "$-1\r\n");
        assert_eq!(enc(&Frame::NullArray, Resp2), "*-1\r\n");
        assert_eq!(enc(&Frame::Null, Resp3), "_\r\n");
        assert_eq!(enc(&Frame::Boolean(true), Resp2), ":1\r\n");
        assert_eq!(enc(&Frame::Boolean(false), Resp3), "#f\r\n");
        assert_eq!(enc(&Frame::Double(1.5), Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Frame::Double(1.5), Resp3), ",1.5\r\n");
        assert_eq!(enc(&Frame::Verbatim("txt".into(), Bytes::from("hi")), Resp3), "=6\r\ntxt:hi\r\n");
        assert_eq!(enc(&Frame::Push(vec![Frame::bulk("m")]), Resp3), ">1\r\n$1\r\nm\r\n");
        assert_eq!(enc(&Frame::Error("ERR x\r\ny".into()), Resp2), "-ERR x  y\r\n");
    }

    #[test]
    fn doubles_format_like_percent_17g() {
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_double(123456789.0), "123456789");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_g(3.0, 6), "3");
        assert_eq!(format_g(0.0001, 6), "0.0001");
        assert_eq!(format_g(0.00001, 6), "1e-05");
    }

    #[test]
    fn commands_encode_as_multibulk() {
        let mut out = BytesMut::new();
        encode_command(&[b"SET", b"k", b"v"], &mut out);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    }
}
