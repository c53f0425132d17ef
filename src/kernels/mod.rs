//! The softmax algorithms, each written once over [`Lanes`], and the two
//! loops they are built from: a lane-wise max and a map-store-sum.
//!
//! Every row is cut at fixed offsets from its own start (never at address
//! alignment), so a row's result does not depend on where it sits in memory,
//! on in place versus out of place, or on how work is split across threads.

pub(crate) mod argmax;
pub(crate) mod backward;
pub(crate) mod blocked;
pub(crate) mod cross_entropy;
pub(crate) mod entropy;
pub(crate) mod exec;
pub(crate) mod log_softmax;
pub(crate) mod logits;
pub(crate) mod nucleus;
pub(crate) mod online;
pub(crate) mod scratch;
pub(crate) mod select;
pub(crate) mod short;
pub(crate) mod three_pass;

use core::ops::Range;

use crate::element::{Elements, F32, Pair, Storage};
use crate::lanes::Lanes;
pub(crate) use logits::{Biased, Factor, Logits, Masked, Plain, Scaled};

/// Vectors summed in f32 (as a tree, see [`map_sum`]) before the sum is
/// carried on in f64. The entropy and top-p passes keep their own f32 runs
/// of [`SHORT_FOLD_VECTORS`].
pub(crate) const FOLD_VECTORS: usize = 16;

/// Vectors summed in f32 before f64 in the entropy and top-p passes: two
/// accumulators of 4 values per lane, 4 units of 2^-24.
pub(crate) const SHORT_FOLD_VECTORS: usize = 8;

/// Rows are reduced in parts of this many elements, merged in order. A long
/// row split across threads uses the same parts, so it gets the same bits.
pub(crate) const CHUNK: usize = 16384;

/// Where a pass reads `x` and writes `y` (element types `E`: the seam for
/// f16/bf16 rows, see `element.rs`), and how `x` becomes logits.
pub(crate) struct Io<'a, T: Logits = Plain, E: Elements = F32> {
    data: Data<'a, E>,
    logits: T,
    /// The row's attention sink: a logit in the denominator with no
    /// output entry (−inf: none). Read where a kernel finishes a row's
    /// sum ([`with_sink`]), so any transform carries one at no cost.
    sink: f32,
}

pub(crate) enum Data<'a, E: Elements = F32> {
    /// Read and written in place: the data is of the output type.
    InPlace(&'a mut [E::Out]),
    OutOfPlace {
        input: &'a [E::In],
        output: &'a mut [E::Out],
    },
}

impl<E: Elements> Data<'_, E> {
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn len(&self) -> usize {
        match self {
            Data::InPlace(data) => data.len(),
            Data::OutOfPlace { input, .. } => input.len(),
        }
    }

    /// The first `at` elements and the rest.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn split_at(self, at: usize) -> (Self, Self) {
        match self {
            Data::InPlace(data) => {
                let (a, b) = data.split_at_mut(at);
                (Data::InPlace(a), Data::InPlace(b))
            }
            Data::OutOfPlace { input, output } => {
                let (ia, ib) = input.split_at(at);
                let (oa, ob) = output.split_at_mut(at);
                (
                    Data::OutOfPlace {
                        input: ia,
                        output: oa,
                    },
                    Data::OutOfPlace {
                        input: ib,
                        output: ob,
                    },
                )
            }
        }
    }
}

impl<'a> Io<'a> {
    /// Pairs f32 `input` with `output`, which must have the same length.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn new(input: Option<&'a [f32]>, output: &'a mut [f32]) -> Self {
        Io::of(input, output)
    }
}

impl<'a, E: Elements> Io<'a, Plain, E> {
    /// Pairs `input` with `output`, which must have the same length.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn of(input: Option<&'a [E::In]>, output: &'a mut [E::Out]) -> Self {
        let data = match input {
            None => Data::InPlace(output),
            Some(input) => {
                assert_eq!(input.len(), output.len());
                Data::OutOfPlace { input, output }
            }
        };
        Io {
            data,
            logits: Plain,
            sink: f32::NEG_INFINITY,
        }
    }
}

impl<T: Logits> Io<'_, T> {
    /// The values to read (f32 rows): the input, or the data itself when
    /// in place.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn input(&self) -> &[f32] {
        match &self.data {
            Data::InPlace(data) => data,
            Data::OutOfPlace { input, .. } => input,
        }
    }
}

impl<'a, T: Logits, E: Elements> Io<'a, T, E> {
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn from_parts(data: Data<'a, E>, logits: T) -> Self {
        Io {
            data,
            logits,
            sink: f32::NEG_INFINITY,
        }
    }

