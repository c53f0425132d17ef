//! Which softmax algorithm runs: the one type, resolved from `Auto` by size.

/// How a softmax row is computed. All give results within the same bound.
/// Only softmax has a choice: log-softmax, the reductions, the backward
/// passes and cross-entropy each have one algorithm (their docs say which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Chosen by size: `Blocked` when input and output together reach
    /// 24 MiB (data that streams from DRAM), else `ThreePass` (measured
    /// crossovers; see [`Algorithm::resolve`]).
    #[default]
    Auto,
    /// Max; store `exp(x − max)` and sum; scale by `1/sum`. One exp per
    /// element, three passes over the row.
    ThreePass,
    /// One pass keeps a running max and rescaled sum, a second writes
    /// `exp(x − max)/sum`. Two exps per element, least memory traffic.
    Online,
    /// Online over L1-sized blocks, storing `exp(x − block max)`, then one
    /// pass scales each block. One exp per element, x read once.
    Blocked,
}

/// `Auto` runs `Blocked` when the call's input and output together reach
/// this many bytes (and rows are at least one block long), else `ThreePass`.
/// Three-pass reads x twice, which is free while the data stays in cache;
/// blocked reads it once but pays a little per block. Measured with the
/// throughput tool (AVX-512 and AVX2, Zen 4 with a 32 MiB L3, 1 and 2
/// threads): three-pass wins up to 16.8 MB (1x2097152, 8x262144, 32x50257:
/// 3–8%), the two tie around 25 MB (64x50257), and blocked wins from 32 MB
/// on (16x256000 by 10–15%, 1x4194304 by 18%). Online (two exps per
/// element) was never the fastest, so `Auto` does not pick it.
const AUTO_BLOCKED_FROM_BYTES: usize = 24 << 20;

impl Algorithm {
    /// Every algorithm, `Auto` first.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Auto,
        Algorithm::ThreePass,
        Algorithm::Online,
        Algorithm::Blocked,
    ];

    /// The short name used by the throughput tool: `auto`, `three-pass`,
    /// `online`, `blocked`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::ThreePass => "three-pass",
            Algorithm::Online => "online",
            Algorithm::Blocked => "blocked",
        }
    }

    /// Parses a short name.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name of the algorithm a call over `len` values in rows of
    /// `row_len` runs (for `Auto`, the one it picks).
    pub fn resolve_name(self, len: usize, row_len: usize) -> &'static str {
        self.resolve(len, row_len).name()
    }

    /// The algorithm a call over `len` values in rows of `row_len` runs:
    /// never `Auto`.
    pub fn resolve(self, len: usize, row_len: usize) -> Algorithm {
        match self {
            Algorithm::Auto => {
                let bytes = len.saturating_mul(2 * size_of::<f32>());
                if row_len >= crate::kernels::blocked::BLOCK && bytes >= AUTO_BLOCKED_FROM_BYTES {
                    Algorithm::Blocked
                } else {
                    Algorithm::ThreePass
                }
            }
            chosen => chosen,
        }
    }
}
