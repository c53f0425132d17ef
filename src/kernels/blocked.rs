//! Blocked online softmax: walk the row in L1-sized blocks, store
//! `exp(x − block max)` and remember each block's (max, sum); then scale
//! each block by `exp(block max − max) / sum`. x is read once from memory
//! (twice from L1) and exp runs once per element.

use super::{ExpMinus, Io, Partial, max, nonfinite_row, scale};
use crate::lanes::Lanes;

/// Elements per block: 8 KiB, well inside L1 next to the output block.
pub(crate) const BLOCK: usize = 2048;

/// Blocks whose (max, sum) live on the stack (rows up to 32Ki elements);
/// longer rows allocate, which costs nothing next to their work, while
/// clearing a large stack array every call slowed short rows by half.
const STACK_BLOCKS: usize = 16;

#[inline(always)]
pub(crate) fn softmax<S: Lanes>(s: S, mut io: Io<'_>) {
    let n = io.len();
    let blocks = n.div_ceil(BLOCK);
    let mut stack = [Partial::EMPTY; STACK_BLOCKS];
    let mut heap = Vec::new();
    let parts: &mut [Partial] = if blocks <= STACK_BLOCKS {
        &mut stack[..blocks]
    } else {
        heap.resize(blocks, Partial::EMPTY);
        &mut heap
    };

    let mut m = f32::NEG_INFINITY;
    for (b, part) in parts.iter_mut().enumerate() {
        let start = b * BLOCK;
        let block = io.slice(start..n.min(start + BLOCK));
        let block_max = max(s, block.input());
        if block_max == f32::INFINITY {
            // In place, the blocks before this one already hold exponentials:
            // NaN where x was NaN, never +inf, so the rule still reads right.
            return nonfinite_row(io);
        }
        *part = exp_block(s, block, block_max);
        m = if block_max > m { block_max } else { m };
    }
    if m == f32::NEG_INFINITY {
        // Every block stored exp(x − 0): 0 for −inf, NaN for NaN.
        return nonfinite_row(io);
    }
    let sum: f64 = parts.iter().map(|p| p.sum_at(m)).sum();
    let inv = 1.0 / sum;
    let output = io.output();
    for (b, part) in parts.iter().enumerate() {
        let start = b * BLOCK;
        // exp(−inf) = 0 for a block of only −inf; NaN in `inv` reaches every block.
        let factor = (f64::from(part.max) - f64::from(m)).exp() * inv;
        scale(s, &mut output[start..n.min(start + BLOCK)], factor as f32);
    }
}

/// Stores `exp(x − m)` for the block's max `m` and returns (m, their sum).
#[inline(always)]
fn exp_block<S: Lanes>(s: S, mut io: Io<'_>, m: f32) -> Partial {
    // A block of only −inf and NaN: exp(x − 0) keeps −inf at 0 and NaN as NaN.
    let reference = if m == f32::NEG_INFINITY { 0.0 } else { m };
    let sum = io.map_store_sum(s, f32::NEG_INFINITY, ExpMinus(s.splat(reference)));
    Partial { max: m, sum }
}
