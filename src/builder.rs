//! The `Softmax` builder: algorithm, backend, row stride and, only where
//! they apply, the logit settings (temperature, scale, masks, causal).
//!
//! The settings are a type parameter: `Softmax` (no settings) has every
//! operation, and the first setting turns it into a
//! `Softmax<LogitSettings>`, which has only the operations that apply
//! them (softmax and log-softmax). A reduction or backward pass cannot be
//! called with settings it would ignore:
//!
//! ```compile_fail
//! let mut out = [None];
//! simd_softmax::Softmax::new().causal(0).run_argmax_rows(&[1.0], 1, &mut out);
//! ```
//!
//! ```compile_fail
//! let mut lse = [0.0f32];
//! simd_softmax::Softmax::new().temperature(2.0).run_logsumexp_rows(&[1.0], 1, &mut lse);
//! ```
//!
//! (Without the setting both compile:)
//!
//! ```
//! let (mut out, mut lse) = ([None], [0.0f32]);
//! simd_softmax::Softmax::new().run_argmax_rows(&[1.0], 1, &mut out)?;
//! simd_softmax::Softmax::new().run_logsumexp_rows(&[1.0], 1, &mut lse)?;
//! # Ok::<(), simd_softmax::Error>(())
//! ```

use crate::attention::{Alibi, Attention};
use crate::dispatch::{self, Backend, try_backend};
use crate::element::{Element, Slice, SliceMut, Storage};
use crate::error::{Argument, Mask, Parameter};
use crate::kernels::Io;
use crate::ops::{
    self, ArgMax, Entropy, ExpScaled, ExpShifted, LogSoftmaxBackward, LogSumExp, PairCall,
    PairRowOp, ReduceCall, RowLogits, RowPartial, RowReduce, SoftmaxBackward, SoftmaxShape,
};
use crate::{Algorithm, CrossEntropy, CrossEntropyOptions, Error, Partial, RowPart, driver, shape};
use half::{bf16, f16};

/// A configured softmax: algorithm, backend, row stride, and (see
/// [`LogitSettings`]) how the input becomes logits.
///
/// ```
/// use simd_softmax::{Algorithm, Backend, Softmax};
/// let sm = Softmax::new().algorithm(Algorithm::Online).backend(Backend::Portable);
/// let mut p = [0.0f32; 3];
/// sm.run(&[1.0, 2.0, 3.0], &mut p)?;
/// let hot = Softmax::new().temperature(0.5); // a Softmax<LogitSettings>
/// hot.run(&[1.0, 2.0, 3.0], &mut p)?;
/// # Ok::<(), simd_softmax::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Softmax<L = NoSettings> {
    algorithm: Algorithm,
    backend: Option<Backend>,
    stride: Option<usize>,
    settings: L,
}

/// The logits are the input as it is: every operation applies.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSettings;

/// Temperature, scale, masks and causal offset: what softmax and
/// log-softmax apply to the input (see [`Softmax::temperature`] and the
/// other setters). Start from the default with [`Softmax::settings`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LogitSettings<'m> {
    temperature: Option<f32>,
    scale: Option<f32>,
    keep_mask: Option<&'m [bool]>,
    additive_mask: Option<Slice<'m>>,
    causal: Option<isize>,
    /// The causal offset is `keys − queries`.
    causal_end: bool,
    attention: Option<Attention>,
    alibi: Option<f32>,
    sinks: Option<&'m [f32]>,
    softcap: Option<f32>,
}

/// The two setting states of [`Softmax`] (sealed).
pub trait Settings: Copy + private::Sealed {
    #[doc(hidden)]
    fn logits(&self) -> LogitSettings<'_>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::NoSettings {}
    impl Sealed for super::LogitSettings<'_> {}
}

impl Settings for NoSettings {
    fn logits(&self) -> LogitSettings<'_> {
        LogitSettings::default()
    }
}

impl Settings for LogitSettings<'_> {
    fn logits(&self) -> LogitSettings<'_> {
        *self
    }
}

