//! What the kernels read as logits: the input itself, the input times a
//! scale (temperature), or the input under masks. A transform rides along
//! with the row's data (see `Io`), so the max, exp and write passes apply it
//! as they read: no extra pass and no copy of the row.
//!
//! The scale `c = s/t` is applied after the max is subtracted,
//! `(x − max)·c`, and the product goes into the exp unrounded (as a sum of
//! two f32), so the exponent's error is that of `x − max` alone, relative
//! to `|x − max|·c`. With an additive mask the logit is `w = x·c + a`,
//! rounded to f32 (one fused multiply-add where the backend has FMA), and
//! the exponent is plain `w − max w`. A logit beyond f32 is ±inf, and an
//! infinite `a` on a finite `x` is `a` on every backend (FMA's result: the
//! product of finite values is finite before it is rounded).

use core::ops::Range;

use super::FetchAhead;
use crate::exp::{exp, exp_above_cutoff, exp_for_sum, exp_sum, exp2_of_product};
use crate::lanes::Lanes;

/// A per-row transform of the input into logits.
pub(crate) trait Logits: Copy + Send + Sync {
    /// The transform of `range` of the row.
    fn slice(self, range: Range<usize>) -> Self;
    /// The logits of the vector `x` read at `i` (masked lanes −inf).
    fn read<S: Lanes>(self, s: S, x: S::V, i: usize) -> S::V;
    /// As `read` for the last, partial vector at `i`.
    fn read_partial<S: Lanes>(self, s: S, x: S::V, i: usize) -> S::V;
    /// The exponent of logit `v` for the row max `m` (a logit too).
    fn shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V;
    /// `exp(shift(v, m))`, computed without rounding the exponent first
    /// where that rounding would add to the error.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        exp(s, self.shift(s, v, m))
    }
    /// `exp(shift(v, m))` as a term of a sum only ([`exp_for_sum`] on the
    /// plain input; the others keep [`Logits::exp_shift`]).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift_for_sum<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        self.exp_shift(s, v, m)
    }
    /// Whether [`Logits::exp_shift_above_cutoff`] saves work, so that a
    /// row's min is worth finding with its max.
    const ABOVE_CUTOFF_PAYS: bool = false;
    /// [`Logits::exp_shift`] for a row whose every `v − m` is at least
    /// `exp::CUTOFF` (its min minus its max is): the same bits.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift_above_cutoff<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        self.exp_shift(s, v, m)
    }
    /// The factor `shift` applies to `v − m`, to move partial sums between
    /// maxima: `exp(factor·(m_a − m_b))`.
    fn factor(self) -> f64;
    /// The logit of element `i` holding `x`, for the rare scalar rows.
    fn value(self, x: f32, i: usize) -> f32;
    /// What to fetch beside a row's exp pass for the next row's logits
    /// beyond its input (its mask row).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn fetch_ahead(self) -> FetchAhead<f32> {
        FetchAhead::none()
    }
    /// Whether the keep mask drops element `i` (its output is exactly 0,
    /// or −inf for log, even when the rest of the row is NaN).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn is_masked(self, _i: usize) -> bool {
        false
    }
}

/// The input as it is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plain;

/// `(x − max)·c`: temperature and scale without masks. `c` is held as
/// `hi + lo` (two f32), and the product is kept exact into the exp, so the
/// exponent carries only the rounding of `x − max`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scaled(pub Factor);

/// A positive factor `c = hi + lo` (the f64 value split into two f32),
/// and `c·log2 e` split the same way for the base-2 exp.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Factor {
    pub hi: f32,
    pub lo: f32,
    log2_hi: f32,
    log2_lo: f32,
}

impl Factor {
    pub(crate) fn new(c: f64) -> Self {
        let split = |v: f64| {
            let hi = v as f32;
            (hi, (v - f64::from(hi)) as f32)
        };
        let (hi, lo) = split(c);
        let (log2_hi, log2_lo) = split(c * core::f64::consts::LOG2_E);
        Factor {
            hi,
            lo,
            log2_hi,
            log2_lo,
        }
    }

    fn f64(self) -> f64 {
        f64::from(self.hi) + f64::from(self.lo)
    }

