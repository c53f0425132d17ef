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
use super::{CHUNK, Data, Io, Logits, Partial, RowClass, blocked};
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
    let total = row_max_sum::<S, X, false>(s, x, &mut ());
    let sum_x = if target.smoothing > 0.0 {
        zip_sum_f64(s, x, x, First)
    } else {
        0.0
    };
    loss_of(total, x, target, sum_x)
}

/// The loss of a row, with `grad = (softmax(x) − q)·weight` written.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn loss_and_grad<X: Storage>(
    exec: &impl Exec,
    x: &[X],
    grad: &mut [f32],
    target: Target,
    weight: f64,
) -> f64 {
    let eps = target.smoothing;
    let spread = (eps * weight / x.len() as f64) as f32;
    let io = Io::<_, Pair<X, f32>>::of(Some(x), grad);
    let total = blocked::softmax_affine(exec, io, weight, -spread);
    if !total.max.is_finite() {
        // `grad` holds the special-value softmax, not yet weighted.
        let w = weight as f32;
        grad.iter_mut().for_each(|g| *g = g.mul_add(w, -spread));
    }
    grad[target.index] -= ((1.0 - eps) * weight) as f32;
    let sum_x = if eps > 0.0 {
        let mut io = Io::<_, Pair<X, f32>>::of(Some(x), grad);
        exec.fold(&mut io, CHUNK, &SumX, 0.0, |a, b| a + b)
    } else {
        0.0
    };
    loss_of(total, x, target, sum_x)
}

/// `Σx` of a chunk, lanes summed in f64.
struct SumX;

impl<X: Storage> ChunkJob<Pair<X, f32>> for SumX {
    type Out = f64;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, chunk: Io<'_, T, Pair<X, f32>>) -> f64 {
        match &chunk.data {
            Data::OutOfPlace { input, .. } => zip_sum_f64(s, input, input, First),
            Data::InPlace(x) => zip_sum_f64(s, x, x, First),
        }
    }
}

/// `−Σ q_i·ln p_i` from the row's (max, sum) (and `Σx` with smoothing).
fn loss_of<X: Storage>(total: Partial, x: &[X], target: Target, sum_x: f64) -> f64 {
    let eps = target.smoothing;
    let n = x.len() as f64;
    let x_t = f64::from(x[target.index].to_f32());
    // The special rows, by the softmax rules: NaN → NaN; k entries of +inf
    // have ln p = −ln k, the rest −inf; nothing above −inf: every ln p = −inf.
    let k = match RowClass::of(total, x.iter().map(|v| v.to_f32())) {
        RowClass::Nan => return f64::NAN,
        RowClass::Finite => {
            // The smoothing term is left out at ε = 0, where 0·(+inf)
            // would make an −inf logit's row NaN.
            let m = f64::from(total.max);
            let smooth = if eps > 0.0 {
                eps * (m - sum_x / n)
            } else {
                0.0
            };
            return (1.0 - eps) * (m - x_t) + smooth + total.sum.ln();
        }
        RowClass::PosInf(k) => k as f64,
        RowClass::NoMass => 0.0,
    };
    let minus_log_p = |v: f32| {
        if k > 0.0 && v == f32::INFINITY {
            k.ln()
        } else {
            f64::INFINITY
        }
    };
    let smooth = if eps > 0.0 {
        eps / n * x.iter().map(|v| minus_log_p(v.to_f32())).sum::<f64>()
    } else {
        0.0
    };
    (1.0 - eps) * minus_log_p(x[target.index].to_f32()) + smooth
}
