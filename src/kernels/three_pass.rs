//! Max; store `e = exp(x − max)` and sum it; scale by `1/sum`.
//! One exp per element; reads x twice and the stored exponentials once.
//! A row with a 16-bit output stores its exps in an f32 scratch row
//! (`scratch`), not in the output, and the scale pass writes the output.
//! Log-softmax the same way: max; sum `exp(x − max)`; write `(x − max) −
//! ln(sum)`, storing `x − max` beside the exps on rows of at least
//! [`LOG_STORE_FROM`] values. Rows of at most 128 values are held in
//! registers instead (`short`).

use super::exec::{ChunkJob, Exec};
use super::scratch::Scratch;
use super::{
    CHUNK, Data, ExpMinus, ExpMinusAboveCutoff, Io, Logits, Map, Plain, ShiftExp, Times, TimesPlus,
    map_in_place, nonfinite_row, scale, short, with_sink,
};
use crate::element::{Elements, Pair, Storage};
use crate::exp::CUTOFF;
use crate::lanes::Lanes;

crate::driver::in_order_entry!();

/// Log-softmax rows of at least this many values store `x − max` while
/// their exps are summed and subtract `ln(sum)` in place; shorter rows sum
/// without a store and then write `(x − max) − ln(sum)` from x. The same
/// two roundings either way. One store per value fewer pays where x and y
/// stay near L1; from rows of 4096 values the write pass streamed from L2
/// and took y's lines from L3 with no exps to hide behind (AVX-512, 1
/// thread, medians of 3 alternating rounds, µs store / sum: 8192x512
/// 841 / 781, 4096x1024 739 / 690, 2048x2048 828 / 730, 1024x4096 695 /
/// 729, 512x8192 686 / 880, 1x8192 0.9 / 1.1).
const LOG_STORE_FROM: usize = 4096;

/// Returns the row's sum (NaN when a logit was NaN; 0 for the rows
/// `nonfinite_row` finishes).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softmax<E: Elements>(exec: &impl Exec, mut io: Io<'_, impl Logits, E>) -> f64 {
    if let Some(sum) = short::softmax::<false, _, _>(exec, &mut io) {
        return sum;
    }
    // The exps stored for the scale pass would be rounded to a 16-bit
    // output: they go to a scratch row instead.
    if <E::Out as Storage>::IS_F32 {
        run::<false, true, E>(exec, io)
    } else {
        through_scratch(exec, io)
    }
}

/// Softmax of a row whose output is 16 bits wide: the exps are stored in
/// f32 in a per-thread scratch row, the scale pass reads them there and
/// rounds each result once into the output. One exp per value, as for f32
/// rows, and the output is written once, by the last pass.
#[cfg_attr(not(unoptimized), inline(always))]
fn through_scratch<T: Logits, E: Elements>(exec: &impl Exec, mut io: Io<'_, T, E>) -> f64 {
    let (m, min) = max_min_of(exec, &mut io);
    if !m.is_finite() {
        nonfinite_row(io, false);
        return 0.0;
    }
    let t = io.logits();
    let mut scratch = Scratch::take(io.len());
    let exps = scratch.row();
    let sum = match &mut io.data {
        Data::InPlace(y) => exp_sum_into(exec, y, t, exps, m, min),
        Data::OutOfPlace { input, .. } => exp_sum_into(exec, input, t, exps, m, min),
    };
    let sum = with_sink(&io, m, sum);
    if sum.is_nan() {
        // Nothing is written yet: the rule reads the logits.
        nonfinite_row(io, false);
    } else {
        let mut scaled = Io::<Plain, Pair<f32, E::Out>>::of(Some(exps), io.output());
        let job = ScaleFrom((1.0 / sum) as f32);
        exec.fold(&mut scaled, CHUNK, &job, (), |(), ()| ());
    }
    sum
}

/// Stores `exp(x − m)` of the logits of `x` under `t` in `exps` and returns
/// their sum, as [`ExpSum`] does into an f32 output.
#[cfg_attr(not(unoptimized), inline(always))]
fn exp_sum_into<X: Storage, T: Logits>(
    exec: &impl Exec,
    x: &[X],
    t: T,
    exps: &mut [f32],
    m: f32,
    min: f32,
) -> f64 {
    let data: Data<'_, Pair<X, f32>> = Data::OutOfPlace {
        input: x,
        output: exps,
    };
    let mut io = Io::from_parts(data, t);
    if min - m >= CUTOFF {
        let job = ExpSum::<false, true, true>(m);
        exec.fold(&mut io, CHUNK, &job, 0.0, |a, b| a + b)
    } else {
        let job = ExpSum::<false, true, false>(m);
        exec.fold(&mut io, CHUNK, &job, 0.0, |a, b| a + b)
    }
}

/// Log-softmax of a row (not short: the caller has tried `short`);
/// returns its sum as `softmax` does.
#[cfg_attr(not(unoptimized), inline(always))]
#[allow(clippy::collapsible_if)] // a constant test alone prunes what it guards
pub(crate) fn log_softmax<E: Elements>(exec: &impl Exec, io: Io<'_, impl Logits, E>) -> f64 {
    // Differences stored in a 16-bit output would be rounded there (the
    // constant test apart, so that 16-bit rows do not compile that path).
    if <E::Out as Storage>::IS_F32 {
        if io.len() >= LOG_STORE_FROM {
            return run::<true, true, E>(exec, io);
        }
    }
    run::<true, false, E>(exec, io)
}