    /// `(v − m)·hi`, for log-softmax: its bound (2^-22 relative to
    /// `|y| ≥ |v − m|·c`) has room for rounding `x − m`, `c` and the
    /// product, and `d·lo` would turn a masked −inf into NaN when `lo = 0`.
    /// The difference is taken of the halves, `(v/2 − m/2)·hi·2`: the same
    /// bits wherever `v − m` fits in f32 (halving and doubling are exact
    /// there), and finite where logits of opposite signs near f32::MAX
    /// differ by more than f32 holds but `c < 1` brings the product back.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn times<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        let half_d = s.mul_add(v, s.splat(0.5), s.mul(m, s.splat(-0.5)));
        s.mul(s.mul(half_d, s.splat(self.hi)), s.splat(2.0))
    }

    /// `exp((v − m)·c)` with the product exact: in base 2 through one
    /// fused multiply-add where the backend has FMA, else through Dekker's
    /// product. For `d = −inf` the low parts are NaN, but the exp is 0 by
    /// the high part alone.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn exp_times<S: Lanes>(self, s: S, d: S::V) -> S::V {
        if S::FMA {
            exp2_of_product(s, d, self.log2_hi, self.log2_lo)
        } else {
            let (hi, lo) = s.two_prod(d, s.splat(self.hi));
            exp_sum(s, hi, s.mul_add(d, s.splat(self.lo), lo))
        }
    }
}

/// Masks: an additive mask makes the logit `x·c + slope·add[i]` (`slope`
/// ALiBi's, else 1), and then `keep[i]` false makes it −inf. Either may be
/// absent; both are this row's part.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Masked<'a> {
    pub keep: Option<&'a [bool]>,
    pub add: Option<&'a [f32]>,
    pub c: Factor,
    pub slope: f32,
    /// The soft cap `c` of `c·tanh(x/c)`, applied to `x` before anything
    /// else (0: none).
    pub softcap: f32,
}

/// An additive mask (times ALiBi's slope, 1 without) on `x·c`: the logit
/// `x·c + slope·add[i]` with no keep mask and no cap, the attention rows'
/// transform. The same bits as [`Masked`] with only `add`, without its
/// tests for absent parts in every vector (LLVM kept them in the loops,
/// with the accumulators spilled around them), and, as its exponent is
/// plain `w − max w`, with [`Plain`]'s exp for rows whose every exponent
/// is above the cutoff.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Biased<'a> {
    pub add: &'a [f32],
    pub c: f32,
    pub slope: f32,
    /// How far on from `add`'s start the next row's mask row is, when it
    /// follows this one in memory (0: it does not).
    pub next_row_bytes: usize,
}

impl Logits for Biased<'_> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn slice(self, range: Range<usize>) -> Self {
        Biased {
            add: &self.add[range.clone()],
            next_row_bytes: self.next_row_bytes.saturating_sub(4 * range.start),
            ..self
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read<S: Lanes>(self, s: S, x: S::V, i: usize) -> S::V {
        // `a·1` is `a`: no test for the slope.
        let a = s.mul(s.load(&self.add[i..]), s.splat(self.slope));
        s.mul_add_exact_inf(x, s.splat(self.c), a)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read_partial<S: Lanes>(self, s: S, x: S::V, i: usize) -> S::V {
        // Lanes past the end: −inf·c + 0.
        let a = s.mul(s.load_partial(&self.add[i..], 0.0), s.splat(self.slope));
        s.mul_add_exact_inf(x, s.splat(self.c), a)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        s.sub(v, m)
    }
    const ABOVE_CUTOFF_PAYS: bool = true;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift_above_cutoff<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        exp_above_cutoff(s, s.sub(v, m))
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn factor(self) -> f64 {
        1.0
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn value(self, x: f32, i: usize) -> f32 {
        crate::lanes::Scalar.mul_add_exact_inf(x, self.c, self.add[i] * self.slope)
    }
    // A [q, k] mask's rows follow each other as the queries do, and
    // broadcast over heads it is read once per head: from L3 when it
    // outgrows L2 (1x8x512x512: a quarter of the kernel's samples on the
    // mask loads of the max pass). A mask row broadcast to every row is in
    // L1 already.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn fetch_ahead(self) -> FetchAhead<f32> {
        if self.next_row_bytes > 0 {
            FetchAhead::from(self.add, self.next_row_bytes)
        } else {
            FetchAhead::none()
        }
    }
}

impl Masked<'_> {
    /// The additive mask's vector at `i` times the slope (rounded once;
    /// with no slope, as it is).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn bias<S: Lanes>(self, s: S, a: S::V) -> S::V {
        if self.slope == 1.0 {
            a
        } else {
            s.mul(a, s.splat(self.slope))
        }
    }

    /// `x` soft-capped, or as it is without a cap. −inf stays −inf (an
    /// entry masked before the cap stays masked, and the lanes past a
    /// row's end stay out of its sums).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn capped<S: Lanes>(self, s: S, x: S::V) -> S::V {
        if self.softcap == 0.0 {
            return x;
        }
        let capped = crate::tanh::softcap(s, x, self.softcap);
        let capped = s.zero_where_below(x, -f32::MAX, capped);
        s.add_where_below(capped, x, -f32::MAX, s.splat(f32::NEG_INFINITY))
    }

    /// The value `x` of element `i` stands for, soft-capped (for the rare
    /// scalar rows: the scalar lanes' rounding).
    pub(crate) fn capped_value(self, x: f32) -> f32 {
        self.capped(crate::lanes::Scalar, x)
    }

    /// What the additive mask adds to the logit of element `i` (0 without
    /// one).
    pub(crate) fn bias_at(self, i: usize) -> f32 {
        self.add.map_or(0.0, |a| {
            if self.slope == 1.0 {
                a[i]
            } else {
                a[i] * self.slope
            }
        })
    }
}