impl Softmax {
    /// `Auto` algorithm on the active backend ([`crate::backend`]),
    /// contiguous rows, logits as given.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same builder with `settings` (for applying settings
    /// conditionally: `let mut sm = Softmax::new().settings(Default::default());`).
    pub fn settings<'m>(self, settings: LogitSettings<'m>) -> Softmax<LogitSettings<'m>> {
        Softmax {
            algorithm: self.algorithm,
            backend: self.backend,
            stride: self.stride,
            settings,
        }
    }

    /// See [`Softmax::<LogitSettings>::temperature`](Softmax::temperature-1).
    pub fn temperature<'m>(self, t: f32) -> Softmax<LogitSettings<'m>> {
        self.settings(LogitSettings::default()).temperature(t)
    }

    /// See [`Softmax::<LogitSettings>::scale`](Softmax::scale-1).
    pub fn scale<'m>(self, s: f32) -> Softmax<LogitSettings<'m>> {
        self.settings(LogitSettings::default()).scale(s)
    }

    /// See [`Softmax::<LogitSettings>::additive_mask`](Softmax::additive_mask-1).
    pub fn additive_mask<M: Element>(self, mask: &[M]) -> Softmax<LogitSettings<'_>> {
        self.settings(LogitSettings::default()).additive_mask(mask)
    }

    /// See [`Softmax::<LogitSettings>::keep_mask`](Softmax::keep_mask-1).
    pub fn keep_mask(self, mask: &[bool]) -> Softmax<LogitSettings<'_>> {
        self.settings(LogitSettings::default()).keep_mask(mask)
    }

    /// See [`Softmax::<LogitSettings>::causal`](Softmax::causal-1).
    pub fn causal<'m>(self, offset: isize) -> Softmax<LogitSettings<'m>> {
        self.settings(LogitSettings::default()).causal(offset)
    }

    /// See [`Softmax::<LogitSettings>::causal_end`](Softmax::causal_end-1).
    pub fn causal_end<'m>(self) -> Softmax<LogitSettings<'m>> {
        self.settings(LogitSettings::default()).causal_end()
    }

    /// See [`Softmax::<LogitSettings>::attention`](Softmax::attention-1).
    pub fn attention<'m>(self, shape: Attention) -> Softmax<LogitSettings<'m>> {
        self.settings(LogitSettings::default()).attention(shape)
    }

    /// See [`Softmax::<LogitSettings>::softcap`](Softmax::softcap-1).
    pub fn softcap<'m>(self, c: f32) -> Softmax<LogitSettings<'m>> {
        self.settings(LogitSettings::default()).softcap(c)
    }

    /// See [`Softmax::<LogitSettings>::sinks`](Softmax::sinks-1).
    pub fn sinks(self, sinks: &[f32]) -> Softmax<LogitSettings<'_>> {
        self.settings(LogitSettings::default()).sinks(sinks)
    }
}

impl<'m> Softmax<LogitSettings<'m>> {
    /// Divide the logits by `t > 0`. `t = 0` is the limit t → 0: all the
    /// mass on the largest logits, split equally among ties; `t = +inf` is
    /// the limit t → ∞: uniform over the entries that are not −inf. Under
    /// masks, the limits take only the entries the masks keep (and whose
    /// additive mask is not −inf), and an additive mask splits the mass
    /// among them as its own softmax, as the limit does. A negative or NaN
    /// `t` makes every call an [`Error::InvalidParameter`]. A scale so
    /// large, or a temperature so small, that `s/t` exceeds f32 is the
    /// t → 0 limit.
    pub fn temperature(mut self, t: f32) -> Self {
        self.settings.temperature = Some(t);
        self
    }

    /// Multiply the logits by `s` (finite, `s > 0`; e.g. attention's
    /// `1/√d`). With a temperature the factor is `s/t`, applied as
    /// `(x − max)·(s/t)`.
    pub fn scale(mut self, s: f32) -> Self {
        self.settings.scale = Some(s);
        self
    }

    /// Add `mask` to the scaled logits: the logit of entry `i` is the f32
    /// `x_i·(s/t) + mask_i` (one rounding where the backend has FMA, two
    /// without). IEEE arithmetic: −inf masks an entry, and an infinite
    /// `x_i` plus the opposite infinity is NaN; a logit beyond f32 is ±inf,
    /// and a finite `x_i` plus an infinite `mask_i` is `mask_i` on every
    /// backend (as FMA gives it), even where `x_i·(s/t)` alone overflows.
    /// `mask` holds one row, used for every row, or one value per element
    /// of the rows (`rows·row_len`, also with a row stride).
    ///
    /// The mask may be f32, f16 or bf16 (ggml's attention masks are f16):
    /// a 16-bit mask's values convert exactly, and it is converted into an
    /// f32 copy once per call (not per row), then read as an f32 mask: for
    /// a mask broadcast over heads and batches (`[q, k]`) a small share of
    /// the call, for one value per element a pass over the mask.
    pub fn additive_mask<M: Element>(mut self, mask: &'m [M]) -> Self {
        self.settings.additive_mask = Some(M::slice(mask));
        self
    }

    /// Keep only the entries whose flag is `true`: the others get exactly 0
    /// probability (−inf log-probability), whatever their value, NaN
    /// included. One row of flags for every row, or one flag per element
    /// of the rows.
    pub fn keep_mask(mut self, mask: &'m [bool]) -> Self {
        self.settings.keep_mask = Some(mask);
        self
    }