    /// The same row with the sink `sink`.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn with_sink(mut self, sink: f32) -> Self {
        self.sink = sink;
        self
    }

    /// The row's sink (−inf: none).
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn sink(&self) -> f32 {
        self.sink
    }

    /// The same data read through `logits` instead.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn with_logits<U: Logits>(self, logits: U) -> Io<'a, U, E> {
        Io {
            data: self.data,
            logits,
            sink: self.sink,
        }
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn logits(&self) -> T {
        self.logits
    }

    /// The first `at` elements and the rest, each the same kind of access
    /// through the same transform.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn split_at(self, at: usize) -> (Self, Self) {
        let len = self.len();
        let (a, b) = self.data.split_at(at);
        (
            Io::from_parts(a, self.logits.slice(0..at)).with_sink(self.sink),
            Io::from_parts(b, self.logits.slice(at..len)).with_sink(self.sink),
        )
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// The values to read as f32 (for the rare scalar rows; allocates).
    pub(crate) fn input_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::InPlace(data) => data.iter().map(|v| v.to_f32()).collect(),
            Data::OutOfPlace { input, .. } => input.iter().map(|v| v.to_f32()).collect(),
        }
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn output(&mut self) -> &mut [E::Out] {
        match &mut self.data {
            Data::InPlace(data) => data,
            Data::OutOfPlace { output, .. } => output,
        }
    }

    /// The same kind of access restricted to `range`.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn slice(&mut self, range: Range<usize>) -> Io<'_, T, E> {
        let logits = self.logits.slice(range.clone());
        let data = match &mut self.data {
            Data::InPlace(data) => Data::InPlace(&mut data[range]),
            Data::OutOfPlace { input, output } => Data::OutOfPlace {
                input: &input[range.clone()],
                output: &mut output[range],
            },
        };
        Io {
            data,
            logits,
            sink: self.sink,
        }
    }

    /// The largest logit that is not NaN (−inf when there is none).
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn max<S: Lanes>(&self, s: S) -> f32 {
        match &self.data {
            Data::InPlace(data) => max(s, data, self.logits),
            Data::OutOfPlace { input, .. } => max(s, input, self.logits),
        }
    }

    /// The largest and smallest logits that are not NaN, in one read (the
    /// min only where the logits' exp gains from it, else +inf).
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn max_min<S: Lanes>(&self, s: S) -> (f32, f32) {
        if !T::ABOVE_CUTOFF_PAYS {
            return (self.max(s), f32::INFINITY);
        }
        match &self.data {
            Data::InPlace(data) => max_min(s, data, self.logits),
            Data::OutOfPlace { input, .. } => max_min(s, input, self.logits),
        }
    }

    /// `(max, Σ exp(x − max))` of the logits, in one read.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn max_sum<S: Lanes>(&self, s: S) -> Partial {
        match &self.data {
            Data::InPlace(data) => online::max_sum(s, data, self.logits),
            Data::OutOfPlace { input, .. } => online::max_sum(s, input, self.logits),
        }
    }

    /// Writes `f(v)` for every vector `v` of logits and returns the f64 sum
    /// of what was written; lanes past the end read −inf, and `f(−inf)`
    /// must be 0 for the sum to be right.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn map_store_sum<S: Lanes>(&mut self, s: S, f: impl Map<S>) -> f64 {
        let t = self.logits;
        match &mut self.data {
            Data::InPlace(data) => map_sum::<S, _, _, true, true>(s, &mut InPlace(data, t), f),
            Data::OutOfPlace { input, output } => {
                let output = &mut output[..input.len()];
                map_sum::<S, _, _, true, true>(s, &mut OutOfPlace(input, output, t), f)
            }
        }
    }

    /// [`Io::map_store_sum`], asking beside it for the input further on
    /// (the next row of a batch) to be fetched: see [`FetchAhead`].
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn map_store_sum_fetch_next<S: Lanes>(&mut self, s: S, f: impl Map<S>) -> f64 {
        let t = self.logits;
        match &mut self.data {
            Data::InPlace(data) => {
                let mut ahead = (FetchAhead::<E::Out>::after(data), t.fetch_ahead());
                map_sum_beside::<S, _, _, _, true, true>(s, &mut InPlace(data, t), f, &mut ahead)
            }
            Data::OutOfPlace { input, output } => {
                let output = &mut output[..input.len()];
                let mut ahead = (FetchAhead::<E::In>::after(input), t.fetch_ahead());
                let io = &mut OutOfPlace(input, output, t);
                map_sum_beside::<S, _, _, _, true, true>(s, io, f, &mut ahead)
            }
        }
    }

    /// The f64 sum of `f(v)` over the vectors `v` of logits, nothing
    /// written, asking beside it for the input further on to be fetched
    /// (see [`FetchAhead`]); `f(−inf)` must be 0.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn sum_fetch_next<S: Lanes>(&self, s: S, f: impl Map<S>) -> f64 {
        let t = self.logits;
        match &self.data {
            Data::InPlace(data) => {
                let mut ahead = (FetchAhead::after(data), t.fetch_ahead());
                sum_of_beside(s, data, t, f, &mut ahead)
            }
            Data::OutOfPlace { input, .. } => {
                let mut ahead = (FetchAhead::after(input), t.fetch_ahead());
                sum_of_beside(s, input, t, f, &mut ahead)
            }
        }
    }

    /// [`Io::map_store_sum`] over `block`, and the max of the logits over
    /// `next` (after `block`, not overlapping it) read beside it: for a
    /// loop whose exps leave the load ports idle.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn map_store_sum_next_max<S: Lanes>(
        &mut self,
        s: S,
        f: impl Map<S>,
        block: Range<usize>,
        next: Range<usize>,
    ) -> (f64, f32) {
        let t = self.logits;
        let (bt, nt) = (t.slice(block.clone()), t.slice(next.clone()));
        let len = block.len();
        match &mut self.data {
            Data::InPlace(data) => {
                let (here, ahead) = data.split_at_mut(next.start);
                let fetch = FetchAhead::from(&ahead[..0], BLOCK_FETCH_AHEAD_BYTES);
                let mut beside = (NextMax::new(s, &ahead[..next.len()], nt), fetch);
                let sum = map_sum_beside::<S, _, _, _, true, true>(
                    s,
                    &mut InPlace(&mut here[block], bt),
                    f,
                    &mut beside,
                );
                (sum, beside.0.finish(s, len))
            }
            Data::OutOfPlace { input, output } => {
                let fetch = FetchAhead::from(&input[next.clone()], BLOCK_FETCH_AHEAD_BYTES);
                let mut beside = (NextMax::new(s, &input[next], nt), fetch);
                let sum = map_sum_beside::<S, _, _, _, true, true>(
                    s,
                    &mut OutOfPlace(&input[block.clone()], &mut output[block], bt),
                    f,
                    &mut beside,
                );
                (sum, beside.0.finish(s, len))
            }
        }
    }

    /// Softmax (log-softmax with `LOG`) of this whole row in registers
    /// when it spans at most `short::MAX_VECTORS` vectors: see
    /// [`short::row`].
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn short_row<S: Lanes, const LOG: bool>(&mut self, s: S) -> Option<Partial> {
        let t = self.logits;
        match &mut self.data {
            Data::InPlace(data) => short::row::<S, _, _, LOG>(s, &mut InPlace(data, t), t),
            Data::OutOfPlace { input, output } => {
                let output = &mut output[..input.len()];
                short::row::<S, _, _, LOG>(s, &mut OutOfPlace(input, output, t), t)
            }
        }
    }

    /// [`Io::short_row`] on this row and `other` (the same length and kind
    /// of access) together: see [`short::pair`].
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn short_pair<S: Lanes, const LOG: bool>(
        &mut self,
        s: S,
        other: &mut Io<'_, T, E>,
    ) -> Option<(Partial, Partial)> {
        let (ta, tb) = (self.logits, other.logits);
        match (&mut self.data, &mut other.data) {
            (Data::InPlace(a), Data::InPlace(b)) => {
                short::pair::<S, _, _, LOG>(s, (&mut InPlace(a, ta), ta), (&mut InPlace(b, tb), tb))
            }
            (
                Data::OutOfPlace {
                    input: ia,
                    output: oa,
                },
                Data::OutOfPlace {
                    input: ib,
                    output: ob,
                },
            ) => {
                let oa = &mut oa[..ia.len()];
                let ob = &mut ob[..ib.len()];
                short::pair::<S, _, _, LOG>(
                    s,
                    (&mut OutOfPlace(ia, oa, ta), ta),
                    (&mut OutOfPlace(ib, ob, tb), tb),
                )
            }
            _ => None,
        }
    }

    /// Writes `f(v)` for every vector `v` of logits.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn map_store<S: Lanes>(&mut self, s: S, f: impl Map<S>) {
        let t = self.logits;
        match &mut self.data {
            Data::InPlace(data) => {
                map_sum::<S, _, _, true, false>(s, &mut InPlace(data, t), f);
            }
            Data::OutOfPlace { input, output } => {
                let output = &mut output[..input.len()];
                map_sum::<S, _, _, true, false>(s, &mut OutOfPlace(input, output, t), f);
            }
        };
    }
}

