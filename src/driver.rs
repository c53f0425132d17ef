//! The row driver: every row operation of the crate (softmax, log-softmax,
//! the reductions, the backward passes, cross-entropy, sampling) runs its
//! rows through [`run`] (an engine thread's part through [`on_this_thread`]).
//!
//! The public entry has already checked the shapes and resolved the backend
//! into a lane token `s`; from here on everything is generic over `S`. The
//! driver owns the task sizing: a call's rows are cut into tasks of whole
//! rows ([`MIN_TASK_ELEMENTS`]) spread over the current rayon pool, and a
//! single row of at least [`SPLIT_ROW_FROM`] elements is handed to the
//! operation to split into its fixed parts (`kernels::exec`). Each task
//! enters the backend once (`s.vectorize`), which keeps one compiled entry
//! per operation, kernel and logit transform: the AVX2 exp loop needs that
//! to keep its constants in registers.
//!
//! How the rows are cut never changes a result: rows are independent, and a
//! split row uses the same parts, merged in the same order, as a whole one.

use crate::lanes::Lanes;
#[cfg(feature = "rayon")]
use crate::pool;

#[cfg(feature = "rayon")]
/// A task handles at least this many elements, so that 4096 rows of 1024
/// become 256 tasks, not 4096, and a short batch stays on one thread.
pub(crate) const MIN_TASK_ELEMENTS: usize = 16 * 1024;

#[cfg(feature = "rayon")]
/// A single row at least this long is split across the pool (in the fixed
/// chunks every row is cut into anyway, so the bits do not change). At 2
/// threads a 128256 row gained 1.55× and a 256000 row 1.97×, while rows of
/// 32768 and 50257 were no faster or slower: the pool's wake-up costs more.
pub(crate) const SPLIT_ROW_FROM: usize = 64 * 1024;

/// The rows of one call (or of a task cut from it) and what to do to each.
// Without rayon only `split_at` and `run` are called.
#[cfg_attr(not(feature = "rayon"), allow(dead_code))]
pub(crate) trait RowTask: Send + Sized {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// The first `n` rows and the rest, as two tasks (each knows the call's
    /// index of its first row).
    fn split_at(self, n: usize) -> (Self, Self);
    /// Every row in order on this thread. Runs inside `s.vectorize`, so it
    /// must be `#[inline(always)]` (see `Lanes::vectorize`).
    fn run<S: Lanes>(self, s: S);
    /// Whether a single long row can be split ([`RowTask::run_split`]).
    fn splits(&self) -> bool {
        false
    }
    /// The one row of this task, its parts across the current rayon pool
    /// (each part entering the backend on its own).
    fn run_split<S: Lanes>(self, s: S) {
        self.enter(s);
    }
    /// [`RowTask::run`] as one backend entry. A task may enter through a
    /// wrapper type of its own module (see [`in_order_entry`]).
    fn enter<S: Lanes>(self, s: S) {
        s.vectorize(InOrder(self));
    }
}

/// Defines `InOrder<T>`, [`RowTask::run`] as one backend entry, in the
/// module that invokes it. rustc compiles a backend entry (a method of a
/// blanket impl over the job) in the code-generation unit of the job
/// type's module, so every task entering through one wrapper lands in one
/// unit, optimised on one core: the softmax kernels each have their own
/// (`ops::RowKernel::enter`), which spreads them over units and cores.
macro_rules! in_order_entry {
    () => {
        /// [`RowTask::run`](crate::driver::RowTask::run) as one backend
        /// entry, compiled in this module's code-generation unit.
        pub(crate) struct InOrder<T>(pub T);

        impl<T: crate::driver::RowTask> crate::lanes::Job for InOrder<T> {
            type Output = ();
            #[cfg_attr(not(unoptimized), inline(always))]
            fn run<S: crate::lanes::Lanes>(self, s: S) {
                self.0.run(s);
            }
        }
    };
}
pub(crate) use in_order_entry;

in_order_entry!();

/// Rows per task for rows of `row_len` elements.
#[cfg(feature = "rayon")]
fn rows_per_task(row_len: usize) -> usize {
    (MIN_TASK_ELEMENTS / row_len.max(1)).max(1)
}

