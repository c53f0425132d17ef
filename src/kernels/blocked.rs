//! Blocked online softmax: walk the row in L1-sized blocks, store
//! `exp(x − block max)` and remember each block's (max, sum); then scale
//! each block by `exp(block max − max) / sum`. x is read once from memory
//! (twice from L1) and exp runs once per element.

use super::exec::{ChunkJob, Exec};
use super::{ExpMinus, Io, Logits, Partial, TimesPlus, map_in_place, nonfinite_row, scale};
use crate::element::Elements;
use crate::lanes::Lanes;

/// Elements per block: 8 KiB, well inside L1 next to the output block.
pub(crate) const BLOCK: usize = 2048;

/// Blocks whose (max, sum) live on the stack (rows up to 32Ki elements);
/// longer rows allocate, which costs nothing next to their work, while
/// clearing a large stack array every call slowed short rows by half.
const STACK_BLOCKS: usize = 16;

/// Returns the row's sum (NaN when a logit was NaN; 0 for the rows
/// `nonfinite_row` finishes).
#[inline(always)]
pub(crate) fn softmax<E: Elements>(exec: &impl Exec, io: Io<'_, impl Logits, E>) -> f64 {
    softmax_affine(exec, io, 1.0, 0.0).sum
}

/// Writes `p·weight + offset` for the softmax `p` of the row and returns
/// the row's (max, sum). A row whose max is not finite gets the plain
/// special-value softmax (`nonfinite_row`, no weight or offset) and comes
/// back with that max, for the caller to finish.
#[inline(always)]
pub(crate) fn softmax_affine<E: Elements>(
    exec: &impl Exec,
    mut io: Io<'_, impl Logits, E>,
    weight: f64,
    offset: f32,
) -> Partial {
    let blocks = io.len().div_ceil(BLOCK);
    let mut stack = [Partial::EMPTY; STACK_BLOCKS];
    let mut heap = Vec::new();
    let parts: &mut [Partial] = if blocks <= STACK_BLOCKS {
        &mut stack[..blocks]
    } else {
        heap.resize(blocks, Partial::EMPTY);
        &mut heap
    };

    let (m, _) = exec.fold(
        &mut io,
        BLOCK,
        &ExpBlock,
        (f32::NEG_INFINITY, 0),
        |(m, b), part| {
            parts[b] = part;
            (if part.max > m { part.max } else { m }, b + 1)
        },
    );
    if !m.is_finite() {
        // Blocks already hold exp(x − block max) (in place): NaN where x was
        // NaN and never +inf, so the rule still reads them right.
        nonfinite_row(io, false);
        return Partial { max: m, sum: 0.0 };
    }
    let c = io.logits().factor();
    let sum: f64 = parts.iter().map(|p| p.sum_at(m, c)).sum();
    if sum.is_nan() {
        // A NaN the max passed over; a NaN max tells the caller to finish.
        nonfinite_row(io, false);
        return Partial { max: f32::NAN, sum };
    }
    exec.fold(
        &mut io,
        BLOCK,
        &ScaleBlocks {
            parts,
            m,
            c,
            inv: weight / sum,
            offset,
        },
        (),
        |(), ()| (),
    );
    Partial { max: m, sum }
}

/// Stores `exp(x − m)` for the block's max `m` and returns (m, their sum);
/// a block whose max is +inf is left alone (the row goes to `nonfinite_row`).
struct ExpBlock;
/// Scales block `b` by `exp(c·(max_b − m))·inv` and adds `offset`.
struct ScaleBlocks<'a> {
    parts: &'a [Partial],
    m: f32,
    c: f64,
    inv: f64,
    offset: f32,
}

impl<E: Elements> ChunkJob<E> for ExpBlock {
    type Out = Partial;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut block: Io<'_, T, E>) -> Partial {
        let m = block.max(s);
        if m == f32::INFINITY {
            return Partial { max: m, sum: 0.0 };
        }
        // A block of only −inf and NaN: exp(x − 0) keeps −inf at 0 and NaN as NaN.
        let reference = if m == f32::NEG_INFINITY { 0.0 } else { m };
        let t = block.logits();
        let sum = block.map_store_sum(s, ExpMinus::new(s, reference, t));
        Partial { max: m, sum }
    }
}

impl<E: Elements> ChunkJob<E> for ScaleBlocks<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, b: usize, mut block: Io<'_, T, E>) {
        // exp(−inf) = 0 for a block of only −inf; NaN in `inv` reaches every
        // block. The block holding the max skips the libm call (short rows).
        let shift = f64::from(self.parts[b].max) - f64::from(self.m);
        let factor = if shift == 0.0 {
            self.inv
        } else {
            (shift * self.c).exp() * self.inv
        };
        if self.offset == 0.0 {
            scale(s, block.output(), factor as f32);
        } else {
            let f = TimesPlus(s.splat(factor as f32), s.splat(self.offset));
            map_in_place(s, block.output(), f);
        }
    }
}
