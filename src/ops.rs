//! The row operations: for each, the call the public entry hands to
//! `dispatch::run` (a [`WithLanes`]) and the [`RowTask`] the row driver
//! runs. Softmax and log-softmax rows (with the logit settings), the
//! per-row reductions and the backward passes live here; cross-entropy and
//! sampling keep theirs next to their public API.

use half::{bf16, f16};

use crate::attention::{Alibi, Attention};
use crate::dispatch::{self, Backend, WithLanes};
use crate::driver::{self, RowTask};
use crate::element::{Elements, F32, Storage};
use crate::element::{Pair, Slice, SliceMut};
use crate::kernels::argmax::argmax;
#[cfg(feature = "rayon")]
use crate::kernels::exec::Parallel;
use crate::kernels::exec::{Exec, Sequential};
use crate::kernels::log_softmax::{self, log_softmax, logsumexp_of};
use crate::kernels::online::row_max_sum;
use crate::kernels::short;
use crate::kernels::{
    Biased, ExpMinusTimes, Factor, Io, Logits, Map, Masked, Plain, Scaled, backward, blocked,
    online, three_pass,
};
use crate::lanes::{Job, Lanes};
use crate::{Algorithm, Error};

/// How each row's input becomes logits: the builder's scale, temperature,
/// masks and attention settings, already checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowLogits<'m> {
    /// `scale / temperature`: 1 when neither is set; 0 and +inf are the
    /// temperature limits (uniform, greedy).
    pub c: f64,
    /// One row of flags broadcast to every row, or one per row (or an
    /// attention shape, see `layout`).
    pub keep: Option<&'m [bool]>,
    /// One row broadcast to every row, or one per row (or an attention
    /// shape).
    pub add: Option<&'m [f32]>,
    /// Row `r` keeps columns `j ≤ r + offset` (`r` the query index under
    /// an attention layout).
    pub causal: Option<isize>,
    /// The attention layout the rows follow, if any.
    pub layout: Option<Attention>,
    /// ALiBi: each head's slope multiplies the additive mask.
    pub alibi: Option<Alibi>,
    /// The index of the call's first row in its batch (an engine thread's
    /// part): masks, the causal offset and heads count from the batch.
    pub row_base: usize,
    /// One sink logit per head (or one for every row).
    pub sinks: Option<&'m [f32]>,
    /// The soft cap `c` of `c·tanh(x/c)`.
    pub softcap: Option<f32>,
}

impl RowLogits<'_> {
    /// Whether rows need the general transform (`Masked`): masks or a
    /// soft cap (a sink rides on the row's `Io`, under any transform).
    fn needs_masks(&self) -> bool {
        self.keep.is_some() || self.add.is_some() || self.softcap.is_some()
    }

    /// Whether the rows' only mask is an additive one (with ALiBi or not),
    /// with no cap: the [`Biased`] transform.
    fn only_additive(&self) -> bool {
        self.add.is_some() && self.keep.is_none() && self.softcap.is_none()
    }

    /// Row `r`'s additive mask on `x·c` (rows with only that mask).
    fn biased(&self, r: usize, row_len: usize) -> Biased<'_> {
        let m = self.masked(r, row_len);
        // Whether the next row's mask row is the one after this one (not
        // the same row broadcast, nor the first row of the next head).
        let at = r + self.row_base;
        let next_follows = self.add.is_some_and(|a| {
            self.mask_row(at + 1, a.len(), row_len) == self.mask_row(at, a.len(), row_len) + 1
        });
        Biased {
            add: m.add.unwrap_or_default(),
            c: m.c.hi,
            slope: m.slope,
            next_row_bytes: if next_follows { 4 * row_len } else { 0 },
        }
    }

    /// Which row of a mask of `len` values row `r` of the batch reads.
    fn mask_row(&self, r: usize, len: usize, row_len: usize) -> usize {
        match self.layout {
            Some(a) => a.mask_row(r, len),
            None if len == row_len => 0,
            None => r,
        }
    }

    /// Row `r`'s masks.
    fn masked(&self, r: usize, row_len: usize) -> Masked<'_> {
        let r = r + self.row_base;
        fn row_of<X>(mask: &[X], row: usize, row_len: usize) -> &[X] {
            &mask[row * row_len..(row + 1) * row_len]
        }
        let mask_row = |len: usize| self.mask_row(r, len, row_len);
        let head = self.layout.map_or(0, |a| a.query_and_head(r).1);
        Masked {
            keep: self.keep.map(|k| row_of(k, mask_row(k.len()), row_len)),
            add: self.add.map(|a| row_of(a, mask_row(a.len()), row_len)),
            c: Factor::new(self.c),
            slope: self.alibi.map_or(1.0, |a| a.slope(head)),
            softcap: self.softcap.unwrap_or(0.0),
        }
    }

    /// Row `r`'s sink (−inf: none): its head's, or the one for all rows.
    fn sink(&self, r: usize) -> f32 {
        let head = |r: usize| self.layout.map_or(0, |a| a.query_and_head(r).1);
        self.sinks.map_or(f32::NEG_INFINITY, |s| {
            s[if s.len() == 1 {
                0
            } else {
                head(r + self.row_base)
            }]
        })
    }

    /// How many leading columns row `r` keeps (all but the causal mask's).
    fn active(&self, r: usize, row_len: usize) -> usize {
        let r = r + self.row_base;
        let r = self.layout.map_or(r, |a| a.query_and_head(r).0);
        match self.causal {
            None => row_len,
            Some(offset) => {
                let r = isize::try_from(r).unwrap_or(isize::MAX);
                let last = r.saturating_add(offset);
                usize::try_from(last.saturating_add(1)).map_or(0, |n| n.min(row_len))
            }
        }
    }
}

