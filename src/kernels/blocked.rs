//! Blocked online softmax: walk the row in L1-sized blocks, store
//! `exp(x − block max)` and remember each block's (max, sum); then scale
//! each block by `exp(block max − max) / sum`. x is read once from memory
//! (twice from L1) and exp runs once per element.

use super::exec::{ChunkJob, Exec};
use super::{ExpMinus, Io, Logits, Partial, nonfinite_row, scale};
use crate::lanes::Lanes;

/// Elements per block: 8 KiB, well inside L1 next to the output block.
pub(crate) const BLOCK: usize = 2048;

/// Blocks whose (max, sum) live on the stack (rows up to 32Ki elements);
/// longer rows allocate, which costs nothing next to their work, while
/// clearing a large stack array every call slowed short rows by half.
const STACK_BLOCKS: usize = 16;

#[inline(always)]
pub(crate) fn softmax(exec: &impl Exec, mut io: Io<'_, impl Logits>) {
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
        return nonfinite_row(io, false);
    }
    let c = io.logits().factor();
    let sum: f64 = parts.iter().map(|p| p.sum_at(m, c)).sum();
    exec.fold(
        &mut io,
        BLOCK,
        &ScaleBlocks {
            parts,
            m,
            c,
            inv: 1.0 / sum,
        },
        (),
        |(), ()| (),
    );
}

/// Stores `exp(x − m)` for the block's max `m` and returns (m, their sum);
/// a block whose max is +inf is left alone (the row goes to `nonfinite_row`).
struct ExpBlock;
/// Scales block `b` by `exp(c·(max_b − m))·inv`.
struct ScaleBlocks<'a> {
    parts: &'a [Partial],
    m: f32,
    c: f64,
    inv: f64,
}

impl ChunkJob for ExpBlock {
    type Out = Partial;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut block: Io<'_, T>) -> Partial {
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

impl ChunkJob for ScaleBlocks<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, b: usize, mut block: Io<'_, T>) {
        // exp(−inf) = 0 for a block of only −inf; NaN in `inv` reaches every
        // block. The block holding the max skips the libm call (short rows).
        let shift = f64::from(self.parts[b].max) - f64::from(self.m);
        let factor = if shift == 0.0 {
            self.inv
        } else {
            (shift * self.c).exp() * self.inv
        };
        scale(s, block.output(), factor as f32);
    }
}
