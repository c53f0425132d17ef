//! Which softmax algorithm runs: the one type, resolved from `Auto` by size.

/// How a softmax row is computed. All give results within the same bound.
/// Only softmax has a choice: log-softmax, the reductions, the backward
/// passes and cross-entropy each have one algorithm (their docs say which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Chosen by row length: `Blocked` for rows of at least 8192 values,
    /// else `ThreePass` (measured; see [`Algorithm::resolve`]).
    #[default]
    Auto,
    /// Max; store `exp(x − max)` and sum; scale by `1/sum`. One exp per
    /// element, three passes over the row.
    ThreePass,
    /// One pass keeps a running max and rescaled sum, a second writes
    /// `exp(x − max)/sum`. Two exps per element, least memory traffic.
    Online,
    /// A running max over blocks of 1024 values (each block's max read
    /// beside the exps of the block before), storing `exp(x − running
    /// max)`, then one pass scales each block. One exp per element, x read
    /// once.
    Blocked,
}

/// `Auto` runs `Blocked` for rows of at least this many values, else
/// `ThreePass`. Both run one exp per element; three-pass reads the whole
/// row for its max before the exps, blocked reads each block's max while
/// the block before it keeps the FMA ports busy and the loads idle, and
/// pays a little per block (its exp loop carries the next block's max and
/// the flush; its scale pass a factor per block). Where the row comes from
/// L1/L2 three-pass is ahead; where rows stream from L3 or DRAM, blocked
/// is, because its one read overlaps the exps. Measured with the
/// throughput tool (AVX-512, Zen 5, 1 thread, same run, medians of 3
/// alternating rounds, µs three-pass / blocked): 1x4096 0.5 / 0.5, 1x8192
/// 1.0 / 1.0, 1x16384 1.9 / 1.9, 1x32768 3.8 / 3.7, 1x50257 5.7 / 5.5,
/// 1x65536 6.8 / 7.1, 1x128256 15.9 / 16.2, 2048x2048 947 / 1118,
/// 1024x4096 843 / 953, 512x8192 840 / 789, 256x16384 818 / 745,
/// 128x32768 858 / 741, 64x65536 840 / 700. From 2^13 on, batches gain
/// 6–20% from blocked and single rows stay within 4% either way; below it
/// three-pass wins the batches by 12–18%.
/// The choice depends on the row length only, never on the batch, so that
/// `Auto` keeps a row's bits whatever batch it comes in. Online (two exps
/// per element) was never the fastest, so `Auto` does not pick it.
const AUTO_BLOCKED_FROM_ROW: usize = 8 * 1024;

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
    /// never `Auto`. `Auto` decides by `row_len` alone (see its docs), so
    /// a row resolves the same in any batch.
    pub fn resolve(self, len: usize, row_len: usize) -> Algorithm {
        let _ = len;
        match self {
            Algorithm::Auto => {
                if row_len >= AUTO_BLOCKED_FROM_ROW {
                    Algorithm::Blocked
                } else {
                    Algorithm::ThreePass
                }
            }
            chosen => chosen,
        }
    }
}