/// A softmax or log-softmax call apart from its data.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SoftmaxShape<'a> {
    pub algorithm: Algorithm,
    pub log: bool,
    pub rows: usize,
    pub row_len: usize,
    pub stride: usize,
    pub logits: RowLogits<'a>,
}

/// Runs the call on `backend` with its data's element types (`input`
/// `None`: in place; lengths already checked). Each (input, output) pair
/// is its own compiled code, chosen here: f32 rows and rows of one 16-bit
/// type in and out each have theirs. f16 or bf16 rows into f32 are first
/// converted into the output (exact, in registers), which then runs as
/// f32 rows in place: the same bits as the f32 call on the converted
/// values, for one more pass and no more compiled kernels. Other pairs are
/// an error for now.
pub(crate) fn softmax_typed(
    backend: Backend,
    shape: SoftmaxShape<'_>,
    input: Option<Slice<'_>>,
    output: SliceMut<'_>,
) -> Result<(), Error> {
    fn typed<E: Storage>(
        backend: Backend,
        shape: SoftmaxShape<'_>,
        input: Option<&[E]>,
        output: &mut [E],
    ) -> Result<(), Error> {
        let call = SoftmaxCall::<Pair<E, E>> {
            algorithm: shape.algorithm,
            log: shape.log,
            io: Io::of(input, output),
            rows: shape.rows,
            row_len: shape.row_len,
            stride: shape.stride,
            logits: shape.logits,
        };
        dispatch::run(backend, call)
    }
    fn widened<X: Storage>(
        backend: Backend,
        shape: SoftmaxShape<'_>,
        input: &[X],
        output: &mut [f32],
    ) -> Result<(), Error> {
        let convert = ConvertRows {
            input,
            output: &mut *output,
            rows: shape.rows,
            row_len: shape.row_len,
            stride: shape.stride,
        };
        dispatch::run(backend, convert)?;
        typed(backend, shape, None, output)
    }
    use Slice as I;
    use SliceMut as O;
    match (input, output) {
        (None, O::F32(y)) => typed::<f32>(backend, shape, None, y),
        (None, O::F16(y)) => typed::<f16>(backend, shape, None, y),
        (None, O::Bf16(y)) => typed::<bf16>(backend, shape, None, y),
        (Some(I::F32(x)), O::F32(y)) => typed(backend, shape, Some(x), y),
        (Some(I::F16(x)), O::F16(y)) => typed(backend, shape, Some(x), y),
        (Some(I::Bf16(x)), O::Bf16(y)) => typed(backend, shape, Some(x), y),
        (Some(I::F16(x)), O::F32(y)) => widened(backend, shape, x, y),
        (Some(I::Bf16(x)), O::F32(y)) => widened(backend, shape, x, y),
        (Some(x), y) => Err(Error::UnsupportedElements {
            input: x.element_type(),
            output: y.element_type(),
        }),
    }
}

/// Whether [`softmax_typed`] takes these types (checked before anything
/// else, so that an empty call errs too).
pub(crate) fn check_types(input: Option<&Slice<'_>>, output: &SliceMut<'_>) -> Result<(), Error> {
    let (x, y) = match input {
        None => return Ok(()),
        Some(x) => (x.element_type(), output.element_type()),
    };
    if x == y || y == crate::ElementType::F32 {
        Ok(())
    } else {
        Err(Error::UnsupportedElements {
            input: x,
            output: y,
        })
    }
}

/// The rows of a call, converted exactly from `X` into the f32 output
/// (nothing between rows is read or written).
struct ConvertRows<'a, X> {
    input: &'a [X],
    output: &'a mut [f32],
    rows: usize,
    row_len: usize,
    stride: usize,
}

impl<X: Storage> WithLanes for ConvertRows<'_, X> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        let row_len = self.row_len;
        driver::run(s, self, row_len);
    }
}

impl<X: Storage> RowTask for ConvertRows<'_, X> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let at = (n * self.stride).min(self.input.len());
        let (ia, ib) = self.input.split_at(at);
        let (oa, ob) = self.output.split_at_mut(at);
        let part = |input, output, rows| ConvertRows {
            input,
            output,
            rows,
            ..self
        };
        (part(ia, oa, n), part(ib, ob, self.rows - n))
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) {
        for r in 0..self.rows {
            let span = r * self.stride..r * self.stride + self.row_len;
            let mut io = Io::<Plain, Pair<X, f32>>::of(
                Some(&self.input[span.clone()]),
                &mut self.output[span],
            );
            io.map_store(s, Identity);
        }
    }
}

