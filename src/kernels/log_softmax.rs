//! Log-softmax as `(x − max) − ln(sum)`, never `ln(softmax)`: computing
//! `x − max` first keeps the error relative to |y| (|x − max| ≤ |y|, and
//! ln(sum) ≤ |y| too). The algorithm is the one `Algorithm::Auto` picks
//! for softmax rows of its length: `three_pass` sums the exps and then
//! writes `(x − max) − ln(sum)` (from rows of 4096 values it stores
//! `x − max` beside the exps and subtracts in place), `blocked` stores
//! `x − running max` beside the exps and subtracts the rest in place. Rows
//! of at most 128 values are held in registers instead (`short`).

use super::exec::Exec;
use super::{Io, Logits, Partial, RowClass, blocked, short, three_pass};
use crate::Algorithm;
use crate::element::{Elements, Storage};

crate::driver::in_order_entry!();

/// Returns the row's sum (NaN when a logit was NaN; 0 for the rows
/// `nonfinite_row` finishes).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn log_softmax<E: Elements>(exec: &impl Exec, mut io: Io<'_, impl Logits, E>) -> f64 {
    if let Some(sum) = short::softmax::<true, _, _>(exec, &mut io) {
        return sum;
    }
    let n = io.len();
    // Blocked stores differences in the output: not in a 16-bit one.
    if <E::Out as Storage>::IS_F32 {
        match Algorithm::Auto.resolve(n, n) {
            Algorithm::ThreePass => three_pass::log_softmax(exec, io),
            _ => blocked::log_softmax(exec, io),
        }
    } else {
        three_pass::log_softmax(exec, io)
    }
}

/// `max + ln(sum)` of a row (the log of its softmax denominator), with
/// NaN → NaN, any +inf → +inf, nothing above −inf (or empty) → −inf.
pub(crate) fn logsumexp_of<X: Storage>(total: Partial, x: &[X]) -> f32 {
    match RowClass::of(total, x.iter().map(|v| v.to_f32())) {
        RowClass::Finite => (f64::from(total.max) + total.sum.ln()) as f32,
        RowClass::Nan => f32::NAN,
        RowClass::PosInf(_) => f32::INFINITY,
        RowClass::NoMass => f32::NEG_INFINITY,
    }
}
