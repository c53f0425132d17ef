//! Blocked online softmax: walk each chunk of the row in blocks of
//! [`BLOCK`] values with a running max, store `exp(x − running max)`, and
//! remember the max each block used; then one pass scales each block by
//! `exp(its max − row max) / sum`. x is read once and exp runs once per
//! element: each block's max is read beside the block before it, while its
//! exps hold the FMA ports and leave the loads idle, so the max costs next
//! to nothing (three-pass reads the whole row for it first). The running
//! max is at least every value of its block, so every exponent is `≤ 0`
//! and no larger than three-pass's: the same bound.

use super::exec::{ChunkJob, Exec};
use super::{CHUNK, ExpMinus, Io, Logits, Partial, TimesPlus, map_in_place, nonfinite_row, scale};
use crate::element::Elements;
use crate::lanes::Lanes;

/// Values per block: the running max moves, and the next block's max is
/// read, a block at a time.
pub(crate) const BLOCK: usize = 1024;

/// Blocks per chunk (chunks are what threads split a row into).
const BLOCKS: usize = CHUNK / BLOCK;

/// Chunks whose blocks' maxima live on the stack (rows up to 256Ki
/// values); longer rows allocate, which costs nothing next to their work.
const STACK_CHUNKS: usize = 16;

/// What the exp pass leaves of a chunk: its (max, sum) and the max each
/// of its blocks was stored against.
#[derive(Clone, Copy)]
struct ChunkPart {
    total: Partial,
    block_max: [f32; BLOCKS],
}

impl ChunkPart {
    const EMPTY: ChunkPart = ChunkPart {
        total: Partial::EMPTY,
        block_max: [f32::NEG_INFINITY; BLOCKS],
    };
}

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
    let chunks = io.len().div_ceil(CHUNK);
    let mut stack = [ChunkPart::EMPTY; STACK_CHUNKS];
    let mut heap = Vec::new();
    let parts: &mut [ChunkPart] = if chunks <= STACK_CHUNKS {
        &mut stack[..chunks]
    } else {
        heap.resize(chunks, ChunkPart::EMPTY);
        &mut heap
    };

    let c = io.logits().factor();
    let (total, _) = exec.fold(
        &mut io,
        CHUNK,
        &ExpChunk,
        (Partial::EMPTY, 0),
        |(total, k), part| {
            parts[k] = part;
            (total.merge(part.total, c), k + 1)
        },
    );
    let m = total.max;
    if !m.is_finite() {
        // Blocks already hold exp(x − running max) (in place): NaN where x was
        // NaN and never +inf, so the rule still reads them right.
        nonfinite_row(io, false);
        return Partial { max: m, sum: 0.0 };
    }
    let sum = total.sum;
    if sum.is_nan() {
        // A NaN the max passed over; a NaN max tells the caller to finish.
        nonfinite_row(io, false);
        return Partial { max: f32::NAN, sum };
    }
    exec.fold(
        &mut io,
        CHUNK,
        &ScaleChunk {
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

/// Stores `exp(x − m)` block by block, `m` the running max of the chunk
/// so far (each block's own max read beside the block before), and
/// returns the chunk's (max, sum) with each block's `m`. A block whose max
/// is +inf ends the chunk (the row goes to `nonfinite_row`).
struct ExpChunk;
/// Scales block `b` of chunk `k` by `exp(c·(max_kb − m))·inv` and adds
/// `offset`.
struct ScaleChunk<'a> {
    parts: &'a [ChunkPart],
    m: f32,
    c: f64,
    inv: f64,
    offset: f32,
}

impl<E: Elements> ChunkJob<E> for ExpChunk {
    type Out = ChunkPart;
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> ChunkPart {
        let n = chunk.len();
        let t = chunk.logits();
        let c = t.factor();
        let mut part = ChunkPart::EMPTY;
        let (mut m, mut sum) = (f32::NEG_INFINITY, 0.0f64);
        let mut block_max = chunk.slice(0..BLOCK.min(n)).max(s);
        for (b, start) in (0..n).step_by(BLOCK).enumerate() {
            if block_max > m {
                if block_max == f32::INFINITY {
                    part.total = Partial {
                        max: block_max,
                        sum: 0.0,
                    };
                    return part;
                }
                sum = Partial { max: m, sum }.sum_at(block_max, c);
                m = block_max;
            }
            part.block_max[b] = m;
            // Until a value above −inf shows up, exp(x − 0) keeps −inf at 0
            // and NaN as NaN.
            let exp = ExpMinus::new(s, if m == f32::NEG_INFINITY { 0.0 } else { m }, t);
            let end = n.min(start + BLOCK);
            let next = end..n.min(end + BLOCK);
            if next.is_empty() {
                sum += chunk.slice(start..end).map_store_sum(s, exp);
            } else {
                let (block_sum, next_max) = chunk.map_store_sum_next_max(s, exp, start..end, next);
                sum += block_sum;
                block_max = next_max;
            }
        }
        part.total = Partial { max: m, sum };
        part
    }
}

impl<E: Elements> ChunkJob<E> for ScaleChunk<'_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Lanes, T: Logits>(&self, s: S, k: usize, mut chunk: Io<'_, T, E>) {
        let n = chunk.len();
        let maxima = &self.parts[k].block_max;
        // Blocks stored against the same max (the running max moves
        // rarely) are scaled together, by one factor from one libm exp.
        let mut b = 0;
        while b * BLOCK < n {
            let block_max = maxima[b];
            let mut e = b + 1;
            while e * BLOCK < n && maxima[e].to_bits() == block_max.to_bits() {
                e += 1;
            }
            // exp(−inf) = 0 for blocks of only −inf; NaN in `inv` reaches
            // every block. The row max's own blocks skip the libm call.
            let shift = f64::from(block_max) - f64::from(self.m);
            let factor = if shift == 0.0 {
                self.inv
            } else {
                (shift * self.c).exp() * self.inv
            };
            let mut blocks = chunk.slice(b * BLOCK..n.min(e * BLOCK));
            if self.offset == 0.0 {
                scale(s, blocks.output(), factor as f32);
            } else {
                let f = TimesPlus(s.splat(factor as f32), s.splat(self.offset));
                map_in_place(s, blocks.output(), f);
            }
            b = e;
        }
    }
}
