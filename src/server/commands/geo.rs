//! The GEO command family (Redis 7.0): points are sorted-set members scored by their
//! 52-bit geohash (`types::geohash`), so GEOADD is a ZADD and every other sorted-set
//! command works on a geo key.

use bytes::Bytes;

use super::zset::{store_zset, zadd_generic};
use crate::resp::Frame;
use crate::server::command::{cmd, syntax_error, Ctx, CommandSpec};
use crate::server::types::access::{self, err, int_arg};
use crate::server::types::geohash::{self, Search, Shape};
use crate::server::types::parse_redis_double;
use crate::server::types::zset::{ScoreBound, ZSetValue};

pub fn commands() -> Vec<CommandSpec> {
    vec![
        cmd("geoadd", -5, "write denyoom", 1, 1, 1, "write geo slow", geoadd)
            .group("geo").since("3.2.0").summary("Add one or more geospatial items in the geospatial index represented using a sorted set").key_flags(&["RW", "update"]),
        cmd("geodist", -4, "readonly", 1, 1, 1, "read geo slow", geodist)
            .group("geo").since("3.2.0").summary("Returns the distance between two members of a geospatial index").key_flags(&["RO"]),
        cmd("geohash", -2, "readonly", 1, 1, 1, "read geo slow", geohash_cmd)
            .group("geo").since("3.2.0").summary("Returns members of a geospatial index as standard geohash strings").key_flags(&["RO"]),
        cmd("geopos", -2, "readonly", 1, 1, 1, "read geo slow", geopos)
            .group("geo").since("3.2.0").summary("Returns longitude and latitude of members of a geospatial index").key_flags(&["RO"]),
        cmd("georadius", -6, "write denyoom movablekeys", 1, 1, 1, "write geo slow", georadius)
            .group("geo").since("3.2.0").summary("Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point").key_flags(&["RO", "access"]).keys_fn(georadius_keys),
        cmd("georadius_ro", -6, "readonly", 1, 1, 1, "read geo slow", georadius_ro)
            .group("geo").since("3.2.10").summary("A read-only variant for GEORADIUS").key_flags(&["RO"]),
        cmd("georadiusbymember", -5, "write denyoom movablekeys", 1, 1, 1, "write geo slow", georadiusbymember)
            .group("geo").since("3.2.0").summary("Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member").key_flags(&["RO", "access"]).keys_fn(georadiusbymember_keys),
        cmd("georadiusbymember_ro", -5, "readonly", 1, 1, 1, "read geo slow", georadiusbymember_ro)
            .group("geo").since("3.2.10").summary("A read-only variant for GEORADIUSBYMEMBER").key_flags(&["RO"]),
        cmd("geosearch", -7, "readonly", 1, 1, 1, "read geo slow", geosearch)
            .group("geo").since("6.2.0").summary("Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle.").key_flags(&["RO"]),
        cmd("geosearchstore", -8, "write denyoom", 1, 2, 1, "write geo slow", geosearchstore)
            .group("geo").since("6.2.0").summary("Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key.").key_flags(&["OW", "update"]),
    ]
}

/// GEORADIUS(BYMEMBER) keys as Redis 7.0's key specs find them: the source, then the
/// argument after the first STORE and after the first STOREDIST from `start` on.
fn keys_after_store(args: &[Bytes], start: usize) -> Vec<usize> {
    let mut keys = vec![1];
    for keyword in [&b"store"[..], b"storedist"] {
        let found = (start..args.len().saturating_sub(1)).find(|&i| args[i].eq_ignore_ascii_case(keyword));
        keys.extend(found.map(|i| i + 1));
    }
    keys
}

fn georadius_keys(args: &[Bytes]) -> Vec<usize> {
    keys_after_store(args, 6)
}

fn georadiusbymember_keys(args: &[Bytes]) -> Vec<usize> {
    keys_after_store(args, 5)
}

// ---- argument parsing, with Redis's errors ----

fn double_arg(b: &[u8], msg: &str) -> Result<f64, Frame> {
    parse_redis_double(b).ok_or_else(|| err(msg))
}