/// The f64 sum of `f(v)` over the vectors `v` of logits of `x` under `t`,
/// nothing written; `f(−inf)` must be 0.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn sum_of<S: Lanes, X: Storage>(s: S, x: &[X], t: impl Logits, f: impl Map<S>) -> f64 {
    map_sum::<S, _, _, false, true>(s, &mut ReadOnly(x, t), f)
}

/// [`sum_of`], with `beside.at(i)` for every whole vector `i` of `x`.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn sum_of_beside<S: Lanes, X: Storage>(
    s: S,
    x: &[X],
    t: impl Logits,
    f: impl Map<S>,
    beside: &mut impl Beside<S>,
) -> f64 {
    map_sum_beside::<S, _, _, _, false, true>(s, &mut ReadOnly(x, t), f, beside)
}

/// The max of the logits of the next block, read vector by vector beside
/// this block's loop (see [`Beside`]): the vector at `i` of this block
/// pairs with the one at `i` of the next.
pub(crate) struct NextMax<'a, S: Lanes, X, T> {
    next: &'a [X],
    t: T,
    /// Four running maxes, vector `k` into `acc[k % 4]`: one chain of
    /// dependent maxes was as long as the exp work beside it.
    acc: [S::V; 4],
}

impl<'a, S: Lanes, X: Storage, T: Logits> NextMax<'a, S, X, T> {
    /// For the logits of `next` under `t` (`t` of `next` alone).
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn new(s: S, next: &'a [X], t: T) -> Self {
        NextMax {
            next,
            t,
            acc: [s.splat(f32::NEG_INFINITY); 4],
        }
    }

    /// The next block's max, once `at` has seen every whole vector of a
    /// block of `len` values: what it did not pair (the partial last
    /// vector, or the rest of a longer next block) is read here.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn finish(self, s: S, len: usize) -> f32 {
        let l = S::LANES;
        let paired = (len - len % l).min(self.next.len() - self.next.len() % l);
        let rest = &self.next[paired..];
        let [a, b, c, d] = self.acc;
        let acc = s.reduce_max(s.max(s.max(a, b), s.max(c, d)));
        if rest.is_empty() {
            return acc;
        }
        let rest = max(s, rest, self.t.slice(paired..self.next.len()));
        if rest > acc { rest } else { acc }
    }

    /// Takes the vector `v` at `i` of the next block into the max.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn take(&mut self, s: S, v: &[X], i: usize, slot: usize) {
        // `max(x, acc)` keeps `acc` when `x` is NaN, as `max` does.
        let acc = &mut self.acc[slot % 4];
        *acc = s.max(self.t.read(s, X::load(s, v), i), *acc);
    }
}

