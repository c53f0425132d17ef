//! The backward passes, each a reduction then a write:
//! - softmax: `grad_in = p ⊙ (g − ⟨g, p⟩)`, with `⟨g, p⟩` carried in two
//!   f32 so that `g − ⟨g, p⟩` stays exact where it cancels;
//! - log-softmax: `grad_in = g − exp(y)·Σg`.
//!
//! Outputs overflow only where the exact result, rounded to f32, does: the
//! softmax pass carries a reduction beyond the f32 range (a sum of huge
//! gradients) as a power of two times an f32, and the log-softmax pass
//! takes a row of huge gradients in f64.
//!
//! The reductions add each vector's lanes in f64. `⟨g, p⟩` takes every
//! product exactly (see `dot_exact`), so it is off by about 2^-48·Σ|p·g|;
//! `Σg` is off by far less than one unit of `max|g|` even when its terms
//! cancel (an f32 running sum would be off by 2^-24·Σ|g|, which grows with
//! the row length).

use crate::element::Storage;
use crate::exp::exp;
use crate::lanes::Lanes;

/// A function of two vectors, applied lane-wise. A trait, not a closure,
/// for the reason given at `Map`.
pub(crate) trait Zip<S: Lanes> {
    fn apply(&self, s: S, a: S::V, b: S::V) -> S::V;
}

/// `Σ f(a, b)` over the lanes of `a` and `b` (same length), each vector's
/// lanes summed in f64. Lanes past the end read 0, and `f(0, 0)` must be 0.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn zip_sum_f64<S: Lanes, A: Storage, B: Storage>(
    s: S,
    a: &[A],
    b: &[B],
    f: impl Zip<S>,
) -> f64 {
    zip_sum_and_largest(s, a, b, f).0
}

/// [`zip_sum_f64`] and the largest `|f(a, b)|` (in one read).
#[cfg_attr(not(unoptimized), inline(always))]
fn zip_sum_and_largest<S: Lanes, A: Storage, B: Storage>(
    s: S,
    a: &[A],
    b: &[B],
    f: impl Zip<S>,
) -> (f64, f32) {
    let l = S::LANES;
    let b = &b[..a.len()];
    let zero = s.splat(0.0);
    let mut largest = zero;
    let mut track = |v: S::V| {
        largest = s.max(largest, s.max(v, s.sub(zero, v)));
        s.reduce_sum_f64(v)
    };
    let (mut t0, mut t1) = (0.0f64, 0.0f64);
    let mut pairs = a.chunks_exact(2 * l).zip(b.chunks_exact(2 * l));
    for (a2, b2) in &mut pairs {
        t0 += track(f.apply(s, A::load(s, a2), B::load(s, b2)));
        t1 += track(f.apply(s, A::load(s, &a2[l..]), B::load(s, &b2[l..])));
    }
    let done = a.len() - a.len() % (2 * l);
    for (a, b) in a[done..].chunks(l).zip(b[done..].chunks(l)) {
        let v = if a.len() == l {
            f.apply(s, A::load(s, a), B::load(s, b))
        } else {
            f.apply(s, A::load_partial(s, a, 0.0), B::load_partial(s, b, 0.0))
        };
        t0 += track(v);
    }
    (t0 + t1, s.reduce_max(largest))
}

/// `out = f(a, b)` lane-wise (`a`, `b` and `out` of one length).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn zip_map<S: Lanes>(s: S, a: &[f32], b: &[f32], out: &mut [f32], f: impl Zip<S>) {
    let l = S::LANES;
    let (b, out) = (&b[..a.len()], &mut out[..a.len()]);
    let mut triples = a
        .chunks_exact(l)
        .zip(b.chunks_exact(l))
        .zip(out.chunks_exact_mut(l));
    for ((a, b), out) in &mut triples {
        s.store(f.apply(s, s.load(a), s.load(b)), out);
    }
    let done = a.len() - a.len() % l;
    if done < a.len() {
        let v = f.apply(
            s,
            s.load_partial(&a[done..], 0.0),
            s.load_partial(&b[done..], 0.0),
        );
        s.store_partial(v, &mut out[done..]);
    }
}

/// `a` (for `Σg`, with `b` the same slice).
pub(crate) struct First;
/// `p·((g − d_hi) − d_lo)`.
struct SoftmaxGrad<S: Lanes>(S::V, S::V);
/// `p·((g·2^-k − d_hi) − d_lo)·2^k` for `d = (d_hi + d_lo)·2^k`, where
/// `g − d` could overflow f32.
struct SoftmaxGradScaled<S: Lanes>(S::V, S::V, Pow2<S>);
/// `g − exp(y)·total`.
struct LogSoftmaxGrad<S: Lanes>(S::V);

/// `2^k` and `2^-k` (exact).
struct Pow2<S: Lanes> {
    up: S::V,
    down: S::V,
}