fn lon_lat(args: &[Bytes]) -> Result<(f64, f64), Frame> {
    let lon = double_arg(&args[0], "ERR value is not a valid float")?;
    let lat = double_arg(&args[1], "ERR value is not a valid float")?;
    if !geohash::valid_lon_lat(lon, lat) {
        return Err(err(&format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

fn unit(b: &[u8]) -> Result<f64, Frame> {
    match b.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(err("ERR unsupported unit provided. please use M, KM, FT, MI")),
    }
}

/// `<radius> <unit>`: (radius, meters per unit).
fn radius_and_unit(args: &[Bytes]) -> Result<(f64, f64), Frame> {
    let r = double_arg(&args[0], "ERR need numeric radius")?;
    if r < 0.0 {
        return Err(err("ERR radius cannot be negative"));
    }
    Ok((r, unit(&args[1])?))
}

/// `<width> <height> <unit>`.
fn box_and_unit(args: &[Bytes]) -> Result<(f64, f64, f64), Frame> {
    let w = double_arg(&args[0], "ERR need numeric width")?;
    let h = double_arg(&args[1], "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(err("ERR height or width cannot be negative"));
    }
    Ok((w, h, unit(&args[2])?))
}

fn member_position(z: &ZSetValue, member: &[u8]) -> Option<(f64, f64)> {
    z.score(member).and_then(geohash::decode_score)
}

fn coordinate_frame(v: f64) -> Frame {
    Frame::DoubleText(geohash::format_coordinate(v))
}

// ---- GEOADD ----

/// GEOADD is ZADD of the points' scores: it runs and propagates as that ZADD.
fn geoadd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while first < args.len() {
        let opt = &args[first];
        if opt.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if !opt.eq_ignore_ascii_case(b"ch") {
            break;
        }
        first += 1;
    }
    if (args.len() - first) % 3 != 0 || (nx && xx) {
        return syntax_error();
    }
    let mut zargs: Vec<Bytes> = Vec::with_capacity(first + (args.len() - first) / 3 * 2);
    zargs.push(Bytes::from_static(b"zadd"));
    zargs.extend(args[1..first].iter().cloned());
    for point in args[first..].chunks(3) {
        let (lon, lat) = match lon_lat(&point[..2]) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let Some(score) = geohash::score_of(lon, lat) else { return err("ERR invalid longitude,latitude pair") };
        zargs.push(Bytes::from(score.to_string()));
        zargs.push(point[2].clone());
    }
    ctx.propagate_as(zargs.clone());
    zadd_generic(ctx, &zargs, false)
}

// ---- GEODIST / GEOHASH / GEOPOS ----

fn geodist(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => match unit(&args[4]) {
            Ok(u) => u,
            Err(e) => return e,
        },
        _ => return syntax_error(),
    };
    let z = match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => return e,
        Ok(None) => return Frame::Null,
        Ok(Some(z)) => z,
    };
    let (Some(a), Some(b)) = (member_position(z, &args[2]), member_position(z, &args[3])) else { return Frame::Null };
    Frame::bulk(geohash::format_distance(geohash::distance(a.0, a.1, b.0, b.1) / to_meters))
}

fn geohash_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Frame::Array(
            args[2..]
                .iter()
                .map(|m| z.and_then(|z| z.score(m)).and_then(geohash::standard_geohash).map_or(Frame::Null, Frame::bulk))
                .collect(),
        ),
    }
}

fn geopos(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    match access::read::<ZSetValue>(ctx, &args[1]) {
        Err(e) => e,
        Ok(z) => Frame::Array(
            args[2..]
                .iter()
                .map(|m| match z.and_then(|z| member_position(z, m)) {
                    Some((lon, lat)) => Frame::Array(vec![coordinate_frame(lon), coordinate_frame(lat)]),
                    None => Frame::NullArray,
                })
                .collect(),
        ),
    }
}

// ---- GEORADIUS / GEORADIUSBYMEMBER / GEOSEARCH(STORE) ----

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// GEORADIUS: centre and radius as fixed arguments.
    Coords,
    /// GEORADIUSBYMEMBER: a member as centre.
    Member,
    /// GEOSEARCH / GEOSEARCHSTORE: FROM... and BY... options.
    Search,
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

