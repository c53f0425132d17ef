//! `(max, sum)` partials: the pieces a row split across workers (a
//! vocabulary-sharded LM head, split-KV decoding, flash attention's blocks)
//! is normalized from. Each worker computes its shard's [`Partial`], the
//! partials are merged anywhere, in any order, and each worker normalizes
//! its shard with the merged total ([`Softmax::run_with`]).

use crate::Softmax;
use crate::kernels::{self, RowClass};

/// `(max, Σ exp(x − max))` of a row or of a shard of one, the sum carried
/// in f64 (beyond f32's range too). What each kind of row gives:
///
/// | the values | `max()` | `sum()` |
/// |---|---|---|
/// | a finite max, no NaN | the max | `Σ exp(x − max)` (≥ 1) |
/// | a NaN | NaN | NaN |
/// | `k ≥ 1` values of +inf, no NaN | +inf | `k` |
/// | nothing above −inf (or empty) | −inf | 0 |
///
/// [`Partial::merge`] keeps these rules (a NaN anywhere wins, then +inf
/// counts add up), so the merged partial of a row's shards is the
/// partial of the row, up to the rounding of the rescaled sums. The max
/// is exact; the sum within [`reference::partial_sum_tolerance`]
/// (`2^-20·sum`) of [`reference::partial_f64`]'s (`tests/partials.rs`).
/// Partials are of the values as given, like the other reductions: no
/// temperature, scale or mask.
///
/// [`reference::partial_sum_tolerance`]: crate::reference::partial_sum_tolerance
/// [`reference::partial_f64`]: crate::reference::partial_f64
///
/// ```
/// use simd_softmax::{Partial, Softmax, partial};
/// let row = [1.0f32, 2.0, 3.0, 4.0];
/// let (a, b) = row.split_at(2);
/// let total = partial(b)?.merge(partial(a)?); // any order
/// let (mut pa, mut pb) = ([0.0f32; 2], [0.0f32; 2]);
/// Softmax::new().run_with(a, &mut pa, total)?;
/// Softmax::new().run_with(b, &mut pb, total)?;
/// let mut whole = [0.0f32; 4];
/// simd_softmax::softmax(&row, &mut whole)?;
/// for (s, w) in pa.iter().chain(&pb).zip(&whole) {
///     assert!((s - w).abs() <= 1e-7);
/// }
/// # Ok::<(), simd_softmax::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partial {
    max: f32,
    sum: f64,
}

impl Partial {
    /// The partial of an empty row: merging it changes nothing.
    pub const EMPTY: Partial = Partial {
        max: f32::NEG_INFINITY,
        sum: 0.0,
    };

    /// The partial of a row of NaN.
    const NAN: Partial = Partial {
        max: f32::NAN,
        sum: f64::NAN,
    };

    /// A partial from its two numbers (one computed elsewhere and sent
    /// here), read by the rules of the table above: a NaN in either makes
    /// it NaN, a max of +inf counts `sum` infinities, a max of −inf holds
    /// nothing.
    pub fn new(max: f32, sum: f64) -> Partial {
        if max.is_nan() || sum.is_nan() {
            Partial::NAN
        } else if max == f32::NEG_INFINITY {
            Partial::EMPTY
        } else {
            Partial { max, sum }
        }
    }

    /// The largest value (see the table for NaN and infinite rows).
    pub fn max(self) -> f32 {
        self.max
    }

    /// `Σ exp(x − max)` in f64, or the count of +inf values, 0 for no mass.
    pub fn sum(self) -> f64 {
        self.sum
    }

    /// The partial of both pieces. Commutative; associative up to the
    /// rounding of the rescaled sums (a fixed order gives fixed bits).
    pub fn merge(self, other: Partial) -> Partial {
        if self.sum.is_nan() || other.sum.is_nan() {
            return Partial::NAN;
        }
        let max = self.max.max(other.max);
        if max == f32::INFINITY {
            let count = |p: Partial| if p.max == max { p.sum } else { 0.0 };
            return Partial {
                max,
                sum: count(self) + count(other),
            };
        }
        if max == f32::NEG_INFINITY {
            return Partial::EMPTY;
        }
        // Both rescaled to the larger max in f64 and added: commutative bit
        // for bit.
        let part = |p: Partial| kernels::Partial {
            max: p.max,
            sum: p.sum,
        };
        let merged = part(self).merge(part(other), 1.0);
        Partial {
            max: merged.max,
            sum: merged.sum,
        }
    }

