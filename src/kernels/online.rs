//! Online softmax: one pass keeps a running max and a rescaled sum, a second
//! pass writes `exp(x − max) / sum`. Two exps per element, but x is read
//! twice and y written once: the least memory traffic.

use super::exec::{ChunkJob, Exec};
use super::{CHUNK, ExpMinus, ExpMinusTimes, Io, Partial, map_sum_only, max, nonfinite_row};
use crate::lanes::Lanes;

#[inline(always)]
pub(crate) fn softmax(exec: &impl Exec, mut io: Io<'_>) {
    let total = exec.fold(&mut io, CHUNK, &MaxSum, Partial::EMPTY, Partial::merge);
    if !total.max.is_finite() {
        return nonfinite_row(io, false);
    }
    let r = (1.0 / total.sum) as f32;
    exec.fold(&mut io, CHUNK, &ExpScale(total.max, r), (), |(), ()| ());
}

/// Vectors per step of the running max (see `MaxSum`).
const RESCALE_VECTORS: usize = 64;

/// Max and sum of one chunk in one read. The max moves once per block of
/// `RESCALE_VECTORS` vectors (read twice from L1: max, then exp), and the sum
/// is rescaled by an f64 exp only when it moves, so its error does not grow
/// with the number of rescales.
pub(crate) struct MaxSum;
/// `exp(x − max)·r`.
struct ExpScale(f32, f32);

impl ChunkJob for MaxSum {
    type Out = Partial;
    #[inline(always)]
    fn run<S: Lanes>(&self, s: S, _: usize, chunk: Io<'_>) -> Partial {
        max_sum(s, chunk.input())
    }
}

/// The body of [`MaxSum`] over a slice.
#[inline(always)]
pub(crate) fn max_sum<S: Lanes>(s: S, x: &[f32]) -> Partial {
    let mut m = f32::NEG_INFINITY;
    let mut sum = 0.0f64;
    for block in x.chunks(RESCALE_VECTORS * S::LANES) {
        let block_max = max(s, block);
        if block_max > m {
            sum *= (f64::from(m) - f64::from(block_max)).exp();
            m = block_max;
        }
        // Until a value above −inf shows up, exp(x − 0) keeps −inf at 0 and NaN as NaN.
        let reference = if m == f32::NEG_INFINITY { 0.0 } else { m };
        sum += map_sum_only(s, block, f32::NEG_INFINITY, ExpMinus(s.splat(reference)));
    }
    Partial { max: m, sum }
}

impl ChunkJob for ExpScale {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes>(&self, s: S, _: usize, mut chunk: Io<'_>) {
        chunk.map_store(s, ExpMinusTimes(s.splat(self.0), s.splat(self.1)));
    }
}
