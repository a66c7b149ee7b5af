//! SORT and SORT_RO (Redis 7.0 semantics: BY/GET patterns with `*` and `->field`, `#`,
//! LIMIT, ASC/DESC, ALPHA, STORE, the "no sort" BY forms, numeric conversion errors).

use bytes::Bytes;

use crate::resp::Frame;
use crate::server::command::{cmd, wrongtype, Ctx, CommandSpec};
use crate::server::notify;
use crate::server::types::access::{err, int_arg, Typed};
use crate::server::types::list::ListValue;
use crate::server::value::Value;

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("sort", -2, "write denyoom movablekeys", 1, 1, 1, "write set sortedset list slow dangerous", sort)
            .group("generic").since("1.0.0").summary("Sort the elements in a list, set or sorted set").key_flags(&["RO", "access"]).keys_fn(sort_keys),
        cmd("sort_ro", -2, "readonly movablekeys", 1, 1, 1, "read set sortedset list slow dangerous", sort_ro)
            .group("generic").since("7.0.0").summary("Sort the elements in a list, set or sorted set. Read-only variant of SORT.").key_flags(&["RO", "access"]).keys_fn(sort_keys),
    ]
}

/// Keys: the sorted key, plus the STORE destination (the last STORE wins, as in Redis's
/// `sortGetKeys`).
fn sort_keys(args: &[Bytes]) -> Vec<usize> {
    let mut store = None;
    let mut j = 2;
    while j < args.len() {
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"limit") {
            j += 3;
            continue;
        }
        if (a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by")) && j + 1 < args.len() {
            j += 2;
            continue;
        }
        if a.eq_ignore_ascii_case(b"store") && j + 1 < args.len() {
            store = Some(j + 1);
            j += 2;
            continue;
        }
        j += 1;
    }
    std::iter::once(1).chain(store).collect()
}

