//! Blocked online softmax: walk each chunk of the row in blocks of
//! [`BLOCK`] values with a running max, store `exp(x − running max)`, and
//! remember the max each block used; then one pass scales each block by
//! `exp(its max − row max) / sum`. x is read once and exp runs once per
//! element: each block's max is read beside the block before it, while its
//! exps hold the FMA ports and leave the loads idle, so the max costs next
//! to nothing (three-pass reads the whole row for it first). The running
//! max is at least every value of its block, so every exponent is `≤ 0`
//! and no larger than three-pass's: the same bound.
//!
//! Log-softmax runs the same passes storing `x − running max` instead of
//! its exp (the exp is still summed), and the last pass subtracts
//! `(row max − block max) + ln(sum)` from each block in place. Its output
//! is written while the exps keep the FMA ports busy, where a pass of its
//! own would stream x and y through the caches with nothing to hide behind
//! (1.6× slower on 64x50257). The error is the same: the stored difference
//! and the constant are both at most |y| and of one sign, so the two
//! roundings and the final one stay within 3 units of |y| as before.

use super::exec::{ChunkJob, Exec};
use super::{
    CHUNK, ExpMinus, ExpMinusAboveCutoff, Io, Logits, Map, Partial, ShiftExp, TimesPlus,
    map_in_place, nonfinite_row, scale, with_sink,
};
use crate::element::Elements;
use crate::exp::CUTOFF;
use crate::lanes::Lanes;
use core::ops::Range;

crate::driver::in_order_entry!();

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
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softmax<E: Elements>(exec: &impl Exec, io: Io<'_, impl Logits, E>) -> f64 {
    softmax_affine(exec, io, 1.0, 0.0).sum
}

/// Log-softmax of the row; returns its sum as [`softmax`] does.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn log_softmax<E: Elements>(exec: &impl Exec, io: Io<'_, impl Logits, E>) -> f64 {
    run::<true, E>(exec, io, 1.0, 0.0).sum
}

/// Writes `p·weight + offset` for the softmax `p` of the row and returns
/// the row's (max, sum). A row whose max is not finite gets the plain
/// special-value softmax (`nonfinite_row`, no weight or offset) and comes
/// back with that max, for the caller to finish.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softmax_affine<E: Elements>(
    exec: &impl Exec,
    io: Io<'_, impl Logits, E>,
    weight: f64,
    offset: f32,
) -> Partial {
    run::<false, E>(exec, io, weight, offset)
}

/// [`softmax_affine`], or with `LOG` the log-softmax (no weight or offset).
#[cfg_attr(not(unoptimized), inline(always))]
fn run<const LOG: bool, E: Elements>(
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
        &StoreChunk::<LOG>,
        (Partial::EMPTY, 0),
        |(total, k), part| {
            parts[k] = part;
            (total.merge(part.total, c), k + 1)
        },
    );
    let m = total.max;
    if !m.is_finite() {
        // Blocks already hold exp(x − running max) or x − running max (in
        // place): NaN where x was NaN and never +inf, so the rule still
        // reads them right.
        nonfinite_row(io, LOG);
        return Partial { max: m, sum: 0.0 };
    }
    let sum = with_sink(&io, m, total.sum);
    if sum.is_nan() {
        // A NaN the max passed over; a NaN max tells the caller to finish.
        nonfinite_row(io, LOG);
        return Partial { max: f32::NAN, sum };
    }
    if LOG {
        let finish = ShiftChunk {
            parts,
            m,
            c,
            log_sum: sum.ln(),
        };
        exec.fold(&mut io, CHUNK, &finish, (), |(), ()| ());
    } else {
        let finish = ScaleChunk {
            parts,
            m,
            c,
            inv: weight / sum,
            offset,
        };
        exec.fold(&mut io, CHUNK, &finish, (), |(), ()| ());
    }
    Partial { max: m, sum }
}

/// Stores `exp(x − m)` block by block (with `LOG`, `x − m` and sums its
/// exp), `m` the running max of the chunk so far (each block's own max read
/// beside the block before), and returns the chunk's (max, sum) with each
/// block's `m`. A block whose max is +inf ends the chunk (the row goes to
/// `nonfinite_row`).
struct StoreChunk<const LOG: bool>;
/// Scales block `b` of chunk `k` by `exp(c·(max_kb − m))·inv` and adds
/// `offset`.
struct ScaleChunk<'a> {
    parts: &'a [ChunkPart],
    m: f32,
    c: f64,
    inv: f64,
    offset: f32,
}
/// Subtracts `c·(m − max_kb) + log_sum` from block `b` of chunk `k`.
struct ShiftChunk<'a> {
    parts: &'a [ChunkPart],
    m: f32,
    c: f64,
    log_sum: f64,
}