    /// Attention's causal mask: row `i` (counted from 0 over the call)
    /// keeps columns `j ≤ i + offset` and gives the others exactly 0
    /// probability (−inf log-probability); a row that keeps no column is
    /// all zeros (all −inf).
    pub fn causal(mut self, offset: isize) -> Self {
        self.settings.causal = Some(offset);
        self.settings.causal_end = false;
        self
    }

    /// The causal mask aligned to the last column: with `q` rows (the
    /// attention layout's queries, else the call's rows) of `k` columns,
    /// [`causal`](Self::causal) with `offset = k − q`, so that the last row
    /// keeps every column: queries at the end of a KV cache.
    pub fn causal_end(mut self) -> Self {
        self.settings.causal = None;
        self.settings.causal_end = true;
        self
    }

    /// The rows are attention scores laid out as `shape` says
    /// ([`Attention`]): `run_rows` and kin then take exactly
    /// `shape.rows()` rows of `shape.keys` values (else
    /// [`Error::AttentionShape`]), masks may be broadcast over batch and
    /// heads, the causal mask counts queries within each (batch, head)
    /// block, and [`alibi`](Self::alibi) knows the heads.
    ///
    /// ```
    /// use simd_softmax::{Attention, Softmax};
    /// let shape = Attention::new(1, 2, 2, 3); // 2 heads, 2 queries, 3 keys
    /// let scores = [0.0f32; 12];
    /// let mut p = [0.0f32; 12];
    /// Softmax::new().attention(shape).causal_end().run_rows(&scores, &mut p, 3)?;
    /// // Query 0 of each head sees keys 0..=1, query 1 all three.
    /// assert_eq!(&p[..6], &[0.5, 0.5, 0.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
    /// # Ok::<(), simd_softmax::Error>(())
    /// ```
    pub fn attention(mut self, shape: Attention) -> Self {
        self.settings.attention = Some(shape);
        self
    }

    /// ALiBi as ggml applies it: the additive mask of head `h` is
    /// multiplied by its slope ([`alibi_slope`](crate::alibi_slope)`(max_bias,
    /// heads, h)`, heads from the [`attention`](Self::attention) layout, 1
    /// without one), so the logit is `x·(s/t) + slope·mask`, the product
    /// rounded to f32 first. Needs an additive mask (the slope multiplies
    /// it: ggml's ALiBi mask holds the key positions) and a finite
    /// `max_bias ≥ 0` (0: every slope is 1), else
    /// [`Error::InvalidParameter`].
    pub fn alibi(mut self, max_bias: f32) -> Self {
        self.settings.alibi = Some(max_bias);
        self
    }

    /// Attention sinks (gpt-oss, ggml's `ggml_soft_max_add_sinks`, ONNX
    /// Runtime's `Sink`): one logit per head (the
    /// [`attention`](Self::attention) layout's heads; one for every row
    /// without one) that joins each of its rows' softmax and takes
    /// probability mass but has no output entry:
    /// `p_i = exp(w_i)/(Σ_j exp(w_j) + exp(sink))`, the sink compared with
    /// the logits `w` after scale, temperature and masks. A sink of −inf
    /// changes nothing, NaN makes its rows NaN, +inf takes all the mass
    /// (zeros; shared equally with the row's own +inf logits if it has
    /// any). Log-softmax subtracts the same log-sum. Under the temperature
    /// limits (0, +inf) sinks take no mass. A slice of another length is
    /// [`Error::SliceLength`].
    pub fn sinks(mut self, sinks: &'m [f32]) -> Self {
        self.settings.sinks = Some(sinks);
        self
    }

    /// Soft-cap the input at `±c` before everything else: `x` becomes
    /// `c·tanh(x/c)` (Gemma 2: 50 on attention scores, 30 on the final
    /// logits), then scale, temperature, masks and sinks apply as usual.
    /// +inf caps to `c`; −inf stays −inf (an entry masked before the cap
    /// stays masked); NaN stays NaN. The cap is computed in f32 with our
    /// tanh (within 3 ULP, checked on every f32): each capped value within
    /// `8·2^-24·|c·tanh(x/c)|` of the exact one, which the softmax bound
    /// adds to the logit's term ([`reference::Expected`](crate::reference::Expected)).
    /// `c` must be finite and > 0, else [`Error::InvalidParameter`].
    pub fn softcap(mut self, c: f32) -> Self {
        self.settings.softcap = Some(c);
        self
    }
}