impl<S: Lanes> Zip<S> for First {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, _: S, a: S::V, _: S::V) -> S::V {
        a
    }
}

impl<S: Lanes> Zip<S> for SoftmaxGrad<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, p: S::V, g: S::V) -> S::V {
        s.mul(p, s.sub(s.sub(g, self.0), self.1))
    }
}

impl<S: Lanes> Zip<S> for SoftmaxGradScaled<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, p: S::V, g: S::V) -> S::V {
        let diff = s.sub(s.sub(s.mul(g, self.2.down), self.0), self.1);
        s.mul(s.mul(p, diff), self.2.up)
    }
}

impl<S: Lanes> Zip<S> for LogSoftmaxGrad<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, y: S::V, g: S::V) -> S::V {
        s.mul_add(exp(s, y), self.0, g)
    }
}

/// The smallest `k` in `0..=126` with `v·2^-k ≤ limit` (126 if none).
fn fit_exponent(v: f64, limit: f64) -> i32 {
    let mut k = 0;
    while v / 2f64.powi(k) > limit && k < 126 {
        k += 1;
    }
    k
}

fn pow2<S: Lanes>(s: S, k: i32) -> Pow2<S> {
    Pow2 {
        up: s.splat(2f32.powi(k)),
        down: s.splat(2f32.powi(-k)),
    }
}

/// `grad_in = p ⊙ (g − d)` for one row, `d = ⟨g, p⟩`, evaluated as
/// `p·((g − d_hi) − d_lo)` with `d = d_hi + d_lo` carried in two f32: where
/// `g − d` cancels (the entry of a dominant probability) the difference is
/// exact to about 2^-48·|d| instead of off by 2^-24·|p·g|. When
/// `max|g| + |d|` could overflow f32, everything is scaled by a power of
/// two first, so outputs overflow only where the exact result does.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softmax_backward<S: Lanes>(s: S, p: &[f32], g: &[f32], grad_in: &mut [f32]) {
    let (d, g_max) = dot_exact(s, p, g);
    // Half of f32::MAX: then `g − d` cannot overflow after scaling.
    let k = fit_exponent(d.abs() + f64::from(g_max), f64::from(f32::MAX) / 2.0);
    if k == 0 {
        let (hi, lo) = split(d);
        zip_map(s, p, g, grad_in, SoftmaxGrad(s.splat(hi), s.splat(lo)));
    } else {
        let (hi, lo) = split(d / 2f64.powi(k));
        let f = SoftmaxGradScaled(s.splat(hi), s.splat(lo), pow2(s, k));
        zip_map(s, p, g, grad_in, f);
    }
}

/// `(⟨p, g⟩, max|g|)`. Each product is split exactly into `hi + lo`
/// (`two_prod`). Each vector's `hi` lanes are summed in f64 into one of
/// four accumulators (no serial dependency from one vector to the next);
/// the `lo` lanes (each within 2^-24 of its product) are summed in f32
/// lanes. Every [`DOT_BLOCK`] vectors both fold into a Neumaier-compensated
/// total. Error: at most about 16·2^-48·Σ|p·g| from the `lo` sums, far
/// less from the rest, plus 2^-53·|d|. If a product was beyond what the
/// non-FMA `two_prod` splits (|g| above about 2^115), the pass is redone
/// in two parts: the products of `|g| < 2^100` as they are, and those of
/// the larger `g` on `g·2^-64` (scaling every product down would flush the
/// small ones to 0).
#[cfg_attr(not(unoptimized), inline(always))]
fn dot_exact<S: Lanes>(s: S, p: &[f32], g: &[f32]) -> (f64, f32) {
    let (d, g_max, exact) = dot_part::<S, ALL>(s, p, g);
    if exact {
        return (d, g_max);
    }
    let (moderate, _, _) = dot_part::<S, MODERATE>(s, p, g);
    let (huge, _, _) = dot_part::<S, HUGE>(s, p, g);
    (moderate + huge * 2f64.powi(64), g_max)
}

/// Vectors per fold of [`dot_exact`]: bounds the f32 sums of the `lo`
/// parts to 16 terms a lane.
const DOT_BLOCK: usize = 16;

/// The products a pass of [`dot_part`] takes: all of them, those of
/// `|g| < HUGE_G`, or those of `|g| ≥ HUGE_G` on `g·2^-64`.
const ALL: u8 = 0;
const MODERATE: u8 = 1;
const HUGE: u8 = 2;
const HUGE_G: f32 = (1u128 << 100) as f32;

