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
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softmax<const LOG: bool, T: Logits, E: Elements>(
    exec: &impl Exec,
    io: &mut Io<'_, T, E>,
) -> Option<f64> {
    // A row with a sink takes the long-row passes, which add it.
    if io.len() > MAX_LEN || io.sink() != f32::NEG_INFINITY {
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
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> Option<f64> {
        let total = chunk.short_row::<S, LOG>(s)?;
        Some(settle::<LOG, _, _>(total, chunk))
    }
}

/// [`softmax`] on two rows of the same length on this thread, through
/// [`pair`]: each row's sum as [`softmax`] returns it, or `None` (nothing
/// written) when the lengths differ, the rows span more than
/// [`PAIR_MAX_VECTORS`] vectors, or a row's max is not finite; each row
/// then goes alone.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softmax_pair<const LOG: bool, S: Lanes, T: Logits, E: Elements>(
    s: S,
    a: &mut Io<'_, T, E>,
    b: &mut Io<'_, T, E>,
) -> Option<(f64, f64)> {
    if b.len() != a.len() {
        return None;
    }
    let (ta, tb) = a.short_pair::<S, LOG>(s, b)?;
    let n = a.len();
    Some((
        settle::<LOG, _, _>(ta, a.slice(0..n)),
        settle::<LOG, _, _>(tb, b.slice(0..n)),
    ))
}

/// The sum of a row the register path has seen (`total`): finished when
/// its max is finite and its sum not NaN; else nothing was written, and
/// the special-value rule reads the input.
#[cfg_attr(not(unoptimized), inline(always))]
fn settle<const LOG: bool, T: Logits, E: Elements>(total: Partial, io: Io<'_, T, E>) -> f64 {
    if total.max.is_finite() && !total.sum.is_nan() {
        return total.sum;
    }
    nonfinite_row(io, LOG);
    if total.sum.is_nan() { total.sum } else { 0.0 }
}

/// The register path over `io` read through `t`: the row's `(max, sum)`,
/// with the outputs written only when the max is finite and the sum is
/// not NaN. `None` (nothing written) when the row is too long.
#[cfg_attr(not(unoptimized), inline(always))]
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

/// The most vectors a row may have to go through [`pair`]: two rows of 8
/// spill registers, 13% slower than one by one (32768x128, 5 rounds, Zen 4).
pub(crate) const PAIR_MAX_VECTORS: usize = 4;

/// Two rows of the same length through the register path together: the
/// same operations on each as [`row`], so the same bits, interleaved so
/// that one row's serial tail (the reductions, the reciprocal) overlaps
/// the other's work. `None` (nothing written) when the rows span more than
/// [`PAIR_MAX_VECTORS`] vectors or a row's max is not finite (+inf, or
/// nothing above −inf but NaN): [`row`] takes those one at a time.
#[cfg_attr(not(unoptimized), inline(always))]
pub(super) fn pair<S: Lanes, IO: Stream, T: Logits, const LOG: bool>(
    s: S,
    a: (&mut IO, T),
    b: (&mut IO, T),
) -> Option<(Partial, Partial)> {
    match a.0.len().div_ceil(S::LANES) {
        0 => Some((Partial::EMPTY, Partial::EMPTY)),
        1 => fixed_pair::<S, IO, T, 1, LOG>(s, a, b),
        2 => fixed_pair::<S, IO, T, 2, LOG>(s, a, b),
        3 | 4 => fixed_pair::<S, IO, T, PAIR_MAX_VECTORS, LOG>(s, a, b),
        _ => None,
    }
}

/// [`row`] for a row of at most `K` vectors (and more than `K/2`).
#[cfg_attr(not(unoptimized), inline(always))]
fn fixed<S: Lanes, IO: Stream, T: Logits, const K: usize, const LOG: bool>(
    s: S,
    io: &mut IO,
    t: T,
) -> Partial {
    let v = load::<S, IO, K>(s, io);
    let max = row_max(s, &v);
    if !max.is_finite() {
        return Partial { max, sum: 0.0 };
    }
    let (e, sum) = exps(s, t, &v, max);
    if !sum.is_nan() {
        write::<S, IO, T, K, LOG>(s, io, t, &v, e, max, sum);
    }
    Partial { max, sum }
}