impl<L: Settings> Softmax<L> {
    /// Use `algorithm` for every softmax row (the other operations have
    /// one algorithm each). Rows under a keep or additive mask or a soft
    /// cap run [`Algorithm::ThreePass`] whatever this says (see
    /// [`Algorithm`]); rows of f16 or bf16 in and out run theirs.
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Use `backend` instead of the active one; a call fails with
    /// [`Error::BackendUnavailable`] if the CPU lacks it.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Rows start every `stride` values (`stride ≥ row_len`) in both input
    /// and output, for [`run_rows`](Self::run_rows),
    /// [`run_rows_in_place`](Self::run_rows_in_place),
    /// [`run_log_rows`](Self::run_log_rows) and
    /// [`run_log_rows_in_place`](Self::run_log_rows_in_place): row `r` is
    /// `data[r·stride..r·stride + row_len]`, the data holds `rows·stride`
    /// or `(rows − 1)·stride + row_len` values, and the values between
    /// rows are never read or written (a KV cache's padding, ggml's
    /// `nb01`). Results are those of the same rows stored contiguously.
    ///
    /// ```
    /// let x = [1.0f32, 2.0, 99.0, 3.0, 3.0];
    /// let mut y = [7.0f32; 5];
    /// simd_softmax::Softmax::new().row_stride(3).run_rows(&x, &mut y, 2)?;
    /// assert_eq!(y[2], 7.0); // between the rows: untouched
    /// assert_eq!(&y[3..], &[0.5, 0.5]);
    /// # Ok::<(), simd_softmax::Error>(())
    /// ```
    pub fn row_stride(mut self, stride: usize) -> Self {
        self.stride = Some(stride);
        self
    }

    /// The backend this builder's calls run on, checked.
    pub(crate) fn resolved_backend(&self) -> Result<Backend, Error> {
        match self.backend {
            Some(b) => b.check(),
            None => try_backend(),
        }
    }

    /// Softmax of one row into `output` (same length). The same
    /// [`Element`] type in and out, or f16 or bf16 in and f32 out (the
    /// other pairs are [`Error::UnsupportedElements`] for now): a 16-bit
    /// output is the f32 result rounded once to its type; a 16-bit input
    /// into f32 gives the bits of the f32 call on the converted values.
    ///
    /// ```
    /// use half::bf16;
    /// let x = [bf16::from_f32(1.0), bf16::from_f32(2.0)];
    /// let mut p = [0.0f32; 2]; // bf16 logits, f32 probabilities
    /// simd_softmax::Softmax::new().run(&x, &mut p)?;
    /// assert!((p[1] - 0.7310586).abs() < 1e-6);
    /// # Ok::<(), simd_softmax::Error>(())
    /// ```
    pub fn run<X: Element, Y: Element>(&self, input: &[X], output: &mut [Y]) -> Result<(), Error> {
        self.softmax_call(false, Some(X::slice(input)), Y::slice_mut(output), None)
    }

    /// Softmax of one row, in place.
    pub fn run_in_place<E: Element>(&self, data: &mut [E]) -> Result<(), Error> {
        self.softmax_call(false, None, E::slice_mut(data), None)
    }

    /// Softmax of each row of `row_len` values, rows in parallel on the
    /// current rayon pool.
    pub fn run_rows<X: Element, Y: Element>(
        &self,
        input: &[X],
        output: &mut [Y],
        row_len: usize,
    ) -> Result<(), Error> {
        self.softmax_call(
            false,
            Some(X::slice(input)),
            Y::slice_mut(output),
            Some(row_len),
        )
    }

    /// Softmax of each row of `row_len` values, in place, rows in parallel.
    pub fn run_rows_in_place<E: Element>(
        &self,
        data: &mut [E],
        row_len: usize,
    ) -> Result<(), Error> {
        self.softmax_call(false, None, E::slice_mut(data), Some(row_len))
    }

    /// Log-softmax of one row into `output` (same length):
    /// `(x − max) − ln Σ exp(x − max)`. One online pass finds max and sum,
    /// one pass writes (the algorithm setting is softmax's).
    pub fn run_log<X: Element, Y: Element>(
        &self,
        input: &[X],
        output: &mut [Y],
    ) -> Result<(), Error> {
        self.softmax_call(true, Some(X::slice(input)), Y::slice_mut(output), None)
    }

    /// Log-softmax of one row, in place.
    pub fn run_log_in_place<E: Element>(&self, data: &mut [E]) -> Result<(), Error> {
        self.softmax_call(true, None, E::slice_mut(data), None)
    }

    /// Log-softmax of each row of `row_len` values, rows in parallel.
    pub fn run_log_rows<X: Element, Y: Element>(
        &self,
        input: &[X],
        output: &mut [Y],
        row_len: usize,
    ) -> Result<(), Error> {
        self.softmax_call(
            true,
            Some(X::slice(input)),
            Y::slice_mut(output),
            Some(row_len),
        )
    }