/// The logits as they are.
struct Identity;

impl<S: Lanes> crate::kernels::Map<S> for Identity {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, _: S, x: S::V) -> S::V {
        x
    }
}

/// Softmax (with `algorithm`, resolved, not `Auto`) or log-softmax of
/// every row of `io` under `logits`: row `r` is `row_len` values at
/// `r·stride`, and nothing between rows is read or written.
pub(crate) struct SoftmaxCall<'a, E: Elements = F32> {
    pub algorithm: Algorithm,
    pub log: bool,
    pub io: Io<'a, Plain, E>,
    pub rows: usize,
    pub row_len: usize,
    pub stride: usize,
    pub logits: RowLogits<'a>,
}

impl<E: Elements> SoftmaxCall<'_, E> {
    fn geometry(&self) -> Geometry {
        Geometry {
            rows: self.rows,
            row_len: self.row_len,
            stride: self.stride,
        }
    }
}

impl<E: Elements> WithLanes for SoftmaxCall<'_, E> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        if self.logits.c == 0.0 || self.logits.c == f64::INFINITY {
            return limit_rows(self);
        }
        // A constant condition, so that 16-bit pairs do not compile the
        // f32 rows' kernels (and f32 not theirs).
        if E::F32 {
            if self.logits.needs_masks() {
                return masked_rows(s, self);
            }
            match (self.log, self.algorithm) {
                (true, _) => by_logits(s, LogSoftmax, self),
                (false, Algorithm::Online) => by_logits(s, Online, self),
                (false, Algorithm::Blocked) => by_logits(s, Blocked, self),
                (false, Algorithm::ThreePass | Algorithm::Auto) => by_logits(s, ThreePass, self),
            }
        } else {
            narrow_rows(s, self);
        }
    }
}

/// Plain or scaled rows under kernel `k` (each (kernel, transform) pair
/// is a task type of its own, and so its own backend entry: one entry
/// holding every kernel and transform grew so large that the AVX2 exp loop
/// lost its constants to spills, 47 broadcasts from memory per 8 vectors
/// instead of 26, 15% slower).
fn by_logits<S: Lanes, K: RowKernel, E: Elements>(s: S, k: K, call: SoftmaxCall<'_, E>) {
    let logits = &call.logits;
    let geometry = call.geometry();
    if logits.c == 1.0 {
        let task = SoftmaxRows::new(call.io, geometry, k, PlainRows, logits);
        driver::run(s, task, call.row_len);
    } else {
        let scaled = ScaledRows(Factor::new(logits.c));
        let task = SoftmaxRows::new(call.io, geometry, k, scaled, logits);
        driver::run(s, task, call.row_len);
    }
}

/// f32 rows under masks or a soft cap: softmax three-pass whatever the
/// algorithm setting (masked rows are attention rows, where three-pass is
/// the fastest; one kernel per transform keeps the build in bounds), and
/// log-softmax. Rows with only an additive mask (ALiBi's, or any) get
/// their own transform on the x86 backends, the rest the general one.
#[allow(clippy::collapsible_if)] // a constant test alone prunes what it guards
fn masked_rows<S: Lanes, E: Elements>(s: S, call: SoftmaxCall<'_, E>) {
    let logits = &call.logits;
    let geometry = call.geometry();
    let n = call.row_len;
    if S::HALF_IN_REGISTERS {
        if logits.only_additive() {
            let rows_t = BiasedRows(logits);
            return if call.log {
                driver::run(
                    s,
                    SoftmaxRows::new(call.io, geometry, LogSoftmax, rows_t, logits),
                    n,
                )
            } else {
                driver::run(
                    s,
                    SoftmaxRows::new(call.io, geometry, ThreePass, rows_t, logits),
                    n,
                )
            };
        }
    }
    let rows_t = MaskedRows(logits);
    if call.log {
        driver::run(
            s,
            SoftmaxRows::new(call.io, geometry, LogSoftmax, rows_t, logits),
            n,
        );
    } else {
        driver::run(
            s,
            SoftmaxRows::new(call.io, geometry, ThreePass, rows_t, logits),
            n,
        );
    }
}

