//! Online softmax: one pass keeps a running max and a rescaled sum, a second
//! pass writes `exp(x − max) / sum`. Two exps per element, but x is read
//! twice and y written once: the least memory traffic.

use super::exec::{ChunkJob, Exec};
use super::{
    CHUNK, ExpMinus, ExpMinusAboveCutoff, ExpMinusForSum, ExpMinusTimes, Io, Logits, NextMax,
    Partial, Plain, max, max_min, nonfinite_row, sum_of, sum_of_beside, with_sink,
};
use crate::element::{Elements, Storage};
use crate::exp::CUTOFF;
use crate::lanes::Lanes;

crate::driver::in_order_entry!();

/// Returns the row's sum (NaN when a logit was NaN; 0 for the rows
/// `nonfinite_row` finishes).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softmax<T: Logits, E: Elements>(exec: &impl Exec, mut io: Io<'_, T, E>) -> f64 {
    let mut total = max_sum_of(exec, &mut io);
    if !total.max.is_finite() {
        nonfinite_row(io, false);
        return 0.0;
    }
    total.sum = with_sink(&io, total.max, total.sum);
    if total.sum.is_nan() {
        nonfinite_row(io, false);
        return total.sum;
    }
    let r = (1.0 / total.sum) as f32;
    exec.fold(&mut io, CHUNK, &ExpScale(total.max, r), (), |(), ()| ());
    total.sum
}

/// Max and sum of a whole row, chunk by chunk, merged in chunk order.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn max_sum_of<T: Logits, E: Elements>(
    exec: &impl Exec,
    io: &mut Io<'_, T, E>,
) -> Partial {
    let c = io.logits().factor();
    exec.fold(io, CHUNK, &MaxSum, Partial::EMPTY, |a, b| a.merge(b, c))
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

impl<E: Elements> ChunkJob<E> for MaxSum {
    type Out = Partial;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, chunk: Io<'_, T, E>) -> Partial {
        chunk.max_sum(s)
    }
}

/// The body of [`MaxSum`] over the logits of `x` under `t`.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn max_sum<S: Lanes, T: Logits, X: Storage>(s: S, x: &[X], t: T) -> Partial {
    max_sum_visiting::<S, T, X, false>(s, x, t, 0, &mut ())
}

/// `(max, sum)` of a whole row on this thread: its fixed chunks merged in
/// chunk order, the same bits as [`max_sum_of`] through any `Exec`. Every
/// reduction that needs a row's (max, sum) comes here. The block starts
/// `visitor` sees count from the row start. `FOR_SUM` where the sum is
/// all the caller keeps and its bound is relative to the sum (logsumexp):
/// the exps are `exp::exp_for_sum`.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn row_max_sum<S: Lanes, X: Storage, const FOR_SUM: bool>(
    s: S,
    x: &[X],
    visitor: &mut impl BlockVisitor<X>,
) -> Partial {
    if FOR_SUM {
        // Such rows are never split across threads: one part.
        return max_sum_visiting::<S, Plain, X, true>(s, x, Plain, 0, visitor);
    }
    let mut total = Partial::EMPTY;
    for (c, chunk) in x.chunks(CHUNK).enumerate() {
        let part = max_sum_visiting::<S, Plain, X, FOR_SUM>(s, chunk, Plain, c * CHUNK, visitor);
        total = total.merge(part, 1.0);
    }
    total
}

/// Something to do with each block while it is in L1 (the top-k scan of
/// `top_k_probs`). A trait, not a closure: see `Map`.
pub(crate) trait BlockVisitor<X> {
    /// `block` starts at element `start` of the row; `max` is its largest
    /// logit (not NaN; −inf if none).
    fn visit<S: Lanes>(&mut self, s: S, block: &[X], start: usize, max: f32);
}

impl<X> BlockVisitor<X> for () {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn visit<S: Lanes>(&mut self, _: S, _: &[X], _: usize, _: f32) {}
}

/// [`max_sum`], handing each block to `visitor` after its max and sum
/// (`base` is the index of `x[0]` in its row). Each block's max is found
/// while the block before it runs its exponentials (the same max: a max
/// does not round), so the block is read once for the exp, not twice.
#[cfg_attr(not(unoptimized), inline(always))]
fn max_sum_visiting<S: Lanes, T: Logits, X: Storage, const FOR_SUM: bool>(
    s: S,
    x: &[X],
    t: T,
    base: usize,
    visitor: &mut impl BlockVisitor<X>,
) -> Partial {
    let c = t.factor();
    let mut m = f32::NEG_INFINITY;
    let mut sum = 0.0f64;
    let step = if FOR_SUM { 4 } else { 1 } * RESCALE_VECTORS * S::LANES;
    let first = step.min(x.len());
    // The first block's min too (a read bound by loads): where it leaves
    // every exponent above the cutoff, a block read alone (a row of one
    // block, as attention rows are) runs its exps without the flush.
    let (mut block_max, mut block_min) = if T::ABOVE_CUTOFF_PAYS {
        max_min(s, &x[..first], t.slice(0..first))
    } else {
        (max(s, &x[..first], t.slice(0..first)), f32::NEG_INFINITY)
    };
    let mut start = 0;
    while start < x.len() {
        let end = (start + step).min(x.len());
        let (block, bt) = (&x[start..end], t.slice(start..end));
        if block_max > m {
            sum = Partial { max: m, sum }.sum_at(block_max, c);
            m = block_max;
        }
        // Until a value above −inf shows up, exp(x − 0) keeps −inf at 0 and NaN as NaN.
        let reference = if m == f32::NEG_INFINITY { 0.0 } else { m };
        let exp = ExpMinus::new(s, reference, bt);
        let next_end = (end + step).min(x.len());
        let (next, nt) = (&x[end..next_end], t.slice(end..next_end));
        let this_max = block_max;
        if next.len() == block.len() {
            // Same length: the vector at `i` of this block pairs with the
            // one at `i` of the next, whole vectors and the partial one alike.
            let mut next_max = NextMax::new(s, next, nt);
            sum += if FOR_SUM {
                let exp = ExpMinusForSum(s.splat(reference), bt);
                sum_of_beside(s, block, bt, exp, &mut next_max)
            } else {
                sum_of_beside(s, block, bt, exp, &mut next_max)
            };
            block_max = next_max.finish(s, block.len());
        } else {
            sum += if block_min - reference >= CUTOFF {
                sum_of(s, block, bt, ExpMinusAboveCutoff(s.splat(reference), bt))
            } else if FOR_SUM {
                sum_of(s, block, bt, ExpMinusForSum(s.splat(reference), bt))
            } else {
                sum_of(s, block, bt, exp)
            };
            block_max = max(s, next, nt);
        }
        block_min = f32::NEG_INFINITY;
        visitor.visit(s, block, base + start, this_max);
        start = end;
    }
    Partial { max: m, sum }
}

impl<E: Elements> ChunkJob<E> for ExpScale {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        let t = chunk.logits();
        chunk.map_store(s, ExpMinusTimes(s.splat(self.0), s.splat(self.1), t));
    }
}