    /// Log-softmax of each row of `row_len` values, in place, rows in parallel.
    pub fn run_log_rows_in_place<E: Element>(
        &self,
        data: &mut [E],
        row_len: usize,
    ) -> Result<(), Error> {
        self.softmax_call(true, None, E::slice_mut(data), Some(row_len))
    }

    /// Softmax of the rows of `part` of a batch of rows of `row_len`
    /// values, on the calling thread with no rayon involved: the call an
    /// engine's own thread `(ith, nth)` makes, with
    /// `RowPart::new(ith, nth)`. `input` is the whole batch; `output`
    /// holds only the part's rows ([`RowPart::rows`]), laid out as in the
    /// input (the builder's row stride; the gap after its last row
    /// optional). Masks and the causal offset apply as in the whole call,
    /// and the algorithm is the whole call's: the parts together write
    /// exactly the bits of [`Softmax::run_rows`] on the batch.
    ///
    /// ```
    /// use simd_softmax::{RowPart, Softmax};
    /// let x: Vec<f32> = (0..12).map(|i| i as f32).collect(); // 4 rows of 3
    /// let mut whole = vec![0.0f32; 12];
    /// Softmax::new().run_rows(&x, &mut whole, 3)?;
    /// let mut y = vec![0.0f32; 12];
    /// let (first, second) = y.split_at_mut(6); // 2 parts of 2 rows
    /// std::thread::scope(|scope| {
    ///     for (ith, out) in [first, second].into_iter().enumerate() {
    ///         let x = &x;
    ///         scope.spawn(move || {
    ///             let part = RowPart::new(ith, 2)?;
    ///             Softmax::new().run_rows_part(x, out, 3, part)
    ///         });
    ///     }
    /// });
    /// assert_eq!(y, whole);
    /// # Ok::<(), simd_softmax::Error>(())
    /// ```
    pub fn run_rows_part<X: Element, Y: Element>(
        &self,
        input: &[X],
        output: &mut [Y],
        row_len: usize,
        part: RowPart,
    ) -> Result<(), Error> {
        let input = Some(X::slice(input));
        self.softmax_part_call(false, input, Y::slice_mut(output), row_len, None, part)
    }

    /// [`Softmax::run_rows_part`] in place: `data` holds the part's rows
    /// of a batch of `rows` rows.
    pub fn run_rows_part_in_place<E: Element>(
        &self,
        data: &mut [E],
        row_len: usize,
        rows: usize,
        part: RowPart,
    ) -> Result<(), Error> {
        let data = E::slice_mut(data);
        self.softmax_part_call(false, None, data, row_len, Some(rows), part)
    }

    /// Log-softmax of the rows of `part` of a batch, as
    /// [`Softmax::run_rows_part`].
    pub fn run_log_rows_part<X: Element, Y: Element>(
        &self,
        input: &[X],
        output: &mut [Y],
        row_len: usize,
        part: RowPart,
    ) -> Result<(), Error> {
        let input = Some(X::slice(input));
        self.softmax_part_call(true, input, Y::slice_mut(output), row_len, None, part)
    }

    /// [`Softmax::run_log_rows_part`] in place, as
    /// [`Softmax::run_rows_part_in_place`].
    pub fn run_log_rows_part_in_place<E: Element>(
        &self,
        data: &mut [E],
        row_len: usize,
        rows: usize,
        part: RowPart,
    ) -> Result<(), Error> {
        let data = E::slice_mut(data);
        self.softmax_part_call(true, None, data, row_len, Some(rows), part)
    }

    /// Every part call: the part's rows as a call of their own (masks
    /// sliced, the causal offset moved to their first row) with the whole
    /// batch's algorithm, on this thread. `rows` is the batch's for in
    /// place (`input` `None`); otherwise the input's.
    fn softmax_part_call(
        &self,
        log: bool,
        input: Option<Slice<'_>>,
        output: SliceMut<'_>,
        row_len: usize,
        rows: Option<usize>,
        part: RowPart,
    ) -> Result<(), Error> {
        ops::check_types(input.as_ref(), &output)?;
        let stride = self.stride.unwrap_or(row_len);
        let rows = match (&input, rows) {
            (Some(input), _) => shape::strided_rows(input.len(), row_len, stride)?,
            (None, rows) => {
                if stride != row_len && (row_len == 0 || stride < row_len) {
                    return Err(Error::RowStride { stride, row_len });
                }
                rows.unwrap_or(0)
            }
        };
        let range = part.rows(rows);
        let part_rows = range.len();
        let len = if part_rows == 0 {
            0
        } else {
            (part_rows - 1) * stride + row_len
        };
        let wrong_output = Error::SliceLength {
            name: Argument::Output,
            len: output.len(),
            expected: len,
        };
        if shape::strided_rows(output.len(), row_len, stride).ok() != Some(part_rows) {
            return Err(wrong_output);
        }
        let concrete = Softmax {
            algorithm: self.algorithm,
            backend: self.backend,
            stride: self.stride,
            settings: self.settings.logits(),
        };
        let input = input.map(|x| x.range(range.start * stride..range.start * stride + len));
        let output = output.prefix(len);
        let batch = Batch {
            rows,
            first_row: range.start,
        };
        driver::on_this_thread(|| {
            concrete.run_softmax(log, input, output, part_rows, row_len, stride, batch)
        })
    }

