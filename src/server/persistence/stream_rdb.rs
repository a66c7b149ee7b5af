//! Streams in RDB files and DUMP payloads: `RDB_TYPE_STREAM_LISTPACKS_2` (19) as Redis 7.0
//! writes it (each node a listpack under its 16-byte big-endian master ID, then the
//! stream's counters, groups, PELs and consumers); types 15 (Redis 5/6) and 21 (7.2) load.

use bytes::Bytes;

use super::encodings::{listpack_entries, ListpackBuilder, PackedValue};
use super::rdb::{put_len, put_string};
use crate::server::types::stream::{Consumer, ConsumerGroup, Nack, StreamId, StreamValue, ENTRIES_READ_INVALID};

/// One node's listpack, byte for byte as Redis builds it.
fn node_listpack(node: &crate::server::types::stream::Node) -> Vec<u8> {
    let mut lp = ListpackBuilder::new();
    let int = |lp: &mut ListpackBuilder, v: i64| lp.push(v.to_string().as_bytes());
    int(&mut lp, node.live as i64);
    int(&mut lp, node.deleted as i64);
    int(&mut lp, node.master_fields.len() as i64);
    for f in &node.master_fields {
        lp.push(f);
    }
    int(&mut lp, 0);
    for e in &node.entries {
        int(&mut lp, e.flags());
        int(&mut lp, e.id.ms.wrapping_sub(node.master_id.ms) as i64);
        int(&mut lp, e.id.seq.wrapping_sub(node.master_id.seq) as i64);
        let nf = e.num_fields();
        if e.same_fields {
            for v in e.fields.iter().skip(1).step_by(2) {
                lp.push(v);
            }
            int(&mut lp, nf as i64 + 3);
        } else {
            int(&mut lp, nf as i64);
            for x in &e.fields {
                lp.push(x);
            }
            int(&mut lp, 2 * nf as i64 + 4);
        }
    }
    lp.finish()
}

/// The value part of a type-19 stream (after the type byte).
pub fn encode_stream(out: &mut Vec<u8>, s: &StreamValue, compress: bool) {
    put_len(out, s.node_count() as u64);
    for node in s.nodes() {
        put_string(out, &node.master_id.to_be_bytes(), compress);
        put_string(out, &node_listpack(node), compress);
    }
    put_len(out, s.len());
    for v in [s.last_id.ms, s.last_id.seq, s.first_id.ms, s.first_id.seq, s.max_deleted_id.ms, s.max_deleted_id.seq, s.entries_added] {
        put_len(out, v);
    }
    put_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_string(out, name, compress);
        put_len(out, g.last_id.ms);
        put_len(out, g.last_id.seq);
        put_len(out, g.entries_read as u64);
        put_len(out, g.pel.len() as u64);
        for (id, nack) in &g.pel {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&nack.delivery_time.to_le_bytes());
            put_len(out, nack.delivery_count);
        }
        put_len(out, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            put_string(out, cname, compress);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            put_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
}