/// `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` is replaced by
/// the element, and a `->field` suffix reads a hash field.
fn lookup_by_pattern(ctx: &mut Ctx, pattern: &[u8], elem: &Bytes) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(elem.clone());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let field = after.windows(2).position(|w| w == b"->").filter(|&p| p + 2 < after.len());
    let (postfix, field) = match field {
        Some(p) => (&after[..p], Some(&after[p + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(star + elem.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(postfix);
    match (ctx.read_value(&key)?, field) {
        (Value::Hash(h), Some(f)) => h.get(f).map(Bytes::copy_from_slice),
        (Value::Str(s), None) => Some(Bytes::copy_from_slice(s.as_slice())),
        _ => None,
    }
}

/// C `strtod` over the whole string (leading spaces allowed, empty = 0, no NaN/ERANGE).
fn sort_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() {
        return Some(0.0);
    }
    let (v, used) = crate::server::types::strtod_prefix(b);
    if used != b.len() || v.is_nan() {
        return None;
    }
    if v.is_infinite() && !b.iter().any(|c| (c | 0x20) == b'i') {
        return None; // ERANGE overflow
    }
    Some(v)
}

struct SortItem {
    elem: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

fn sort_generic(ctx: &mut Ctx, args: &[Bytes], readonly: bool) -> Frame {
    let mut desc = false;
    let mut alpha = false;
    let mut limit_start: i64 = 0;
    let mut limit_count: i64 = -1;
    let mut dontsort = false;
    let mut sortby: Option<Bytes> = None;
    let mut store: Option<Bytes> = None;
    let mut gets: Vec<Bytes> = Vec::new();
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"asc") {
            desc = false;
        } else if a.eq_ignore_ascii_case(b"desc") {
            desc = true;
        } else if a.eq_ignore_ascii_case(b"alpha") {
            alpha = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            match (int_arg(&args[j + 1]), int_arg(&args[j + 2])) {
                (Ok(s), Ok(c)) => {
                    limit_start = s;
                    limit_count = c;
                }
                (Err(e), _) | (_, Err(e)) => return e,
            }
            j += 2;
        } else if !readonly && a.eq_ignore_ascii_case(b"store") && left >= 1 {
            store = Some(args[j + 1].clone());
            j += 1;
        } else if a.eq_ignore_ascii_case(b"by") && left >= 1 {
            let p = args[j + 1].clone();
            if !p.contains(&b'*') {
                dontsort = true;
            } else if !crate::server::acl::full_key_access(ctx.srv, ctx.client, args) {
                return err("ERR BY option of SORT denied due to insufficient ACL permissions.");
            }
            sortby = Some(p);
            j += 1;
        } else if a.eq_ignore_ascii_case(b"get") && left >= 1 {
            if !crate::server::acl::full_key_access(ctx.srv, ctx.client, args) {
                return err("ERR GET option of SORT denied due to insufficient ACL permissions.");
            }
            gets.push(args[j + 1].clone());
            j += 1;
        } else {
            return err("ERR syntax error");
        }
        j += 1;
    }
    enum Kind {
        List,
        Set,
        ZSet,
    }
    let (kind, mut elems): (Kind, Vec<Bytes>) = match ctx.read_value(&args[1]) {
        None => (Kind::List, Vec::new()),
        Some(Value::List(l)) => (Kind::List, l.iter().cloned().collect()),
        Some(Value::Set(s)) => (Kind::Set, s.iter().collect()),
        Some(Value::ZSet(z)) => (Kind::ZSet, z.iter().map(|e| e.member_bytes()).collect()),
        Some(_) => return wrongtype(),
    };
    if dontsort && matches!(kind, Kind::Set) && (store.is_some() || ctx.client.in_script) {
        // Sets have no order of their own: make STORE results and scripts' replies
        // deterministic (replicas and the AOF must see what the master saw).
        dontsort = false;
        alpha = true;
        sortby = None;
    }
    let n = elems.len() as i64;
    let mut start = limit_start.max(0).min(n);
    let count = limit_count.max(-1).min(n);
    let mut end = if count < 0 { n - 1 } else { start + count - 1 };
    if start >= n {
        start = n - 1;
        end = n - 2;
    }
    if end >= n {
        end = n - 1;
    }
    if dontsort && desc && !matches!(kind, Kind::Set) {
        elems.reverse();
    }
    let mut items: Vec<SortItem> = elems.into_iter().map(|elem| SortItem { elem, score: 0.0, cmp: None }).collect();
    if !dontsort {
        let mut conversion_error = false;
        for it in items.iter_mut() {
            let byval = match &sortby {
                Some(p) => match lookup_by_pattern(ctx, p, &it.elem) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if alpha {
                if sortby.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match sort_score(&byval) {
                    Some(s) => it.score = s,
                    None => conversion_error = true,
                }
            }
        }
        if conversion_error {
            return err("ERR One or more scores can't be converted into double");
        }
        let by_pattern = sortby.is_some();
        items.sort_by(|a, b| {
            let c = if !alpha {
                a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.elem.cmp(&b.elem))
            } else if by_pattern {
                match (&a.cmp, &b.cmp) {
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.elem.cmp(&b.elem)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        });
    }
    let selected: &[SortItem] = if end >= start && start >= 0 { &items[start as usize..=end as usize] } else { &[] };
    let mut out: Vec<Option<Bytes>> = Vec::with_capacity(selected.len() * gets.len().max(1));
    for it in selected {
        if gets.is_empty() {
            out.push(Some(it.elem.clone()));
        }
        for g in &gets {
            out.push(lookup_by_pattern(ctx, g, &it.elem));
        }
    }
    match store {
        None => Frame::Array(out.into_iter().map(|v| v.map_or(Frame::Null, Frame::Bulk)).collect()),
        Some(dst) => {
            let n = out.len();
            if n > 0 {
                let list = ListValue::from_vec(out.into_iter().map(|v| v.unwrap_or_default()).collect());
                ctx.set_value(&dst, list.wrap(), false);
                ctx.notify(notify::LIST, "sortstore", &dst);
                ctx.signal_key_ready(&dst);
                ctx.dirty(n as u64);
            } else if ctx.lookup_write(&dst).is_some() {
                let db = ctx.db_index();
                ctx.srv.dbs[db].remove(&dst);
                ctx.notify(notify::GENERIC, "del", &dst);
                ctx.dirty(1);
            }
            Frame::Integer(n as i64)
        }
    }
}

fn sort(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    sort_generic(ctx, args, true)
}