/// Rows of a 16-bit type in and out: softmax or log-softmax whatever the
/// algorithm setting, through the kernels' paths that never store an
/// intermediate value in the output (it would be rounded to 16 bits):
/// online softmax, three-pass log-softmax without stored differences, and
/// the register path for short rows. Plain rows on the backends that convert
/// in registers get the plain transform; every other row (and every row on
/// the scalar and portable backends) the general one, which applies scale,
/// temperature and masks at run time. Each (kernel, transform, pair) is a
/// compiled entry per backend, and the crate's build time is their sum.
#[allow(clippy::collapsible_if)] // a constant test alone prunes what it guards
fn narrow_rows<S: Lanes, E: Elements>(s: S, call: SoftmaxCall<'_, E>) {
    let geometry = Geometry {
        rows: call.rows,
        row_len: call.row_len,
        stride: call.stride,
    };
    let logits = &call.logits;
    let plain = !logits.needs_masks() && logits.c == 1.0;
    // Constant conditions outside, so that the pairs and backends without
    // plain kernels do not compile them.
    if S::HALF_IN_REGISTERS {
        if plain {
            return if call.log {
                driver::run(
                    s,
                    SoftmaxRows::new(call.io, geometry, LogSoftmax, PlainRows, logits),
                    call.row_len,
                )
            } else {
                driver::run(
                    s,
                    SoftmaxRows::new(call.io, geometry, ThreePass, PlainRows, logits),
                    call.row_len,
                )
            };
        }
    }
    let general = MaskedRows(logits);
    if call.log {
        driver::run(
            s,
            SoftmaxRows::new(call.io, geometry, LogSoftmax, general, logits),
            call.row_len,
        );
    } else {
        driver::run(
            s,
            SoftmaxRows::new(call.io, geometry, ThreePass, general, logits),
            call.row_len,
        );
    }
}

/// Where the rows of a softmax call are: `rows` rows of `row_len` values,
/// row `r` at `r·stride`.
#[derive(Clone, Copy)]
struct Geometry {
    rows: usize,
    row_len: usize,
    stride: usize,
}

/// A row algorithm as a type (see `by_logits`).
pub(crate) trait RowKernel: Copy + Send + Sync {
    /// What an entry with no probability holds: 0, or −inf for log.
    const MASKED: f32;
    /// Returns the row's sum: NaN when a kept logit was NaN.
    fn run<T: Logits, E: Elements>(self, exec: &impl Exec, row: Io<'_, T, E>) -> f64;
    /// Enters the backend with `task` through the kernel module's own
    /// wrapper (see `driver::in_order_entry`).
    fn enter<S: Lanes, R: RowTask>(s: S, task: R);
    /// Whether [`RowKernel::run_pair`] may take two short rows at once.
    const PAIRS: bool = false;
    /// Two rows of the same length on this thread, with the same bits as
    /// `run` on each: their sums, or `None` (nothing written) when they are
    /// not short enough to pair.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run_pair<S: Lanes, T: Logits, E: Elements>(
        self,
        _: S,
        _: &mut Io<'_, T, E>,
        _: &mut Io<'_, T, E>,
    ) -> Option<(f64, f64)> {
        None
    }
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
    fn enter<S: Lanes, R: RowTask>(s: S, task: R) {
        s.vectorize(three_pass::InOrder(task));
    }
    const MASKED: f32 = 0.0;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<T: Logits, E: Elements>(self, exec: &impl Exec, row: Io<'_, T, E>) -> f64 {
        three_pass::softmax(exec, row)
    }
    const PAIRS: bool = true;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run_pair<S: Lanes, T: Logits, E: Elements>(
        self,
        s: S,
        a: &mut Io<'_, T, E>,
        b: &mut Io<'_, T, E>,
    ) -> Option<(f64, f64)> {
        short::softmax_pair::<false, S, T, E>(s, a, b)
    }
}
impl RowKernel for Online {
    fn enter<S: Lanes, R: RowTask>(s: S, task: R) {
        s.vectorize(online::InOrder(task));
    }
    const MASKED: f32 = 0.0;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<T: Logits, E: Elements>(self, exec: &impl Exec, row: Io<'_, T, E>) -> f64 {
        online::softmax(exec, row)
    }
}
impl RowKernel for Blocked {
    fn enter<S: Lanes, R: RowTask>(s: S, task: R) {
        s.vectorize(blocked::InOrder(task));
    }
    const MASKED: f32 = 0.0;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<T: Logits, E: Elements>(self, exec: &impl Exec, row: Io<'_, T, E>) -> f64 {
        blocked::softmax(exec, row)
    }
}
impl RowKernel for LogSoftmax {
    fn enter<S: Lanes, R: RowTask>(s: S, task: R) {
        s.vectorize(log_softmax::InOrder(task));
    }
    const MASKED: f32 = f32::NEG_INFINITY;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<T: Logits, E: Elements>(self, exec: &impl Exec, row: Io<'_, T, E>) -> f64 {
        log_softmax(exec, row)
    }
    const PAIRS: bool = true;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run_pair<S: Lanes, T: Logits, E: Elements>(
        self,
        s: S,
        a: &mut Io<'_, T, E>,
        b: &mut Io<'_, T, E>,
    ) -> Option<(f64, f64)> {
        short::softmax_pair::<true, S, T, E>(s, a, b)
    }
}

/// The transform of each row's input into logits.
pub(crate) trait RowTransform: Copy + Send + Sync {
    type T<'a>: Logits
    where
        Self: 'a;
    /// Whether short rows under this transform go two at a time (plain
    /// rows only: every transform would multiply the code the pairing
    /// inlines).
    const PAIRS: bool = false;
    /// Row `r`'s transform.
    fn row(&self, r: usize, row_len: usize) -> Self::T<'_>;
}