struct Found {
    member: Bytes,
    score: f64,
    lon: f64,
    lat: f64,
    dist: f64,
}

fn georadius(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    geo_search(ctx, args, 1, Variant::Coords, true, false)
}

fn georadius_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    geo_search(ctx, args, 1, Variant::Coords, false, false)
}

fn georadiusbymember(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    geo_search(ctx, args, 1, Variant::Member, true, false)
}

fn georadiusbymember_ro(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    geo_search(ctx, args, 1, Variant::Member, false, false)
}

fn geosearch(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    geo_search(ctx, args, 1, Variant::Search, false, false)
}

fn geosearchstore(ctx: &mut Ctx, args: &[Bytes]) -> Frame {
    geo_search(ctx, args, 2, Variant::Search, false, true)
}

/// What a search asked for and found.
struct Outcome {
    /// None when the source key does not exist.
    found: Option<Vec<Found>>,
    store_key: Option<Bytes>,
    storedist: bool,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    event: &'static str,
}

/// Redis's georadiusGeneric: parses in Redis's order (so the same error wins), searches the
/// cells around the centre, sorts, then replies or stores.
fn geo_search(ctx: &mut Ctx, args: &[Bytes], src_idx: usize, variant: Variant, store_allowed: bool, search_store: bool) -> Frame {
    let outcome = match access::read::<ZSetValue>(ctx, &args[src_idx]) {
        Err(e) => return e,
        Ok(z) => match search_in(z, args, src_idx, variant, store_allowed, search_store) {
            Ok(o) => o,
            Err(e) => return e,
        },
    };
    match (outcome.store_key, outcome.found) {
        (None, None) => Frame::Array(Vec::new()),
        (None, Some(found)) => Frame::Array(
            found
                .into_iter()
                .map(|f| {
                    if !(outcome.withdist || outcome.withhash || outcome.withcoord) {
                        return Frame::Bulk(f.member);
                    }
                    let mut item = vec![Frame::Bulk(f.member)];
                    if outcome.withdist {
                        item.push(Frame::bulk(geohash::format_distance(f.dist)));
                    }
                    if outcome.withhash {
                        item.push(Frame::Integer(f.score as i64));
                    }
                    if outcome.withcoord {
                        item.push(Frame::Array(vec![coordinate_frame(f.lon), coordinate_frame(f.lat)]));
                    }
                    Frame::Array(item)
                })
                .collect(),
        ),
        (Some(dst), found) => {
            let found = found.unwrap_or_default();
            let n = found.len();
            let limits = access::limits(ctx);
            let pairs = found.into_iter().map(|f| (f.member, if outcome.storedist { f.dist } else { f.score })).collect();
            store_zset(ctx, &dst, ZSetValue::from_pairs(pairs, &limits), outcome.event);
            if n > 1 {
                ctx.dirty(n as u64 - 1);
            }
            Frame::Integer(n as i64)
        }
    }
}

