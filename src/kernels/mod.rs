//! The softmax algorithms, each written once over [`Lanes`], and the two
//! loops they are built from: a lane-wise max and a map-store-sum.
//!
//! Every row is cut at fixed offsets from its own start (never at address
//! alignment), so a row's result does not depend on where it sits in memory,
//! on in place versus out of place, or on how work is split across threads.

pub(crate) mod argmax;
pub(crate) mod blocked;
pub(crate) mod exec;
pub(crate) mod log_softmax;
pub(crate) mod online;
pub(crate) mod three_pass;

use core::ops::Range;

use crate::exp::exp;
use crate::lanes::Lanes;

/// Vectors summed in f32 before the sum is carried on in f64. Each lane of
/// the two accumulators adds 4 values, so the f32 part of the sum is off by
/// at most 4 units of 2^-24 (relative, all terms positive). Two
/// accumulators, not four: the add latency hides behind the exp anyway, and
/// with 16 ymm registers the extra two made the AVX2 loop spill (8% slower
/// than a `target-cpu=native` build, which has 32).
pub(crate) const FOLD_VECTORS: usize = 8;

/// Rows are reduced in parts of this many elements, merged in order. A long
/// row split across threads uses the same parts, so it gets the same bits.
pub(crate) const CHUNK: usize = 16384;

/// Where a pass reads `x` and writes `y`.
pub(crate) enum Io<'a> {
    InPlace(&'a mut [f32]),
    OutOfPlace {
        input: &'a [f32],
        output: &'a mut [f32],
    },
}

impl<'a> Io<'a> {
    /// Pairs `input` with `output`, which must have the same length.
    pub(crate) fn new(input: Option<&'a [f32]>, output: &'a mut [f32]) -> Self {
        match input {
            None => Io::InPlace(output),
            Some(input) => {
                assert_eq!(input.len(), output.len());
                Io::OutOfPlace { input, output }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Io::InPlace(data) => data.len(),
            Io::OutOfPlace { input, .. } => input.len(),
        }
    }

    /// The values to read: the input, or the data itself when in place.
    pub(crate) fn input(&self) -> &[f32] {
        match self {
            Io::InPlace(data) => data,
            Io::OutOfPlace { input, .. } => input,
        }
    }

    pub(crate) fn output(&mut self) -> &mut [f32] {
        match self {
            Io::InPlace(data) => data,
            Io::OutOfPlace { output, .. } => output,
        }
    }

    /// The same kind of access restricted to `range`.
    pub(crate) fn slice(&mut self, range: Range<usize>) -> Io<'_> {
        match self {
            Io::InPlace(data) => Io::InPlace(&mut data[range]),
            Io::OutOfPlace { input, output } => Io::OutOfPlace {
                input: &input[range.clone()],
                output: &mut output[range],
            },
        }
    }

    /// Writes `f(x)` for every vector `x` of the input and returns the f64
    /// sum of what was written; lanes past the end read `fill`, and `f(fill)`
    /// must be 0 for the sum to be right.
    #[inline(always)]
    pub(crate) fn map_store_sum<S: Lanes>(&mut self, s: S, fill: f32, f: impl Map<S>) -> f64 {
        match self {
            Io::InPlace(data) => map_sum::<S, _, _, true, true>(s, &mut InPlace(data), fill, f),
            Io::OutOfPlace { input, output } => {
                let output = &mut output[..input.len()];
                map_sum::<S, _, _, true, true>(s, &mut OutOfPlace(input, output), fill, f)
            }
        }
    }

    /// Writes `f(x)` for every vector `x` of the input.
    #[inline(always)]
    pub(crate) fn map_store<S: Lanes>(&mut self, s: S, f: impl Map<S>) {
        match self {
            Io::InPlace(data) => {
                map_sum::<S, _, _, true, false>(s, &mut InPlace(data), 0.0, f);
            }
            Io::OutOfPlace { input, output } => {
                let output = &mut output[..input.len()];
                map_sum::<S, _, _, true, false>(s, &mut OutOfPlace(input, output), 0.0, f);
            }
        };
    }
}

/// The f64 sum of `f(x)` over the vectors of `x` (nothing written); lanes
/// past the end read `fill`, and `f(fill)` must be 0.
#[inline(always)]
pub(crate) fn map_sum_only<S: Lanes>(s: S, x: &[f32], fill: f32, f: impl Map<S>) -> f64 {
    map_sum::<S, _, _, false, true>(s, &mut ReadOnly(x), fill, f)
}

/// Multiplies every value of `y` by `r`.
#[inline(always)]
pub(crate) fn scale<S: Lanes>(s: S, y: &mut [f32], r: f32) {
    Io::InPlace(y).map_store(s, Times(s.splat(r)));
}