impl<S: Lanes, X: Storage, T: Logits> Beside<S> for NextMax<'_, S, X, T> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn at(&mut self, s: S, i: usize) {
        if let Some(v) = self.next.get(i..i + S::LANES) {
            self.take(s, v, i, 0);
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn fold(&mut self, s: S, i: usize) {
        let l = S::LANES;
        match self.next.get(i..i + FOLD_VECTORS * l) {
            Some(v) => {
                // Four vectors a step with constant slots: where this loop
                // is not unrolled (under the masked transform) a slot
                // `k % 4` indexed the accumulators in memory, a chain of
                // store-to-load forwards.
                for (q, v) in v.chunks_exact(4 * l).enumerate() {
                    let at = i + q * 4 * l;
                    self.take(s, v, at, 0);
                    self.take(s, &v[l..], at + l, 1);
                    self.take(s, &v[2 * l..], at + 2 * l, 2);
                    self.take(s, &v[3 * l..], at + 3 * l, 3);
                }
            }
            None => {
                for k in 0..FOLD_VECTORS {
                    self.at(s, i + k * l);
                }
            }
        }
    }
}

/// Multiplies every value of `y` by `r`.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn scale<S: Lanes, Y: Storage>(s: S, y: &mut [Y], r: f32) {
    map_in_place(s, y, Times(s.splat(r)));
}

/// `y = f(y)` for every vector of `y`.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn map_in_place<S: Lanes, Y: Storage>(s: S, y: &mut [Y], f: impl Map<S>) {
    Io::<Plain, Pair<Y, Y>>::of(None, y).map_store(s, f);
}

/// The largest logit of `x` under `t` that is not NaN (−inf for an empty
/// slice). NaN is found later, through the exponentials.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn max<S: Lanes, X: Storage>(s: S, x: &[X], t: impl Logits) -> f32 {
    extremes::<S, X, false>(s, x, t).0
}

/// The largest and the smallest logit of `x` under `t` that are not NaN
/// (−inf and +inf for an empty slice), in one read.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn max_min<S: Lanes, X: Storage>(s: S, x: &[X], t: impl Logits) -> (f32, f32) {
    extremes::<S, X, true>(s, x, t)
}

/// [`max`], and with `MIN` the smallest logit too (else +inf).
#[cfg_attr(not(unoptimized), inline(always))]
fn extremes<S: Lanes, X: Storage, const MIN: bool>(s: S, x: &[X], t: impl Logits) -> (f32, f32) {
    let l = S::LANES;
    let lowest = s.splat(f32::NEG_INFINITY);
    let highest = s.splat(f32::INFINITY);
    // `max(x, acc)` keeps `acc` when `x` is NaN on x86 (and `min` too).
    let (mut a0, mut a1, mut a2, mut a3) = (lowest, lowest, lowest, lowest);
    let (mut b0, mut b1) = (highest, highest);
    // `chunks_exact` rather than index arithmetic: no bounds or overflow
    // checks in the loop (the index only matters to a masked read).
    let mut groups = x.chunks_exact(4 * l);
    for (k, g) in (&mut groups).enumerate() {
        let i = k * 4 * l;
        let v0 = t.read(s, X::load(s, g), i);
        let v1 = t.read(s, X::load(s, &g[l..]), i + l);
        let v2 = t.read(s, X::load(s, &g[2 * l..]), i + 2 * l);
        let v3 = t.read(s, X::load(s, &g[3 * l..]), i + 3 * l);
        a0 = s.max(v0, a0);
        a1 = s.max(v1, a1);
        a2 = s.max(v2, a2);
        a3 = s.max(v3, a3);
        if MIN {
            b0 = s.min(v0, s.min(v1, b0));
            b1 = s.min(v2, s.min(v3, b1));
        }
    }
    let mut i = x.len() - groups.remainder().len();
    let mut vectors = groups.remainder().chunks_exact(l);
    for v in &mut vectors {
        let v = t.read(s, X::load(s, v), i);
        a0 = s.max(v, a0);
        if MIN {
            b0 = s.min(v, b0);
        }
        i += l;
    }
    let rest = vectors.remainder();
    if !rest.is_empty() {
        let v = X::load_partial(s, rest, f32::NEG_INFINITY);
        let v = t.read_partial(s, v, i);
        a1 = s.max(v, a1);
        if MIN {
            // The lanes past the end read −inf: the min takes the real ones.
            let real = X::load_partial(s, rest, f32::INFINITY);
            b1 = s.min(t.read_partial(s, real, i), b1);
        }
    }
    let max = s.reduce_max(s.max(s.max(a0, a1), s.max(a2, a3)));
    let min = if MIN {
        s.reduce_min(s.min(b0, b1))
    } else {
        f32::INFINITY
    };
    (max, min)
}

/// Vector access for [`map_sum`]: reads logits, writes `y`.
trait Stream {
    /// The same access over `start..start + len`. With a constant `len`
    /// the compiler sees every vector of a block in bounds, so the block
    /// loop has no bounds checks.
    type Block<'b>: Stream
    where
        Self: 'b;
    fn block(&mut self, start: usize, len: usize) -> Self::Block<'_>;
    fn len(&self) -> usize;
    fn read<S: Lanes>(&self, s: S, i: usize) -> S::V;
    /// Reads from `i` to the end (fewer than `LANES` values; the rest −inf).
    fn read_partial<S: Lanes>(&self, s: S, i: usize) -> S::V;
    fn write<S: Lanes>(&mut self, s: S, i: usize, v: S::V);
    fn write_partial<S: Lanes>(&mut self, s: S, i: usize, v: S::V);
}

struct ReadOnly<'a, X, T>(&'a [X], T);
struct InPlace<'a, Y, T>(&'a mut [Y], T);
struct OutOfPlace<'a, X, Y, T>(&'a [X], &'a mut [Y], T);

