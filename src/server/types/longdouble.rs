//! A software model of the x87 80-bit `long double` that Redis uses for INCRBYFLOAT and
//! HINCRBYFLOAT, so our replies carry exactly the same digits as Redis's (including the
//! binary noise, e.g. `1000 + 0.1` -> `1000.09999999999999998`).
//!
//! Covered: `strtold` parsing with Redis's `string2ld` acceptance rules (decimal and hex
//! forms, inf; no spaces, no NaN, overflow / underflow-to-zero rejected), addition with
//! round-to-nearest-even on a 64-bit mantissa, and `ld2string(LD_STR_HUMAN)` formatting
//! (`%.17Lf` with trailing zeros removed, `-0` -> `0`). Subnormal long doubles are
//! treated as normal numbers with a smaller exponent (values below ~1e-4931 never occur in
//! practice; they differ from x87 only in their last bits).

use std::cmp::Ordering;

/// Minimal unsigned big integer (little-endian base 2^32), enough for exact conversions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for d in self.0.iter_mut() {
            let v = *d as u64 * m as u64 + carry;
            *d = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = a as u64;
        for d in self.0.iter_mut() {
            if carry == 0 {
                break;
            }
            let v = *d as u64 + carry;
            *d = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, mut k: u32) {
        while k >= 9 {
            self.mul_small(1_000_000_000);
            k -= 9;
        }
        if k > 0 {
            self.mul_small(10u32.pow(k));
        }
    }

    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64 - 1) * 32 + (32 - top.leading_zeros() as u64),
        }
    }

    fn bit(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        w < self.0.len() && (self.0[w] >> (i % 32)) & 1 == 1
    }

    /// True when any bit below position `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        for (j, &d) in self.0.iter().enumerate() {
            if j < w {
                if d != 0 {
                    return true;
                }
            } else if j == w {
                let mask = (1u64 << (i % 32)) - 1;
                return d as u64 & mask != 0;
            } else {
                break;
            }
        }
        false
    }

    fn shl(&mut self, bits: u64) {
        if self.is_zero() {
            return;
        }
        let words = (bits / 32) as usize;
        let rem = (bits % 32) as u32;
        if rem > 0 {
            let mut carry = 0u32;
            for d in self.0.iter_mut() {
                let v = (*d as u64) << rem;
                *d = v as u32 | carry;
                carry = (v >> 32) as u32;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if words > 0 {
            let mut v = vec![0u32; words];
            v.extend_from_slice(&self.0);
            self.0 = v;
        }
    }

    /// Bits `[lo, lo+64)` as a u64.
    fn bits64(&self, lo: u64) -> u64 {
        let mut out = 0u64;
        for k in 0..64 {
            if self.bit(lo + k) {
                out |= 1 << k;
            }
        }
        out
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0.len().cmp(&o.0.len()).then_with(|| {
            for i in (0..self.0.len()).rev() {
                match self.0[i].cmp(&o.0[i]) {
                    Ordering::Equal => continue,
                    ord => return ord,
                }
            }
            Ordering::Equal
        })
    }

    /// self -= o (requires self >= o).
    fn sub(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let v = self.0[i] as i64 - borrow - *o.0.get(i).unwrap_or(&0) as i64;
            if v < 0 {
                self.0[i] = (v + (1i64 << 32)) as u32;
                borrow = 1;
            } else {
                self.0[i] = v as u32;
                borrow = 0;
            }
        }
        self.trim();
    }

    /// Divides by a small number, returning the remainder.
    fn divmod_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for x in self.0.iter_mut().rev() {
            let cur = (rem << 32) | *x as u64;
            *x = (cur / d as u64) as u32;
            rem = cur % d as u64;
        }
        self.trim();
        rem as u32
    }

    /// Quotient of `self / d` with `qbits` significant bits wanted; returns (q, exact).
    /// Schoolbook shift-subtract: fine for the few hundred bits real inputs need.
    fn div(&self, d: &Big) -> (Big, bool) {
        let n = self.bit_len();
        let mut q = Big(vec![0; (n / 32 + 1) as usize]);
        let mut r = Big(Vec::new());
        for i in (0..n).rev() {
            r.shl(1);
            if self.bit(i) {
                if r.0.is_empty() {
                    r.0.push(1);
                } else {
                    r.0[0] |= 1;
                }
            }
            if r.cmp(d) != Ordering::Less {
                r.sub(d);
                q.0[(i / 32) as usize] |= 1 << (i % 32);
            }
        }
        q.trim();
        (q, r.is_zero())
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".to_string();
        }
        let mut x = self.clone();
        let mut parts = Vec::new();
        while !x.is_zero() {
            parts.push(x.divmod_small(1_000_000_000));
        }
        let mut s = parts.last().expect("non-zero").to_string();
        for p in parts.iter().rev().skip(1) {
            s.push_str(&format!("{p:09}"));
        }
        s
    }
}

