//! Cross-entropy from logits, one row at a time: the loss from the row's
//! (max, sum) and, when asked, the gradient `(softmax − q)·w` written by the
//! blocked softmax's last pass (`q` the smoothed one-hot target, `w` the
//! reduction's weight) plus one scalar fix-up at the target.
//!
//! The loss is a sum of non-negative parts, each computed in f64:
//! `L = (1 − ε)·(M − x_t) + ε·(M − mean x) + ln S` (`M` the max, `S` the
//! sum of `exp(x − M)`), so it keeps a small relative error even when it is
//! tiny (a confident, correct prediction).

use super::backward::{First, zip_sum_f64};
use super::exec::{ChunkJob, Exec};
use super::online::row_max_sum;
use super::{CHUNK, Data, Io, Logits, Map, Partial, Plain, blocked};
use crate::element::{Pair, Storage};
use crate::lanes::Lanes;

/// What one row is scored against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub index: usize,
    /// Label smoothing ε in [0, 1).
    pub smoothing: f64,
}

/// The loss of a row, without gradient, in one read of `x` (two with
/// smoothing: `Σx` is a second pass).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn loss<S: Lanes, X: Storage>(s: S, x: &[X], target: Target) -> f64 {
    let (total, sum_x) = totals(s, x, target.smoothing > 0.0);
    loss_of(total, x, target, sum_x)
}

/// A row's (or a vocabulary shard's) `(max, sum)`, and its `Σx` when
/// `with_sum_x` (else 0): what its loss needs besides the target's logit.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn totals<S: Lanes, X: Storage>(s: S, x: &[X], with_sum_x: bool) -> (Partial, f64) {
    let total = row_max_sum::<S, X, false>(s, x, &mut ());
    let sum_x = if with_sum_x {
        zip_sum_f64(s, x, x, First)
    } else {
        0.0
    };
    (total, sum_x)
}

/// Writes the gradient `(softmax(x) − q)·weight` of `x` (a row, or a
/// vocabulary shard of one) from its row's `total`, each value rounded
/// once to `G`: `exp(x − max)·(weight/sum) − ε·weight/n` (n the row's
/// length), the target (`target`, its index in `x`, if `x` holds it) from
/// f64 (a subtraction of rounded values would lose what cancels), special
/// rows in scalar.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn grad_from_total<X: Storage, G: Storage>(
    exec: &impl Exec,
    x: &[X],
    grad: &mut [G],
    total: crate::Partial,
    target: Option<usize>,
    (eps, weight, n): (f64, f64, usize),
) {
    let spread = eps * weight / n as f64;
    let q_t = (1.0 - eps) * weight;
    if total.is_finite() {
        let write = WriteGrad {
            max: total.max(),
            r: (weight / total.sum()) as f32,
            offset: -spread as f32,
        };
        let mut io = Io::<_, Pair<X, G>>::of(Some(x), grad);
        exec.fold(&mut io, CHUNK, &write, (), |(), ()| ());
        if let Some(t) = target {
            let x_t = f64::from(x[t].to_f32());
            let p_t = (x_t - f64::from(total.max())).exp() / total.sum();
            grad[t] = G::from_f32((p_t * weight - spread - q_t) as f32);
        }
    } else {
        let (w, spread) = (weight as f32, spread as f32);
        for (i, (g, v)) in grad.iter_mut().zip(x).enumerate() {
            let mut y = total.special_value(v.to_f32()).mul_add(w, -spread);
            if Some(i) == target {
                y -= q_t as f32;
            }
            *g = G::from_f32(y);
        }
    }
}

/// `exp(v − m)·r + b`.
struct ExpMinusAffine<S: Lanes>(S::V, S::V, S::V);

impl<S: Lanes> Map<S> for ExpMinusAffine<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, v: S::V) -> S::V {
        s.mul_add(Plain.exp_shift(s, v, self.0), self.1, self.2)
    }
}

