//! Everything the crate asks of rayon, in two functions that are not
//! generic. Rayon's fork-join machinery (jobs, latches, unwinding) is
//! generic over the closures it runs: called from the generic operations it
//! was compiled once per operation × kernel × logit transform × element
//! type × backend, three quarters of the crate's LLVM IR and of its build
//! time. Here the work arrives as a trait object, so it is compiled once;
//! one virtual call per task costs nothing next to a task of thousands of
//! elements.

/// Work that can be cut in two at a unit boundary (rows of a batch, chunks
/// of a row) and run on one thread.
pub(crate) trait Divisible: Send {
    /// Units of work.
    fn units(&self) -> usize;
    /// Cuts off the first `n` units (`0 < n < units()`) and hands both
    /// parts to `both`.
    fn split_then(
        &mut self,
        n: usize,
        both: &mut dyn FnMut(&mut dyn Divisible, &mut dyn Divisible),
    );
    /// Runs every unit in order on this thread.
    fn run(&mut self);
}

/// How far [`run_divided`] cuts.
#[derive(Clone, Copy)]
pub(crate) enum Cut {
    /// Into tasks of `leaf` units each (the last may be shorter), all of
    /// them: a batch's rows, so that an idle thread always finds a task.
    EveryLeaf,
    /// As rayon's own iterators do: into about one task per thread, more
    /// only where a thread steals (a split row's chunks, where each task
    /// is a pool hand-off that costs more than it balances).
    AsStolen,
}

/// Runs `work` across the current pool in tasks of at least `leaf` units.
/// Where each unit runs never changes what it computes.
pub(crate) fn run_divided(work: &mut dyn Divisible, leaf: usize, cut: Cut) {
    let splits = match cut {
        Cut::EveryLeaf => usize::MAX,
        Cut::AsStolen => rayon::current_num_threads(),
    };
    divide(work, leaf.max(1), splits);
}

/// `splits` counts the halvings left before a part runs whole; a part
/// another thread stole gets at least a pool's worth again (rayon's rule).
fn divide(work: &mut dyn Divisible, leaf: usize, splits: usize) {
    let units = work.units();
    if units <= leaf || splits == 0 {
        return work.run();
    }
    // A multiple of `leaf`, so every task but the last is whole.
    let half = units.div_ceil(leaf) / 2 * leaf;
    work.split_then(half, &mut |a, b| {
        rayon::join_context(
            |_| divide(a, leaf, splits / 2),
            |context| {
                let splits = if context.migrated() {
                    rayon::current_num_threads().max(splits / 2)
                } else {
                    splits / 2
                };
                divide(b, leaf, splits)
            },
        );
    });
}

/// Runs `f` on a thread of the current pool. From outside the pool every
/// parallel pass of a split row would be a separate hand-off to the pool
/// and back (1x128256 three-pass went from 40 to 51 µs on 2 threads); one
/// hand-off for the whole row instead.
pub(crate) fn on_pool_thread(f: &mut (dyn FnMut() + Send)) {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}