/// [`dot_exact`] over the products `PART` selects, and whether the low
/// parts were all finite.
#[cfg_attr(not(unoptimized), inline(always))]
fn dot_part<S: Lanes, const PART: u8>(s: S, p: &[f32], g: &[f32]) -> (f64, f32, bool) {
    let l = S::LANES;
    let g = &g[..p.len()];
    let zero = s.splat(0.0);
    let down = s.splat(2f32.powi(-64));
    let abs = |gv| s.max(gv, s.sub(zero, gv));
    // A NaN `g` stays in both parts (the dot is NaN either way).
    let below_huge = -f32::from_bits(HUGE_G.to_bits() - 1);
    let part = |gv| match PART {
        ALL => gv,
        MODERATE => s.zero_where_below(s.sub(zero, abs(gv)), below_huge, gv),
        _ => s.mul(s.zero_where_below(abs(gv), HUGE_G, gv), down),
    };
    let mut g_max = zero;
    let (mut high, mut low) = (Compensated::default(), 0.0f64);
    let mut blocks = p.chunks(DOT_BLOCK * l).zip(g.chunks(DOT_BLOCK * l));
    for (pb, gb) in &mut blocks {
        let mut acc = [0.0f64; 4];
        let mut lo_sum = zero;
        let mut pairs = pb.chunks_exact(l).zip(gb.chunks_exact(l));
        for (k, (pv, gv)) in (&mut pairs).enumerate() {
            let (pv, gv) = (s.load(pv), s.load(gv));
            g_max = s.max(g_max, abs(gv));
            let (hi, lo) = s.two_prod(pv, part(gv));
            acc[k % 4] += s.reduce_sum_f64(hi);
            lo_sum = s.add(lo_sum, lo);
        }
        // The last, partial vector (lanes past the end are 0, adding 0).
        let rest = pb.len() % l;
        if rest > 0 {
            let at = pb.len() - rest;
            let (pv, gv) = (
                s.load_partial(&pb[at..], 0.0),
                s.load_partial(&gb[at..], 0.0),
            );
            g_max = s.max(g_max, abs(gv));
            let (hi, lo) = s.two_prod(pv, part(gv));
            acc[3] += s.reduce_sum_f64(hi);
            lo_sum = s.add(lo_sum, lo);
        }
        high.add((acc[0] + acc[1]) + (acc[2] + acc[3]));
        low += s.reduce_sum_f64(lo_sum);
    }
    let high = high.value();
    // NaN in g never wins a lane max: d is NaN then, and so every output.
    let g_max = s.reduce_max(g_max);
    if low.is_finite() {
        (high + low, g_max, true)
    } else {
        // A product the split could not take (exact: false), or an
        // infinite one, where the high sum alone is the IEEE answer.
        (high, g_max, !high.is_finite())
    }
}

/// Neumaier's compensated sum.
#[derive(Default)]
struct Compensated {
    sum: f64,
    carry: f64,
}

impl Compensated {
    fn add(&mut self, v: f64) {
        let t = self.sum + v;
        self.carry += if self.sum.abs() >= v.abs() {
            (self.sum - t) + v
        } else {
            (v - t) + self.sum
        };
        self.sum = t;
    }

    /// The sum; an infinite or NaN term leaves NaN in the carry, and the
    /// plain sum says it all then.
    fn value(&self) -> f64 {
        if self.carry.is_finite() {
            self.sum + self.carry
        } else {
            self.sum
        }
    }
}

/// `d` as `hi + lo`, two f32 (`lo` 0 when `hi` is not finite).
fn split(d: f64) -> (f32, f32) {
    let hi = d as f32;
    let lo = if hi.is_finite() {
        (d - f64::from(hi)) as f32
    } else {
        0.0
    };
    (hi, lo)
}

/// `grad_in = g − exp(y)·Σg` for one row. For log-probabilities (`y ≤ 0`)
/// an output overflows only where the exact result, rounded to f32, does.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn log_softmax_backward<S: Lanes>(s: S, y: &[f32], g: &[f32], grad_in: &mut [f32]) {
    let (total, largest) = zip_sum_and_largest(s, g, g, First);
    // With exp(y) ≤ 1 (off by 2 ULP) the vector pass's outputs stay below
    // (|Σg| + max|g|)·(1 + 2^-21), so under 2^127 none can round past
    // f32::MAX.
    if total.abs() + f64::from(largest) < 2f64.powi(127) {
        zip_map(s, y, g, grad_in, LogSoftmaxGrad(s.splat(-total as f32)));
    } else {
        // Huge gradients (rare), NaN or ±inf: exp(y) and the rest in f64,
        // rounded once. An exp rounded up by its 2 ULP is enough to carry
        // a result one ulp below f32::MAX to +inf (fuzzing found
        // `y = −ln 3`, `g = −f32::MAX`), and a total rounded to f32 one at
        // −f32::MAX to −inf (`g = (4.18e33, f32::MAX)`, `y = (0, …)`).
        for ((out, &y), &g) in grad_in.iter_mut().zip(y).zip(g) {
            *out = (f64::from(g) - f64::from(y).exp() * total) as f32;
        }
    }
}