#[derive(Clone, Copy)]
struct PlainRows;
#[derive(Clone, Copy)]
struct ScaledRows(Factor);
#[derive(Clone, Copy)]
struct MaskedRows<'a>(&'a RowLogits<'a>);
#[derive(Clone, Copy)]
struct BiasedRows<'a>(&'a RowLogits<'a>);

impl RowTransform for PlainRows {
    type T<'a> = Plain;
    const PAIRS: bool = true;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn row(&self, _: usize, _: usize) -> Plain {
        Plain
    }
}
impl RowTransform for ScaledRows {
    type T<'a> = Scaled;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn row(&self, _: usize, _: usize) -> Scaled {
        Scaled(self.0)
    }
}
impl RowTransform for MaskedRows<'_> {
    type T<'b>
        = Masked<'b>
    where
        Self: 'b;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn row(&self, r: usize, row_len: usize) -> Masked<'_> {
        self.0.masked(r, row_len)
    }
}

impl RowTransform for BiasedRows<'_> {
    type T<'b>
        = Biased<'b>
    where
        Self: 'b;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn row(&self, r: usize, row_len: usize) -> Biased<'_> {
        self.0.biased(r, row_len)
    }
}

/// Rows `first_row..first_row + rows` of a softmax call.
struct SoftmaxRows<'a, K, R, E: Elements> {
    io: Io<'a, Plain, E>,
    rows: usize,
    row_len: usize,
    stride: usize,
    first_row: usize,
    k: K,
    rows_t: R,
    logits: &'a RowLogits<'a>,
}

impl<'a, K, R, E: Elements> SoftmaxRows<'a, K, R, E> {
    fn new(io: Io<'a, Plain, E>, g: Geometry, k: K, rows_t: R, logits: &'a RowLogits<'a>) -> Self {
        SoftmaxRows {
            io,
            rows: g.rows,
            row_len: g.row_len,
            stride: g.stride,
            first_row: 0,
            k,
            rows_t,
            logits,
        }
    }
}

impl<K: RowKernel, R: RowTransform, E: Elements> RowTask for SoftmaxRows<'_, K, R, E> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let at = (n * self.stride).min(self.io.len());
        let (a, b) = self.io.split_at(at);
        let first = SoftmaxRows {
            io: a,
            rows: n,
            ..self
        };
        let rest = SoftmaxRows {
            io: b,
            rows: self.rows - n,
            first_row: self.first_row + n,
            ..self
        };
        (first, rest)
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(mut self, s: S) {
        let n = self.row_len;
        // Short rows go two at a time where the kernel pairs them (one
        // row's serial tail overlaps the other's work; the same bits).
        let pairs = K::PAIRS
            && R::PAIRS
            && self.logits.sinks.is_none()
            && n <= short::PAIR_MAX_VECTORS * S::LANES;
        // A loop, not a closure per row: see `kernels::Map`.
        let mut k = 0;
        while k < self.rows {
            let start = k * self.stride;
            let r = self.first_row + k;
            if pairs
                && k + 1 < self.rows
                && self.logits.active(r, n) == n
                && self.logits.active(r + 1, n) == n
            {
                let two = self.io.slice(start..start + self.stride + n);
                let (mut a, mut b) = two.split_at(self.stride);
                let (ta, tb) = (self.rows_t.row(r, n), self.rows_t.row(r + 1, n));
                let mut a = a.slice(0..n).with_logits(ta);
                let mut b = b.slice(0..n).with_logits(tb);
                if let Some((sum_a, sum_b)) = self.k.run_pair(s, &mut a, &mut b) {
                    keep_masked::<K, _, _>(a, sum_a);
                    keep_masked::<K, _, _>(b, sum_b);
                    k += 2;
                    continue;
                }
            }
            let row = self.io.slice(start..start + n);
            run_row(&Sequential(s), self.k, &self.rows_t, row, r, self.logits);
            k += 1;
        }
    }

    fn splits(&self) -> bool {
        true
    }

    fn enter<S: Lanes>(self, s: S) {
        K::enter(s, self);
    }

    #[cfg(feature = "rayon")]
    fn run_split<S: Lanes>(mut self, s: S) {
        let row = self.io.slice(0..self.row_len);
        run_row(
            &Parallel(s),
            self.k,
            &self.rows_t,
            row,
            self.first_row,
            self.logits,
        );
    }
}

/// Row `r` of the call: the causal prefix through the kernel with the row's
/// logits, the causally masked tail filled.
#[cfg_attr(not(unoptimized), inline(always))]
fn run_row<K: RowKernel, R: RowTransform, E: Elements>(
    exec: &impl Exec,
    k: K,
    rows_t: &R,
    mut row: Io<'_, Plain, E>,
    r: usize,
    logits: &RowLogits<'_>,
) {
    let row_len = row.len();
    let active = logits.active(r, row_len);
    if active < row_len {
        row.slice(active..row_len)
            .output()
            .fill(E::Out::from_f32(K::MASKED));
    }
    if active > 0 {
        let t = rows_t.row(r, row_len).slice(0..active);
        let sink = logits.sink(r);
        let sum = k.run(exec, row.slice(0..active).with_logits(t).with_sink(sink));
        keep_masked::<K, _, _>(row.slice(0..active).with_logits(t), sum);
    }
}

