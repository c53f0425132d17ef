//! Log-softmax as `(x − max) − ln(sum)`, never `ln(softmax)`: the online
//! pass finds (max, sum) in one read with one exp per element, and the
//! second pass is two subtractions. Computing `x − max` first keeps the
//! error relative to |y|: |x − max| ≤ |y|, and ln(sum) ≤ |y| too. Rows of
//! at most 128 values are held in registers instead (`short`).

use super::exec::{ChunkJob, Exec};
use super::online::max_sum_of;
use super::{CHUNK, Io, Logits, Map, Partial, RowClass, nonfinite_row, short};
use crate::element::Elements;
use crate::lanes::Lanes;

/// Returns the row's sum (NaN when a logit was NaN; 0 for the rows
/// `nonfinite_row` finishes).
#[inline(always)]
pub(crate) fn log_softmax<E: Elements>(exec: &impl Exec, mut io: Io<'_, impl Logits, E>) -> f64 {
    if let Some(sum) = short::softmax::<true, _, _>(exec, &mut io) {
        return sum;
    }
    let total = max_sum_of(exec, &mut io);
    if !total.max.is_finite() {
        nonfinite_row(io, true);
        return 0.0;
    }
    if total.sum.is_nan() {
        nonfinite_row(io, true);
        return total.sum;
    }
    let log_sum = total.sum.ln() as f32;
    exec.fold(&mut io, CHUNK, &Shift(total.max, log_sum), (), |(), ()| ());
    total.sum
}

/// Writes `shift(v, max) − log_sum`.
struct Shift(f32, f32);

struct MinusMinus<S: Lanes, T>(S::V, S::V, T);

impl<S: Lanes, T: Logits> Map<S> for MinusMinus<S, T> {
    #[inline(always)]
    fn apply(&self, s: S, v: S::V) -> S::V {
        s.sub(self.2.shift(s, v, self.0), self.1)
    }
}

impl<E: Elements> ChunkJob<E> for Shift {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        let t = chunk.logits();
        chunk.map_store(s, MinusMinus(s.splat(self.0), s.splat(self.1), t));
    }
}

/// `max + ln(sum)` of a row (the log of its softmax denominator), with
/// NaN → NaN, any +inf → +inf, nothing above −inf (or empty) → −inf.
pub(crate) fn logsumexp_of(total: Partial, x: &[f32]) -> f32 {
    match RowClass::of(total, x.iter().copied()) {
        RowClass::Finite => (f64::from(total.max) + total.sum.ln()) as f32,
        RowClass::Nan => f32::NAN,
        RowClass::PosInf(_) => f32::INFINITY,
        RowClass::NoMass => f32::NEG_INFINITY,
    }
}
