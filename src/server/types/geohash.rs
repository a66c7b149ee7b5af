//! Geohash arithmetic of Redis's GEO commands: a point is a sorted-set member whose score is
//! a 52-bit interleaved geohash (26 steps) over the Web Mercator bounds; searches scan the
//! score ranges of the geohash cell around the centre and its 8 neighbours, then filter by
//! exact distance. Everything here is pure math, shaped so that results, their order and
//! every printed digit match Redis 7.0.

/// The step (bits per coordinate) of a stored score.
pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// The Earth's quadratic mean radius for WGS-84, as Redis uses it.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    const ZERO: Hash = Hash { bits: 0, step: 0 };

    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash as a 52-bit score prefix.
    pub fn align52(&self) -> u64 {
        self.bits << (52 - u32::from(self.step) * 2)
    }

    /// The sorted-set score range [min, max) holding every point inside this cell.
    pub fn score_range(&self) -> (u64, u64) {
        let next = Hash { bits: self.bits + 1, step: self.step };
        (self.align52(), next.align52())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

const WEB_MERCATOR: (Range, Range) = (Range { min: LONG_MIN, max: LONG_MAX }, Range { min: LAT_MIN, max: LAT_MAX });

/// Spreads the 32 bits of `x` onto the even bits and those of `y` onto the odd bits.
fn interleave(x: u32, y: u32) -> u64 {
    fn spread(v: u32) -> u64 {
        let mut v = u64::from(v);
        v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
        v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
        v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        v = (v | (v << 2)) & 0x3333_3333_3333_3333;
        (v | (v << 1)) & 0x5555_5555_5555_5555
    }
    spread(x) | (spread(y) << 1)
}

/// The inverse of `interleave`: (even bits, odd bits).
fn deinterleave(bits: u64) -> (u32, u32) {
    fn squash(mut v: u64) -> u32 {
        v &= 0x5555_5555_5555_5555;
        v = (v | (v >> 1)) & 0x3333_3333_3333_3333;
        v = (v | (v >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
        v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
        v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
        v = (v | (v >> 16)) & 0x0000_0000_FFFF_FFFF;
        v as u32
    }
    (squash(bits), squash(bits >> 1))
}

/// Whether a longitude/latitude pair can be stored (Redis's GEO bounds).
pub fn valid_lon_lat(lon: f64, lat: f64) -> bool {
    (LONG_MIN..=LONG_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// The geohash of a point in the given ranges at `step` bits per coordinate; None outside.
pub fn encode_in(long_range: Range, lat_range: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step == 0 || step > 32 || !valid_lon_lat(lon, lat) {
        return None;
    }
    if lat < lat_range.min || lat > lat_range.max || lon < long_range.min || lon > long_range.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (lon - long_range.min) / (long_range.max - long_range.min) * scale;
    // latitude on the even bits, longitude on the odd ones (truncated, as a C cast does)
    Some(Hash { bits: interleave(lat_offset as u32, long_offset as u32), step })
}

pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Hash> {
    encode_in(WEB_MERCATOR.0, WEB_MERCATOR.1, lon, lat, step)
}

/// The score a point is stored with.
pub fn score_of(lon: f64, lat: f64) -> Option<u64> {
    encode(lon, lat, STEP_MAX).map(|h| h.align52())
}

fn decode_area(hash: Hash) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let (long_range, lat_range) = WEB_MERCATOR;
    let (ilat, ilon) = deinterleave(hash.bits);
    let cells = (1u64 << hash.step) as f64;
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    Some(Area {
        latitude: Range {
            min: lat_range.min + (f64::from(ilat) / cells) * lat_scale,
            max: lat_range.min + ((f64::from(ilat) + 1.0) / cells) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (f64::from(ilon) / cells) * long_scale,
            max: long_range.min + ((f64::from(ilon) + 1.0) / cells) * long_scale,
        },
    })
}

/// The point a stored score stands for: the centre of its cell, clamped to the bounds.
pub fn decode_score(score: f64) -> Option<(f64, f64)> {
    let area = decode_area(Hash { bits: score as u64, step: STEP_MAX })?;
    let lon = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    Some((lon, lat))
}

/// The standard 11-character geohash of a stored score (re-encoded over -90..90 latitude,
/// the last character always '0' as Redis has only 52 bits).
pub fn standard_geohash(score: f64) -> Option<String> {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score)?;
    let hash = encode_in(Range { min: -180.0, max: 180.0 }, Range { min: -90.0, max: 90.0 }, lon, lat, STEP_MAX)?;
    Some(
        (0..11)
            .map(|i| {
                let idx = if i == 10 { 0 } else { (hash.bits >> (52 - (i + 1) * 5)) & 0x1f };
                ALPHABET[idx as usize] as char
            })
            .collect(),
    )
}

const LONG_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const LAT_BITS: u64 = 0x5555_5555_5555_5555;

/// Moves the cell one step along the axis whose bits are `axis` (LONG_BITS: east/west,
/// LAT_BITS: north/south), wrapping around: the other axis's bits are filled with ones
/// so that the carry runs through them.
fn move_along(hash: &mut Hash, d: i8, axis: u64) {
    if d == 0 {
        return;
    }
    let width = 64 - u32::from(hash.step) * 2;
    let mut moving = hash.bits & axis;
    let kept = hash.bits & !axis;
    let filler = !axis >> width;
    if d > 0 {
        moving = moving.wrapping_add(filler + 1);
    } else {
        moving = (moving | filler).wrapping_sub(filler + 1);
    }
    moving &= axis >> width;
    hash.bits = moving | kept;
}

fn moved(hash: Hash, dx: i8, dy: i8) -> Hash {
    let mut h = hash;
    move_along(&mut h, dx, LONG_BITS);
    move_along(&mut h, dy, LAT_BITS);
    h
}

/// Haversine distance in meters (Redis's geohashGetDistance).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((lon2 * D_R - lon1 * D_R) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (lat1 * D_R, lat2 * D_R);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (lat2 * D_R - lat1 * D_R).abs()
}

/// A search area: a circle or an axis-aligned box around a centre, sizes in the unit
/// given by `to_meters`.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Search {
    pub lon: f64,
    pub lat: f64,
    pub shape: Shape,
    pub to_meters: f64,
}

impl Search {
    /// The distance (meters) from the centre to the point if the point is inside.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.to_meters).then_some(d)
            }
            Shape::Box { width, height } => {
                let (w, h) = (width * self.to_meters, height * self.to_meters);
                if lat_distance(lat, self.lat) > h / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > w / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// [min lon, min lat, max lon, max lat] of the area.
    fn bounding_box(&self) -> [f64; 4] {
        let (half_h, half_w) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (height, width) = (half_h * self.to_meters, half_w * self.to_meters);
        let lat_delta = height / EARTH_RADIUS_M / D_R;
        let long_delta_top = width / EARTH_RADIUS_M / ((self.lat + lat_delta) * D_R).cos() / D_R;
        let long_delta_bottom = width / EARTH_RADIUS_M / ((self.lat - lat_delta) * D_R).cos() / D_R;
        // the hemispheres bulge in opposite directions
        let delta = if self.lat < 0.0 { long_delta_bottom } else { long_delta_top };
        [self.lon - delta, self.lat - lat_delta, self.lon + delta, self.lat + lat_delta]
    }

    fn radius_meters(&self) -> f64 {
        match self.shape {
            Shape::Radius(r) => r * self.to_meters,
            Shape::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt() * self.to_meters,
        }
    }

    /// The cells to scan, in Redis's order (centre, N, S, E, W, NE, NW, SE, SW), with the
    /// ones the area cannot reach left out and a cell equal to the one before skipped.
    pub fn cells(&self) -> Vec<Hash> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let mut steps = estimate_steps(self.radius_meters(), self.lat);
        let around = |steps: u8| {
            let hash = encode(self.lon, self.lat, steps).unwrap_or(Hash::ZERO);
            let n = [moved(hash, 0, 1), moved(hash, 0, -1), moved(hash, 1, 0), moved(hash, -1, 0)];
            (hash, n)
        };
        let (mut hash, [north, south, east, west]) = around(steps);
        let reaches_past = |h: Hash, f: &dyn Fn(&Area) -> bool| decode_area(h).is_some_and(|a| f(&a));
        let too_fine = reaches_past(north, &|a| a.latitude.max < max_lat)
            || reaches_past(south, &|a| a.latitude.min > min_lat)
            || reaches_past(east, &|a| a.longitude.max < max_lon)
            || reaches_past(west, &|a| a.longitude.min > min_lon);
        if steps > 1 && too_fine {
            steps -= 1;
            hash = around(steps).0;
        }
        // centre, N, S, E, W, NE, NW, SE, SW
        let mut cells = [
            hash,
            moved(hash, 0, 1),
            moved(hash, 0, -1),
            moved(hash, 1, 0),
            moved(hash, -1, 0),
            moved(hash, 1, 1),
            moved(hash, -1, 1),
            moved(hash, 1, -1),
            moved(hash, -1, -1),
        ];
        if steps >= 2 {
            if let Some(area) = decode_area(hash) {
                let mut drop = |idx: &[usize]| idx.iter().for_each(|&i| cells[i] = Hash::ZERO);
                if area.latitude.min < min_lat {
                    drop(&[2, 7, 8]);
                }
                if area.latitude.max > max_lat {
                    drop(&[1, 5, 6]);
                }
                if area.longitude.min < min_lon {
                    drop(&[4, 8, 6]);
                }
                if area.longitude.max > max_lon {
                    drop(&[3, 7, 5]);
                }
            }
        }
        let mut out: Vec<Hash> = Vec::with_capacity(9);
        for c in cells {
            if c.is_zero() || out.last() == Some(&c) {
                continue;
            }
            out.push(c);
        }
        out
    }
}