/// After a row whose sum is NaN (NaN reached every output), the keep
/// mask's entries are set back to exactly `K::MASKED`.
#[cfg_attr(not(unoptimized), inline(always))]
fn keep_masked<K: RowKernel, T: Logits, E: Elements>(mut row: Io<'_, T, E>, sum: f64) {
    if sum.is_nan() {
        let t = row.logits();
        let out = row.output();
        (0..out.len())
            .filter(|&i| t.is_masked(i))
            .for_each(|i| out[i] = E::Out::from_f32(K::MASKED));
    }
}

/// The temperature limits, row by row (rare: plain scalar code).
fn limit_rows<E: Elements>(call: SoftmaxCall<'_, E>) {
    let SoftmaxCall {
        log,
        mut io,
        rows,
        row_len,
        stride,
        logits,
        ..
    } = call;
    let masked_value = if log { f32::NEG_INFINITY } else { 0.0 };
    for r in 0..rows {
        let mut row = io.slice(r * stride..r * stride + row_len);
        let active = logits.active(r, row_len);
        row.slice(active..row_len)
            .output()
            .fill(E::Out::from_f32(masked_value));
        let t = logits.masked(r, row_len).slice(0..active);
        limit_row(row.slice(0..active).with_logits(t), log);
    }
}

/// The temperature limits, `c = s/t` of 0 (t = +inf) or +inf (t = 0), by
/// their definition as limits of the softmax of `x·c + a`: the mass goes to
/// the members (for c = +inf the entries at the row's largest x, for c = 0
/// every entry whose x is not −inf; never an entry the keep mask drops or
/// whose additive mask is −inf), split among them as the softmax of their
/// additive mask (equally without one). NaN in a kept entry makes the row
/// NaN; no members, all zeros. Rare, so plain scalar code in f64.
fn limit_row<E: Elements>(io: Io<'_, Masked<'_>, E>, log: bool) {
    let masked_value = if log { f32::NEG_INFINITY } else { 0.0 };
    let t = io.logits();
    let x: &Vec<f32> = &io.input_f32().iter().map(|&v| t.capped_value(v)).collect();
    let kept = |i: usize| t.keep.is_none_or(|k| k[i]);
    let add = |i: usize| f64::from(t.bias_at(i));
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
    let value = |i: usize| -> f32 {
        if !kept(i) {
            masked_value
        } else if has_nan {
            f32::NAN
        } else if !member(i) {
            masked_value
        } else if log {
            (weight_log(i) - log_total) as f32
        } else {
            (weight_log(i).exp() / total) as f32
        }
    };
    // In place, `x` is the output: compute every value before writing.
    let values: Vec<f32> = (0..x.len()).map(value).collect();
    let mut io = io;
    for (y, &v) in io.output().iter_mut().zip(&values) {
        *y = E::Out::from_f32(v);
    }
}

/// A reduction of each row of `X` values to one value.
pub(crate) trait RowReduce<X: Storage>: Copy + Send + Sync {
    type Out: Send;
    /// Must be `#[inline(always)]` (see `Lanes::vectorize`).
    fn reduce<S: Lanes>(self, s: S, row: &[X]) -> Self::Out;
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

impl<X: Storage> RowReduce<X> for Entropy {
    type Out = f32;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce<S: Lanes>(self, s: S, row: &[X]) -> f32 {
        crate::kernels::entropy::entropy(s, row)
    }
}

impl<X: Storage> RowReduce<X> for LogSumExp {
    type Out = f32;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce<S: Lanes>(self, s: S, row: &[X]) -> f32 {
        logsumexp_of(row_max_sum::<S, X, true>(s, row, &mut ()), row)
    }
}

/// The [`Partial`](crate::Partial) of a row.
#[derive(Clone, Copy)]
pub(crate) struct RowPartial;

impl RowReduce<f32> for RowPartial {
    type Out = crate::Partial;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce<S: Lanes>(self, s: S, row: &[f32]) -> crate::Partial {
        crate::Partial::of_row(
            row_max_sum::<S, f32, false>(s, row, &mut ()),
            row.iter().copied(),
        )
    }
}

/// `exp(x − m)` of a row into `output` (`input` `None`: in place); returns
/// the sum.
pub(crate) struct ExpShifted<'a> {
    pub io: Io<'a>,
    pub m: f32,
}

impl WithLanes for ExpShifted<'_> {
    type Output = f64;
    fn with<S: Lanes>(self, s: S) -> f64 {
        s.vectorize(self)
    }
}

impl Job for ExpShifted<'_> {
    type Output = f64;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(mut self, s: S) -> f64 {
        self.io
            .map_store_sum(s, ExpMinusSaturating(s.splat(self.m)))
    }
}