/// Softmax, or with `LOG` log-softmax, of a row that is not short; `STORE`
/// as in [`ExpSum`].
#[cfg_attr(not(unoptimized), inline(always))]
fn run<const LOG: bool, const STORE: bool, E: Elements>(
    exec: &impl Exec,
    mut io: Io<'_, impl Logits, E>,
) -> f64 {
    let (m, min) = max_min_of(exec, &mut io);
    if !m.is_finite() {
        nonfinite_row(io, LOG);
        return 0.0;
    }
    // Every exponent at least CUTOFF: the exp needs no flush below it.
    let sum = if min - m >= CUTOFF {
        let job = ExpSum::<LOG, STORE, true>(m);
        exec.fold(&mut io, CHUNK, &job, 0.0, |a, b| a + b)
    } else {
        let job = ExpSum::<LOG, STORE, false>(m);
        exec.fold(&mut io, CHUNK, &job, 0.0, |a, b| a + b)
    };
    let sum = with_sink(&io, m, sum);
    if sum.is_nan() {
        // A NaN the max passed over: the row holds x, its exponentials or
        // x − max, NaN where x was and never +inf; the rule reads each right.
        nonfinite_row(io, LOG);
        return sum;
    }
    match (LOG, STORE) {
        (false, _) => exec.fold(&mut io, CHUNK, &Scale((1.0 / sum) as f32), (), |(), ()| ()),
        (true, true) => exec.fold(&mut io, CHUNK, &Subtract(sum.ln() as f32), (), |(), ()| ()),
        (true, false) => {
            let finish = ShiftMinus(m, sum.ln() as f32);
            exec.fold(&mut io, CHUNK, &finish, (), |(), ()| ())
        }
    }
    sum
}

/// The row's max and min.
#[cfg_attr(not(unoptimized), inline(always))]
fn max_min_of<E: Elements>(exec: &impl Exec, io: &mut Io<'_, impl Logits, E>) -> (f32, f32) {
    let lowest = (f32::NEG_INFINITY, f32::INFINITY);
    exec.fold(io, CHUNK, &MaxMin, lowest, |a, b| {
        (
            if b.0 > a.0 { b.0 } else { a.0 },
            if b.1 < a.1 { b.1 } else { a.1 },
        )
    })
}

struct MaxMin;
/// Sums `exp(x − max)` and stores it (softmax), or with `LOG` stores
/// `x − max` (`STORE`) or nothing; with `ABOVE_CUTOFF`, for a row whose
/// every exponent is at least CUTOFF. Beside its exps the pass asks for
/// the input further on (the next row of a batch).
struct ExpSum<const LOG: bool, const STORE: bool, const ABOVE_CUTOFF: bool>(f32);
struct Scale(f32);
/// `e·r` from the input (the stored exps) into the output.
struct ScaleFrom(f32);
/// `y − c`, in place.
struct Subtract(f32);
/// Writes `(x − max) − c` from x.
struct ShiftMinus(f32, f32);

impl<E: Elements> ChunkJob<E> for MaxMin {
    type Out = (f32, f32);
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, chunk: Io<'_, T, E>) -> (f32, f32) {
        chunk.max_min(s)
    }
}

impl<E: Elements, const LOG: bool, const STORE: bool, const ABOVE_CUTOFF: bool> ChunkJob<E>
    for ExpSum<LOG, STORE, ABOVE_CUTOFF>
{
    type Out = f64;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) -> f64 {
        let (t, m) = (chunk.logits(), s.splat(self.0));
        match (LOG, STORE, ABOVE_CUTOFF) {
            (false, _, true) => chunk.map_store_sum_fetch_next(s, ExpMinusAboveCutoff(m, t)),
            (false, _, false) => chunk.map_store_sum_fetch_next(s, ExpMinus(m, t)),
            (true, true, _) => {
                chunk.map_store_sum_fetch_next(s, ShiftExp::<S, T, ABOVE_CUTOFF>(m, t))
            }
            (true, false, true) => chunk.sum_fetch_next(s, ExpMinusAboveCutoff(m, t)),
            (true, false, false) => chunk.sum_fetch_next(s, ExpMinus(m, t)),
        }
    }
}

impl<E: Elements> ChunkJob<E> for Subtract {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        // y·1 − c: one rounding, as a subtraction.
        map_in_place(s, chunk.output(), TimesPlus(s.splat(1.0), s.splat(-self.0)));
    }
}

impl<E: Elements> ChunkJob<E> for ShiftMinus {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        let t = chunk.logits();
        chunk.map_store(s, ShiftThenSub(s.splat(self.0), s.splat(self.1), t));
    }
}

/// `shift(v, m) − c`: the rounded difference `Subtract` would find stored,
/// less c, rounded once more.
struct ShiftThenSub<S: Lanes, T>(S::V, S::V, T);

impl<S: Lanes, T: Logits> Map<S> for ShiftThenSub<S, T> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, v: S::V) -> S::V {
        s.sub(self.2.shift(s, v, self.0), self.1)
    }
}

impl<E: Elements> ChunkJob<E> for ScaleFrom {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        chunk.map_store(s, Times(s.splat(self.0)));
    }
}

impl<E: Elements> ChunkJob<E> for Scale {
    type Out = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes, T: Logits>(&self, s: S, _: usize, mut chunk: Io<'_, T, E>) {
        scale(s, chunk.output(), self.0);
    }
}