/// The largest value of `x` that is not NaN (−inf for an empty slice).
/// NaN is found later, through the exponentials.
#[inline(always)]
pub(crate) fn max<S: Lanes>(s: S, x: &[f32]) -> f32 {
    let l = S::LANES;
    let lowest = s.splat(f32::NEG_INFINITY);
    // `max(x, acc)` keeps `acc` when `x` is NaN on x86.
    let (mut a0, mut a1, mut a2, mut a3) = (lowest, lowest, lowest, lowest);
    let mut groups = x.chunks_exact(4 * l);
    for g in &mut groups {
        a0 = s.max(s.load(g), a0);
        a1 = s.max(s.load(&g[l..]), a1);
        a2 = s.max(s.load(&g[2 * l..]), a2);
        a3 = s.max(s.load(&g[3 * l..]), a3);
    }
    let mut vectors = groups.remainder().chunks_exact(l);
    for v in &mut vectors {
        a0 = s.max(s.load(v), a0);
    }
    let rest = vectors.remainder();
    if !rest.is_empty() {
        a1 = s.max(s.load_partial(rest, f32::NEG_INFINITY), a1);
    }
    s.reduce_max(s.max(s.max(a0, a1), s.max(a2, a3)))
}

/// Vector access for [`map_sum`]: reads `x`, writes `y`.
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
    /// Reads from `i` to the end (fewer than `LANES` values).
    fn read_partial<S: Lanes>(&self, s: S, i: usize, fill: f32) -> S::V;
    fn write<S: Lanes>(&mut self, s: S, i: usize, v: S::V);
    fn write_partial<S: Lanes>(&mut self, s: S, i: usize, v: S::V);
}

struct ReadOnly<'a>(&'a [f32]);
struct InPlace<'a>(&'a mut [f32]);
struct OutOfPlace<'a>(&'a [f32], &'a mut [f32]);

macro_rules! reads_from {
    ($($field:tt)+) => {
        #[inline(always)]
        fn len(&self) -> usize {
            self.$($field)+.len()
        }
        #[inline(always)]
        fn read<S: Lanes>(&self, s: S, i: usize) -> S::V {
            s.load(&self.$($field)+[i..])
        }
        #[inline(always)]
        fn read_partial<S: Lanes>(&self, s: S, i: usize, fill: f32) -> S::V {
            s.load_partial(&self.$($field)+[i..], fill)
        }
    };
}

impl Stream for ReadOnly<'_> {
    type Block<'b>
        = ReadOnly<'b>
    where
        Self: 'b;
    #[inline(always)]
    fn block(&mut self, start: usize, len: usize) -> ReadOnly<'_> {
        ReadOnly(&self.0[start..start + len])
    }
    reads_from!(0);
    /// Nothing to write: [`map_sum`] never calls this when it does not store.
    #[inline(always)]
    fn write<S: Lanes>(&mut self, _s: S, _i: usize, _v: S::V) {}
    #[inline(always)]
    fn write_partial<S: Lanes>(&mut self, _s: S, _i: usize, _v: S::V) {}
}

impl Stream for InPlace<'_> {
    type Block<'b>
        = InPlace<'b>
    where
        Self: 'b;
    #[inline(always)]
    fn block(&mut self, start: usize, len: usize) -> InPlace<'_> {
        InPlace(&mut self.0[start..start + len])
    }
    reads_from!(0);
    #[inline(always)]
    fn write<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        s.store(v, &mut self.0[i..]);
    }
    #[inline(always)]
    fn write_partial<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        s.store_partial(v, &mut self.0[i..]);
    }
}

impl Stream for OutOfPlace<'_> {
    type Block<'b>
        = OutOfPlace<'b>
    where
        Self: 'b;
    #[inline(always)]
    fn block(&mut self, start: usize, len: usize) -> OutOfPlace<'_> {
        OutOfPlace(&self.0[start..start + len], &mut self.1[start..start + len])
    }
    reads_from!(0);
    #[inline(always)]
    fn write<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        s.store(v, &mut self.1[i..]);
    }
    #[inline(always)]
    fn write_partial<S: Lanes>(&mut self, s: S, i: usize, v: S::V) {
        s.store_partial(v, &mut self.1[i..]);
    }
}

/// A function applied to each vector by [`map_sum`]. A trait rather than a
/// closure: closures are not inlined into the `#[target_feature]` entry, and
/// then the lane intrinsics they call are not either.
pub(crate) trait Map<S: Lanes> {
    fn apply(&self, s: S, x: S::V) -> S::V;
}

/// `exp(x − m)`.
pub(crate) struct ExpMinus<S: Lanes>(pub S::V);
/// `exp(x − m)·r`.
pub(crate) struct ExpMinusTimes<S: Lanes>(pub S::V, pub S::V);
/// `x·r`.
pub(crate) struct Times<S: Lanes>(pub S::V);

impl<S: Lanes> Map<S> for ExpMinus<S> {
    #[inline(always)]
    fn apply(&self, s: S, x: S::V) -> S::V {
        exp(s, s.sub(x, self.0))
    }
}