/// How many bits per coordinate a cell needs to be about the size of the search radius.
fn estimate_steps(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// A distance as Redis prints it: rounded (ties to even) to 4 decimals.
pub fn format_distance(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let scaled = (d * 10000.0).round_ties_even() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let v = scaled.unsigned_abs();
    format!("{sign}{}.{:04}", v / 10000, v % 10000)
}

/// A coordinate as Redis's human long double form: 17 decimals, trailing zeros cut.
pub fn format_coordinate(v: f64) -> String {
    let mut s = format!("{v:.17}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips() {
        for (x, y) in [(0u32, 0u32), (1, 0), (0, 1), (0xffff_ffff, 0), (0x1234_5678, 0x9abc_def0)] {
            assert_eq!(deinterleave(interleave(x, y)), (x, y));
        }
    }

    #[test]
    fn scores_and_positions_are_redis_ones() {
        // Palermo, from Redis's GEOADD documentation example: score 3479099956230698
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698));
        let (lon, lat) = decode_score(3479099956230698.0).unwrap();
        assert_eq!(format_coordinate(lon), "13.36138933897018433");
        assert_eq!(format_coordinate(lat), "38.11555639549629859");
        assert_eq!(standard_geohash(3479099956230698.0).as_deref(), Some("sqc8b49rny0"));
    }

    #[test]
    fn distance_matches_redis_example() {
        // GEODIST Sicily Palermo Catania -> 166274.1516
        let (a, b) = (decode_score(3479099956230698.0).unwrap(), decode_score(score_of(15.087269, 37.502669).unwrap() as f64).unwrap());
        assert_eq!(format_distance(distance(a.0, a.1, b.0, b.1)), "166274.1516");
    }

    #[test]
    fn distances_round_to_four_decimals() {
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(0.00005), "0.0000");
        assert_eq!(format_distance(1.23456), "1.2346");
        assert_eq!(format_distance(12.5), "12.5000");
    }

    #[test]
    fn cells_cover_the_area_and_skip_repeats() {
        let s = Search { lon: 15.0, lat: 37.0, shape: Shape::Radius(200.0), to_meters: 1000.0 };
        let cells = s.cells();
        assert!(!cells.is_empty() && cells.len() <= 9);
        assert!(cells.windows(2).all(|w| w[0] != w[1]));
    }
}