/// `exp(x − m)`, +inf where `x − m` is beyond the exp's domain (values
/// above `m`: the polynomial is unspecified there).
struct ExpMinusSaturating<S: Lanes>(S::V);

impl<S: Lanes> Map<S> for ExpMinusSaturating<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, x: S::V) -> S::V {
        let d = s.sub(x, self.0);
        let e = crate::exp::exp(s, d);
        // Compared as −d < −DOMAIN_MAX: NaN keeps the exp's NaN.
        let minus_d = s.sub(s.splat(0.0), d);
        let limit = -crate::exp::DOMAIN_MAX;
        let e = s.zero_where_below(minus_d, limit, e);
        s.add_where_below(e, minus_d, limit, s.splat(f32::INFINITY))
    }
}

/// `exp(x − max)·r` of a row into `output`: a shard normalized with its
/// row's merged total, as the online kernel's last pass writes it.
pub(crate) struct ExpScaled<'a> {
    pub io: Io<'a>,
    pub max: f32,
    pub r: f32,
}

impl WithLanes for ExpScaled<'_> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        s.vectorize(self)
    }
}

impl Job for ExpScaled<'_> {
    type Output = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(mut self, s: S) {
        let (max, r) = (s.splat(self.max), s.splat(self.r));
        self.io.map_store(s, ExpMinusTimes(max, r, Plain));
    }
}

impl<X: Storage> RowReduce<X> for ArgMax {
    type Out = Option<usize>;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce<S: Lanes>(self, s: S, row: &[X]) -> Option<usize> {
        argmax(s, row)
    }
}

/// `r` of every row of `input` (rows of `row_len`) into `output`, one
/// value per row.
pub(crate) struct ReduceCall<'a, X: Storage, R: RowReduce<X>> {
    pub r: R,
    pub input: &'a [X],
    pub row_len: usize,
    pub output: &'a mut [R::Out],
}

impl<X: Storage, R: RowReduce<X>> WithLanes for ReduceCall<'_, X, R> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        let row_len = self.row_len;
        driver::run(s, self, row_len);
    }
}

impl<X: Storage, R: RowReduce<X>> RowTask for ReduceCall<'_, X, R> {
    fn rows(&self) -> usize {
        self.output.len()
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let (ia, ib) = self.input.split_at(n * self.row_len);
        let (oa, ob) = self.output.split_at_mut(n);
        let part = |input, output| ReduceCall {
            r: self.r,
            input,
            row_len: self.row_len,
            output,
        };
        (part(ia, oa), part(ib, ob))
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) {
        for (row, out) in self.input.chunks_exact(self.row_len).zip(self.output) {
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
    #[cfg_attr(not(unoptimized), inline(always))]
    fn row<S: Lanes>(self, s: S, a: &[f32], b: &[f32], out: &mut [f32]) {
        backward::softmax_backward(s, a, b, out);
    }
}

impl PairRowOp for LogSoftmaxBackward {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn row<S: Lanes>(self, s: S, a: &[f32], b: &[f32], out: &mut [f32]) {
        backward::log_softmax_backward(s, a, b, out);
    }
}

/// `op` on every row of `a`, `b` into `out` (all of one length, a multiple
/// of `row_len`).
pub(crate) struct PairCall<'a, P> {
    pub op: P,
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub out: &'a mut [f32],
    pub row_len: usize,
}

impl<P: PairRowOp> WithLanes for PairCall<'_, P> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        let row_len = self.row_len;
        driver::run(s, self, row_len);
    }
}

impl<P: PairRowOp> RowTask for PairCall<'_, P> {
    fn rows(&self) -> usize {
        self.a.len() / self.row_len
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let at = n * self.row_len;
        let (a0, a1) = self.a.split_at(at);
        let (b0, b1) = self.b.split_at(at);
        let (o0, o1) = self.out.split_at_mut(at);
        let part = |a, b, out| PairCall {
            op: self.op,
            a,
            b,
            out,
            row_len: self.row_len,
        };
        (part(a0, b0, o0), part(a1, b1, o1))
    }

    #[cfg_attr(not(unoptimized), inline(always))]
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

/// Our `exp` of every input value into the output (the exp's own tests);
/// `exp::exp_for_sum` when `FOR_SUM`.
pub(crate) struct ExpCall<'a, const FOR_SUM: bool>(pub Io<'a>);

/// Our `tanh` of every input value into the output (its own tests).
pub(crate) struct TanhCall<'a>(pub Io<'a>);

impl WithLanes for TanhCall<'_> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        s.vectorize(self);
    }
}

impl Job for TanhCall<'_> {
    type Output = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(mut self, s: S) {
        self.0.map_store(s, TanhMap);
    }
}

struct TanhMap;

impl<S: Lanes> Map<S> for TanhMap {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, x: S::V) -> S::V {
        s.tanh(x)
    }
}

impl<const FOR_SUM: bool> WithLanes for ExpCall<'_, FOR_SUM> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        s.vectorize(self);
    }
}

impl<const FOR_SUM: bool> crate::lanes::Job for ExpCall<'_, FOR_SUM> {
    type Output = ();
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(mut self, s: S) {
        self.0.map_store(s, ExpMap::<FOR_SUM>);
    }
}