/// [`fixed`] on two rows of the same length, step by step.
#[cfg_attr(not(unoptimized), inline(always))]
fn fixed_pair<S: Lanes, IO: Stream, T: Logits, const K: usize, const LOG: bool>(
    s: S,
    (a, ta): (&mut IO, T),
    (b, tb): (&mut IO, T),
) -> Option<(Partial, Partial)> {
    let (va, vb) = (load::<S, IO, K>(s, a), load::<S, IO, K>(s, b));
    let (max_a, max_b) = (row_max(s, &va), row_max(s, &vb));
    if !(max_a.is_finite() && max_b.is_finite()) {
        // Rare: nothing written, each row on its own (a second copy of
        // `fixed` here would double this function's code).
        return None;
    }
    let (ea, sum_a) = exps(s, ta, &va, max_a);
    let (eb, sum_b) = exps(s, tb, &vb, max_b);
    if !sum_a.is_nan() {
        write::<S, IO, T, K, LOG>(s, a, ta, &va, ea, max_a, sum_a);
    }
    if !sum_b.is_nan() {
        write::<S, IO, T, K, LOG>(s, b, tb, &vb, eb, max_b, sum_b);
    }
    Some((
        Partial {
            max: max_a,
            sum: sum_a,
        },
        Partial {
            max: max_b,
            sum: sum_b,
        },
    ))
}

/// The row as `K` vectors, lanes past its end −inf.
#[cfg_attr(not(unoptimized), inline(always))]
fn load<S: Lanes, IO: Stream, const K: usize>(s: S, io: &IO) -> [S::V; K] {
    let (l, n) = (S::LANES, io.len());
    // Loops, not closures (`array::from_fn`): a closure is not inlined into
    // the backend's `#[target_feature]` entry, and its lane calls then are
    // not either (ten times slower).
    let mut v = [s.splat(f32::NEG_INFINITY); K];
    for (j, v) in v.iter_mut().enumerate() {
        let i = j * l;
        if i + l <= n {
            *v = io.read(s, i);
        } else if i < n {
            *v = io.read_partial(s, i);
        }
    }
    v
}

/// The largest value that is not NaN.
#[cfg_attr(not(unoptimized), inline(always))]
fn row_max<S: Lanes, const K: usize>(s: S, v: &[S::V; K]) -> f32 {
    // `max(x, acc)` keeps `acc` when `x` is NaN (see `kernels::max`).
    let mut highest = s.splat(f32::NEG_INFINITY);
    for &x in v {
        highest = s.max(x, highest);
    }
    s.reduce_max(highest)
}

/// The exponentials against the finite `max` and their sum: a balanced
/// f32 tree over the vectors, then f64 lane by lane.
#[cfg_attr(not(unoptimized), inline(always))]
fn exps<S: Lanes, T: Logits, const K: usize>(
    s: S,
    t: T,
    v: &[S::V; K],
    max: f32,
) -> ([S::V; K], f64) {
    let m = s.splat(max);
    let mut e = *v;
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
    (e, s.reduce_sum_f64(tree[0]))
}

/// Writes the softmax (with `LOG`, the log-softmax) of the row from its
/// logits `v`, their exponentials `e`, its max and its (not NaN) sum.
#[cfg_attr(not(unoptimized), inline(always))]
fn write<S: Lanes, IO: Stream, T: Logits, const K: usize, const LOG: bool>(
    s: S,
    io: &mut IO,
    t: T,
    v: &[S::V; K],
    e: [S::V; K],
    max: f32,
    sum: f64,
) {
    let (l, n) = (S::LANES, io.len());
    let mut y = e;
    if LOG {
        let (m, log_sum) = (s.splat(max), s.splat(sum.ln() as f32));
        for (y, &v) in y.iter_mut().zip(v) {
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
}