    /// Every softmax and log-softmax call: `input` `None` is in place; rows
    /// of `row_len` (with the builder's stride), or `None` for one row.
    fn softmax_call(
        &self,
        log: bool,
        input: Option<Slice<'_>>,
        output: SliceMut<'_>,
        row_len: Option<usize>,
    ) -> Result<(), Error> {
        let len = output.len();
        ops::check_types(input.as_ref(), &output)?;
        if let Some(input) = &input {
            shape::same_length(input.len(), len)?;
        }
        let (rows, row_len, stride) = match row_len {
            None => (usize::from(len > 0), len, len),
            Some(row_len) => {
                let stride = self.stride.unwrap_or(row_len);
                (shape::strided_rows(len, row_len, stride)?, row_len, stride)
            }
        };
        let concrete = Softmax {
            algorithm: self.algorithm,
            backend: self.backend,
            stride: self.stride,
            settings: self.settings.logits(),
        };
        let batch = Batch { rows, first_row: 0 };
        concrete.run_softmax(log, input, output, rows, row_len, stride, batch)
    }
}

impl Softmax<LogitSettings<'_>> {
    /// The body of every softmax and log-softmax call. Not generic, so the
    /// kernels under it are compiled here, once, at this crate's
    /// optimisation level: a generic body would be compiled again in every
    /// crate that calls the builder (at that crate's opt-level, so slow in
    /// its debug builds). The rows are `batch`'s from its `first_row` on
    /// (a part of a batch): settings and the algorithm are the batch's.
    #[allow(clippy::too_many_arguments)]
    fn run_softmax(
        &self,
        log: bool,
        input: Option<Slice<'_>>,
        output: SliceMut<'_>,
        rows: usize,
        row_len: usize,
        stride: usize,
        batch: Batch,
    ) -> Result<(), Error> {
        // A 16-bit mask as f32, once per call.
        let converted: Vec<f32>;
        let add = match self.settings.additive_mask {
            None => None,
            Some(Slice::F32(mask)) => Some(mask),
            Some(mask) => {
                converted = mask.to_f32_vec();
                Some(&converted[..])
            }
        };
        let logits = row_logits(&self.settings, add, batch, row_len)?;
        let backend = self.resolved_backend()?;
        if rows == 0 {
            return Ok(());
        }
        let algorithm = self
            .algorithm
            .resolve(batch.rows.saturating_mul(row_len), row_len);
        let shape = SoftmaxShape {
            algorithm,
            log,
            rows,
            row_len,
            stride,
            logits,
        };
        ops::softmax_typed(backend, shape, input, output)
    }
}

impl Softmax {
    /// The lowest index of the largest value of each row of `row_len`
    /// values into `output` (one entry per row, `None` for a row holding
    /// NaN), rows in parallel.
    pub fn run_argmax_rows<E: Element>(
        &self,
        input: &[E],
        row_len: usize,
        output: &mut [Option<usize>],
    ) -> Result<(), Error> {
        self.reduce_typed(ArgMax, E::slice(input), row_len, output)
    }

    /// The entropy of the softmax of each row of `row_len` values into
    /// `output` (one value per row), rows in parallel. See [`crate::entropy`].
    pub fn run_entropy_rows<E: Element>(
        &self,
        input: &[E],
        row_len: usize,
        output: &mut [f32],
    ) -> Result<(), Error> {
        self.reduce_typed(Entropy, E::slice(input), row_len, output)
    }

    /// The [`Partial`] of one row; see [`crate::partial`].
    pub fn run_partial(&self, row: &[f32]) -> Result<Partial, Error> {
        let mut total = [Partial::EMPTY];
        if row.is_empty() {
            self.resolved_backend()?;
            return Ok(Partial::EMPTY);
        }
        self.reduce_rows(RowPartial, row, row.len(), &mut total)?;
        Ok(total[0])
    }

    /// The [`Partial`] of each row of `row_len` values into `output`, rows
    /// in parallel; see [`crate::partial_rows`].
    pub fn run_partial_rows(
        &self,
        input: &[f32],
        row_len: usize,
        output: &mut [Partial],
    ) -> Result<(), Error> {
        self.reduce_rows(RowPartial, input, row_len, output)
    }

