//! Max; store `e = exp(x − max)` and sum it; scale by `1/sum`.
//! One exp per element; reads x twice and the stored exponentials once.
//! Log-softmax the same way: max; store `x − max` and sum its exp;
//! subtract `ln(sum)`. Rows of at most 128 values are held in registers
//! instead (`short`).

use super::exec::{ChunkJob, Exec};
use super::{
    CHUNK, ExpMinus, ExpMinusAboveCutoff, Io, Logits, ShiftExp, TimesPlus, map_in_place,
    nonfinite_row, scale, short,
};
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
    let (m, min) = max_min_of(exec, &mut io);
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

/// Log-softmax of a row (not short: the caller has tried `short`);
/// returns its sum as `softmax` does.
#[inline(always)]
pub(crate) fn log_softmax<E: Elements>(exec: &impl Exec, mut io: Io<'_, impl Logits, E>) -> f64 {
    let (m, min) = max_min_of(exec, &mut io);
    if !m.is_finite() {
        nonfinite_row(io, true);
        return 0.0;
    }
    let sum = if min - m >= CUTOFF {
        exec.fold(&mut io, CHUNK, &ShiftStoreSum::<true>(m), 0.0, |a, b| a + b)
    } else {
        exec.fold(&mut io, CHUNK, &ShiftStoreSum::<false>(m), 0.0, |a, b| {
            a + b
        })
    };
    if sum.is_nan() {
        // Stored differences are NaN where x was and never +inf: the rule
        // still reads the row right (in place as well).
        nonfinite_row(io, true);
        return sum;
    }
    exec.fold(&mut io, CHUNK, &Subtract(sum.ln() as f32), (), |(), ()| ());
    sum
}

/// The row's max and min.
#[inline(always)]
fn max_min_of<E: Elements>(exec: &impl Exec, io: &mut Io<'_, impl Logits, E>) -> (f32, f32) {
    let lowest = (f32::NEG_INFINITY, f32::INFINITY);
    exec.fold(io, CHUNK, &MaxMin, lowest, |a, b| {
        (
            if b.0 > a.0 { b.0 } else { a.0 },
            if b.1 < a.1 { b.1 } else { a.1 },
        )
    })
}

struct MaxMin;
/// With `ABOVE_CUTOFF`, for a row whose every exponent is at least CUTOFF.
struct ExpStoreSum<const ABOVE_CUTOFF: bool>(f32);
struct Scale(f32);
/// Stores `x − max` and sums its exp (`ABOVE_CUTOFF` as in `ExpStoreSum`).
struct ShiftStoreSum<const ABOVE_CUTOFF: bool>(f32);
/// `y − c`, in place.
struct Subtract(f32);

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
            chunk.map_store_sum_fetch_next(s, ExpMinusAboveCutoff(s.splat(self.0), t))
        } else {
            chunk.map_store_sum_fetch_next(s, ExpMinus::new(s, self.0, t))
        }
    }
}

impl<E: Elements, const ABOVE_CUTOFF: bool> ChunkJob<E> for ShiftStoreSum<ABOVE_CUTOFF> {
    type Out = f64;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> f64 {
        let t = chunk.logits();
        let f = ShiftExp::<S, T, ABOVE_CUTOFF>(s.splat(self.0), t);
        chunk.map_store_sum_fetch_next(s, f)
    }
}

impl<E: Elements> ChunkJob<E> for Subtract {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        // y·1 − c: one rounding, as a subtraction.
        map_in_place(s, chunk.output(), TimesPlus(s.splat(1.0), s.splat(-self.0)));
    }
}

impl<E: Elements> ChunkJob<E> for Scale {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        scale(s, chunk.output(), self.0);
    }
}