#[cfg(feature = "rayon")]
std::thread_local! {
    /// Set while [`on_this_thread`] runs: [`run`] stays on the caller.
    static ON_THIS_THREAD: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs `f`, every call of [`run`] in it on this thread with no rayon
/// involved: an engine thread computing its part of a batch. Where the
/// rows run never changes their bits.
pub(crate) fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "rayon")]
    {
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = ON_THIS_THREAD.try_with(|flag| flag.set(self.0));
            }
        }
        let before = ON_THIS_THREAD.try_with(|flag| flag.replace(true));
        let _restore = Restore(before.unwrap_or(false));
        f()
    }
    #[cfg(not(feature = "rayon"))]
    f()
}

/// Runs every row of `task` (rows of `row_len` elements), on the current
/// rayon pool when there is enough work for more than one thread (and the
/// caller is not in [`on_this_thread`]).
pub(crate) fn run<S: Lanes, T: RowTask>(s: S, task: T, row_len: usize) {
    #[cfg(feature = "rayon")]
    if rayon::current_num_threads() > 1 && !ON_THIS_THREAD.try_with(|f| f.get()).unwrap_or(false) {
        let rows = task.rows();
        if rows == 1 && row_len >= SPLIT_ROW_FROM && task.splits() {
            let mut task = Some(task);
            return pool::on_pool_thread(&mut || {
                if let Some(task) = task.take() {
                    task.run_split(s)
                }
            });
        }
        let per_task = rows_per_task(row_len);
        if rows > per_task {
            return across_pool(s, task, per_task);
        }
    }
    let _ = row_len;
    task.enter(s);
}

/// Runs `task` across the pool in tasks of `per_task` rows (the last may
/// be shorter).
#[cfg(feature = "rayon")]
fn across_pool<S: Lanes, T: RowTask>(s: S, task: T, per_task: usize) {
    let mut rows = Rows {
        s,
        task: Some(task),
    };
    pool::run_divided(&mut rows, per_task, pool::Cut::EveryLeaf);
}

/// A [`RowTask`] as the pool's unit of work (`None` once run or split).
#[cfg(feature = "rayon")]
struct Rows<S, T> {
    s: S,
    task: Option<T>,
}

#[cfg(feature = "rayon")]
impl<S: Lanes, T: RowTask> pool::Divisible for Rows<S, T> {
    fn units(&self) -> usize {
        self.task.as_ref().map_or(0, RowTask::rows)
    }
    fn split_then(
        &mut self,
        n: usize,
        both: &mut dyn FnMut(&mut dyn pool::Divisible, &mut dyn pool::Divisible),
    ) {
        if let Some(task) = self.task.take() {
            let (a, b) = task.split_at(n);
            let s = self.s;
            both(
                &mut Rows { s, task: Some(a) },
                &mut Rows { s, task: Some(b) },
            );
        }
    }
    fn run(&mut self) {
        if let Some(task) = self.task.take() {
            task.enter(self.s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::Scalar;

    /// Records which rows ran, with the row index the task carried.
    struct Marks<'a> {
        first_row: usize,
        out: &'a mut [usize],
    }

    impl RowTask for Marks<'_> {
        fn rows(&self) -> usize {
            self.out.len()
        }
        fn split_at(self, n: usize) -> (Self, Self) {
            let (a, b) = self.out.split_at_mut(n);
            let first = Marks {
                first_row: self.first_row,
                out: a,
            };
            let rest = Marks {
                first_row: self.first_row + n,
                out: b,
            };
            (first, rest)
        }
        #[cfg_attr(not(unoptimized), inline(always))]
        fn run<S: Lanes>(self, _: S) {
            for (k, o) in self.out.iter_mut().enumerate() {
                *o = self.first_row + k + 1;
            }
        }
    }

    /// Every row runs once with its own index, on any thread count (an
    /// engine thread's part: `tests/parts.rs`).
    #[test]
    fn every_row_once_with_its_index() {
        for rows in [1usize, 2, 15, 16, 17, 1000] {
            let want: Vec<usize> = (1..=rows).collect();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut out = vec![0; rows];
                // Rows of 1024: 16 to a task.
                pool.install(|| {
                    run(
                        Scalar,
                        Marks {
                            first_row: 0,
                            out: &mut out,
                        },
                        1024,
                    )
                });
                assert_eq!(out, want, "rows={rows} threads={threads}");
            }
        }
    }
}
