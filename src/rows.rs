//! Rows across the caller's rayon pool.

use rayon::prelude::*;

use crate::Kernel;
use crate::dispatch::{self, Backend, Job};
use crate::kernels::argmax::argmax;
use crate::kernels::exec::{Exec, Parallel, Sequential};
use crate::kernels::log_softmax::{log_softmax, logsumexp_of};
use crate::kernels::online::max_sum;
use crate::kernels::{CHUNK, Io, Partial, blocked, online, three_pass};
use crate::lanes::Lanes;

/// A task handles at least this many elements, so that 4096 rows of 1024
/// become 256 tasks, not 4096, and a short batch stays on one thread.
const MIN_TASK_ELEMENTS: usize = 16 * 1024;

/// A single row at least this long is split across the pool (in the fixed
/// chunks every row is cut into anyway, so the bits do not change). At 2
/// threads a 128256 row gained 1.55× and a 256000 row 1.97×, while rows of
/// 32768 and 50257 were no faster or slower: the pool's wake-up costs more.
const SPLIT_ROW_FROM: usize = 64 * 1024;

/// What to compute for each row.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowOp {
    Softmax(Kernel),
    LogSoftmax,
}

/// `op` on every row of `io`, rows split across the current rayon pool.
pub(crate) fn run_rows(backend: Backend, op: RowOp, io: Io<'_>, row_len: usize) {
    let rows = io.len() / row_len;
    if rows == 1 && row_len >= SPLIT_ROW_FROM && rayon::current_num_threads() > 1 {
        if rayon::current_thread_index().is_some() {
            return run_row(&Parallel(backend), op, io);
        }
        // From outside the pool every parallel pass would be a separate
        // hand-off to the pool and back (1x128256 three-pass went from 40 to
        // 51 µs on 2 threads); one hand-off for the whole row instead.
        return rayon::scope(|_| run_row(&Parallel(backend), op, io));
    }
    let rows_per_task = (MIN_TASK_ELEMENTS / row_len).max(1);
    if rows <= rows_per_task || rayon::current_num_threads() == 1 {
        return dispatch::run(backend, RowsJob { io, row_len, op });
    }
    let task_len = rows_per_task * row_len;
    match io {
        Io::InPlace(data) => data.par_chunks_mut(task_len).for_each(|rows| {
            dispatch::run(
                backend,
                RowsJob {
                    io: Io::InPlace(rows),
                    row_len,
                    op,
                },
            );
        }),
        Io::OutOfPlace { input, output } => input
            .par_chunks(task_len)
            .zip(output.par_chunks_mut(task_len))
            .for_each(|(input, output)| {
                let io = Io::OutOfPlace { input, output };
                dispatch::run(backend, RowsJob { io, row_len, op });
            }),
    }
}

/// Rows one after another on this thread, all through one backend entry.
struct RowsJob<'a> {
    io: Io<'a>,
    row_len: usize,
    op: RowOp,
}

impl Job for RowsJob<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Lanes>(self, s: S) {
        // Loops, not a closure per row: see `kernels::Map`.
        match self.io {
            Io::InPlace(data) => {
                for row in data.chunks_exact_mut(self.row_len) {
                    run_row(&Sequential(s), self.op, Io::InPlace(row));
                }
            }
            Io::OutOfPlace { input, output } => {
                let rows = input
                    .chunks_exact(self.row_len)
                    .zip(output.chunks_exact_mut(self.row_len));
                for (input, output) in rows {
                    run_row(&Sequential(s), self.op, Io::OutOfPlace { input, output });
                }
            }
        }
    }
}

#[inline(always)]
fn run_row(exec: &impl Exec, op: RowOp, row: Io<'_>) {
    match op {
        RowOp::Softmax(Kernel::ThreePass) => three_pass::softmax(exec, row),
        RowOp::Softmax(Kernel::Online) => online::softmax(exec, row),
        RowOp::Softmax(Kernel::Blocked) => blocked::softmax(exec, row),
        RowOp::LogSoftmax => log_softmax(exec, row),
    }
}

/// A reduction of each row to one value.
pub(crate) trait RowReduce: Copy + Send + Sync {
    type Out: Send;
    /// Must be `#[inline(always)]` (see `Lanes::vectorize`).
    fn reduce<S: Lanes>(self, s: S, row: &[f32]) -> Self::Out;
}

/// `ln Σ exp(x)` of a row.
#[derive(Clone, Copy)]
pub(crate) struct LogSumExp;
/// The lowest index of a row's maximum.
#[derive(Clone, Copy)]
pub(crate) struct ArgMax;

impl RowReduce for LogSumExp {
    type Out = f32;
    #[inline(always)]
    fn reduce<S: Lanes>(self, s: S, row: &[f32]) -> f32 {
        // The same chunks and merge order as the softmax kernels.
        let mut total = Partial::EMPTY;
        for chunk in row.chunks(CHUNK) {
            total = total.merge(max_sum(s, chunk));
        }
        logsumexp_of(total, row)
    }
}

impl RowReduce for ArgMax {
    type Out = Option<usize>;
    #[inline(always)]
    fn reduce<S: Lanes>(self, s: S, row: &[f32]) -> Option<usize> {
        argmax(s, row)
    }
}

/// `r` of every row of `input` into `output` (one value per row), rows
/// split across the current rayon pool.
pub(crate) fn reduce_rows<R: RowReduce>(
    backend: Backend,
    r: R,
    input: &[f32],
    row_len: usize,
    output: &mut [R::Out],
) {
    let rows_per_task = (MIN_TASK_ELEMENTS / row_len).max(1);
    if output.len() <= rows_per_task || rayon::current_num_threads() == 1 {
        return dispatch::run(
            backend,
            ReduceJob {
                r,
                input,
                row_len,
                output,
            },
        );
    }
    input
        .par_chunks(rows_per_task * row_len)
        .zip(output.par_chunks_mut(rows_per_task))
        .for_each(|(input, output)| {
            dispatch::run(
                backend,
                ReduceJob {
                    r,
                    input,
                    row_len,
                    output,
                },
            )
        });
}

struct ReduceJob<'a, R: RowReduce> {
    r: R,
    input: &'a [f32],
    row_len: usize,
    output: &'a mut [R::Out],
}

impl<R: RowReduce> Job for ReduceJob<'_, R> {
    type Output = ();

    #[inline(always)]
    fn run<S: Lanes>(self, s: S) {
        for (row, out) in self
            .input
            .chunks_exact(self.row_len)
            .zip(self.output.iter_mut())
        {
            *out = self.r.reduce(s, row);
        }
    }
}
