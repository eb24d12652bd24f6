//! Seeded randomness: the ChaCha8 streams of the background and the bursts, a 64-bit mixing hash
//! and the [`Permutation`] that scatters popular product ranks over product numbers.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(super) fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

pub(super) const BACKGROUND_STREAM: u64 = 0;
pub(super) const BURST_STREAM: u64 = 1;

/// SplitMix64 finalizer: a cheap, well-mixed 64-bit hash.
pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded bijection of `0..n` (a 4-round Feistel network with cycle walking), so that popular
/// ranks map to scattered product numbers without a table.
#[derive(Debug, Clone)]
pub(super) struct Permutation {
    n: u64,
    half: u32,
    mask: u64,
    keys: [u64; 4],
}

impl Permutation {
    pub(super) fn new(n: u64, seed: u64) -> Permutation {
        let bits = if n <= 1 {
            0
        } else {
            64 - (n - 1).leading_zeros()
        };
        let half = bits.div_ceil(2).max(1);
        let mut keys = [0; 4];
        for (i, k) in keys.iter_mut().enumerate() {
            *k = mix64(seed ^ 0x5eed_0f9e_3779_b97f ^ ((i as u64 + 1) << 56));
        }
        Permutation {
            n,
            half,
            mask: (1u64 << half) - 1,
            keys,
        }
    }

    pub(super) fn apply(&self, mut x: u64) -> u64 {
        loop {
            let (mut l, mut r) = (x >> self.half, x & self.mask);
            for k in self.keys {
                let f = mix64(r ^ k) & self.mask;
                (l, r) = (r, l ^ f);
            }
            x = (l << self.half) | r;
            if x < self.n {
                return x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 3, 7, 16, 1000, 20_000] {
            let p = Permutation::new(n, 9);
            let mut seen = vec![false; n as usize];
            for x in 0..n {
                let y = p.apply(x);
                assert!(y < n);
                assert!(!seen[y as usize], "n={n}: {y} twice");
                seen[y as usize] = true;
            }
        }
    }
}