const MAX_EXP: i64 = 16383; // largest unbiased exponent of the leading bit
const MIN_EXP: i64 = -16445; // below this, everything rounds to zero (incl. subnormals)

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Zero,
    Inf,
    /// value = m * 2^e with the top bit of m set.
    Finite { m: u64, e: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LongDouble {
    neg: bool,
    kind: Kind,
}

/// Rounds `big * 2^shift` to a 64-bit mantissa (nearest, ties to even); `sticky` tells that
/// the true value is slightly above `big` (inexact lower part).
fn round_big(neg: bool, big: &Big, shift: i64, sticky: bool) -> LongDouble {
    if big.is_zero() {
        return LongDouble { neg, kind: Kind::Zero };
    }
    let len = big.bit_len();
    // Callers pass > 64 significant bits whenever `sticky` can be set.
    let (m, e) = if len <= 64 {
        (big.bits64(0) << (64 - len), shift - (64 - len as i64))
    } else {
        let lo = len - 64;
        let mut m = big.bits64(lo);
        let half = big.bit(lo - 1);
        let rest = big.any_below(lo - 1) || sticky;
        let mut e = shift + lo as i64;
        if half && (rest || m & 1 == 1) {
            let (nm, overflow) = m.overflowing_add(1);
            m = if overflow {
                e += 1;
                1 << 63
            } else {
                nm
            };
        }
        (m, e)
    };
    if e + 63 > MAX_EXP {
        return LongDouble { neg, kind: Kind::Inf };
    }
    if e + 63 < MIN_EXP {
        return LongDouble { neg, kind: Kind::Zero };
    }
    LongDouble { neg, kind: Kind::Finite { m, e } }
}

impl LongDouble {
    pub fn zero() -> Self {
        LongDouble { neg: false, kind: Kind::Zero }
    }

    pub fn from_i64(v: i64) -> Self {
        round_big(v < 0, &Big::from_u64(v.unsigned_abs()), 0, false)
    }

    pub fn is_finite(&self) -> bool {
        self.kind != Kind::Inf
    }

    /// Redis's `string2ld`: the whole string must be a number for `strtold`; no leading
    /// space, no NaN, no overflow to infinity, no non-zero value underflowing to zero.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= 5 * 1024 {
            return None;
        }
        let mut i = 0;
        let neg = match s[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let rest = &s[i..];
        if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble { neg, kind: Kind::Inf });
        }
        let hex = rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x';
        let radix: u32 = if hex { 16 } else { 10 };
        let mut j = if hex { 2 } else { 0 };
        let mut digits = Big(Vec::new());
        let mut ndigits = 0;
        let mut frac_digits: i64 = 0;
        let mut nonzero = false;
        let mut seen_dot = false;
        while j < rest.len() {
            let c = rest[j];
            if c == b'.' && !seen_dot {
                seen_dot = true;
            } else if let Some(d) = (c as char).to_digit(radix) {
                // Digits beyond ~800 significant ones cannot change a 64-bit rounding except
                // as a sticky bit; keep them all anyway (inputs are capped at 5 KB).
                digits.mul_small(radix);
                digits.add_small(d);
                nonzero |= d != 0;
                ndigits += 1;
                if seen_dot {
                    frac_digits += 1;
                }
            } else {
                break;
            }
            j += 1;
        }
        if ndigits == 0 {
            return None;
        }
        let mut exp: i64 = 0;
        if j < rest.len() {
            let marker = rest[j] | 0x20;
            if (hex && marker == b'p') || (!hex && marker == b'e') {
                let mut k = j + 1;
                let eneg = match rest.get(k) {
                    Some(b'-') => {
                        k += 1;
                        true
                    }
                    Some(b'+') => {
                        k += 1;
                        false
                    }
                    _ => false,
                };
                let start = k;
                while k < rest.len() && rest[k].is_ascii_digit() {
                    exp = (exp * 10 + (rest[k] - b'0') as i64).min(1_000_000);
                    k += 1;
                }
                if k == start {
                    return None; // "1e" leaves "e" unparsed
                }
                if eneg {
                    exp = -exp;
                }
                j = k;
            }
        }
        if j != rest.len() {
            return None;
        }
        if !nonzero {
            return Some(LongDouble { neg, kind: Kind::Zero });
        }
        let v = if hex {
            round_big(neg, &digits, exp - 4 * frac_digits, false)
        } else {
            let k10 = exp - frac_digits;
            if k10 > 5000 {
                return None; // overflow
            }
            if k10 < -5500 {
                return None; // underflow to zero
            }
            if k10 >= 0 {
                let mut n = digits;
                n.mul_pow10(k10 as u32);
                round_big(neg, &n, 0, false)
            } else {
                let mut p = Big::from_u64(1);
                p.mul_pow10((-k10) as u32);
                // Scale so the quotient has at least 66 significant bits.
                let want = 66 + p.bit_len() as i64 - digits.bit_len() as i64;
                let s = want.max(0) as u64;
                let mut n = digits;
                n.shl(s);
                let (q, exact) = n.div(&p);
                round_big(neg, &q, -(s as i64), !exact)
            }
        };
        match v.kind {
            Kind::Inf => None,
            Kind::Zero => None,
            _ => Some(v),
        }
    }

    /// Sum rounded to a 64-bit mantissa (round to nearest, ties to even).
    pub fn add(&self, o: &LongDouble) -> LongDouble {
        match (self.kind, o.kind) {
            (Kind::Inf, Kind::Inf) if self.neg != o.neg => LongDouble { neg: false, kind: Kind::Inf }, // NaN: callers reject non-finite
            (Kind::Inf, _) => *self,
            (_, Kind::Inf) => *o,
            (Kind::Zero, Kind::Zero) => LongDouble { neg: self.neg && o.neg, kind: Kind::Zero },
            (Kind::Zero, _) => *o,
            (_, Kind::Zero) => *self,
            (Kind::Finite { m: m1, e: e1 }, Kind::Finite { m: m2, e: e2 }) => {
                // Order by magnitude: (a) has the larger exponent.
                let (a_neg, am, ae, b_neg, bm, be) =
                    if e1 > e2 || (e1 == e2 && m1 >= m2) { (self.neg, m1, e1, o.neg, m2, e2) } else { (o.neg, m2, e2, self.neg, m1, e1) };
                let diff = (ae - be) as u64;
                // 62 guard bits below the larger mantissa, plus a sticky bit.
                let a = (am as u128) << 62;
                let (b, sticky) = if diff >= 127 {
                    (0u128, true)
                } else {
                    let full = (bm as u128) << 62;
                    let shifted = full >> diff;
                    let lost = diff > 0 && (full & ((1u128 << diff) - 1)) != 0;
                    (shifted, lost)
                };
                let base_e = ae - 62;
                let (neg, sum, sticky_sub) = if a_neg == b_neg {
                    (a_neg, a + b, false)
                } else {
                    // a >= b in magnitude; an inexact b means the true difference is a bit
                    // smaller than a - b: borrow one unit and keep a sticky bit.
                    if sticky {
                        (a_neg, a - b - 1, true)
                    } else {
                        (a_neg, a - b, false)
                    }
                };
                if sum == 0 && !sticky {
                    return LongDouble::zero();
                }
                let big = Big(vec![sum as u32, (sum >> 32) as u32, (sum >> 64) as u32, (sum >> 96) as u32]);
                let mut big = big;
                big.trim();
                round_big(neg, &big, base_e, sticky || sticky_sub)
            }
        }
    }

    /// `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, trailing zeros (and a bare '.') removed,
    /// "-0" printed as "0"; infinities as "inf" / "-inf".
    pub fn to_human_string(&self) -> String {
        let (m, e) = match self.kind {
            Kind::Inf => return if self.neg { "-inf".into() } else { "inf".into() },
            Kind::Zero => return "0".into(),
            Kind::Finite { m, e } => (m, e),
        };
        // R = round(m * 2^e * 10^17), ties to even.
        let mut n = Big::from_u64(m);
        n.mul_pow10(17);
        let scaled = if e >= 0 {
            n.shl(e as u64);
            n
        } else {
            let s = (-e) as u64;
            if s > n.bit_len() + 1 {
                Big(Vec::new())
            } else {
                let mut q = Big(Vec::new());
                let qbits = n.bit_len().saturating_sub(s);
                for k in (0..qbits).rev() {
                    if n.bit(k + s) {
                        while q.0.len() <= (k / 32) as usize {
                            q.0.push(0);
                        }
                        q.0[(k / 32) as usize] |= 1 << (k % 32);
                    }
                }
                q.trim();
                let half = n.bit(s - 1);
                let rest = n.any_below(s - 1);
                let odd = q.bit(0);
                if half && (rest || odd) {
                    q.add_small(1);
                }
                q
            }
        };
        let digits = scaled.to_decimal();
        let (int_part, frac) = if digits.len() > 17 {
            (digits[..digits.len() - 17].to_string(), digits[digits.len() - 17..].to_string())
        } else {
            ("0".to_string(), format!("{digits:0>17}"))
        };
        let frac = frac.trim_end_matches('0');
        let mut out = String::new();
        if self.neg {
            out.push('-');
        }
        out.push_str(&int_part);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" {
            return "0".into();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> String {
        let x = LongDouble::parse(a.as_bytes()).unwrap();
        let y = LongDouble::parse(b.as_bytes()).unwrap();
        x.add(&y).to_human_string()
    }

    #[test]
    fn matches_redis_incrbyfloat_outputs() {
        // Reference values produced by Redis 7.0 (x87 long double) INCRBYFLOAT.
        assert_eq!(incr("1000", "0.1"), "1000.09999999999999998");
        assert_eq!(incr("0.1", "0.2"), "0.3");
        assert_eq!(incr("123456.789", "0.001"), "123456.78999999999999915");
        assert_eq!(incr("123456.78999999999999915", "1e10"), "10000123456.7900000000372529");
        assert_eq!(incr("3.0e3", "1.5e-3"), "3000.00150000000000006");
        assert_eq!(incr("5", "1e30"), "1000000000000000000024696061952");
        assert_eq!(incr("1000000000000000000024696061952", "-1e30"), "0");
        assert_eq!(incr("10.5", "0.1"), "10.6");
        assert_eq!(incr("1", "-1"), "0");
        assert_eq!(incr("-0.0", "0"), "0");
    }

    #[test]
    fn parse_rules() {
        for ok in ["1", "-1.5", "+.5", "5.", "1e10", "1E-3", "0x10", "0x1p-2", "inf", "-Infinity", "0"] {
            assert!(LongDouble::parse(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in ["", " 1", "1 ", "nan", "1e", ".", "-", "abc", "1e99999", "1e-99999", "0x"] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert_eq!(LongDouble::parse(b"0.000").unwrap().to_human_string(), "0");
        assert_eq!(LongDouble::parse(b"2.5").unwrap().to_human_string(), "2.5");
        assert_eq!(LongDouble::parse(b"-7").unwrap().to_human_string(), "-7");
        assert_eq!(LongDouble::from_i64(i64::MIN).to_human_string(), "-9223372036854775808");
        assert_eq!(LongDouble::parse(b"inf").unwrap().to_human_string(), "inf");
    }

    #[test]
    fn addition_agrees_with_f64_when_exact() {
        // Sums of small dyadic rationals are exact in both formats.
        for a in -20i64..20 {
            for b in -20i64..20 {
                let x = a as f64 / 8.0;
                let y = b as f64 / 4.0;
                let got = LongDouble::parse(format!("{x}").as_bytes()).unwrap().add(&LongDouble::parse(format!("{y}").as_bytes()).unwrap());
                let want = x + y;
                let text = got.to_human_string();
                assert_eq!(text.parse::<f64>().unwrap(), want, "{x} + {y} -> {text}");
            }
        }
    }
}