/// What decoding needs from the RDB reader.
pub trait StreamSource {
    fn len(&mut self, what: &'static str) -> Result<u64, String>;
    fn string(&mut self, what: &'static str) -> Result<Bytes, String>;
    fn raw(&mut self, n: usize, what: &'static str) -> Result<Vec<u8>, String>;
}

fn int_of(v: &PackedValue) -> Result<i64, String> {
    match v {
        PackedValue::Int(i) => Ok(*i),
        PackedValue::Bytes(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or_else(|| "stream listpack integer expected".to_string()),
    }
}

fn ms_time<S: StreamSource>(src: &mut S, what: &'static str) -> Result<i64, String> {
    let b = src.raw(8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(&b);
    Ok(i64::from_le_bytes(a))
}

fn raw_id<S: StreamSource>(src: &mut S) -> Result<StreamId, String> {
    let b = src.raw(16, "stream PEL id")?;
    let mut a = [0u8; 16];
    a.copy_from_slice(&b);
    Ok(StreamId::from_be_bytes(&a))
}

/// Decodes a stream of RDB type `ty` (15, 19 or 21).
pub fn decode_stream<S: StreamSource>(src: &mut S, ty: u8) -> Result<StreamValue, String> {
    let mut s = StreamValue::new();
    let mut previous_last: Option<StreamId> = None;
    let nodes = src.len("stream listpacks")?;
    for _ in 0..nodes {
        let key = src.string("stream node key")?;
        if key.len() != 16 {
            return Err("stream node key is not a 128 bit ID".into());
        }
        let mut k = [0u8; 16];
        k.copy_from_slice(&key);
        let master_id = StreamId::from_be_bytes(&k);
        let blob = src.string("stream listpack")?;
        let items = listpack_entries(&blob).map_err(|e| format!("stream listpack: {e:?}"))?;
        if items.is_empty() {
            return Err("empty listpack inside stream".into());
        }
        let mut it = items.iter();
        let mut next = |what: &str| it.next().ok_or_else(|| format!("stream listpack ends before {what}"));
        let live = int_of(next("count")?)?;
        let deleted = int_of(next("deleted")?)?;
        let nmaster = int_of(next("master fields")?)?;
        if live < 0 || deleted < 0 || !(0..=items.len() as i64).contains(&nmaster) {
            return Err("stream listpack header out of range".into());
        }
        let mut master = Vec::with_capacity(nmaster as usize);
        for _ in 0..nmaster {
            master.push(next("master field")?.clone().into_bytes());
        }
        if int_of(next("master terminator")?)? != 0 {
            return Err("stream master entry not terminated".into());
        }
        let mut entries = Vec::new();
        let total = live.checked_add(deleted).ok_or_else(|| "stream listpack counts overflow".to_string())?;
        for _ in 0..total {
            let flags = int_of(next("entry flags")?)?;
            let ms = master_id.ms.wrapping_add(int_of(next("entry ms")?)? as u64);
            let seq = master_id.seq.wrapping_add(int_of(next("entry seq")?)? as u64);
            let mut fields = Vec::new();
            if flags & 2 != 0 {
                for f in &master {
                    fields.push(f.clone());
                    fields.push(next("entry value")?.clone().into_bytes());
                }
            } else {
                let nf = int_of(next("entry field count")?)?;
                if nf < 0 || nf as usize > items.len() {
                    return Err("stream entry field count out of range".into());
                }
                for _ in 0..2 * nf {
                    fields.push(next("entry field")?.clone().into_bytes());
                }
            }
            next("entry lp-count")?;
            entries.push((StreamId::new(ms, seq), fields, flags & 1 != 0));
        }
        if entries.iter().zip(entries.iter().skip(1)).any(|(a, b)| a.0 >= b.0) {
            return Err("stream entries out of order".into());
        }
        // Nodes must not overlap: each starts at or after its key, after the previous one.
        if entries.first().is_some_and(|e| e.0 < master_id || previous_last.is_some_and(|p| e.0 <= p)) {
            return Err("stream node out of order".into());
        }
        if let Some(e) = entries.last() {
            previous_last = Some(e.0);
        }
        s.load_node(master_id, master, entries);
    }
    let _length = src.len("stream length")?;
    s.last_id = StreamId::new(src.len("stream last id")?, src.len("stream last id")?);
    if previous_last.is_some_and(|p| p > s.last_id) {
        return Err("stream last ID is smaller than an entry's ID".into());
    }
    if ty >= 19 {
        s.first_id = StreamId::new(src.len("stream first id")?, src.len("stream first id")?);
        s.max_deleted_id = StreamId::new(src.len("stream max deleted id")?, src.len("stream max deleted id")?);
        s.entries_added = src.len("stream entries added")?;
    } else {
        s.entries_added = s.len();
        s.first_id = s.range(StreamId::MIN, StreamId::MAX, false, 1).first().map_or(StreamId::MIN, |e| e.id);
    }
    let ngroups = src.len("stream groups")?;
    for _ in 0..ngroups {
        let name = src.string("stream group name")?;
        let last_id = StreamId::new(src.len("group last id")?, src.len("group last id")?);
        let entries_read = if ty >= 19 { src.len("group entries read")? as i64 } else { s.estimate_distance(last_id).map_or(ENTRIES_READ_INVALID, |v| v as i64) };
        let mut g = ConsumerGroup::new(last_id, entries_read);
        let npel = src.len("group PEL size")?;
        for _ in 0..npel {
            let id = raw_id(src)?;
            let delivery_time = ms_time(src, "PEL delivery time")?;
            let delivery_count = src.len("PEL delivery count")?;
            g.pel.insert(id, Nack { consumer: Bytes::new(), delivery_time, delivery_count });
        }
        let nconsumers = src.len("group consumers")?;
        let mut assigned = std::collections::BTreeSet::new();
        for _ in 0..nconsumers {
            let cname = src.string("consumer name")?;
            let seen_time = ms_time(src, "consumer seen time")?;
            if ty >= 21 {
                ms_time(src, "consumer active time")?;
            }
            let mut c = Consumer { seen_time, pel: Default::default() };
            let n = src.len("consumer PEL size")?;
            for _ in 0..n {
                let id = raw_id(src)?;
                let nack = g.pel.get_mut(&id).ok_or_else(|| "consumer PEL entry missing from the group PEL".to_string())?;
                if !assigned.insert(id) {
                    return Err("duplicated consumer PEL entry".into());
                }
                nack.consumer = cname.clone();
                c.pel.insert(id);
            }
            if g.consumers.insert(cname, c).is_some() {
                return Err("duplicated consumer name".into());
            }
        }
        if assigned.len() != g.pel.len() {
            return Err("stream group PEL entry without a consumer".into());
        }
        if s.groups.insert(name, g).is_some() {
            return Err("duplicated consumer group name".into());
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::types::stream::NodeLimits;

    struct Cursor<'a>(&'a [u8]);

    impl StreamSource for Cursor<'_> {
        fn len(&mut self, _w: &'static str) -> Result<u64, String> {
            let b = *self.0.first().ok_or("eof")?;
            let n = match b >> 6 {
                0 => 1,
                1 => 2,
                _ if b == 0x80 => 5,
                _ => 9,
            };
            let d = self.0.get(..n).ok_or("eof")?;
            let v = match n {
                1 => u64::from(b & 0x3f),
                2 => (u64::from(b & 0x3f) << 8) | u64::from(d[1]),
                5 => u64::from(u32::from_be_bytes(d[1..5].try_into().unwrap())),
                _ => u64::from_be_bytes(d[1..9].try_into().unwrap()),
            };
            self.0 = &self.0[n..];
            Ok(v)
        }
        fn string(&mut self, w: &'static str) -> Result<Bytes, String> {
            let n = self.len(w)? as usize;
            let s = Bytes::copy_from_slice(self.0.get(..n).ok_or("eof")?);
            self.0 = &self.0[n..];
            Ok(s)
        }
        fn raw(&mut self, n: usize, _w: &'static str) -> Result<Vec<u8>, String> {
            let s = self.0.get(..n).ok_or("eof")?.to_vec();
            self.0 = &self.0[n..];
            Ok(s)
        }
    }

    fn sample() -> StreamValue {
        let mut s = StreamValue::new();
        let l = NodeLimits { max_bytes: 4096, max_entries: 4 };
        for i in 1..=9u64 {
            let f = if i % 3 == 0 { vec![Bytes::from("other"), Bytes::from(i.to_string())] } else { vec![Bytes::from("f"), Bytes::from(format!("v{i}"))] };
            s.append(&f, Some((StreamId::new(i, 1), true)), 0, l).unwrap();
        }
        s.delete(StreamId::new(2, 1));
        s.after_delete(&[StreamId::new(2, 1)]);
        let mut g = ConsumerGroup::new(StreamId::new(5, 1), 5);
        g.consumers.insert(Bytes::from("alice"), Consumer { seen_time: 77, pel: Default::default() });
        g.consumers.insert(Bytes::from("bob"), Consumer { seen_time: 78, pel: Default::default() });
        g.assign_pending(StreamId::new(4, 1), &Bytes::from("alice"), 1234);
        g.assign_pending(StreamId::new(5, 1), &Bytes::from("bob"), 1235);
        s.groups.insert(Bytes::from("g"), g);
        s
    }

    /// Every truncation and every single-byte change of a valid encoding either fails to
    /// decode or gives a stream the commands can work on without panicking.
    #[test]
    fn damaged_encodings_never_panic() {
        let mut out = Vec::new();
        encode_stream(&mut out, &sample(), false);
        let exercise = |mut s: StreamValue| {
            let _ = s.range(StreamId::MIN, StreamId::MAX, false, 0);
            let _ = s.range(StreamId::MIN, StreamId::MAX, true, 3);
            let _ = s.rax_node_count();
            let groups: Vec<_> = s.groups.values().cloned().collect();
            for g in &groups {
                let _ = s.group_lag(g);
            }
            let mut again = Vec::new();
            encode_stream(&mut again, &s, false);
            s.delete(StreamId::new(3, 1));
            s.trim(&crate::server::types::stream::TrimArgs { strategy: crate::server::types::stream::TrimStrategy::MaxLen(2), approx: false, limit: 0 });
            let _ = s.append(&[Bytes::from("a"), Bytes::from("b")], None, 5, NodeLimits::default());
        };
        for cut in 0..out.len() {
            if let Ok(s) = decode_stream(&mut Cursor(&out[..cut]), 19) {
                exercise(s);
            }
        }
        for i in 0..out.len() {
            for delta in [1u8, 0x40, 0x80, 0xff] {
                let mut bad = out.clone();
                bad[i] = bad[i].wrapping_add(delta);
                if let Ok(s) = decode_stream(&mut Cursor(&bad), 19) {
                    exercise(s);
                }
            }
        }
    }

    #[test]
    fn round_trip_with_groups_and_tombstones() {
        let s = sample();
        let mut out = Vec::new();
        encode_stream(&mut out, &s, false);
        let back = decode_stream(&mut Cursor(&out), 19).unwrap();
        assert_eq!(back, s);
    }
}