    /// Softmax of one shard of a row whose [`Partial`]s were merged into
    /// `total` (the row's, from every shard): `output[i] = exp(x_i −
    /// max)/sum`. With a total that is not finite, what softmax gives such
    /// a row: NaN everywhere for a NaN total, `1/k` at each +inf value for
    /// `k` of them (0 elsewhere), zeros for no mass. Within the core
    /// bound of the whole row's softmax when the total is the merge of its
    /// shards' partials; shards cut at multiples of [`crate::FIXED_PART_LEN`]
    /// and merged from the first on give the bits of one
    /// `Algorithm::Online` call.
    pub fn run_with(&self, input: &[f32], output: &mut [f32], total: Partial) -> Result<(), Error> {
        shape::same_length(input.len(), output.len())?;
        self.normalize_call(Io::new(Some(input), output), total)
    }

    /// [`Softmax::run_with`] in place.
    pub fn run_with_in_place(&self, data: &mut [f32], total: Partial) -> Result<(), Error> {
        self.normalize_call(Io::new(None, data), total)
    }

    fn normalize_call(&self, mut io: Io<'_>, total: Partial) -> Result<(), Error> {
        let backend = self.resolved_backend()?;
        if !total.is_finite() {
            let values: Vec<f32> = io.input().iter().map(|&x| total.special_value(x)).collect();
            io.output().copy_from_slice(&values);
            return Ok(());
        }
        let call = ExpScaled {
            io,
            max: total.max(),
            r: (1.0 / total.sum()) as f32,
        };
        dispatch::run(backend, call)
    }

    /// [`crate::exp_shifted`] (`input` `None`: in place).
    pub(crate) fn exp_shifted_call(
        &self,
        input: Option<&[f32]>,
        output: &mut [f32],
        m: f32,
    ) -> Result<f64, Error> {
        if let Some(input) = input {
            shape::same_length(input.len(), output.len())?;
        }
        if !m.is_finite() {
            return Err(Error::InvalidParameter {
                name: Parameter::Shift,
                value: f64::from(m),
            });
        }
        let backend = self.resolved_backend()?;
        dispatch::run(
            backend,
            ExpShifted {
                io: Io::new(input, output),
                m,
            },
        )
    }

    /// `ln Σ exp(x)` of each row of `row_len` values into `output` (one
    /// value per row), rows in parallel.
    pub fn run_logsumexp_rows<E: Element>(
        &self,
        input: &[E],
        row_len: usize,
        output: &mut [f32],
    ) -> Result<(), Error> {
        self.reduce_typed(LogSumExp, E::slice(input), row_len, output)
    }

    /// [`crate::softmax_backward_rows`] on this builder's backend.
    pub fn run_backward_rows(
        &self,
        probs: &[f32],
        grad_out: &[f32],
        grad_in: &mut [f32],
        row_len: usize,
    ) -> Result<(), Error> {
        self.pair_rows(SoftmaxBackward, probs, grad_out, grad_in, row_len)
    }

    /// [`crate::log_softmax_backward_rows`] on this builder's backend.
    pub fn run_log_backward_rows(
        &self,
        log_probs: &[f32],
        grad_out: &[f32],
        grad_in: &mut [f32],
        row_len: usize,
    ) -> Result<(), Error> {
        self.pair_rows(LogSoftmaxBackward, log_probs, grad_out, grad_in, row_len)
    }

    /// [`crate::cross_entropy`] on this builder's backend.
    pub fn run_cross_entropy<E: Element, G: Element>(
        &self,
        logits: &[E],
        row_len: usize,
        targets: &[usize],
        options: CrossEntropyOptions<'_, G>,
    ) -> Result<CrossEntropy, Error> {
        crate::cross_entropy::run(self, E::slice(logits), row_len, targets, options)
    }

    fn pair_rows<P: PairRowOp>(
        &self,
        op: P,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        row_len: usize,
    ) -> Result<(), Error> {
        shape::rows(a.len(), row_len)?;
        shape::argument_length(Argument::GradOut, b.len(), a.len())?;
        shape::argument_length(Argument::GradIn, out.len(), a.len())?;
        let backend = self.resolved_backend()?;
        if a.is_empty() {
            return Ok(());
        }
        let call = PairCall {
            op,
            a,
            b,
            out,
            row_len,
        };
        dispatch::run(backend, call)
    }