macro_rules! reads_from {
    ($x:tt, $t:tt) => {
        #[cfg_attr(not(unoptimized), inline(always))]
        fn len(&self) -> usize {
            self.$x.len()
        }
        #[cfg_attr(not(unoptimized), inline(always))]
        fn read<S: Lanes>(&self, s: S, i: usize) -> S::V {
            self.$t.read(s, Storage::load(s, &self.$x[i..]), i)
        }
        #[cfg_attr(not(unoptimized), inline(always))]
        fn read_partial<S: Lanes>(&self, s: S, i: usize) -> S::V {
            let x = Storage::load_partial(s, &self.$x[i..], f32::NEG_INFINITY);
            self.$t.read_partial(s, x, i)
        }
    };
}

impl<X: Storage, T: Logits> Stream for ReadOnly<'_, X, T> {
    type Block<'b>
        = ReadOnly<'b, X, T>
    where
        Self: 'b;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn block(&mut self, start: usize, len: usize) -> ReadOnly<'_, X, T> {
        ReadOnly(
            &self.0[start..start + len],
            self.1.slice(start..start + len),
        )
    }
    reads_from!(0, 1);
    /// Nothing to write: [`map_sum`] never calls this when it does not store.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn write<S: Lanes>(&mut self, _s: S, _i: usize, _v: S::V) {}
    #[cfg_attr(not(unoptimized), inline(always))]
    fn write_partial<S: Lanes>(&mut self, _s: S, _i: usize, _v: S::V) {}
}

impl<Y: Storage, T: Logits> Stream for InPlace<'_, Y, T> {
    type Block<'b>
        = InPlace<'b, Y, T>
    where
        Self: 'b;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn block(&mut self, start: usize, len: usize) -> InPlace<'_, Y, T> {
        InPlace(
            &mut self.0[start..start + len],
            self.1.slice(start..start + len),
        )
    }
    reads_from!(0, 1);
    #[cfg_attr(not(unoptimized), inline(always))]
    fn write<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        Y::store(s, v, &mut self.0[i..]);
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn write_partial<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        Y::store_partial(s, v, &mut self.0[i..]);
    }
}

impl<X: Storage, Y: Storage, T: Logits> Stream for OutOfPlace<'_, X, Y, T> {
    type Block<'b>
        = OutOfPlace<'b, X, Y, T>
    where
        Self: 'b;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn block(&mut self, start: usize, len: usize) -> OutOfPlace<'_, X, Y, T> {
        OutOfPlace(
            &self.0[start..start + len],
            &mut self.1[start..start + len],
            self.2.slice(start..start + len),
        )
    }
    reads_from!(0, 2);
    #[cfg_attr(not(unoptimized), inline(always))]
    fn write<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        Y::store(s, v, &mut self.1[i..]);
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn write_partial<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        Y::store_partial(s, v, &mut self.1[i..]);
    }
}

/// A function applied to each vector by [`map_sum`]. A trait rather than a
/// closure: closures are not inlined into the `#[target_feature]` entry, and
/// then the lane intrinsics they call are not either.
pub(crate) trait Map<S: Lanes> {
    fn apply(&self, s: S, x: S::V) -> S::V;
    /// [`Map::apply`] for the partial last vector, whose lanes past the end
    /// read −inf.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply_partial(&self, s: S, x: S::V) -> S::V {
        self.apply(s, x)
    }
    /// What [`map_sum`] adds up for the logits `x` once `y = apply(x)` is
    /// stored: `y` itself unless the pass stores one thing and sums another
    /// (log-softmax stores `x − max` and sums its exp).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn term(&self, _s: S, _x: S::V, y: S::V) -> S::V {
        y
    }
    /// [`Map::term`] for the partial last vector.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn term_partial(&self, s: S, x: S::V, y: S::V) -> S::V {
        self.term(s, x, y)
    }
}

/// `exp(shift(v, m))`.
pub(crate) struct ExpMinus<S: Lanes, T>(pub S::V, pub T);
/// `exp(shift(v, m))` where only the sum is kept
/// ([`Logits::exp_shift_for_sum`]).
pub(crate) struct ExpMinusForSum<S: Lanes, T>(pub S::V, pub T);
/// `exp(shift(v, m))` for rows whose every exponent is at least
/// `exp::CUTOFF` ([`Logits::exp_shift_above_cutoff`]).
pub(crate) struct ExpMinusAboveCutoff<S: Lanes, T>(pub S::V, pub T);
/// Stores `shift(v, m)` and sums `exp(shift(v, m))` (the exp of the
/// unrounded shift where the transform keeps one: the sum is the one the
/// other passes find). With `ABOVE_CUTOFF`, for a block whose every
/// exponent is at least `exp::CUTOFF`.
pub(crate) struct ShiftExp<S: Lanes, T, const ABOVE_CUTOFF: bool>(pub S::V, pub T);

impl<S: Lanes, T: Logits, const ABOVE_CUTOFF: bool> Map<S> for ShiftExp<S, T, ABOVE_CUTOFF> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, v: S::V) -> S::V {
        self.1.shift(s, v, self.0)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn term(&self, s: S, v: S::V, _: S::V) -> S::V {
        if ABOVE_CUTOFF {
            self.1.exp_shift_above_cutoff(s, v, self.0)
        } else {
            self.1.exp_shift(s, v, self.0)
        }
    }
    /// The −inf lanes past the end are below the cutoff: the flushing exp.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn term_partial(&self, s: S, v: S::V, _: S::V) -> S::V {
        self.1.exp_shift(s, v, self.0)
    }
}