/// The loss of a row, with `grad = (softmax(x) − q)·weight` written. An
/// f32 gradient comes from the blocked softmax (one read, the blocks
/// rescaled in place); a 16-bit one is rounded once, so its max and sum
/// come first (the online pass) and each value is written from them.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn loss_and_grad<X: Storage, G: Storage>(
    exec: &impl Exec,
    x: &[X],
    grad: &mut [G],
    target: Target,
    weight: f64,
) -> f64 {
    let eps = target.smoothing;
    let spread = eps * weight / x.len() as f64;
    let total = if G::IS_F32 {
        let io = Io::<_, Pair<X, G>>::of(Some(x), grad);
        let total = blocked::softmax_affine(exec, io, weight, -spread as f32);
        if !total.max.is_finite() {
            // `grad` holds the special-value softmax, not yet weighted.
            let w = weight as f32;
            for g in grad.iter_mut() {
                *g = G::from_f32(g.to_f32().mul_add(w, -spread as f32));
            }
        }
        let t = &mut grad[target.index];
        *t = G::from_f32(t.to_f32() - ((1.0 - eps) * weight) as f32);
        total
    } else {
        let mut io = Io::<_, Pair<X, G>>::of(Some(x), grad);
        let total = exec.fold(&mut io, CHUNK, &MaxSum, Partial::EMPTY, |a, b| {
            a.merge(b, 1.0)
        });
        let row = crate::Partial::of_row(total, x.iter().map(|v| v.to_f32()));
        grad_from_total(
            exec,
            x,
            grad,
            row,
            Some(target.index),
            (eps, weight, x.len()),
        );
        total
    };
    let sum_x = if eps > 0.0 {
        let mut io = Io::<_, Pair<X, G>>::of(Some(x), grad);
        exec.fold(&mut io, CHUNK, &SumX, 0.0, |a, b| a + b)
    } else {
        0.0
    };
    loss_of(total, x, target, sum_x)
}

/// A chunk's (max, sum), read from its input.
struct MaxSum;

impl<X: Storage, Y: Storage> ChunkJob<Pair<X, Y>> for MaxSum {
    type Out = Partial;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, chunk: Io<'_, T, Pair<X, Y>>) -> Partial {
        match &chunk.data {
            Data::OutOfPlace { input, .. } => row_max_sum::<S, X, false>(s, input, &mut ()),
            Data::InPlace(y) => row_max_sum::<S, Y, false>(s, y, &mut ()),
        }
    }
}

/// Writes a chunk's gradient `exp(x − max)·r + offset`.
struct WriteGrad {
    max: f32,
    r: f32,
    offset: f32,
}

impl<X: Storage, Y: Storage> ChunkJob<Pair<X, Y>> for WriteGrad {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, Pair<X, Y>>) {
        let f = ExpMinusAffine(s.splat(self.max), s.splat(self.r), s.splat(self.offset));
        chunk.map_store(s, f);
    }
}

/// `Σx` of a chunk, lanes summed in f64.
struct SumX;

impl<X: Storage, Y: Storage> ChunkJob<Pair<X, Y>> for SumX {
    type Out = f64;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, chunk: Io<'_, T, Pair<X, Y>>) -> f64 {
        match &chunk.data {
            Data::OutOfPlace { input, .. } => zip_sum_f64(s, input, input, First),
            Data::InPlace(x) => zip_sum_f64(s, x, x, First),
        }
    }
}

/// `−Σ q_i·ln p_i` from the row's (max, sum) (and `Σx` with smoothing).
fn loss_of<X: Storage>(total: Partial, x: &[X], target: Target, sum_x: f64) -> f64 {
    let total = crate::Partial::of_row(total, x.iter().map(|v| v.to_f32()));
    let x_t = x[target.index].to_f32();
    loss_from(total, x_t, sum_x, x.len(), target.smoothing)
}

/// `−Σ q_i·ln p_i` of a row of `n` logits from its (max, sum) classified
/// as a public partial, its target's logit `x_t` and (with smoothing ε)
/// its `Σx`: all a vocabulary-sharded row can bring together.
pub(crate) fn loss_from(total: crate::Partial, x_t: f32, sum_x: f64, n: usize, eps: f64) -> f64 {
    let n = n as f64;
    let (max, sum) = (total.max(), total.sum());
    if sum.is_nan() {
        return f64::NAN;
    }
    if max.is_finite() {
        // The smoothing term is left out at ε = 0, where 0·(+inf) would
        // make an −inf logit's row NaN.
        let m = f64::from(max);
        let smooth = if eps > 0.0 {
            eps * (m - sum_x / n)
        } else {
            0.0
        };
        return (1.0 - eps) * (m - f64::from(x_t)) + smooth + sum.ln();
    }
    // The special rows, by the softmax rules: `k` entries of +inf have
    // ln p = −ln k, the rest −inf; nothing above −inf: every ln p = −inf.
    let k = if max == f32::INFINITY { sum } else { 0.0 };
    let minus_log_p = |v: f32| {
        if k > 0.0 && v == f32::INFINITY {
            k.ln()
        } else {
            f64::INFINITY
        }
    };
    // Σ over the row of −ln p: finite only when every entry is +inf.
    let smooth = if eps > 0.0 {
        eps * if k == n { k.ln() } else { f64::INFINITY }
    } else {
        0.0
    };
    (1.0 - eps) * minus_log_p(x_t) + smooth
}
