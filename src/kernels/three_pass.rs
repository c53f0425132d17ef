//! Max; store `e = exp(x − max)` and sum it; scale by `1/sum`.
//! One exp per element; reads x twice and the stored exponentials once.
//! Rows of at most 128 values are held in registers instead (`short`).

use super::exec::{ChunkJob, Exec};
use super::{CHUNK, ExpMinus, Io, Logits, nonfinite_row, scale, short};
use crate::element::Elements;
use crate::lanes::Lanes;

/// Returns the row's sum (NaN when a logit was NaN; 0 for the rows
/// `nonfinite_row` finishes).
#[inline(always)]
pub(crate) fn softmax<E: Elements>(exec: &impl Exec, mut io: Io<'_, impl Logits, E>) -> f64 {
    if let Some(sum) = short::softmax::<false, _, _>(exec, &mut io) {
        return sum;
    }
    let m = exec.fold(&mut io, CHUNK, &Max, f32::NEG_INFINITY, |a, b| {
        if b > a { b } else { a }
    });
    if !m.is_finite() {
        nonfinite_row(io, false);
        return 0.0;
    }
    let sum = exec.fold(&mut io, CHUNK, &ExpStoreSum(m), 0.0, |a, b| a + b);
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

struct Max;
struct ExpStoreSum(f32);
struct Scale(f32);

impl<E: Elements> ChunkJob<E> for Max {
    type Out = f32;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, chunk: Io<'_, T, E>) -> f32 {
        chunk.max(s)
    }
}

impl<E: Elements> ChunkJob<E> for ExpStoreSum {
    type Out = f64;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> f64 {
        let t = chunk.logits();
        chunk.map_store_sum(s, ExpMinus::new(s, self.0, t))
    }
}

impl<E: Elements> ChunkJob<E> for Scale {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        scale(s, chunk.output(), self.0);
    }
}
