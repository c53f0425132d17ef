//! Rows across the caller's rayon pool.

use rayon::prelude::*;

use crate::Kernel;
use crate::dispatch::{self, Backend, Job};
use crate::kernels::argmax::argmax;
use crate::kernels::exec::{Exec, Parallel, Sequential};
use crate::kernels::log_softmax::{log_softmax, logsumexp_of};
use crate::kernels::online::max_sum;
use crate::kernels::{
    CHUNK, Data, Factor, Io, Logits, Masked, Partial, Scaled, blocked, online, three_pass,
};
use crate::kernels::{Plain, backward};
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

impl RowOp {
    /// The output of an entry with no probability.
    fn masked_value(self) -> f32 {
        match self {
            RowOp::Softmax(_) => 0.0,
            RowOp::LogSoftmax => f32::NEG_INFINITY,
        }
    }
}

/// How each row's input becomes logits: the builder's scale, temperature
/// and masks, already checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowLogits<'m> {
    /// `scale / temperature`: 1 when neither is set; 0 and +inf are the
    /// temperature limits (uniform, greedy).
    pub c: f64,
    /// One row of flags broadcast to every row, or one per row.
    pub keep: Option<&'m [bool]>,
    /// One row broadcast to every row, or one per row.
    pub add: Option<&'m [f32]>,
    /// Row `r` keeps columns `j ≤ r + offset`.
    pub causal: Option<isize>,
}

impl RowLogits<'_> {
    /// Row `r`'s masks.
    fn masked(&self, r: usize, row_len: usize) -> Masked<'_> {
        fn row_of<X>(mask: &[X], r: usize, row_len: usize) -> &[X] {
            if mask.len() == row_len {
                mask
            } else {
                &mask[r * row_len..(r + 1) * row_len]
            }
        }
        Masked {
            keep: self.keep.map(|k| row_of(k, r, row_len)),
            add: self.add.map(|a| row_of(a, r, row_len)),
            c: Factor::new(self.c),
        }
    }

    /// How many leading columns row `r` keeps (all but the causal mask's).
    fn active(&self, r: usize, row_len: usize) -> usize {
        match self.causal {
            None => row_len,
            Some(offset) => {
                let last = (r as isize).saturating_add(offset);
                usize::try_from(last.saturating_add(1)).map_or(0, |n| n.min(row_len))
            }
        }
    }
}

/// `op` on every row of `io` under `logits`, rows split across the
/// current rayon pool.
pub(crate) fn run_rows(
    backend: Backend,
    op: RowOp,
    io: Io<'_>,
    row_len: usize,
    logits: &RowLogits<'_>,
) {
    if logits.c == 0.0 || logits.c == f64::INFINITY {
        return limit_rows(op, io, row_len, logits);
    }
    match op {
        RowOp::Softmax(Kernel::ThreePass) => by_logits(backend, ThreePass, io, row_len, logits),
        RowOp::Softmax(Kernel::Online) => by_logits(backend, Online, io, row_len, logits),
        RowOp::Softmax(Kernel::Blocked) => by_logits(backend, Blocked, io, row_len, logits),
        RowOp::LogSoftmax => by_logits(backend, LogSoftmax, io, row_len, logits),
    }
}

/// Picks the cheapest transform that does the settings' job. Each
/// (kernel, transform) pair is a job type of its own, and so its own
/// backend entry: one entry holding every kernel and transform grew so
/// large that the AVX2 exp loop lost its constants to spills (47
/// broadcasts from memory per 8 vectors instead of 26, 15% slower).
fn by_logits<K: RowKernel>(
    backend: Backend,
    k: K,
    io: Io<'_>,
    row_len: usize,
    logits: &RowLogits<'_>,
) {
    let masked = logits.keep.is_some() || logits.add.is_some();
    if masked {
        split_rows(backend, k, MaskedRows(logits), io, row_len, logits);
    } else if logits.c == 1.0 {
        split_rows(backend, k, PlainRows, io, row_len, logits);
    } else {
        let scaled = ScaledRows(Factor::new(logits.c));
        split_rows(backend, k, scaled, io, row_len, logits);
    }
}

