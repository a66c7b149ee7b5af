//! Redis's `redisLrand48` / `redisSrand48` (rand.c): the 48-bit linear congruential
//! generator behind `math.random`, so scripts get the same sequence as on Redis.

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const INCREMENT: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;
/// The state before any seeding (X2 X1 X0 = 0x1234 0xABCD 0x330E).
const INITIAL: u64 = 0x1234_ABCD_330E;
/// REDIS_LRAND48_MAX.
const LRAND48_MAX: i32 = i32::MAX;

#[derive(Debug, Clone)]
pub struct Rand48 {
    state: u64,
}

impl Default for Rand48 {
    fn default() -> Self {
        Rand48 { state: INITIAL }
    }
}

impl Rand48 {
    /// The next 31-bit value (`redisLrand48`).
    pub fn next_i32(&mut self) -> i32 {
        self.state = (MULTIPLIER.wrapping_mul(self.state).wrapping_add(INCREMENT)) & MASK;
        (self.state >> 17) as i32
    }

    /// `redisSrand48`: the seed's 32 bits above the fixed low word 0x330E.
    pub fn seed(&mut self, seed: i32) {
        self.state = ((seed as u32 as u64) << 16) | 0x330E;
    }

    /// The number in [0, 1) that `math.random` scales (`(lrand48() % MAX) / MAX`).
    pub fn next_unit(&mut self) -> f64 {
        f64::from(self.next_i32() % LRAND48_MAX) / f64::from(LRAND48_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_values_match_redis() {
        // Redis 7.0 on a fresh server: EVAL "return math.random(100)" 0 -> 40.
        let mut r = Rand48::default();
        assert_eq!((r.next_unit() * 100.0).floor() as i64 + 1, 40);
    }
}
