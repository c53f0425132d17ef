//! Which softmax algorithm runs: the one type, resolved from `Auto` by size.

/// How a softmax row is computed. All give results within the same bound.
/// Only softmax has a choice: log-softmax, the reductions, the backward
/// passes and cross-entropy each have one algorithm (their docs say which).
/// The choice applies to rows with no mask and no soft cap (scale,
/// temperature and the causal mask allowed): rows under a keep or
/// additive mask (ALiBi's too) or a soft cap run `ThreePass`, attention
/// rows, where it is the fastest; each algorithm under each logit
/// transform is code compiled per backend, and the crate's build time is
/// their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Chosen by row length: `Blocked` for rows of at least 32768 values,
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
/// the flush; its scale pass a factor per block). Three-pass's exp pass
/// asks for the next row ahead of its max pass (`kernels::FetchAhead`), so
/// in batches of rows up to 16Ki values its max pass no longer waits on L3
/// or DRAM; from 32Ki on, blocked's one read is ahead. Measured with the
/// throughput tool (AVX-512, Zen 5, 1 thread, same run, medians of 3
/// alternating rounds, µs three-pass / blocked): 1x8192 0.9 / 0.9, 1x16384
/// 1.9 / 1.9, 1x32768 3.8 / 3.8, 1x50257 5.7 / 5.6, 1x65536 7.5 / 7.4,
/// 1x128256 16.3 / 15.7, 2048x2048 777 / 1155, 1024x4096 670 / 915,
/// 512x8192 695 / 766, 256x16384 674 / 744, 128x32768 803 / 748, 64x65536
/// 934 / 788. Single rows are within 4% either way at every length.
/// The choice depends on the row length only, never on the batch, so that
/// `Auto` keeps a row's bits whatever batch it comes in. Online (two exps
/// per element) was never the fastest, so `Auto` does not pick it.
const AUTO_BLOCKED_FROM_ROW: usize = 32 * 1024;

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
