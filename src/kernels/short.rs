//! Rows of at most [`MAX_VECTORS`] vectors (128 values on AVX-512) held in
//! registers: read once, written once, for softmax and log-softmax alike.
//! The three passes and the online pass each pay a fixed cost per row (a
//! reduction and a loop exit per pass) that dominates rows this short.
//!
//! The row is loaded as a constant count of 1, 2, 4 or 8 vectors (the
//! smallest that holds it; lanes past its end read −inf, whose exp is 0),
//! so every loop below unrolls into straight-line code. The sum is a
//! balanced f32 tree over the vectors (at most 3 roundings deep) reduced to
//! f64 lane by lane, within the same bound as the long-row passes.

use super::exec::{ChunkJob, Exec};
use super::{CHUNK, Io, Logits, Partial, Stream, nonfinite_row};
use crate::element::Elements;
use crate::lanes::Lanes;

/// The most vectors a row may span to be held in registers: 8 values and 8
/// exponentials fit AVX-512's 32 registers beside the exp's constants.
pub(crate) const MAX_VECTORS: usize = 8;

/// Rows of at most this many values may take the register path (on
/// AVX-512; narrower lanes take it for rows of at most `8·LANES`).
pub(crate) const MAX_LEN: usize = 128;

/// Softmax (or, with `LOG`, log-softmax) of the row `io` if it is short
/// enough for these lanes: its sum as the long-row kernels return it (0 for
/// the rows `nonfinite_row` finishes, NaN for a NaN row), or `None`,
/// nothing written, for the long-row passes to do it.
#[inline(always)]
pub(crate) fn softmax<const LOG: bool, T: Logits, E: Elements>(
    exec: &impl Exec,
    io: &mut Io<'_, T, E>,
) -> Option<f64> {
    if io.len() > MAX_LEN {
        return None;
    }
    exec.fold(io, CHUNK, &Row::<LOG>, None, |_, b| b)
}

/// Softmax (or, with `LOG`, log-softmax) of one whole short row as one chunk
/// job: `None` when the row spans more than [`MAX_VECTORS`] vectors of these
/// lanes (nothing written), else the row's sum as the long-row kernels
/// return it (0 for the rows `nonfinite_row` finishes, NaN for a NaN row).
struct Row<const LOG: bool>;

impl<E: Elements, const LOG: bool> ChunkJob<E> for Row<LOG> {
    type Out = Option<f64>;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> Option<f64> {
        let total = chunk.short_row::<S, LOG>(s)?;
        if total.max.is_finite() && !total.sum.is_nan() {
            return Some(total.sum);
        }
        // Nothing was written: the special-value rule reads the input.
        nonfinite_row(chunk, LOG);
        Some(if total.sum.is_nan() { total.sum } else { 0.0 })
    }
}

/// The register path over `io` read through `t`: the row's `(max, sum)`,
/// with the outputs written only when the max is finite and the sum is
/// not NaN. `None` (nothing written) when the row is too long.
#[inline(always)]
pub(super) fn row<S: Lanes, IO: Stream, T: Logits, const LOG: bool>(
    s: S,
    io: &mut IO,
    t: T,
) -> Option<Partial> {
    match io.len().div_ceil(S::LANES) {
        0 => Some(Partial::EMPTY),
        1 => Some(fixed::<S, IO, T, 1, LOG>(s, io, t)),
        2 => Some(fixed::<S, IO, T, 2, LOG>(s, io, t)),
        3 | 4 => Some(fixed::<S, IO, T, 4, LOG>(s, io, t)),
        5..=MAX_VECTORS => Some(fixed::<S, IO, T, MAX_VECTORS, LOG>(s, io, t)),
        _ => None,
    }
}

/// [`row`] for a row of at most `K` vectors (and more than `K/2`).
#[inline(always)]
fn fixed<S: Lanes, IO: Stream, T: Logits, const K: usize, const LOG: bool>(
    s: S,
    io: &mut IO,
    t: T,
) -> Partial {
    let (l, n) = (S::LANES, io.len());
    // Loops, not closures (`array::from_fn`): a closure is not inlined into
    // the backend's `#[target_feature]` entry, and its lane calls then are
    // not either (ten times slower).
    let lowest = s.splat(f32::NEG_INFINITY);
    let mut v = [lowest; K];
    for (j, v) in v.iter_mut().enumerate() {
        let i = j * l;
        if i + l <= n {
            *v = io.read(s, i);
        } else if i < n {
            *v = io.read_partial(s, i);
        }
    }
    // `max(x, acc)` keeps `acc` when `x` is NaN (see `kernels::max`).
    let mut highest = lowest;
    for &x in &v {
        highest = s.max(x, highest);
    }
    let max = s.reduce_max(highest);
    if !max.is_finite() {
        return Partial { max, sum: 0.0 };
    }
    let m = s.splat(max);
    let mut e = v;
    for e in &mut e {
        *e = t.exp_shift(s, *e, m);
    }
    let mut tree = e;
    let mut width = K;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            tree[j] = s.add(tree[2 * j], tree[2 * j + 1]);
        }
    }
    let sum = s.reduce_sum_f64(tree[0]);
    if sum.is_nan() {
        return Partial { max, sum };
    }
    let mut y = e;
    if LOG {
        let log_sum = s.splat(sum.ln() as f32);
        for (y, &v) in y.iter_mut().zip(&v) {
            *y = s.sub(t.shift(s, v, m), log_sum);
        }
    } else {
        let r = s.splat((1.0 / sum) as f32);
        for y in &mut y {
            *y = s.mul(*y, r);
        }
    }
    for (j, &y) in y.iter().enumerate() {
        let i = j * l;
        if i + l <= n {
            io.write(s, i, y);
        } else if i < n {
            io.write_partial(s, i, y);
        }
    }
    Partial { max, sum }
}
