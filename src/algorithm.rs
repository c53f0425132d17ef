//! Which softmax algorithm runs: the one type, resolved from `Auto` by size.

/// How a softmax row is computed. All give results within the same bound.
/// Only softmax has a choice: log-softmax, the reductions, the backward
/// passes and cross-entropy each have one algorithm (their docs say which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Chosen by row length: `Blocked` for rows of at least 2^18 values,
    /// else `ThreePass` (measured crossovers; see [`Algorithm::resolve`]).
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

/// `Auto` runs `Blocked` for rows of at least this many values (input and
/// output of one row 2 MiB, twice this CPU class's 1 MiB L2), else
/// `ThreePass`. Three-pass reads x twice and the stored exponentials once
/// more, nearly free while a row stays in L2 or the call in L3; blocked
/// reads x once but pays a little per block. Measured with the throughput
/// tool (AVX-512, Zen 4, 1 MiB L2, 32 MiB L3; 1 and 2 threads, medians of
/// 3, µs three-pass / blocked): at 32 MB per call three-pass wins every row
/// up to 131072 (2048x2048 1140 / 1162, 512x8192 1199 / 1258, 128x32768
/// 1308 / 1379, 32x128256 1329 / 1358) and blocked the longer ones
/// (16x256000 1555 / 1482, 8x524288 1909 / 1604, 2x2097152 2065 / 1814);
/// a lone 256000 row (2 MB, in L3) is three-pass's (63.5 / 70.0), and
/// longer lone rows are blocked's (1x524288 246 / 197, 1x2097152 999 /
/// 836). The choice depends on the row length only, never on the batch,
/// so that `Auto` keeps a row's bits whatever batch it comes in; rows of
/// 256000 stay three-pass (5% behind blocked in a 32 MB batch, 10% ahead
/// alone). Online (two exps per element) was never the fastest, so `Auto`
/// does not pick it.
const AUTO_BLOCKED_FROM_ROW: usize = 1 << 18;

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