    /// `ln Σ exp(x)` of what the partial covers, rounded to f32: +inf with
    /// a +inf value, −inf with no mass, NaN with a NaN.
    pub fn logsumexp(self) -> f32 {
        match (self.max, self.sum) {
            (_, sum) if sum.is_nan() => f32::NAN,
            (max, _) if !max.is_finite() => max,
            (max, sum) => (f64::from(max) + sum.ln()) as f32,
        }
    }

    /// The public partial of `row` from the kernels' `total` of it.
    pub(crate) fn of_row(total: kernels::Partial, row: impl IntoIterator<Item = f32>) -> Partial {
        match RowClass::of(total, row) {
            RowClass::Finite => Partial {
                max: total.max,
                sum: total.sum,
            },
            RowClass::Nan => Partial::NAN,
            RowClass::PosInf(k) => Partial {
                max: f32::INFINITY,
                sum: k as f64,
            },
            RowClass::NoMass => Partial::EMPTY,
        }
    }

    /// What `Softmax::run_with` writes at a value `x` when this total is
    /// not finite (rare: scalar code).
    pub(crate) fn special_value(self, x: f32) -> f32 {
        if self.sum.is_nan() || x.is_nan() {
            f32::NAN
        } else if self.max == f32::INFINITY && x == f32::INFINITY {
            (1.0 / self.sum) as f32
        } else {
            0.0
        }
    }

    /// Whether the kernel normalizes with this total: a finite max.
    pub(crate) fn is_finite(self) -> bool {
        self.max.is_finite() && !self.sum.is_nan()
    }
}

/// Rows are reduced in fixed parts of this many values from the row start
/// (the unit a long row is split across threads in). Shards cut at
/// multiples of it, their partials merged from the first shard on, and
/// each normalized with [`Softmax::run_with`], give the bits of one
/// `Algorithm::Online` call on the row.
pub const FIXED_PART_LEN: usize = kernels::CHUNK;

/// The [`Partial`] of one row (one read).
///
/// ```
/// let p = simd_softmax::partial(&[0.0f32, 0.0])?;
/// assert_eq!((p.max(), p.sum()), (0.0, 2.0));
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn partial(row: &[f32]) -> Result<Partial, crate::Error> {
    Softmax::new().run_partial(row)
}

/// The [`Partial`] of each row of `row_len` values into `output` (one per
/// row), rows in parallel.
pub fn partial_rows(
    input: &[f32],
    row_len: usize,
    output: &mut [Partial],
) -> Result<(), crate::Error> {
    Softmax::new().run_partial_rows(input, row_len, output)
}

/// Writes `exp(x − m)` for every `x` of `input` into `output` (same
/// length) and returns their sum in f64: flash attention's step, with `m`
/// the running max. `m` must be finite (else
/// [`Error::InvalidParameter`](crate::Error::InvalidParameter), nothing
/// written); values above `m` give exps above 1, and +inf where `x − m`
/// exceeds the exp's domain, 88.3762 (whose
/// exp is 2.4e38: the few values up to f32::MAX beyond it round up to
/// +inf).
/// Each value within [`reference::exp_shifted_tolerance`]
/// (`2^-24·(4 + |x − m|)·e + 2^-126`), the sum within
/// [`reference::partial_sum_tolerance`] of the exact exps' sum.
///
/// [`reference::exp_shifted_tolerance`]: crate::reference::exp_shifted_tolerance
/// [`reference::partial_sum_tolerance`]: crate::reference::partial_sum_tolerance
///
/// ```
/// let mut e = [0.0f32; 2];
/// let sum = simd_softmax::exp_shifted(&[1.0, 1.0], &mut e, 1.0)?;
/// assert_eq!((e, sum), ([1.0, 1.0], 2.0));
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn exp_shifted(input: &[f32], output: &mut [f32], m: f32) -> Result<f64, crate::Error> {
    Softmax::new().exp_shifted_call(Some(input), output, m)
}

/// [`exp_shifted`] in place.
pub fn exp_shifted_in_place(data: &mut [f32], m: f32) -> Result<f64, crate::Error> {
    Softmax::new().exp_shifted_call(None, data, m)
}