/// `exp(shift(v, m))·r`.
pub(crate) struct ExpMinusTimes<S: Lanes, T>(pub S::V, pub S::V, pub T);
/// `v·r`.
pub(crate) struct Times<S: Lanes>(pub S::V);
/// `v·r + b`.
pub(crate) struct TimesPlus<S: Lanes>(pub S::V, pub S::V);

impl<S: Lanes> Map<S> for TimesPlus<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, x: S::V) -> S::V {
        s.mul_add(x, self.0, self.1)
    }
}

impl<S: Lanes, T: Logits> ExpMinus<S, T> {
    /// For logits under `t` and the max `m` of the logits.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn new(s: S, m: f32, t: T) -> Self {
        ExpMinus(s.splat(m), t)
    }
}

impl<S: Lanes, T: Logits> Map<S> for ExpMinus<S, T> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, v: S::V) -> S::V {
        self.1.exp_shift(s, v, self.0)
    }
}

impl<S: Lanes, T: Logits> Map<S> for ExpMinusForSum<S, T> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, v: S::V) -> S::V {
        self.1.exp_shift_for_sum(s, v, self.0)
    }
}

impl<S: Lanes, T: Logits> Map<S> for ExpMinusAboveCutoff<S, T> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, v: S::V) -> S::V {
        self.1.exp_shift_above_cutoff(s, v, self.0)
    }
    /// The −inf lanes past the end are below the cutoff: the flushing exp.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply_partial(&self, s: S, v: S::V) -> S::V {
        self.1.exp_shift(s, v, self.0)
    }
}

impl<S: Lanes, T: Logits> Map<S> for ExpMinusTimes<S, T> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, v: S::V) -> S::V {
        s.mul(self.2.exp_shift(s, v, self.0), self.1)
    }
}

impl<S: Lanes> Map<S> for Times<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, x: S::V) -> S::V {
        s.mul(x, self.0)
    }
}

/// How far past the block whose max it reads beside its exps (so two
/// blocks of 1024 f32 ahead) the blocked exp pass asks for the logits to be
/// fetched. Without it the max's loads were the pass's first touch of each
/// block, and in batches that stream from L3 the loop stalled on them (a
/// third of its samples on the max chain at 64x50257). 1 thread, medians
/// of 4 alternating rounds on a noisy host, µs without / with: softmax
/// 64x50257 751 / 701, 32x128256 1356 / 988, 128x32768 1203 / 852;
/// log-softmax 64x50257 850 / 665, 16x256000 1320 / 1088; single rows
/// within 4%.
const BLOCK_FETCH_AHEAD_BYTES: usize = 4 * 1024;

/// Rows shorter than this fetch nothing ahead: their next row is a few
/// KiB on, where the hardware's prefetcher already is (fetching it cost
/// rows of 256 and 512 values 14–23%).
const FETCH_AHEAD_FROM: usize = 1024;

/// How far ahead [`FetchAhead`] asks for data: at least a row, and at
/// least 8 KiB (rows of 1024 f32 gain 8% fetching one row ahead, 16% two).
const FETCH_AHEAD_BYTES: usize = 8 * 1024;

/// Prefetches, for each fold, the span [`FETCH_AHEAD_BYTES`] (or the
/// slice's length, if longer) further on: in a batch of rows, the next
/// row, while this one's exps keep the FMA ports busy, so that its max
/// pass does not wait on L3 or DRAM (three-pass 2048x2048 1.25× faster,
/// 1024x4096 1.4×). A prefetch never faults, so the span past the batch's
/// end is as safe to name as any.
pub(crate) struct FetchAhead<X> {
    /// Address of the span fetched for the fold at 0; `None` for rows
    /// below [`FETCH_AHEAD_FROM`].
    at: Option<usize>,
    _x: core::marker::PhantomData<X>,
}

impl<X> FetchAhead<X> {
    /// For a loop from the start of `x`: fetches what lies `bytes` further
    /// on, fold by fold.
    pub(crate) fn from(x: &[X], bytes: usize) -> Self {
        FetchAhead {
            at: Some(x.as_ptr() as usize + bytes),
            _x: core::marker::PhantomData,
        }
    }

    /// Nothing to fetch.
    pub(crate) fn none() -> Self {
        FetchAhead {
            at: None,
            _x: core::marker::PhantomData,
        }
    }

    fn after(x: &[X]) -> Self {
        let bytes = core::mem::size_of_val(x);
        let at = (x.len() >= FETCH_AHEAD_FROM)
            .then(|| x.as_ptr() as usize + bytes.max(FETCH_AHEAD_BYTES));
        FetchAhead {
            at,
            _x: core::marker::PhantomData,
        }
    }
}

impl<S: Lanes, X> Beside<S> for FetchAhead<X> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn at(&mut self, _: S, _: usize) {}
    #[cfg_attr(not(unoptimized), inline(always))]
    fn fold(&mut self, s: S, i: usize) {
        if let Some(at) = self.at {
            let bytes = FOLD_VECTORS * S::LANES * core::mem::size_of::<X>();
            let start = at + i * core::mem::size_of::<X>();
            for line in (0..bytes).step_by(64) {
                s.prefetch(start + line);
            }
        }
    }
}