fn search_in(zset: Option<&ZSetValue>, args: &[Bytes], src_idx: usize, variant: Variant, store_allowed: bool, search_store: bool) -> Result<Outcome, Frame> {
    let mut centre: Option<(f64, f64)> = None;
    let mut shape: Option<Shape> = None;
    let mut to_meters = 1.0;
    let base = match variant {
        Variant::Coords => {
            centre = Some(lon_lat(&args[2..4])?);
            let (r, u) = radius_and_unit(&args[4..6])?;
            (shape, to_meters) = (Some(Shape::Radius(r)), u);
            6
        }
        Variant::Member => {
            if let Some(z) = zset {
                centre = Some(member_position(z, &args[2]).ok_or_else(|| err("ERR could not decode requested zset member"))?);
                let (r, u) = radius_and_unit(&args[3..5])?;
                (shape, to_meters) = (Some(Shape::Radius(r)), u);
            }
            5
        }
        Variant::Search => src_idx + 1,
    };
    let search = variant == Variant::Search;
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let mut store_key: Option<Bytes> = search_store.then(|| args[1].clone());
    let mut storedist = false;
    let rest = &args[base..];
    let mut i = 0;
    while i < rest.len() {
        let arg = rest[i].to_ascii_lowercase();
        let left = rest.len() - i - 1;
        match arg.as_slice() {
            b"withdist" => withdist = true,
            b"withhash" => withhash = true,
            b"withcoord" => withcoord = true,
            b"any" => any = true,
            b"asc" => sort = Sort::Asc,
            b"desc" => sort = Sort::Desc,
            b"count" if left >= 1 => {
                count = int_arg(&rest[i + 1])?;
                if count <= 0 {
                    return Err(err("ERR COUNT must be > 0"));
                }
                i += 1;
            }
            b"store" | b"storedist" if left >= 1 && store_allowed && !search => {
                store_key = Some(rest[i + 1].clone());
                storedist = arg.as_slice() == b"storedist";
                i += 1;
            }
            b"storedist" if search && search_store => storedist = true,
            b"frommember" if left >= 1 && search && !fromloc => {
                if let Some(z) = zset {
                    centre = Some(member_position(z, &rest[i + 1]).ok_or_else(|| err("ERR could not decode requested zset member"))?);
                }
                frommember = true;
                i += 1;
            }
            b"fromlonlat" if left >= 2 && search && !frommember => {
                centre = Some(lon_lat(&rest[i + 1..i + 3])?);
                fromloc = true;
                i += 2;
            }
            b"byradius" if left >= 2 && search && !bybox => {
                let (r, u) = radius_and_unit(&rest[i + 1..i + 3])?;
                (shape, to_meters) = (Some(Shape::Radius(r)), u);
                byradius = true;
                i += 2;
            }
            b"bybox" if left >= 3 && search && !byradius => {
                let (w, h, u) = box_and_unit(&rest[i + 1..i + 4])?;
                (shape, to_meters) = (Some(Shape::Box { width: w, height: h }), u);
                bybox = true;
                i += 3;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    if store_key.is_some() && (withdist || withhash || withcoord) {
        let what = if search_store { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(err(&format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")));
    }
    let name = String::from_utf8_lossy(&args[0]).into_owned();
    if search && !(frommember || fromloc) {
        return Err(err(&format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}")));
    }
    if search && !(byradius || bybox) {
        return Err(err(&format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")));
    }
    if any && count == 0 {
        return Err(err("ERR the ANY argument requires COUNT argument"));
    }
    let event = if search { "geosearchstore" } else { "georadiusstore" };
    let mut outcome = Outcome { found: None, store_key, storedist, withdist, withhash, withcoord, event };
    let Some(z) = zset else { return Ok(outcome) };
    let (Some((lon, lat)), Some(shape)) = (centre, shape) else { return Err(syntax_error()) };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let area = Search { lon, lat, shape, to_meters };
    let mut found = points_in(z, &area, if any { count as usize } else { 0 });
    match sort {
        Sort::Asc => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Sort::Desc => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        Sort::None => {}
    }
    if count > 0 {
        found.truncate(count as usize);
    }
    for f in &mut found {
        f.dist /= to_meters;
    }
    outcome.found = Some(found);
    Ok(outcome)
}

/// The members inside `area`, cell by cell in Redis's order and by score within a cell;
/// with `limit` (ANY) it stops once that many are found.
fn points_in(z: &ZSetValue, area: &Search, limit: usize) -> Vec<Found> {
    let mut found = Vec::new();
    for cell in area.cells() {
        if limit > 0 && found.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let (start, end) = z.score_range(&ScoreBound { value: min as f64, exclusive: false }, &ScoreBound { value: max as f64, exclusive: true });
        for e in z.range(start, end) {
            if let Some((lon, lat)) = geohash::decode_score(e.score) {
                if let Some(dist) = area.contains(lon, lat) {
                    found.push(Found { member: e.member_bytes(), score: e.score, lon, lat, dist });
                }
            }
            if limit > 0 && found.len() >= limit {
                break;
            }
        }
    }
    found
}