impl<E: Elements, const LOG: bool> ChunkJob<E> for StoreChunk<LOG> {
    type Out = ChunkPart;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> ChunkPart {
        let n = chunk.len();
        let t = chunk.logits();
        let c = t.factor();
        let mut part = ChunkPart::EMPTY;
        let (mut m, mut sum) = (f32::NEG_INFINITY, 0.0f64);
        // The first block's min too where it pays (a read bound by loads):
        // a chunk of one block (attention rows) whose every exponent is
        // above the cutoff runs its exps without the flush.
        let first = chunk.slice(0..BLOCK.min(n));
        let (mut block_max, block_min) = if T::ABOVE_CUTOFF_PAYS {
            first.max_min(s)
        } else {
            (first.max(s), f32::NEG_INFINITY)
        };
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
            // and NaN as NaN (and x − 0 keeps them as they are).
            let reference = if m == f32::NEG_INFINITY { 0.0 } else { m };
            let shift_by = s.splat(reference);
            let block = start..n.min(start + BLOCK);
            let alone_above_cutoff = n <= BLOCK && block_min - reference >= CUTOFF;
            let (block_sum, next_max) = match (LOG, alone_above_cutoff) {
                (true, true) => {
                    let f = ShiftExp::<S, T, true>(shift_by, t);
                    (chunk.map_store_sum(s, f), f32::NEG_INFINITY)
                }
                (true, false) => {
                    let f = ShiftExp::<S, T, false>(shift_by, t);
                    store_block(s, &mut chunk, f, block)
                }
                (false, true) => {
                    let f = ExpMinusAboveCutoff(shift_by, t);
                    (chunk.map_store_sum(s, f), f32::NEG_INFINITY)
                }
                (false, false) => store_block(s, &mut chunk, ExpMinus(shift_by, t), block),
            };
            sum += block_sum;
            block_max = next_max;
        }
        part.total = Partial { max: m, sum };
        part
    }
}

/// Stores `f` over `block` of `chunk` and returns its sum, and the max of
/// the block after it (read beside; −inf past the chunk's end).
#[cfg_attr(not(unoptimized), inline(always))]
fn store_block<S: Lanes, T: Logits, E: Elements>(
    s: S,
    chunk: &mut Io<'_, T, E>,
    f: impl Map<S>,
    block: Range<usize>,
) -> (f64, f32) {
    let n = chunk.len();
    let next = block.end..n.min(block.end + BLOCK);
    if next.is_empty() {
        (chunk.slice(block).map_store_sum(s, f), f32::NEG_INFINITY)
    } else {
        chunk.map_store_sum_next_max(s, f, block, next)
    }
}

/// The runs of blocks of a chunk of `n` values stored against the same max
/// (the running max moves rarely), each with that max: one factor, from
/// one libm call, serves a run.
#[cfg_attr(not(unoptimized), inline(always))]
fn runs_of_blocks(maxima: &[f32; BLOCKS], n: usize) -> impl Iterator<Item = (Range<usize>, f32)> {
    let mut b = 0;
    core::iter::from_fn(move || {
        if b * BLOCK >= n {
            return None;
        }
        let block_max = maxima[b];
        let mut e = b + 1;
        while e * BLOCK < n && maxima[e].to_bits() == block_max.to_bits() {
            e += 1;
        }
        let run = b * BLOCK..n.min(e * BLOCK);
        b = e;
        Some((run, block_max))
    })
}

impl<E: Elements> ChunkJob<E> for ScaleChunk<'_> {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, k: usize, mut chunk: Io<'_, T, E>) {
        let n = chunk.len();
        for (blocks, block_max) in runs_of_blocks(&self.parts[k].block_max, n) {
            // exp(−inf) = 0 for blocks of only −inf; NaN in `inv` reaches
            // every block. The row max's own blocks skip the libm call.
            let shift = f64::from(block_max) - f64::from(self.m);
            let factor = if shift == 0.0 {
                self.inv
            } else {
                (shift * self.c).exp() * self.inv
            };
            let mut blocks = chunk.slice(blocks);
            if self.offset == 0.0 {
                scale(s, blocks.output(), factor as f32);
            } else {
                let f = TimesPlus(s.splat(factor as f32), s.splat(self.offset));
                map_in_place(s, blocks.output(), f);
            }
        }
    }
}

impl<E: Elements> ChunkJob<E> for ShiftChunk<'_> {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, k: usize, mut chunk: Io<'_, T, E>) {
        let n = chunk.len();
        for (blocks, block_max) in runs_of_blocks(&self.parts[k].block_max, n) {
            // +inf for blocks of only −inf (and NaN), which stay as they are.
            let back = (f64::from(self.m) - f64::from(block_max)) * self.c + self.log_sum;
            // y·1 − back: one rounding, as a subtraction.
            let f = TimesPlus(s.splat(1.0), s.splat(-back as f32));
            map_in_place(s, chunk.slice(blocks).output(), f);
        }
    }
}