/// Work done beside [`map_sum`]'s loop, once per vector, on data of its
/// own (the next block's max in the online pass, while this block's
/// exponentials take the FMA ports). `i` counts from the start of the
/// `map_sum` call. A trait, not a closure: see `Map`.
pub(crate) trait Beside<S: Lanes> {
    fn at(&mut self, s: S, i: usize);
    /// [`Beside::at`] for each of the [`FOLD_VECTORS`] vectors from `i`.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn fold(&mut self, s: S, i: usize) {
        for k in 0..FOLD_VECTORS {
            self.at(s, i + k * S::LANES);
        }
    }
}

impl<S: Lanes> Beside<S> for () {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn at(&mut self, _: S, _: usize) {}
}

impl<S: Lanes, A: Beside<S>, B: Beside<S>> Beside<S> for (A, B) {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn at(&mut self, s: S, i: usize) {
        self.0.at(s, i);
        self.1.at(s, i);
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn fold(&mut self, s: S, i: usize) {
        self.0.fold(s, i);
        self.1.fold(s, i);
    }
}

/// One vector of [`map_sum`]: `y = f(x)` at `base + i` (`i` within `io`),
/// stored when `STORE`.
#[cfg_attr(not(unoptimized), inline(always))]
fn step<S: Lanes, IO: Stream, F: Map<S>, B: Beside<S>, const STORE: bool>(
    s: S,
    io: &mut IO,
    f: &F,
    beside: &mut B,
    base: usize,
    i: usize,
) -> S::V {
    let x = io.read(s, i);
    let y = f.apply(s, x);
    if STORE {
        io.write(s, i, y);
    }
    beside.at(s, base + i);
    f.term(s, x, y)
}

/// The sum of four vectors from `i` on, as `(y0 + y1) + (y2 + y3)`.
#[cfg_attr(not(unoptimized), inline(always))]
fn tree4<S: Lanes, IO: Stream, F: Map<S>, B: Beside<S>, const STORE: bool>(
    s: S,
    io: &mut IO,
    f: &F,
    beside: &mut B,
    base: usize,
    i: usize,
) -> S::V {
    let l = S::LANES;
    let y01 = s.add(
        step::<S, IO, F, B, STORE>(s, io, f, beside, base, i),
        step::<S, IO, F, B, STORE>(s, io, f, beside, base, i + l),
    );
    let y23 = s.add(
        step::<S, IO, F, B, STORE>(s, io, f, beside, base, i + 2 * l),
        step::<S, IO, F, B, STORE>(s, io, f, beside, base, i + 3 * l),
    );
    s.add(y01, y23)
}

/// The one loop behind every elementwise pass: `y = f(x)` per vector,
/// stored when `STORE`, summed when `SUM`. Each block of [`FOLD_VECTORS`]
/// vectors is summed in f32 as a balanced tree (4 roundings deep, so 4
/// units of 2^-24 relative: all terms are positive) and added to f64 lanes
/// without a horizontal step; the lanes are added up once at the end. The
/// tail is whole vectors plus one partial vector, never a scalar loop.
#[cfg_attr(not(unoptimized), inline(always))]
fn map_sum<S: Lanes, IO: Stream, F: Map<S>, const STORE: bool, const SUM: bool>(
    s: S,
    io: &mut IO,
    f: F,
) -> f64 {
    map_sum_beside::<S, IO, F, (), STORE, SUM>(s, io, f, &mut ())
}

/// [`map_sum`], with `beside.at(i)` for every whole vector `i` (not for a
/// partial last one).
#[cfg_attr(not(unoptimized), inline(always))]
fn map_sum_beside<
    S: Lanes,
    IO: Stream,
    F: Map<S>,
    B: Beside<S>,
    const STORE: bool,
    const SUM: bool,
>(
    s: S,
    io: &mut IO,
    f: F,
    beside: &mut B,
) -> f64 {
    let l = S::LANES;
    let n = io.len();
    let mut wide = s.wide_zero();
    let mut i = 0;
    while i + FOLD_VECTORS * l <= n {
        let mut block = io.block(i, FOLD_VECTORS * l);
        // The work beside for the whole fold at once: one bounds check,
        // not one per vector.
        beside.fold(s, i);
        let b = &mut ();
        let t0 = tree4::<S, _, F, (), STORE>(s, &mut block, &f, b, i, 0);
        let t1 = tree4::<S, _, F, (), STORE>(s, &mut block, &f, b, i, 4 * l);
        let t01 = s.add(t0, t1);
        let t2 = tree4::<S, _, F, (), STORE>(s, &mut block, &f, b, i, 8 * l);
        let t3 = tree4::<S, _, F, (), STORE>(s, &mut block, &f, b, i, 12 * l);
        if SUM {
            wide = s.wide_add(wide, s.add(t01, s.add(t2, t3)));
        }
        i += FOLD_VECTORS * l;
    }

    // Fewer than FOLD_VECTORS vectors left: round-robin over four
    // accumulators (at most 4 values per lane), then one partial vector.
    let zero = s.splat(0.0);
    let mut acc = [zero; 4];
    let mut k = 0;
    while i + l <= n {
        let y = step::<S, IO, F, B, STORE>(s, io, &f, beside, 0, i);
        if SUM {
            acc[k % 4] = s.add(acc[k % 4], y);
        }
        i += l;
        k += 1;
    }
    if i < n {
        let x = io.read_partial(s, i);
        let y = f.apply_partial(s, x);
        if STORE {
            io.write_partial(s, i, y);
        }
        if SUM {
            acc[k % 4] = s.add(acc[k % 4], f.term_partial(s, x, y));
        }
    }
    if SUM {
        let tail = s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3]));
        s.wide_sum(s.wide_add(wide, tail))
    } else {
        0.0
    }
}

