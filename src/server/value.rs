//! Values stored in the keyspace.
//!
//! Memory matters (the target is fewer bytes per key than Redis), so small strings live
//! inline: a key or a string value of up to [`INLINE_CAP`] bytes costs no heap allocation.
//! [`SmallBytes`] and [`Value`] are both 24 bytes.

use super::types::hash::HashValue;
use super::types::list::ListValue;
use super::types::set::SetValue;
use super::types::stream::StreamValue;
use super::types::zset::ZSetValue;

/// Longest byte string stored without a heap allocation.
pub const INLINE_CAP: usize = 22;

/// A byte string that is inline when short: used for keys and string values.
#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    Boxed(Box<[u8]>),
    /// A string that was grown in place (APPEND, SETRANGE): keeps spare capacity like an sds.
    Growable(Box<Vec<u8>>),
}

impl SmallBytes {
    pub fn new(data: &[u8]) -> Self {
        if data.len() <= INLINE_CAP {
            let mut buf = [0u8; INLINE_CAP];
            buf[..data.len()].copy_from_slice(data);
            SmallBytes::Inline { len: data.len() as u8, buf }
        } else {
            SmallBytes::Boxed(data.into())
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, buf } => &buf[..*len as usize],
            SmallBytes::Boxed(b) => b,
            SmallBytes::Growable(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mutable access as a growable vector (switches representation once).
    pub fn make_growable(&mut self) -> &mut Vec<u8> {
        if !matches!(self, SmallBytes::Growable(_)) {
            let v = self.as_slice().to_vec();
            *self = SmallBytes::Growable(Box::new(v));
        }
        match self {
            SmallBytes::Growable(v) => v,
            _ => unreachable!("just converted"),
        }
    }

    /// Heap bytes used besides the inline 24 (for MEMORY USAGE and maxmemory accounting).
    pub fn heap_size(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Boxed(b) => b.len(),
            SmallBytes::Growable(v) => 24 + v.capacity(),
        }
    }
}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// A stored value. HyperLogLogs are strings, as in Redis. The aggregate types are boxed
/// so a `Value` stays 24 bytes; their structures live in `server::types` (owned by the
/// types family).
#[derive(Clone, Debug)]
pub enum Value {
    Str(SmallBytes),
    List(Box<ListValue>),
    Hash(Box<HashValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
    Stream(Box<StreamValue>),
}

impl Value {
    pub fn string(data: &[u8]) -> Value {
        Value::Str(SmallBytes::new(data))
    }

    /// The name TYPE replies.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_slice()),
            _ => None,
        }
    }

    /// OBJECT ENCODING's answer.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => {
                // A string grown in place (APPEND, SETRANGE, SETBIT) is a raw sds in Redis,
                // whatever its bytes say.
                let b = s.as_slice();
                if matches!(s, SmallBytes::Growable(_)) {
                    "raw"
                } else if b.len() <= 20 && crate::resp::parse_i64(b).is_some() {
                    "int"
                } else if b.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }

    /// Approximate heap bytes used by the value (MEMORY USAGE, maxmemory).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::List(l) => l.memory_usage(),
            Value::Hash(h) => h.memory_usage(),
            Value::Set(s) => s.memory_usage(),
            Value::ZSet(z) => z.memory_usage(),
            Value::Stream(s) => s.memory_usage(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_sizes() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    #[test]
    fn small_bytes_round_trip() {
        for n in [0usize, 1, 22, 23, 100] {
            let data: Vec<u8> = (0..n as u8).collect();
            let s = SmallBytes::new(&data);
            assert_eq!(s.as_slice(), &data[..]);
            assert_eq!(matches!(s, SmallBytes::Inline { .. }), n <= INLINE_CAP);
        }
        let mut s = SmallBytes::new(b"ab");
        s.make_growable().extend_from_slice(b"cd");
        assert_eq!(s.as_slice(), b"abcd");
    }
}