/// A row algorithm as a type (see `by_logits`).
pub(crate) trait RowKernel: Copy + Send + Sync {
    /// What an entry with no probability holds: 0, or −inf for log.
    const MASKED: f32;
    /// Returns the row's sum: NaN when a kept logit was NaN.
    fn run<T: Logits>(self, exec: &impl Exec, row: Io<'_, T>) -> f64;
}

#[derive(Clone, Copy)]
struct ThreePass;
#[derive(Clone, Copy)]
struct Online;
#[derive(Clone, Copy)]
struct Blocked;
#[derive(Clone, Copy)]
struct LogSoftmax;

impl RowKernel for ThreePass {
    const MASKED: f32 = 0.0;
    #[inline(always)]
    fn run<T: Logits>(self, exec: &impl Exec, row: Io<'_, T>) -> f64 {
        three_pass::softmax(exec, row)
    }
}
impl RowKernel for Online {
    const MASKED: f32 = 0.0;
    #[inline(always)]
    fn run<T: Logits>(self, exec: &impl Exec, row: Io<'_, T>) -> f64 {
        online::softmax(exec, row)
    }
}
impl RowKernel for Blocked {
    const MASKED: f32 = 0.0;
    #[inline(always)]
    fn run<T: Logits>(self, exec: &impl Exec, row: Io<'_, T>) -> f64 {
        blocked::softmax(exec, row)
    }
}
impl RowKernel for LogSoftmax {
    const MASKED: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    fn run<T: Logits>(self, exec: &impl Exec, row: Io<'_, T>) -> f64 {
        log_softmax(exec, row)
    }
}

/// The transform of each row's input into logits.
pub(crate) trait RowTransform: Copy + Send + Sync {
    type T<'a>: Logits
    where
        Self: 'a;
    /// Row `r`'s transform.
    fn row(&self, r: usize, row_len: usize) -> Self::T<'_>;
}

#[derive(Clone, Copy)]
struct PlainRows;
#[derive(Clone, Copy)]
struct ScaledRows(Factor);
#[derive(Clone, Copy)]
struct MaskedRows<'a>(&'a RowLogits<'a>);

impl RowTransform for PlainRows {
    type T<'a> = Plain;
    #[inline(always)]
    fn row(&self, _: usize, _: usize) -> Plain {
        Plain
    }
}
impl RowTransform for ScaledRows {
    type T<'a> = Scaled;
    #[inline(always)]
    fn row(&self, _: usize, _: usize) -> Scaled {
        Scaled(self.0)
    }
}
impl RowTransform for MaskedRows<'_> {
    type T<'b>
        = Masked<'b>
    where
        Self: 'b;
    #[inline(always)]
    fn row(&self, r: usize, row_len: usize) -> Masked<'_> {
        self.0.masked(r, row_len)
    }
}

/// Rows across the pool: a long single row split into chunks, or tasks of
/// whole rows.
fn split_rows<K: RowKernel, R: RowTransform>(
    backend: Backend,
    k: K,
    rows_t: R,
    io: Io<'_>,
    row_len: usize,
    logits: &RowLogits<'_>,
) {
    let rows = io.len() / row_len;
    if rows == 1 && row_len >= SPLIT_ROW_FROM && rayon::current_num_threads() > 1 {
        if rayon::current_thread_index().is_some() {
            return run_row(&Parallel(backend), k, &rows_t, io, 0, logits);
        }
        // From outside the pool every parallel pass would be a separate
        // hand-off to the pool and back (1x128256 three-pass went from 40 to
        // 51 µs on 2 threads); one hand-off for the whole row instead.
        return rayon::scope(|_| run_row(&Parallel(backend), k, &rows_t, io, 0, logits));
    }
    let rows_per_task = (MIN_TASK_ELEMENTS / row_len).max(1);
    let job = |io, first_row| RowsJob {
        io,
        row_len,
        first_row,
        k,
        rows_t,
        logits,
    };
    if rows <= rows_per_task || rayon::current_num_threads() == 1 {
        return dispatch::run(backend, job(io, 0));
    }
    let task_len = rows_per_task * row_len;
    match io.into_parts().0 {
        Data::InPlace(data) => {
            data.par_chunks_mut(task_len)
                .enumerate()
                .for_each(|(task, rows)| {
                    let io = Io::new(None, rows);
                    dispatch::run(backend, job(io, task * rows_per_task));
                })
        }
        Data::OutOfPlace { input, output } => input
            .par_chunks(task_len)
            .zip(output.par_chunks_mut(task_len))
            .enumerate()
            .for_each(|(task, (input, output))| {
                let io = Io::new(Some(input), output);
                dispatch::run(backend, job(io, task * rows_per_task));
            }),
    }
}