/// `(max, Σ exp(x − max))` of part of a row. The sum is relative to the
/// part's own max, so parts merge with one exact-to-f64 rescale each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Partial {
    /// Largest value that is not NaN; −inf when there is none.
    pub max: f32,
    /// NaN when the part holds a NaN.
    pub sum: f64,
}

impl Partial {
    pub(crate) const EMPTY: Partial = Partial {
        max: f32::NEG_INFINITY,
        sum: 0.0,
    };

    /// The sum rescaled to a finite reference `m ≥ self.max`, for
    /// exponents `c·(v − max)` (`c` from [`Logits::factor`]).
    pub(crate) fn sum_at(self, m: f32, c: f64) -> f64 {
        // exp(−inf) = 0 keeps a part of only −inf at 0 (or NaN if it had
        // NaN); a sum of 0 stays 0 (the factor is at most 1) without libm.
        let shift = f64::from(self.max) - f64::from(m);
        if shift == 0.0 || self.sum == 0.0 {
            self.sum
        } else {
            self.sum * (shift * c).exp()
        }
    }

    /// Both parts as one. Merging in a fixed order keeps results
    /// independent of how a row was split across threads.
    pub(crate) fn merge(self, other: Partial, c: f64) -> Partial {
        let max = if other.max > self.max {
            other.max
        } else {
            self.max
        };
        if !max.is_finite() {
            // Only the NaN flag matters: a row whose max is not finite is
            // finished by `nonfinite_row`.
            return Partial {
                max,
                sum: self.sum + other.sum,
            };
        }
        Partial {
            max,
            sum: self.sum_at(max, c) + other.sum_at(max, c),
        }
    }
}

/// `sum` (of `exp(shift(x, m))` over the row `io`) with the row's sink
/// added: `exp(sink − m·factor)` in f64, the sink being a logit
/// and `m·factor` the row's largest (NaN for a NaN sink, +inf when the
/// sink outweighs f64: the row's outputs are then 0).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn with_sink<E: Elements>(io: &Io<'_, impl Logits, E>, m: f32, sum: f64) -> f64 {
    if io.sink == f32::NEG_INFINITY {
        return sum;
    }
    sum + (f64::from(io.sink) - f64::from(m) * io.logits.factor()).exp()
}

/// Which special-value rule a row falls under: the one classification
/// every operation's special rows follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowClass {
    /// A NaN logit: the whole result is NaN.
    Nan,
    /// `k ≥ 1` logits of +inf and no NaN: they share the mass equally.
    PosInf(usize),
    /// No logit above −inf and no NaN (the empty row too): no mass.
    NoMass,
    /// A finite max and no NaN: the ordinary computation.
    Finite,
}

impl RowClass {
    /// From a row's (max, sum), whose sum is NaN when a logit was NaN;
    /// `logits` is scanned only when the max is not finite (rare).
    pub(crate) fn of(total: Partial, logits: impl IntoIterator<Item = f32>) -> RowClass {
        match (total.max.is_finite(), total.sum.is_nan()) {
            (true, true) => RowClass::Nan,
            (true, false) => RowClass::Finite,
            (false, _) => RowClass::scan(logits),
        }
    }

    /// By a scan of the logits alone.
    pub(crate) fn scan(logits: impl IntoIterator<Item = f32>) -> RowClass {
        let mut max = f32::NEG_INFINITY;
        let mut infinities = 0;
        for v in logits {
            if v.is_nan() {
                return RowClass::Nan;
            }
            infinities += usize::from(v == f32::INFINITY);
            max = max.max(v);
        }
        match (infinities, max) {
            (0, f32::NEG_INFINITY) => RowClass::NoMass,
            (0, _) => RowClass::Finite,
            (k, _) => RowClass::PosInf(k),
        }
    }
}

/// Rows whose max logit is ±inf (or that hold nothing but −inf and NaN),
/// and rows with a NaN: NaN anywhere makes the row the one quiet NaN (so
/// its bits do not depend on which NaN the arithmetic would have carried
/// through, in place or not); otherwise the k entries of +inf share
/// the mass equally (1/k, rounded once) and the rest get 0; a row of only
/// −inf gets all zeros. With `log`, the logarithms of those: −ln k and
/// −inf. Rare, so plain scalar code.
pub(crate) fn nonfinite_row<E: Elements>(io: Io<'_, impl Logits, E>, log: bool) {
    let t = io.logits();
    let x = io.input_f32();
    // A NaN sink makes the row NaN; a +inf one shares the mass with the
    // row's +inf values (or takes it all, leaving zeros).
    let sink = io.sink;
    let class = if sink.is_nan() {
        RowClass::Nan
    } else {
        RowClass::scan(x.iter().enumerate().map(|(i, &x)| t.value(x, i)))
    };
    let k = match class {
        RowClass::PosInf(k) => k as f64 + f64::from(u8::from(sink == f32::INFINITY)),
        _ => 0.0,
    };
    // 1/k rounded once: `k as f32` would round k itself beyond 2^24.
    let (share, rest) = if log {
        ((-k.ln()) as f32, f32::NEG_INFINITY)
    } else {
        ((1.0 / k) as f32, 0.0)
    };
    // A masked entry is `rest` even in a NaN row.
    let value = |v: f32, i: usize| {
        if t.is_masked(i) {
            rest
        } else if class == RowClass::Nan {
            f32::NAN
        } else if v == f32::INFINITY {
            share
        } else {
            rest
        }
    };
    let mut io = io;
    for (i, (y, &x)) in io.output().iter_mut().zip(&x).enumerate() {
        *y = E::Out::from_f32(value(t.value(x, i), i));
    }
}
