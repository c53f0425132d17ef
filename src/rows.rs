//! Rows across the caller's rayon pool.

use crate::dispatch::{self, Backend, Job};
use crate::kernels::exec::{Exec, Parallel, Sequential};
use crate::kernels::{Io, blocked, online, three_pass};
use crate::lanes::Lanes;
use crate::{Algorithm, Kernel};

/// A task handles at least this many elements, so that 4096 rows of 1024
/// become 256 tasks, not 4096, and a short batch stays on one thread.
const MIN_TASK_ELEMENTS: usize = 16 * 1024;

/// A single row at least this long is split across the pool (in the fixed
/// chunks every row is cut into anyway, so the bits do not change). At 2
/// threads a 128256 row gained 1.55× and a 256000 row 1.97×, while rows of
/// 32768 and 50257 were no faster or slower: the pool's wake-up costs more.
const SPLIT_ROW_FROM: usize = 64 * 1024;

/// Softmax of every row of `io`, rows split across the current rayon pool.
pub(crate) fn softmax_rows(backend: Backend, algorithm: Algorithm, io: Io<'_>, row_len: usize) {
    let rows = io.len() / row_len;
    let kernel = algorithm.resolve(io.len(), row_len);
    if rows == 1 && row_len >= SPLIT_ROW_FROM && rayon::current_num_threads() > 1 {
        return softmax_row(&Parallel(backend), kernel, io);
    }
    let rows_per_task = (MIN_TASK_ELEMENTS / row_len).max(1);
    if rows <= rows_per_task || rayon::current_num_threads() == 1 {
        return dispatch::run(
            backend,
            RowsJob {
                io,
                row_len,
                kernel,
            },
        );
    }
    use rayon::prelude::*;
    let task_len = rows_per_task * row_len;
    match io {
        Io::InPlace(data) => data.par_chunks_mut(task_len).for_each(|rows| {
            dispatch::run(
                backend,
                RowsJob {
                    io: Io::InPlace(rows),
                    row_len,
                    kernel,
                },
            );
        }),
        Io::OutOfPlace { input, output } => input
            .par_chunks(task_len)
            .zip(output.par_chunks_mut(task_len))
            .for_each(|(input, output)| {
                let io = Io::OutOfPlace { input, output };
                dispatch::run(
                    backend,
                    RowsJob {
                        io,
                        row_len,
                        kernel,
                    },
                );
            }),
    }
}

/// Rows one after another on this thread, all through one backend entry.
struct RowsJob<'a> {
    io: Io<'a>,
    row_len: usize,
    kernel: Kernel,
}

impl Job for RowsJob<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Lanes>(self, s: S) {
        let kernel = self.kernel;
        // Loops, not a closure per row: see `kernels::Map`.
        match self.io {
            Io::InPlace(data) => {
                for row in data.chunks_exact_mut(self.row_len) {
                    softmax_row(&Sequential(s), kernel, Io::InPlace(row));
                }
            }
            Io::OutOfPlace { input, output } => {
                let rows = input
                    .chunks_exact(self.row_len)
                    .zip(output.chunks_exact_mut(self.row_len));
                for (input, output) in rows {
                    softmax_row(&Sequential(s), kernel, Io::OutOfPlace { input, output });
                }
            }
        }
    }
}

#[inline(always)]
fn softmax_row(exec: &impl Exec, kernel: Kernel, row: Io<'_>) {
    match kernel {
        Kernel::ThreePass => three_pass::softmax(exec, row),
        Kernel::Online => online::softmax(exec, row),
        Kernel::Blocked => blocked::softmax(exec, row),
    }
}