/// Rows one after another on this thread, all through one backend entry;
/// the first is row `first_row` of the call.
struct RowsJob<'a, K, R> {
    io: Io<'a>,
    row_len: usize,
    first_row: usize,
    k: K,
    rows_t: R,
    logits: &'a RowLogits<'a>,
}

impl<K: RowKernel, R: RowTransform> Job for RowsJob<'_, K, R> {
    type Output = ();

    #[inline(always)]
    fn run<S: Lanes>(mut self, s: S) {
        // A loop, not a closure per row: see `kernels::Map`.
        let n = self.io.len();
        let (mut start, mut r) = (0, self.first_row);
        while start < n {
            let row = self.io.slice(start..start + self.row_len);
            run_row(&Sequential(s), self.k, &self.rows_t, row, r, self.logits);
            start += self.row_len;
            r += 1;
        }
    }
}

/// Row `r` of the call: the causal prefix through the kernel with the row's
/// logits, the causally masked tail filled.
#[inline(always)]
fn run_row<K: RowKernel, R: RowTransform>(
    exec: &impl Exec,
    k: K,
    rows_t: &R,
    mut row: Io<'_>,
    r: usize,
    logits: &RowLogits<'_>,
) {
    let row_len = row.len();
    let active = logits.active(r, row_len);
    if active < row_len {
        row.slice(active..row_len).output().fill(K::MASKED);
    }
    if active > 0 {
        let t = rows_t.row(r, row_len).slice(0..active);
        let sum = k.run(exec, row.slice(0..active).with_logits(t));
        if sum.is_nan() {
            // NaN reached every output; the keep mask's entries stay exact.
            let out = row.output();
            (0..active)
                .filter(|&i| t.is_masked(i))
                .for_each(|i| out[i] = K::MASKED);
        }
    }
}

/// The temperature limits, row by row (rare: plain scalar code).
fn limit_rows(op: RowOp, io: Io<'_>, row_len: usize, logits: &RowLogits<'_>) {
    let mut io = io;
    let n = io.len();
    let (mut start, mut r) = (0, 0);
    while start < n {
        let mut row = io.slice(start..start + row_len);
        let active = logits.active(r, row_len);
        row.slice(active..row_len).output().fill(op.masked_value());
        let t = logits.masked(r, row_len).slice(0..active);
        limit_row(row.slice(0..active).with_logits(t), op);
        start += row_len;
        r += 1;
    }
}