    /// `reduce_rows` on rows of any element type: each type's rows are
    /// compiled code of their own, read through conversions in registers.
    fn reduce_typed<R, O>(
        &self,
        r: R,
        input: Slice<'_>,
        row_len: usize,
        output: &mut [O],
    ) -> Result<(), Error>
    where
        R: RowReduce<f32, Out = O> + RowReduce<f16, Out = O> + RowReduce<bf16, Out = O>,
    {
        match input {
            Slice::F32(x) => self.reduce_rows(r, x, row_len, output),
            Slice::F16(x) => self.reduce_rows(r, x, row_len, output),
            Slice::Bf16(x) => self.reduce_rows(r, x, row_len, output),
        }
    }

    fn reduce_rows<X: Storage, R: RowReduce<X>>(
        &self,
        r: R,
        input: &[X],
        row_len: usize,
        output: &mut [R::Out],
    ) -> Result<(), Error> {
        let rows = shape::rows(input.len(), row_len)?;
        shape::row_outputs(rows, output.len())?;
        let backend = self.resolved_backend()?;
        if rows == 0 {
            return Ok(());
        }
        let call = ReduceCall {
            r,
            input,
            row_len,
            output,
        };
        dispatch::run(backend, call)
    }
}

/// The rows of a call within the batch they belong to (all of it but for
/// an engine thread's part).
#[derive(Clone, Copy)]
struct Batch {
    rows: usize,
    first_row: usize,
}

/// The checked logit settings for the rows of `batch` (rows of `row_len`).
fn row_logits<'m>(
    settings: &LogitSettings<'m>,
    add: Option<&'m [f32]>,
    batch: Batch,
    row_len: usize,
) -> Result<RowLogits<'m>, Error> {
    let t = settings.temperature.unwrap_or(1.0);
    if t.is_nan() || t < 0.0 {
        return Err(Error::InvalidParameter {
            name: Parameter::Temperature,
            value: f64::from(t),
        });
    }
    let s = settings.scale.unwrap_or(1.0);
    if !(s.is_finite() && s > 0.0) {
        return Err(Error::InvalidParameter {
            name: Parameter::Scale,
            value: f64::from(s),
        });
    }
    let len = batch.rows.saturating_mul(row_len);
    if let Some(shape) = settings.attention
        && (shape.keys != row_len || shape.rows() != batch.rows)
    {
        return Err(Error::AttentionShape {
            shape,
            rows: batch.rows,
            row_len,
        });
    }
    let check_mask = |mask_len: Option<usize>, name: Mask| -> Result<(), Error> {
        let Some(mask_len) = mask_len else {
            return Ok(());
        };
        let fits = match settings.attention {
            Some(shape) => shape.takes_mask(mask_len),
            None => mask_len == row_len || mask_len == len,
        };
        if fits {
            Ok(())
        } else {
            Err(Error::MaskLength {
                mask: name,
                mask_len,
                row_len,
                len,
            })
        }
    };
    check_mask(settings.keep_mask.map(<[_]>::len), Mask::Keep)?;
    check_mask(add.map(<[_]>::len), Mask::Additive)?;
    let alibi = match settings.alibi {
        None => None,
        Some(b) if b.is_finite() && b >= 0.0 && add.is_some() => {
            let heads = settings.attention.map_or(1, |a| a.heads);
            Some(Alibi::new(b, heads))
        }
        Some(b) => {
            return Err(Error::InvalidParameter {
                name: Parameter::MaxBias,
                value: f64::from(b),
            });
        }
    };
    if let Some(c) = settings.softcap
        && !(c.is_finite() && c > 0.0)
    {
        return Err(Error::InvalidParameter {
            name: Parameter::Softcap,
            value: f64::from(c),
        });
    }
    if let Some(sinks) = settings.sinks {
        let heads = settings.attention.map_or(1, |a| a.heads);
        shape::argument_length(Argument::Sinks, sinks.len(), heads)?;
    }
    let causal = if settings.causal_end {
        let queries = settings.attention.map_or(batch.rows, |a| a.queries);
        let signed = |n: usize| isize::try_from(n).unwrap_or(isize::MAX);
        Some(signed(row_len).saturating_sub(signed(queries)))
    } else {
        settings.causal
    };
    // s/t in f64; beyond every f32 it is the t → 0 limit (greedy). Only
    // t = +inf gives the uniform limit: a finite t so large that s/t
    // underflows keeps the smallest normal factor, which is as uniform
    // as f32 can tell.
    let c = f64::from(s) / f64::from(t);
    let c = if t == f32::INFINITY {
        0.0
    } else if c as f32 == f32::INFINITY {
        f64::INFINITY
    } else {
        c.max(f64::from(f32::MIN_POSITIVE))
    };
    Ok(RowLogits {
        c,
        keep: settings.keep_mask,
        add,
        causal,
        layout: settings.attention,
        alibi,
        row_base: batch.first_row,
        sinks: settings.sinks,
        softcap: settings.softcap,
    })
}
