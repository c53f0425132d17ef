//! Which softmax algorithm runs: the one type, resolved from `Auto` by size.

/// How a softmax row is computed. All give results within the same bound.
/// Only softmax has a choice: log-softmax, the reductions, the backward
/// passes and cross-entropy each have one algorithm (their docs say which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Chosen by row length: `Blocked` for rows of at least 2048 values,
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

/// `Auto` runs `Blocked` for rows of at least this many values (two of its
/// blocks, so that one block's max is read beside the other's exps), else
/// `ThreePass`. Both run one exp per element; three-pass reads the whole
/// row for its max before the exps, blocked reads each block's max while
/// the block before it keeps the FMA ports busy and the loads idle, and
/// pays a little per block. Measured with the throughput tool (AVX-512,
/// Zen 4, 1 thread, same run, medians of 9 alternating rounds, µs
/// three-pass / blocked): 1x50257 15.7 / 14.3, 1x128256 37.7 / 36.8,
/// 1x256000 86.3 / 77.4, 64x50257 1430 / 1313, 32x128256 1838 / 1673,
/// 16x256000 2055 / 1859, 4x16384 19.5 / 17.8; medians of 7: 1x8192 2.1 /
/// 2.0, 1x32768 9.3 / 9.0, 512x8192 1583 / 1507, 1024x4096 1442 / 1384,
/// 2048x2048 1443 / 1397, 4096x1024 1584 / 1548 (one block: the same
/// work). Three-pass keeps the rows of one block, where it has the
/// register path for short rows and skips the exp's flush when the row's
/// min allows. The choice depends on the row length only, never on the
/// batch, so that `Auto` keeps a row's bits whatever batch it comes in.
/// Online (two exps per element) was never the fastest, so `Auto` does
/// not pick it.
const AUTO_BLOCKED_FROM_ROW: usize = 2048;

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