struct ExpMap<const FOR_SUM: bool>;

impl<S: Lanes, const FOR_SUM: bool> crate::kernels::Map<S> for ExpMap<FOR_SUM> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, x: S::V) -> S::V {
        if FOR_SUM {
            crate::exp::exp_for_sum(s, x)
        } else {
            crate::exp::exp(s, x)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::Pair;
    use crate::lanes::Portable;

    /// A storage type the kernels have never seen: f32 behind a newtype,
    /// loaded and stored through a copy. If the kernels read and wrote rows
    /// anywhere but through `Storage`, this would not compile or would
    /// differ.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Stored(f32);

    impl Storage for Stored {
        // f32 behind a newtype: it takes the f32 rows' kernels.
        const IS_F32: bool = true;
        fn load<S: Lanes>(s: S, x: &[Self]) -> S::V {
            let v: Vec<f32> = x[..S::LANES].iter().map(|v| v.0).collect();
            s.load(&v)
        }
        fn load_partial<S: Lanes>(s: S, x: &[Self], fill: f32) -> S::V {
            let v: Vec<f32> = x.iter().map(|v| v.0).collect();
            s.load_partial(&v, fill)
        }
        fn store<S: Lanes>(s: S, v: S::V, y: &mut [Self]) {
            let mut out = vec![0.0f32; S::LANES];
            s.store(v, &mut out);
            y[..S::LANES].iter_mut().zip(out).for_each(|(y, v)| y.0 = v);
        }
        fn store_partial<S: Lanes>(s: S, v: S::V, y: &mut [Self]) {
            let mut out = vec![0.0f32; y.len()];
            s.store_partial(v, &mut out);
            y.iter_mut().zip(out).for_each(|(y, v)| y.0 = v);
        }
        fn to_f32(self) -> f32 {
            self.0
        }
        fn from_f32(v: f32) -> Self {
            Stored(v)
        }
    }

    fn call<'a, E: Elements>(
        io: Io<'a, Plain, E>,
        algorithm: Algorithm,
        log: bool,
        rows: usize,
        row_len: usize,
        logits: RowLogits<'a>,
    ) -> SoftmaxCall<'a, E> {
        SoftmaxCall {
            algorithm,
            log,
            io,
            rows,
            row_len,
            stride: row_len,
            logits,
        }
    }

    /// Softmax and log-softmax rows through the element seam give the f32
    /// path's bits: another storage type in, in place, and out.
    #[test]
    fn another_element_type_runs_through_the_same_kernels() {
        let (rows, row_len) = (3usize, 2500usize);
        let x: Vec<f32> = (0..rows * row_len)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.01 - 5.0)
            .collect();
        let keep: Vec<bool> = (0..row_len).map(|i| i % 11 != 4).collect();
        let settings = [
            RowLogits {
                c: 1.0,
                keep: None,
                add: None,
                causal: None,
                layout: None,
                alibi: None,
                row_base: 0,
                sinks: None,
                softcap: None,
            },
            RowLogits {
                c: 0.7,
                keep: Some(&keep),
                add: None,
                causal: Some(1000),
                layout: None,
                alibi: None,
                row_base: 0,
                sinks: None,
                softcap: None,
            },
            RowLogits {
                c: f64::INFINITY,
                keep: None,
                add: None,
                causal: None,
                layout: None,
                alibi: None,
                row_base: 0,
                sinks: None,
                softcap: None,
            },
        ];
        let stored: Vec<Stored> = x.iter().map(|&v| Stored(v)).collect();
        // One backend: the seam is the same generic code on each, and every
        // backend more would compile the whole kernel tree twice more into
        // this test binary (minutes of CI). The f32 rows it is compared
        // with run on every backend in the integration tests.
        let lanes = Portable;
        for algorithm in [Algorithm::ThreePass, Algorithm::Online, Algorithm::Blocked] {
            for log in [false, true] {
                for logits in settings {
                    let mut want = vec![0.0f32; x.len()];
                    let io = Io::new(Some(&x), &mut want);
                    call(io, algorithm, log, rows, row_len, logits).with(lanes);
                    // Stored in, f32 out.
                    let mut out = vec![0.0f32; x.len()];
                    let io = Io::<Plain, Pair<Stored, f32>>::of(Some(&stored), &mut out);
                    call(io, algorithm, log, rows, row_len, logits).with(lanes);
                    let what = format!("{algorithm:?} log={log} c={}", logits.c);
                    assert_eq!(
                        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{what}: stored in"
                    );
                    // Stored, in place.
                    let mut data = stored.clone();
                    let io = Io::<Plain, Pair<Stored, Stored>>::of(None, &mut data);
                    call(io, algorithm, log, rows, row_len, logits).with(lanes);
                    assert!(
                        data.iter()
                            .zip(&want)
                            .all(|(a, b)| a.0.to_bits() == b.to_bits()),
                        "{what}: stored in place"
                    );
                }
            }
        }
    }
}