impl Logits for Plain {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn slice(self, _: Range<usize>) -> Self {
        self
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read<S: Lanes>(self, _: S, x: S::V, _: usize) -> S::V {
        x
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read_partial<S: Lanes>(self, _: S, x: S::V, _: usize) -> S::V {
        x
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        s.sub(v, m)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift_for_sum<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        exp_for_sum(s, s.sub(v, m))
    }
    const ABOVE_CUTOFF_PAYS: bool = true;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift_above_cutoff<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        // `v − m` rounds monotonically: `v ≥ min` gives `v − m ≥ min − m`.
        exp_above_cutoff(s, s.sub(v, m))
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn factor(self) -> f64 {
        1.0
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn value(self, x: f32, _: usize) -> f32 {
        x
    }
}

impl Logits for Scaled {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn slice(self, _: Range<usize>) -> Self {
        self
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read<S: Lanes>(self, _: S, x: S::V, _: usize) -> S::V {
        x
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read_partial<S: Lanes>(self, _: S, x: S::V, _: usize) -> S::V {
        x
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        self.0.times(s, v, m)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        self.0.exp_times(s, s.sub(v, m))
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn factor(self) -> f64 {
        self.0.f64()
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn value(self, x: f32, _: usize) -> f32 {
        x
    }
}

impl Logits for Masked<'_> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn slice(self, range: Range<usize>) -> Self {
        Masked {
            keep: self.keep.map(|k| &k[range.clone()]),
            add: self.add.map(|a| &a[range]),
            c: self.c,
            slope: self.slope,
            softcap: self.softcap,
        }
    }
    // The keep mask applies last: a dropped entry is −inf whatever `x`
    // and the additive mask hold (−inf + inf would be NaN).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read<S: Lanes>(self, s: S, x: S::V, i: usize) -> S::V {
        let x = self.capped(s, x);
        let w = match self.add {
            Some(add) => {
                let a = self.bias(s, s.load(&add[i..]));
                s.mul_add_exact_inf(x, s.splat(self.c.hi), a)
            }
            None => x,
        };
        match self.keep {
            Some(keep) => s.keep_where(&keep[i..], w),
            None => w,
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn read_partial<S: Lanes>(self, s: S, x: S::V, i: usize) -> S::V {
        // Lanes past the end are −inf (x's fill, which the cap keeps, or
        // the keep mask's).
        let x = self.capped(s, x);
        let w = match self.add {
            Some(add) => {
                let a = self.bias(s, s.load_partial(&add[i..], 0.0));
                s.mul_add_exact_inf(x, s.splat(self.c.hi), a)
            }
            None => x,
        };
        match self.keep {
            Some(keep) => s.keep_where_partial(&keep[i..], w),
            None => w,
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        match self.add {
            // `c` is already in the logit.
            Some(_) => s.sub(v, m),
            None => self.c.times(s, v, m),
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn exp_shift<S: Lanes>(self, s: S, v: S::V, m: S::V) -> S::V {
        match self.add {
            Some(_) => exp(s, s.sub(v, m)),
            None => self.c.exp_times(s, s.sub(v, m)),
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn factor(self) -> f64 {
        match self.add {
            Some(_) => 1.0,
            None => self.c.f64(),
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn is_masked(self, i: usize) -> bool {
        self.keep.is_some_and(|k| !k[i])
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn value(self, x: f32, i: usize) -> f32 {
        if self.is_masked(i) {
            return f32::NEG_INFINITY;
        }
        let x = self.capped_value(x);
        match self.add {
            // As the vector read without FMA.
            Some(_) => crate::lanes::Scalar.mul_add_exact_inf(x, self.c.hi, self.bias_at(i)),
            None => x,
        }
    }
}
