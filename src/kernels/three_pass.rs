//! Max; store `e = exp(x − max)` and sum it; scale by `1/sum`.
//! One exp per element; reads x twice and the stored exponentials once.

use super::{CHUNK, ExpMinus, Io, max, nonfinite_row, scale};
use crate::lanes::Lanes;

#[inline(always)]
pub(crate) fn softmax<S: Lanes>(s: S, mut io: Io<'_>) {
    let n = io.len();
    let m = max(s, io.input());
    if !m.is_finite() {
        return nonfinite_row(io);
    }
    // Summed per CHUNK, then in chunk order: the same bits as a split row.
    let mut sum = 0.0;
    for start in (0..n).step_by(CHUNK) {
        let mut chunk = io.slice(start..n.min(start + CHUNK));
        sum += chunk.map_store_sum(s, f32::NEG_INFINITY, ExpMinus(s.splat(m)));
    }
    scale(s, io.output(), (1.0 / sum) as f32);
}