impl<S: Lanes> Map<S> for ExpMinusTimes<S> {
    #[inline(always)]
    fn apply(&self, s: S, x: S::V) -> S::V {
        s.mul(exp(s, s.sub(x, self.0)), self.1)
    }
}

impl<S: Lanes> Map<S> for Times<S> {
    #[inline(always)]
    fn apply(&self, s: S, x: S::V) -> S::V {
        s.mul(x, self.0)
    }
}

/// One vector of [`map_sum`]: `y = f(x)` at `i`, stored and/or added to `acc`.
#[inline(always)]
fn step<S: Lanes, IO: Stream, F: Map<S>, const STORE: bool, const SUM: bool>(
    s: S,
    io: &mut IO,
    f: &F,
    i: usize,
    acc: S::V,
) -> S::V {
    let y = f.apply(s, io.read(s, i));
    if STORE {
        io.write(s, i, y);
    }
    if SUM { s.add(acc, y) } else { acc }
}

/// The one loop behind every elementwise pass: `y = f(x)` per vector,
/// stored when `STORE`, summed when `SUM` (four f32 accumulators folded into
/// f64 every [`FOLD_VECTORS`] vectors). The tail is whole vectors plus one
/// partial vector, never a scalar loop.
#[inline(always)]
fn map_sum<S: Lanes, IO: Stream, F: Map<S>, const STORE: bool, const SUM: bool>(
    s: S,
    io: &mut IO,
    fill: f32,
    f: F,
) -> f64 {
    let l = S::LANES;
    let n = io.len();
    let zero = s.splat(0.0);
    let mut total = 0.0f64;
    let mut i = 0;
    while i + FOLD_VECTORS * l <= n {
        let mut block = io.block(i, FOLD_VECTORS * l);
        let (mut a0, mut a1) = (zero, zero);
        for g in (0..FOLD_VECTORS).step_by(2) {
            a0 = step::<S, _, F, STORE, SUM>(s, &mut block, &f, g * l, a0);
            a1 = step::<S, _, F, STORE, SUM>(s, &mut block, &f, (g + 1) * l, a1);
        }
        i += FOLD_VECTORS * l;
        if SUM {
            total += s.reduce_sum_f64(s.add(a0, a1));
        }
    }

    // Fewer than FOLD_VECTORS vectors left: round-robin over four
    // accumulators (at most 2 values per lane), then one partial vector.
    let mut acc = [zero; 4];
    let mut k = 0;
    while i + l <= n {
        acc[k % 4] = step::<S, IO, F, STORE, SUM>(s, io, &f, i, acc[k % 4]);
        i += l;
        k += 1;
    }
    if i < n {
        let y = f.apply(s, io.read_partial(s, i, fill));
        if STORE {
            io.write_partial(s, i, y);
        }
        if SUM {
            acc[k % 4] = s.add(acc[k % 4], y);
        }
    }
    if SUM {
        total += s.reduce_sum_f64(s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3])));
    }
    total
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

    /// The sum rescaled to a finite reference `m ≥ self.max`.
    pub(crate) fn sum_at(self, m: f32) -> f64 {
        // exp(−inf) = 0 keeps a part of only −inf at 0 (or NaN if it had NaN).
        let shift = f64::from(self.max) - f64::from(m);
        if shift == 0.0 {
            self.sum
        } else {
            self.sum * shift.exp()
        }
    }

    /// Both parts as one. Merging in a fixed order keeps results
    /// independent of how a row was split across threads.
    pub(crate) fn merge(self, other: Partial) -> Partial {
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
            sum: self.sum_at(max) + other.sum_at(max),
        }
    }
}

/// Rows whose max is ±inf (or that hold nothing but −inf and NaN):
/// NaN anywhere makes the row NaN; otherwise the k entries of +inf share
/// the mass equally (1/k, rounded once) and the rest get 0; a row of only
/// −inf gets all zeros. With `log`, the logarithms of those: −ln k and
/// −inf. Rare, so plain scalar code.
pub(crate) fn nonfinite_row(io: Io<'_>, log: bool) {
    let x = io.input();
    let has_nan = x.iter().any(|v| v.is_nan());
    let k = x.iter().filter(|&&v| v == f32::INFINITY).count() as f64;
    // 1/k rounded once: `k as f32` would round k itself beyond 2^24.
    let (share, rest) = if log {
        ((-k.ln()) as f32, f32::NEG_INFINITY)
    } else {
        ((1.0 / k) as f32, 0.0)
    };
    let value = |v: f32| {
        if has_nan {
            f32::NAN
        } else if v == f32::INFINITY {
            share
        } else {
            rest
        }
    };
    match io {
        Io::InPlace(data) => data.iter_mut().for_each(|v| *v = value(*v)),
        Io::OutOfPlace { input, output } => {
            output
                .iter_mut()
                .zip(input)
                .for_each(|(y, &x)| *y = value(x));
        }
    }
}
