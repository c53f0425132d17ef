//! Max; store `e = exp(x − max)` and sum it; scale by `1/sum`.
//! One exp per element; reads x twice and the stored exponentials once.
//! Rows of at most 128 values are held in registers instead (`short`).

use super::exec::{ChunkJob, Exec};
use super::{CHUNK, ExpMinus, ExpMinusAboveCutoff, Io, Logits, nonfinite_row, scale, short};
use crate::element::Elements;
use crate::exp::CUTOFF;
use crate::lanes::Lanes;

/// Returns the row's sum (NaN when a logit was NaN; 0 for the rows
/// `nonfinite_row` finishes).
#[inline(always)]
pub(crate) fn softmax<E: Elements>(exec: &impl Exec, mut io: Io<'_, impl Logits, E>) -> f64 {
    if let Some(sum) = short::softmax::<false, _, _>(exec, &mut io) {
        return sum;
    }
    let lowest = (f32::NEG_INFINITY, f32::INFINITY);
    let (m, min) = exec.fold(&mut io, CHUNK, &MaxMin, lowest, |a, b| {
        (
            if b.0 > a.0 { b.0 } else { a.0 },
            if b.1 < a.1 { b.1 } else { a.1 },
        )
    });
    if !m.is_finite() {
        nonfinite_row(io, false);
        return 0.0;
    }
    // Every exponent at least CUTOFF: the exp needs no flush below it.
    let sum = if min - m >= CUTOFF {
        exec.fold(&mut io, CHUNK, &ExpStoreSum::<true>(m), 0.0, |a, b| a + b)
    } else {
        exec.fold(&mut io, CHUNK, &ExpStoreSum::<false>(m), 0.0, |a, b| a + b)
    };
    if sum.is_nan() {
        // A NaN the max passed over: the stored exponentials are NaN there
        // too, so the rule still reads the row right (in place as well).
        nonfinite_row(io, false);
        return sum;
    }
    let r = (1.0 / sum) as f32;
    exec.fold(&mut io, CHUNK, &Scale(r), (), |(), ()| ());
    sum
}

struct MaxMin;
/// With `ABOVE_CUTOFF`, for a row whose every exponent is at least CUTOFF.
struct ExpStoreSum<const ABOVE_CUTOFF: bool>(f32);
struct Scale(f32);

impl<E: Elements> ChunkJob<E> for MaxMin {
    type Out = (f32, f32);
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, chunk: Io<'_, T, E>) -> (f32, f32) {
        chunk.max_min(s)
    }
}

impl<E: Elements, const ABOVE_CUTOFF: bool> ChunkJob<E> for ExpStoreSum<ABOVE_CUTOFF> {
    type Out = f64;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> f64 {
        let t = chunk.logits();
        if ABOVE_CUTOFF {
            chunk.map_store_sum(s, ExpMinusAboveCutoff(s.splat(self.0), t))
        } else {
            chunk.map_store_sum(s, ExpMinus::new(s, self.0, t))
        }
    }
}

impl<E: Elements> ChunkJob<E> for Scale {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        scale(s, chunk.output(), self.0);
    }
}