/// The temperature limits, `c = s/t` of 0 (t = +inf) or +inf (t = 0), by
/// their definition as limits of the softmax of `x·c + a`: the mass goes to
/// the members (for c = +inf the entries at the row's largest x, for c = 0
/// every entry whose x is not −inf; never an entry the keep mask drops or
/// whose additive mask is −inf), split among them as the softmax of their
/// additive mask (equally without one). NaN in a kept entry makes the row
/// NaN; no members, all zeros. Rare, so plain scalar code in f64.
fn limit_row(io: Io<'_, Masked<'_>>, op: RowOp) {
    let t = io.logits();
    let x = io.input();
    let kept = |i: usize| t.keep.is_none_or(|k| k[i]);
    let add = |i: usize| t.add.map_or(0.0, |a| f64::from(a[i]));
    let candidate = |i: usize| kept(i) && add(i) != f64::NEG_INFINITY;
    let has_nan = (0..x.len()).any(|i| kept(i) && (x[i].is_nan() || add(i).is_nan()));
    let greedy = t.c.hi == f32::INFINITY;
    let top = (0..x.len())
        .filter(|&i| candidate(i))
        .map(|i| x[i])
        .fold(f32::NEG_INFINITY, f32::max);
    let member = |i: usize| candidate(i) && x[i] != f32::NEG_INFINITY && (!greedy || x[i] == top);
    // Softmax of the additive mask over the members: relative to its max,
    // or an equal split among the members at +inf.
    let a_max = (0..x.len())
        .filter(|&i| member(i))
        .map(add)
        .fold(f64::NEG_INFINITY, f64::max);
    let weight_log = |i: usize| {
        if a_max == f64::INFINITY {
            if add(i) == f64::INFINITY {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        } else {
            add(i) - a_max
        }
    };
    let total: f64 = (0..x.len())
        .filter(|&i| member(i))
        .map(|i| weight_log(i).exp())
        .sum();
    let log_total = total.ln();
    let log = matches!(op, RowOp::LogSoftmax);
    let value = |i: usize| -> f32 {
        if !kept(i) {
            op.masked_value()
        } else if has_nan {
            f32::NAN
        } else if !member(i) {
            op.masked_value()
        } else if log {
            (weight_log(i) - log_total) as f32
        } else {
            (weight_log(i).exp() / total) as f32
        }
    };
    // In place, `x` is the output: compute every value before writing.
    let values: Vec<f32> = (0..x.len()).map(value).collect();
    let mut io = io;
    io.output().copy_from_slice(&values);
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
/// The entropy of a row's softmax.
#[derive(Clone, Copy)]
pub(crate) struct Entropy;

impl RowReduce for Entropy {
    type Out = f32;
    #[inline(always)]
    fn reduce<S: Lanes>(self, s: S, row: &[f32]) -> f32 {
        crate::kernels::entropy::entropy(s, row)
    }
}

impl RowReduce for LogSumExp {
    type Out = f32;
    #[inline(always)]
    fn reduce<S: Lanes>(self, s: S, row: &[f32]) -> f32 {
        // The same chunks and merge order as the softmax kernels.
        let mut total = Partial::EMPTY;
        for chunk in row.chunks(CHUNK) {
            total = total.merge(max_sum(s, chunk, Plain), 1.0);
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

/// A row operation over two inputs and one output of the same length.
pub(crate) trait PairRowOp: Copy + Send + Sync {
    /// Must be `#[inline(always)]` (see `Lanes::vectorize`).
    fn row<S: Lanes>(self, s: S, a: &[f32], b: &[f32], out: &mut [f32]);
}

/// The softmax backward pass (`a` the probabilities, `b` the gradient).
#[derive(Clone, Copy)]
pub(crate) struct SoftmaxBackward;
/// The log-softmax backward pass (`a` the log-probabilities).
#[derive(Clone, Copy)]
pub(crate) struct LogSoftmaxBackward;

impl PairRowOp for SoftmaxBackward {
    #[inline(always)]
    fn row<S: Lanes>(self, s: S, a: &[f32], b: &[f32], out: &mut [f32]) {
        backward::softmax_backward(s, a, b, out);
    }
}

impl PairRowOp for LogSoftmaxBackward {
    #[inline(always)]
    fn row<S: Lanes>(self, s: S, a: &[f32], b: &[f32], out: &mut [f32]) {
        backward::log_softmax_backward(s, a, b, out);
    }
}

/// `op` on every row of `a`, `b` into `out` (all of one length, a multiple
/// of `row_len`), rows split across the current rayon pool in tasks of
/// whole rows, so the bits do not depend on the thread count.
pub(crate) fn pair_rows<P: PairRowOp>(
    backend: Backend,
    op: P,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    row_len: usize,
) {
    let rows = a.len() / row_len;
    let rows_per_task = (MIN_TASK_ELEMENTS / row_len).max(1);
    if rows <= rows_per_task || rayon::current_num_threads() == 1 {
        return dispatch::run(
            backend,
            PairJob {
                op,
                a,
                b,
                out,
                row_len,
            },
        );
    }
    let task_len = rows_per_task * row_len;
    a.par_chunks(task_len)
        .zip(b.par_chunks(task_len))
        .zip(out.par_chunks_mut(task_len))
        .for_each(|((a, b), out)| {
            dispatch::run(
                backend,
                PairJob {
                    op,
                    a,
                    b,
                    out,
                    row_len,
                },
            );
        });
}

struct PairJob<'a, P> {
    op: P,
    a: &'a [f32],
    b: &'a [f32],
    out: &'a mut [f32],
    row_len: usize,
}

impl<P: PairRowOp> Job for PairJob<'_, P> {
    type Output = ();
    #[inline(always)]
    fn run<S: Lanes>(self, s: S) {
        let rows = self
            .a
            .chunks_exact(self.row_len)
            .zip(self.b.chunks_exact(self.row_len))
            .zip(self.out.chunks_exact_mut(self.row_len));
        for ((a, b), out) in rows {
            self.op.row(s, a, b, out);
        }
    }
}
