//! splitmix64: a tiny, fully specified PRNG, so generated data depends on nothing
//! but the parameters (not on a crate's algorithm or version).

/// splitmix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator for one entity: independent of generation order.
    pub fn for_entity(seed: u64, kind: u64, index: u64) -> Self {
        let mut g = SplitMix64::new(seed ^ kind.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mixed = g.next_u64() ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
        SplitMix64::new(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; returns 0 for `n` == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for test data, and exact to specify.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // splitmix64 reference output for seed 1234567.
        let mut g = SplitMix64::new(1_234_567);
        assert_eq!(g.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(g.next_u64(), 3_203_168_211_198_807_973);
        let mut a = SplitMix64::for_entity(7, 1, 99);
        let mut b = SplitMix64::for_entity(7, 1, 99);
        assert_eq!(a.below(1000), b.below(1000));
    }
}
