//! The backward passes, each a reduction then a write:
//! - softmax: `grad_in = p ⊙ (g − ⟨g, p⟩)`, written `p·g − p·⟨g, p⟩`;
//! - log-softmax: `grad_in = g − exp(y)·Σg`.
//!
//! A reduction beyond the f32 range (a sum of huge gradients) is carried as
//! a power of two times an f32, so outputs overflow only where the exact
//! result does.
//!
//! The reductions add each vector's lanes in f64, so only the f32 products
//! are rounded: `⟨g, p⟩` is then off by at most about 2^-24·max|g| (the
//! `p` sum to 1), and `Σg` by far less than one unit of `max|g|` even when
//! its terms cancel (an f32 running sum would be off by 2^-24·Σ|g|, which
//! grows with the row length).

use crate::exp::exp;
use crate::lanes::Lanes;

/// A function of two vectors, applied lane-wise. A trait, not a closure,
/// for the reason given at `Map`.
pub(crate) trait Zip<S: Lanes> {
    fn apply(&self, s: S, a: S::V, b: S::V) -> S::V;
}

/// `Σ f(a, b)` over the lanes of `a` and `b` (same length), each vector's
/// lanes summed in f64. Lanes past the end read 0, and `f(0, 0)` must be 0.
#[inline(always)]
pub(crate) fn zip_sum_f64<S: Lanes>(s: S, a: &[f32], b: &[f32], f: impl Zip<S>) -> f64 {
    let l = S::LANES;
    let b = &b[..a.len()];
    let (mut t0, mut t1) = (0.0f64, 0.0f64);
    let mut pairs = a.chunks_exact(2 * l).zip(b.chunks_exact(2 * l));
    for (a2, b2) in &mut pairs {
        t0 += s.reduce_sum_f64(f.apply(s, s.load(a2), s.load(b2)));
        t1 += s.reduce_sum_f64(f.apply(s, s.load(&a2[l..]), s.load(&b2[l..])));
    }
    let done = a.len() - a.len() % (2 * l);
    for (a, b) in a[done..].chunks(l).zip(b[done..].chunks(l)) {
        let v = if a.len() == l {
            f.apply(s, s.load(a), s.load(b))
        } else {
            f.apply(s, s.load_partial(a, 0.0), s.load_partial(b, 0.0))
        };
        t0 += s.reduce_sum_f64(v);
    }
    t0 + t1
}

/// `out = f(a, b)` lane-wise (`a`, `b` and `out` of one length).
#[inline(always)]
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

/// `a·b`.
struct Times;
/// `a` (for `Σg`, with `b` the same slice).
pub(crate) struct First;
/// `p·g − p·d`.
struct SoftmaxGrad<S: Lanes>(S::V);
/// `(p·g·2^-k + p·(−d/2^k))·2^k`, for `|d|` beyond the f32 range.
struct SoftmaxGradScaled<S: Lanes>(S::V, Pow2<S>);
/// `g − exp(y)·total`.
struct LogSoftmaxGrad<S: Lanes>(S::V);
/// `(g·2^-k + exp(y)·(−total/2^k))·2^k`, for `|total|` beyond the f32
/// range. Scaled down first, so no product overflows unless the result
/// does (with or without FMA).
struct LogSoftmaxGradScaled<S: Lanes>(S::V, Pow2<S>);

/// `2^k` and `2^-k` (exact).
struct Pow2<S: Lanes> {
    up: S::V,
    down: S::V,
}

impl<S: Lanes> Zip<S> for Times {
    #[inline(always)]
    fn apply(&self, s: S, a: S::V, b: S::V) -> S::V {
        s.mul(a, b)
    }
}

impl<S: Lanes> Zip<S> for First {
    #[inline(always)]
    fn apply(&self, _: S, a: S::V, _: S::V) -> S::V {
        a
    }
}

impl<S: Lanes> Zip<S> for SoftmaxGrad<S> {
    #[inline(always)]
    fn apply(&self, s: S, p: S::V, g: S::V) -> S::V {
        s.mul_add(p, g, s.mul(p, self.0))
    }
}

impl<S: Lanes> Zip<S> for SoftmaxGradScaled<S> {
    #[inline(always)]
    fn apply(&self, s: S, p: S::V, g: S::V) -> S::V {
        let pg = s.mul(s.mul(p, g), self.1.down);
        s.mul(s.mul_add(p, self.0, pg), self.1.up)
    }
}

impl<S: Lanes> Zip<S> for LogSoftmaxGrad<S> {
    #[inline(always)]
    fn apply(&self, s: S, y: S::V, g: S::V) -> S::V {
        s.mul_add(exp(s, y), self.0, g)
    }
}

impl<S: Lanes> Zip<S> for LogSoftmaxGradScaled<S> {
    #[inline(always)]
    fn apply(&self, s: S, y: S::V, g: S::V) -> S::V {
        let g = s.mul(g, self.1.down);
        s.mul(s.mul_add(exp(s, y), self.0, g), self.1.up)
    }
}

/// `−v` as `m·2^k` with `m` an f32 (rounded once) and the smallest `k ≥ 0`
/// that keeps `m` in range: `k = 0` unless `v` is beyond f32 (a sum of
/// huge gradients), where rounding `v` to f32 would give ±inf and then
/// NaN or inf in outputs whose exact value is finite.
fn negated_scaled(v: f64) -> (f32, i32) {
    let mut k = 0;
    while (v / 2f64.powi(k)).abs() > f64::from(f32::MAX) && k < 126 {
        k += 1;
    }
    ((-v / 2f64.powi(k)) as f32, k)
}

fn pow2<S: Lanes>(s: S, k: i32) -> Pow2<S> {
    Pow2 {
        up: s.splat(2f32.powi(k)),
        down: s.splat(2f32.powi(-k)),
    }
}

/// `grad_in = p ⊙ (g − ⟨g, p⟩)` for one row, as `p·g − p·d` so that
/// `g − d` is never formed (it can overflow where the result does not).
#[inline(always)]
pub(crate) fn softmax_backward<S: Lanes>(s: S, p: &[f32], g: &[f32], grad_in: &mut [f32]) {
    match negated_scaled(zip_sum_f64(s, p, g, Times)) {
        (minus_dot, 0) => zip_map(s, p, g, grad_in, SoftmaxGrad(s.splat(minus_dot))),
        (minus_dot, k) => {
            let f = SoftmaxGradScaled(s.splat(minus_dot), pow2(s, k));
            zip_map(s, p, g, grad_in, f);
        }
    }
}

/// `grad_in = g − exp(y)·Σg` for one row.
#[inline(always)]
pub(crate) fn log_softmax_backward<S: Lanes>(s: S, y: &[f32], g: &[f32], grad_in: &mut [f32]) {
    match negated_scaled(zip_sum_f64(s, g, g, First)) {
        (minus_total, 0) => zip_map(s, y, g, grad_in, LogSoftmaxGrad(s.splat(minus_total))),
        (minus_total, k) => {
            let f = LogSoftmaxGradScaled(s.splat(minus_total), pow2(s, k));
            zip_map(s, y, g, grad_in, f);
        }
    }
}
