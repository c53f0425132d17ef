//! SIMD CPU softmax with a stated numerical contract.
//!
//! Row-wise softmax over f32 logits, in place or out of place, one row or a
//! batch of rows, for vocabularies of 50k–256k entries and for short
//! attention rows. Our own polynomial `exp`, three algorithms chosen by
//! data size, AVX-512 and AVX2+FMA detected at run time (a plain
//! `cargo build --release` is fast), rows across the caller's rayon pool.
//!
//! Around it, the family, each fused to read the data as few times as it
//! can: [`log_softmax`], [`logsumexp`], [`argmax`], [`entropy`],
//! [`cross_entropy`] with its gradient, [`softmax_backward`] and
//! [`log_softmax_backward`], and temperature, scale, keep and additive masks
//! and the causal mask on the [`Softmax`] builder (applied inside the
//! kernels: no extra pass, no copy). For generation, [`Sampler`]
//! (temperature, top-k, top-p, min-p) draws a token at about the cost of
//! one read of the logits, and [`top_k_probs`] returns the k most probable
//! tokens with exact probabilities without writing the probability vector.
//!
//! ```
//! let logits = [1.0f32, 2.0, 3.0, f32::NEG_INFINITY];
//! let mut p = [0.0f32; 4];
//! simd_softmax::softmax(&logits, &mut p)?;
//! assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! assert_eq!(p[3], 0.0);
//!
//! // A batch of rows of 2, in place, in parallel on the current rayon pool.
//! let mut rows = [0.0f32, 0.0, 5.0, 5.0];
//! simd_softmax::softmax_rows_in_place(&mut rows, 2)?;
//! assert_eq!(rows, [0.5; 4]);
//! # Ok::<(), simd_softmax::Error>(())
//! ```
//!
//! # Numerical contract
//!
//! Every statement here is checked by the test named next to it, on every
//! backend and algorithm (CI runs the suite once per backend), and by the
//! fuzz targets `softmax_diff`, `log_softmax_diff`, `argmax_diff`,
//! `settings_diff`, `cross_entropy_diff`, `backward_diff`, `entropy_diff`,
//! `sample_diff` and `exp_diff`, whose bodies (`tests/check/mod.rs`) also run on stable
//! in `tests/fuzz_cases.rs`.
//!
//! **Special values** (`tests/semantics.rs`):
//!
//! | input row | output row | test |
//! |---|---|---|
//! | any NaN | every entry NaN | `nan_poisons_row` |
//! | only −inf (fully masked) | all +0, not NaN | `all_neg_inf_is_zeros` |
//! | k entries +inf, no NaN | each +inf entry gets 1/k (rounded once to f32), all others exactly 0 | `pos_inf_splits_mass` |
//! | −inf entries among others | exactly 0 at each −inf | `neg_inf_entries_are_exact_zero`, `leading_masked_chunks` |
//! | finite extremes (±3.4e38, huge and tiny mixed, subnormals) | never NaN or inf, and within the bound below | `finite_extremes_stay_finite` |
//! | all equal | 1/n each (rounded once) | `all_equal_is_uniform` |
//! | empty | `Ok`, nothing written | `empty_is_ok` |
//! | bad shape (lengths differ, `row_len == 0` with data, ragged rows) | [`Error`] naming the sizes, nothing written | `bad_shapes_are_errors_and_write_nothing` |
//!
//! **Accuracy.** Against [`reference::softmax_f64`] on the same f32 inputs,
//! every output of a row with largest value `max` satisfies
//! `|p − p_ref| ≤ 2^-24·(16 + |x − max|)·p_ref + 2^-126`
//! ([`reference::tolerance`]; `tests/differential.rs`: every length 0..=300
//! at every offset 0..16, rows to 262144 at logit scales 0.01 to 1000,
//! sorted and other adversarial orders). The `|x − max|` term is the
//! unavoidable rounding of `x − max` in f32; the 16 covers an `exp` within
//! 2 ULP, the normalizing sum and the reciprocal; the 2^-126 lets outputs
//! below the smallest normal f32 flush to 0. The sum is carried in f64 (f32
//! only within runs of 8 vectors), so the largest probabilities of a 256k
//! row come out within about 1e-6 relative (worst seen: 2e-6 where
//! `|x − max|` is small), and a row's probabilities sum to 1 within
//! 17·2^-24 (`probabilities_sum_to_one`).
//!
//! **Log-softmax and logsumexp** ([`log_softmax`], [`logsumexp`];
//! `tests/log_softmax.rs`): `|y − y_ref| ≤ 2^-22·|y_ref| + 2^-21`
//! ([`reference::log_tolerance`]) against [`reference::log_softmax_f64`] and
//! [`reference::logsumexp_f64`]; NaN anywhere → NaN; all −inf → −inf (and
//! logsumexp of an empty row is −inf); k entries of +inf → −ln k there and
//! −inf elsewhere (logsumexp: +inf); values beyond −f32::MAX (from ±3.4e38
//! extremes) are −inf, their correctly rounded f32.
//!
//! **argmax** ([`argmax`]; `tests/argmax.rs`): exactly
//! [`reference::argmax`]: the lowest index of the maximum (±0 compare
//! equal, +inf is largest, all −inf gives 0), `None` for an empty row or
//! any NaN.
//!
//! **Temperature, scale and masks** ([`Softmax::temperature`],
//! [`Softmax::scale`], [`Softmax::keep_mask`], [`Softmax::additive_mask`],
//! [`Softmax::causal`]; `tests/logit_settings.rs`, against
//! [`reference::softmax_row_with`]): the logit of entry `i` is
//! `x_i·s/t (+ a_i)`. Without an additive mask the exponent is computed as
//! `(x − max)·(s/t)` with the product kept exact into the exp, so the core
//! bound holds with `|x − max|` replaced by `|x − max|·s/t`; with one, the
//! logit `w` is rounded to f32 once, and the bound adds
//! `2·|x·s/t| + |w| + |max w|` to that term ([`reference::Expected`]; the
//! log-softmax bound adds 2^-24 times it). Entries the keep mask or the
//! causal mask drop are exactly 0 (−inf for log-softmax), whatever they hold
//! and even when NaN elsewhere makes the row NaN; a row with nothing kept is
//! all zeros (all −inf). The additive mask is arithmetic: −inf drops an
//! entry, NaN or `+inf + −inf` makes the row NaN. Temperature 0 and +inf
//! are the limits (see [`Softmax::temperature`]). A negative or NaN
//! temperature, a scale that is not finite and positive, or a mask of the
//! wrong length is an [`Error`] before anything is written.
//!
//! **Backward passes** ([`softmax_backward`], [`log_softmax_backward`];
//! `tests/backward.rs`): within 2^-20·G + 2^-126 of [`reference::softmax_backward_f64`]
//! / [`reference::log_softmax_backward_f64`], G the row's largest magnitude
//! among `grad_out` and the exact `grad_in` ([`reference::backward_tolerance`]),
//! including gradients that cancel or whose sum is beyond f32 (outputs are
//! ±inf only where the exact value is); NaN propagates.
//!
//! **Cross-entropy** ([`cross_entropy`]; `tests/cross_entropy.rs`): each
//! row's loss within 2^-22·L + 2^-21 of [`reference::cross_entropy_f64`]
//! (the loss is a sum of non-negative parts, so small losses keep their
//! relative accuracy), the reduction in f64; the gradient within the
//! softmax bound plus 2^-22·(p + q), times the reduction's weight, of
//! [`reference::cross_entropy_grad_f64`]. A target whose logit is −inf costs
//! +inf, NaN in a row gives NaN, +inf logits follow the softmax rule;
//! ignored rows count nowhere and get zero gradient; a mean over no rows
//! is NaN.
//!
//! **Entropy** ([`entropy`]; `tests/entropy.rs`): within
//! 2^-24·(16·H + Σ p·(x − max)²) + 2^-21 of [`reference::entropy_f64`]
//! ([`reference::entropy_tolerance`]); NaN → NaN, k entries of +inf → ln k,
//! only −inf or empty → 0.
//!
//! **Sampling** ([`Sampler`], [`top_k_probs`]; `tests/sample.rs`): the kept
//! set, its order (probability, then lower index) and its probabilities
//! match [`reference::sample_distribution`] (full softmax in f64, full
//! sort) within 1e-5 relative, a top-p or min-p cut within 1e-5 of the
//! boundary may fall either way; tokens below 2^-126 of the largest
//! probability are never drawn. Draws pass χ² tests at a false-alarm rate
//! of 10^-6 per configuration, never leave the kept set, and repeat for a
//! given seed on any thread count. `top_k_probs` is within the softmax
//! bound (and its log variant the log-softmax bound).
//!
//! **exp** (`exp::exp_slice`, the polynomial all kernels use): within 2 ULP
//! of the correctly rounded result for every f32 in
//! `[exp::CUTOFF, exp::DOMAIN_MAX] ≈ [−87.3365, 88.3762]` (checked
//! exhaustively, `tests/exp_exhaustive.rs`: 0.89 ULP with FMA, 1.18 ULP
//! without); exactly +0 below `CUTOFF` (where e^x is not a normal f32),
//! −inf included; NaN for NaN (`exp_special_values`). Above `DOMAIN_MAX`
//! the result is unspecified; softmax only evaluates `exp(x − max) ≤ 1`.
//!
//! **Subnormals.** Subnormal inputs are ordinary values near 0
//! (`finite_extremes_stay_finite`, and the fuzz targets draw them). Outputs
//! whose true value is below 2^-126 may come out as 0 or as a subnormal;
//! the bound's 2^-126 term allows both.
//!
//! **Determinism.** For a given backend and algorithm, a row's result is
//! bit-identical whatever the thread count, the batch size, the row's
//! position in the batch, its address alignment, and in place or out of
//! place (`tests/determinism.rs`; `softmax_diff` compares 1 and 2 threads,
//! in place and out of place, a batch and its first row alone). Different
//! backends may differ within the bound.
//!
//! # Backends
//!
//! [`backend()`] reports the one in use, the fastest the CPU has: `avx512f`,
//! else `avx2+fma`, else `portable(...)` (the `wide` crate for the build's
//! target), else `scalar`. The environment variable
//! `SIMD_SOFTMAX_BACKEND=scalar|portable|avx2|avx512`
//! forces one; naming one the CPU lacks is an error ([`Error::BackendUnavailable`]),
//! never a silent fallback. [`Softmax::backend`] picks one per call.
//!
//! # Algorithms
//!
//! See [`Algorithm`]; [`Algorithm::Auto`] chooses by data size.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[allow(unsafe_code)]
// the AVX2 and AVX-512 lanes: the only unsafe code, each block with a SAFETY note
mod arch;
mod cross_entropy;
mod dispatch;
mod error;
#[doc(hidden)]
pub mod exp;
mod kernels;
mod lanes;
pub mod reference;
mod rows;
mod sample;

/// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use cross_entropy::{CrossEntropy, CrossEntropyOptions, Reduction, cross_entropy};
pub use dispatch::{BACKEND_ENV, Backend, backend, try_backend};
pub use error::Error;
pub use sample::{Sampler, SamplerBuilder, top_k_log_probs, top_k_probs};

use kernels::Io;
use rows::{RowLogits, RowOp};

/// How a row is computed. All give results within the same bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// Chosen by size: `Blocked` when input and output together reach
    /// 24 MiB (data that streams from DRAM), else `ThreePass` (measured
    /// crossovers; see [`Algorithm::resolve_name`]).
    #[default]
    Auto,
    /// Max; store `exp(x − max)` and sum; scale by `1/sum`. One exp per
    /// element, three passes over the row.
    ThreePass,
    /// One pass keeps a running max and rescaled sum, a second writes
    /// `exp(x − max)/sum`. Two exps per element, least memory traffic.
    Online,
    /// Online over L1-sized blocks, storing `exp(x − block max)`, then one
    /// pass scales each block. One exp per element, x read once.
    Blocked,
}

/// The algorithm a row actually runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    ThreePass,
    Online,
    Blocked,
}

impl Algorithm {
    /// Every algorithm, `Auto` first.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Auto,
        Algorithm::ThreePass,
        Algorithm::Online,
        Algorithm::Blocked,
    ];

    /// The short name used by the throughput tool: `auto`, `three-pass`,
    /// `online`, `blocked`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Auto => "auto",
            Algorithm::ThreePass => "three-pass",
            Algorithm::Online => "online",
            Algorithm::Blocked => "blocked",
        }
    }

    /// Parses a short name.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name of the algorithm a call over `len` values in rows of
    /// `row_len` runs (for `Auto`, the one it picks).
    pub fn resolve_name(self, len: usize, row_len: usize) -> &'static str {
        match self.resolve(len, row_len) {
            Kernel::ThreePass => Algorithm::ThreePass.name(),
            Kernel::Online => Algorithm::Online.name(),
            Kernel::Blocked => Algorithm::Blocked.name(),
        }
    }

    pub(crate) fn resolve(self, len: usize, row_len: usize) -> Kernel {
        match self {
            Algorithm::ThreePass => Kernel::ThreePass,
            Algorithm::Online => Kernel::Online,
            Algorithm::Blocked => Kernel::Blocked,
            Algorithm::Auto => {
                let bytes = len.saturating_mul(2 * size_of::<f32>());
                if row_len >= kernels::blocked::BLOCK && bytes >= AUTO_BLOCKED_FROM_BYTES {
                    Kernel::Blocked
                } else {
                    Kernel::ThreePass
                }
            }
        }
    }
}

/// `Auto` runs `Blocked` when the call's input and output together reach
/// this many bytes (and rows are at least one block long), else `ThreePass`.
/// Three-pass reads x twice, which is free while the data stays in cache;
/// blocked reads it once but pays a little per block. Measured with the
/// throughput tool (AVX-512 and AVX2, Zen 4 with a 32 MiB L3, 1 and 2
/// threads): three-pass wins up to 16.8 MB (1x2097152, 8x262144, 32x50257:
/// 3–8%), the two tie around 25 MB (64x50257), and blocked wins from 32 MB
/// on (16x256000 by 10–15%, 1x4194304 by 18%). Online (two exps per
/// element) was never the fastest, so `Auto` does not pick it.
const AUTO_BLOCKED_FROM_BYTES: usize = 24 << 20;

/// A configured softmax: which algorithm and backend to use.
///
/// ```
/// use simd_softmax::{Algorithm, Backend, Softmax};
/// let sm = Softmax::new().algorithm(Algorithm::Online).backend(Backend::Portable);
/// let mut p = [0.0f32; 3];
/// sm.run(&[1.0, 2.0, 3.0], &mut p)?;
/// # Ok::<(), simd_softmax::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Softmax<'m> {
    algorithm: Algorithm,
    backend: Option<Backend>,
    temperature: Option<f32>,
    scale: Option<f32>,
    keep_mask: Option<&'m [bool]>,
    additive_mask: Option<&'m [f32]>,
    causal: Option<isize>,
}

impl<'m> Softmax<'m> {
    /// `Auto` algorithm on the active backend ([`backend()`]), logits as
    /// given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use `algorithm` for every row.
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
        self.temperature = Some(t);
        self
    }

    /// Multiply the logits by `s` (finite, `s > 0`; e.g. attention's
    /// `1/√d`). With a temperature the factor is `s/t`, applied as
    /// `(x − max)·(s/t)`.
    pub fn scale(mut self, s: f32) -> Self {
        self.scale = Some(s);
        self
    }

    /// Add `mask` to the scaled logits: the logit of entry `i` is
    /// `x_i·(s/t) + mask_i` (IEEE arithmetic: −inf masks an entry, and
    /// +inf + −inf is NaN). `mask` holds one row, used for every row, or
    /// one value per element.
    pub fn additive_mask(mut self, mask: &'m [f32]) -> Self {
        self.additive_mask = Some(mask);
        self
    }

    /// Keep only the entries whose flag is `true`: the others get exactly 0
    /// probability (−inf log-probability), whatever their value, NaN
    /// included. One row of flags for every row, or one flag per element.
    pub fn keep_mask(mut self, mask: &'m [bool]) -> Self {
        self.keep_mask = Some(mask);
        self
    }

    /// Attention's causal mask: row `i` (counted from 0 over the call)
    /// keeps columns `j ≤ i + offset` and gives the others exactly 0
    /// probability (−inf log-probability); a row that keeps no column is
    /// all zeros (all −inf).
    pub fn causal(mut self, offset: isize) -> Self {
        self.causal = Some(offset);
        self
    }

    /// The checked logit settings for a call over `len` values in rows of
    /// `row_len`.
    fn row_logits(&self, len: usize, row_len: usize) -> Result<RowLogits<'m>, Error> {
        let t = self.temperature.unwrap_or(1.0);
        if t.is_nan() || t < 0.0 {
            return Err(Error::InvalidParameter {
                name: "temperature",
                value: f64::from(t),
                expected: "≥ 0 (0 and +inf are the limits)",
            });
        }
        let s = self.scale.unwrap_or(1.0);
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::InvalidParameter {
                name: "scale",
                value: f64::from(s),
                expected: "finite and > 0",
            });
        }
        fn check_mask<X>(
            mask: Option<&[X]>,
            name: &'static str,
            len: usize,
            row_len: usize,
        ) -> Result<(), Error> {
            match mask {
                Some(m) if m.len() != row_len && m.len() != len => Err(Error::MaskLength {
                    mask: name,
                    mask_len: m.len(),
                    row_len,
                    len,
                }),
                _ => Ok(()),
            }
        }
        check_mask(self.keep_mask, "keep_mask", len, row_len)?;
        check_mask(self.additive_mask, "additive_mask", len, row_len)?;
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
            keep: self.keep_mask,
            add: self.additive_mask,
            causal: self.causal,
        })
    }

    /// Refuses the logit settings for an operation that does not apply them.
    fn no_logit_settings(&self, operation: &'static str) -> Result<(), Error> {
        let setting = [
            (self.temperature.is_some(), "temperature"),
            (self.scale.is_some(), "scale"),
            (self.keep_mask.is_some(), "keep_mask"),
            (self.additive_mask.is_some(), "additive_mask"),
            (self.causal.is_some(), "causal"),
        ]
        .into_iter()
        .find(|(set, _)| *set);
        match setting {
            Some((_, setting)) => Err(Error::NotApplicable { setting, operation }),
            None => Ok(()),
        }
    }

    fn resolved_backend(&self) -> Result<Backend, Error> {
        match self.backend {
            Some(b) => b.check(),
            None => try_backend(),
        }
    }

    /// Softmax of one row into `output` (same length).
    pub fn run(&self, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
        check_lengths(input, output)?;
        self.run_rows_io(Io::new(Some(input), output), input.len())
    }

    /// Softmax of one row, in place.
    pub fn run_in_place(&self, data: &mut [f32]) -> Result<(), Error> {
        let len = data.len();
        self.run_rows_io(Io::new(None, data), len)
    }

    /// Softmax of each row of `row_len` values, rows in parallel on the
    /// current rayon pool.
    pub fn run_rows(&self, input: &[f32], output: &mut [f32], row_len: usize) -> Result<(), Error> {
        check_lengths(input, output)?;
        check_rows(input.len(), row_len)?;
        self.run_rows_io(Io::new(Some(input), output), row_len)
    }

    /// Softmax of each row of `row_len` values, in place, rows in parallel.
    pub fn run_rows_in_place(&self, data: &mut [f32], row_len: usize) -> Result<(), Error> {
        check_rows(data.len(), row_len)?;
        self.run_rows_io(Io::new(None, data), row_len)
    }

    fn run_rows_io(&self, io: Io<'_>, row_len: usize) -> Result<(), Error> {
        let kernel = self.algorithm.resolve(io.len(), row_len);
        self.run_op(RowOp::Softmax(kernel), io, row_len)
    }

    fn run_op(&self, op: RowOp, io: Io<'_>, row_len: usize) -> Result<(), Error> {
        let logits = self.row_logits(io.len(), row_len)?;
        let backend = self.resolved_backend()?;
        if io.len() > 0 {
            rows::run_rows(backend, op, io, row_len, &logits);
        }
        Ok(())
    }

    /// Log-softmax of one row into `output` (same length):
    /// `(x − max) − ln Σ exp(x − max)`. The algorithm setting does not
    /// apply: one online pass finds max and sum, one pass writes.
    pub fn run_log(&self, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
        check_lengths(input, output)?;
        self.run_log_io(Io::new(Some(input), output), input.len())
    }

    /// Log-softmax of one row, in place.
    pub fn run_log_in_place(&self, data: &mut [f32]) -> Result<(), Error> {
        let len = data.len();
        self.run_log_io(Io::new(None, data), len)
    }

    /// Log-softmax of each row of `row_len` values, rows in parallel.
    pub fn run_log_rows(
        &self,
        input: &[f32],
        output: &mut [f32],
        row_len: usize,
    ) -> Result<(), Error> {
        check_lengths(input, output)?;
        check_rows(input.len(), row_len)?;
        self.run_log_io(Io::new(Some(input), output), row_len)
    }

    /// Log-softmax of each row of `row_len` values, in place, rows in parallel.
    pub fn run_log_rows_in_place(&self, data: &mut [f32], row_len: usize) -> Result<(), Error> {
        check_rows(data.len(), row_len)?;
        self.run_log_io(Io::new(None, data), row_len)
    }

    fn run_log_io(&self, io: Io<'_>, row_len: usize) -> Result<(), Error> {
        self.run_op(RowOp::LogSoftmax, io, row_len)
    }

    /// The lowest index of the largest value of each row of `row_len`
    /// values into `output` (one entry per row, `None` for a row holding
    /// NaN), rows in parallel.
    pub fn run_argmax_rows(
        &self,
        input: &[f32],
        row_len: usize,
        output: &mut [Option<usize>],
    ) -> Result<(), Error> {
        self.no_logit_settings("argmax")?;
        self.reduce_rows(rows::ArgMax, input, row_len, output)
    }

    /// The entropy of the softmax of each row of `row_len` values into
    /// `output` (one value per row), rows in parallel. See [`entropy`].
    pub fn run_entropy_rows(
        &self,
        input: &[f32],
        row_len: usize,
        output: &mut [f32],
    ) -> Result<(), Error> {
        self.no_logit_settings("entropy")?;
        self.reduce_rows(rows::Entropy, input, row_len, output)
    }

    /// `ln Σ exp(x)` of each row of `row_len` values into `output` (one
    /// value per row), rows in parallel.
    pub fn run_logsumexp_rows(
        &self,
        input: &[f32],
        row_len: usize,
        output: &mut [f32],
    ) -> Result<(), Error> {
        self.no_logit_settings("logsumexp")?;
        self.reduce_rows(rows::LogSumExp, input, row_len, output)
    }

    /// [`softmax_backward_rows`] on this builder's backend. The logit
    /// settings do not apply (an error if set).
    pub fn run_backward_rows(
        &self,
        probs: &[f32],
        grad_out: &[f32],
        grad_in: &mut [f32],
        row_len: usize,
    ) -> Result<(), Error> {
        self.no_logit_settings("softmax_backward")?;
        self.pair_rows(rows::SoftmaxBackward, probs, grad_out, grad_in, row_len)
    }

    /// [`log_softmax_backward_rows`] on this builder's backend. The logit
    /// settings do not apply (an error if set).
    pub fn run_log_backward_rows(
        &self,
        log_probs: &[f32],
        grad_out: &[f32],
        grad_in: &mut [f32],
        row_len: usize,
    ) -> Result<(), Error> {
        self.no_logit_settings("log_softmax_backward")?;
        self.pair_rows(
            rows::LogSoftmaxBackward,
            log_probs,
            grad_out,
            grad_in,
            row_len,
        )
    }

    fn pair_rows<P: rows::PairRowOp>(
        &self,
        op: P,
        a: &[f32],
        b: &[f32],
        out: &mut [f32],
        row_len: usize,
    ) -> Result<(), Error> {
        check_rows(a.len(), row_len)?;
        for (name, len) in [("grad_out", b.len()), ("grad_in", out.len())] {
            if len != a.len() {
                return Err(Error::SliceLength {
                    name,
                    len,
                    expected: a.len(),
                });
            }
        }
        let backend = self.resolved_backend()?;
        if !a.is_empty() {
            rows::pair_rows(backend, op, a, b, out, row_len);
        }
        Ok(())
    }

    fn reduce_rows<R: rows::RowReduce>(
        &self,
        r: R,
        input: &[f32],
        row_len: usize,
        output: &mut [R::Out],
    ) -> Result<(), Error> {
        check_rows(input.len(), row_len)?;
        // row_len == 0 passed `check_rows` only with no input: no rows.
        let rows = input.len().checked_div(row_len).unwrap_or(0);
        if output.len() != rows {
            return Err(Error::RowOutputs {
                rows,
                output: output.len(),
            });
        }
        let backend = self.resolved_backend()?;
        if rows > 0 {
            rows::reduce_rows(backend, r, input, row_len, output);
        }
        Ok(())
    }
}

fn check_lengths(input: &[f32], output: &[f32]) -> Result<(), Error> {
    if input.len() == output.len() {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            input: input.len(),
            output: output.len(),
        })
    }
}

fn check_rows(len: usize, row_len: usize) -> Result<(), Error> {
    if row_len == 0 {
        if len == 0 {
            Ok(())
        } else {
            Err(Error::ZeroRowLength { len })
        }
    } else if !len.is_multiple_of(row_len) {
        Err(Error::RaggedRows { len, row_len })
    } else {
        Ok(())
    }
}

/// Softmax of one row: `output[i] = exp(input[i] − max) / Σ exp(input − max)`.
///
/// Errors if the lengths differ (nothing is written), or if
/// `SIMD_SOFTMAX_BACKEND` forces a backend this CPU lacks.
///
/// ```
/// let mut p = [0.0f32; 2];
/// simd_softmax::softmax(&[0.0, 0.0], &mut p)?;
/// assert_eq!(p, [0.5, 0.5]);
/// assert!(simd_softmax::softmax(&[0.0; 3], &mut p).is_err());
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn softmax(input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    Softmax::new().run(input, output)
}

/// Softmax of one row, in place.
///
/// # Panics
/// Only if `SIMD_SOFTMAX_BACKEND` forces a backend this CPU lacks (the
/// message names it); [`Softmax::run_in_place`] returns that as an error.
///
/// ```
/// let mut x = [1.0f32, 1.0, f32::NEG_INFINITY, 1.0];
/// simd_softmax::softmax_in_place(&mut x);
/// assert_eq!(x[2], 0.0);
/// ```
pub fn softmax_in_place(data: &mut [f32]) {
    if let Err(e) = Softmax::new().run_in_place(data) {
        panic!("simd-softmax: {e}");
    }
}

/// Softmax of each row of `row_len` values (`input.len()` a multiple of
/// `row_len`), rows in parallel on the current rayon pool, so
/// `pool.install(..)` controls the threads.
///
/// ```
/// let logits = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
/// let mut p = [0.0f32; 6];
/// simd_softmax::softmax_rows(&logits, &mut p, 3)?;
/// assert_eq!(&p[..3], &p[3..]); // softmax is shift-invariant
/// assert!(simd_softmax::softmax_rows(&logits, &mut p, 4).is_err());
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn softmax_rows(input: &[f32], output: &mut [f32], row_len: usize) -> Result<(), Error> {
    Softmax::new().run_rows(input, output, row_len)
}

/// Softmax of each row of `row_len` values, in place, rows in parallel.
pub fn softmax_rows_in_place(data: &mut [f32], row_len: usize) -> Result<(), Error> {
    Softmax::new().run_rows_in_place(data, row_len)
}

/// Log-softmax of one row: `output[i] = (x_i − max) − ln Σ exp(x − max)`,
/// never `ln(softmax)`. Errors if the lengths differ (nothing written).
///
/// ```
/// let mut y = [0.0f32; 2];
/// simd_softmax::log_softmax(&[0.0, 0.0], &mut y)?;
/// assert_eq!(y, [-std::f32::consts::LN_2; 2]);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn log_softmax(input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    Softmax::new().run_log(input, output)
}

/// Log-softmax of one row, in place.
///
/// # Panics
/// Only if `SIMD_SOFTMAX_BACKEND` forces a backend this CPU lacks;
/// [`Softmax::run_log_in_place`] returns that as an error.
pub fn log_softmax_in_place(data: &mut [f32]) {
    if let Err(e) = Softmax::new().run_log_in_place(data) {
        panic!("simd-softmax: {e}");
    }
}

/// Log-softmax of each row of `row_len` values, rows in parallel on the
/// current rayon pool.
pub fn log_softmax_rows(input: &[f32], output: &mut [f32], row_len: usize) -> Result<(), Error> {
    Softmax::new().run_log_rows(input, output, row_len)
}

/// Log-softmax of each row of `row_len` values, in place, rows in parallel.
pub fn log_softmax_rows_in_place(data: &mut [f32], row_len: usize) -> Result<(), Error> {
    Softmax::new().run_log_rows_in_place(data, row_len)
}

/// `ln Σ exp(x)` of a row in one read (online max and rescaled sum):
/// NaN if any entry is NaN, +inf if any is +inf, −inf if all are −inf or
/// the row is empty.
///
/// ```
/// let lse = simd_softmax::logsumexp(&[0.0, 0.0]);
/// assert_eq!(lse, std::f32::consts::LN_2);
/// assert_eq!(simd_softmax::logsumexp(&[]), f32::NEG_INFINITY);
/// ```
///
/// # Panics
/// Only if `SIMD_SOFTMAX_BACKEND` forces a backend this CPU lacks.
pub fn logsumexp(input: &[f32]) -> f32 {
    if input.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mut out = [0.0f32];
    if let Err(e) = Softmax::new().run_logsumexp_rows(input, input.len(), &mut out) {
        panic!("simd-softmax: {e}");
    }
    out[0]
}

/// `ln Σ exp(x)` of each row of `row_len` values into `output`, which must
/// hold one value per row; rows in parallel.
pub fn logsumexp_rows(input: &[f32], row_len: usize, output: &mut [f32]) -> Result<(), Error> {
    Softmax::new().run_logsumexp_rows(input, row_len, output)
}

/// The lowest index of the largest value, in one read; `None` for an empty
/// row or one holding NaN. ±0 compare equal, +inf is the largest, and a row
/// of only −inf gives `Some(0)`.
///
/// ```
/// assert_eq!(simd_softmax::argmax(&[1.0, 3.0, 2.0, 3.0]), Some(1));
/// assert_eq!(simd_softmax::argmax(&[1.0, f32::NAN]), None);
/// assert_eq!(simd_softmax::argmax(&[]), None);
/// ```
///
/// # Panics
/// Only if `SIMD_SOFTMAX_BACKEND` forces a backend this CPU lacks.
pub fn argmax(input: &[f32]) -> Option<usize> {
    if input.is_empty() {
        return None;
    }
    let mut out = [None];
    if let Err(e) = Softmax::new().run_argmax_rows(input, input.len(), &mut out) {
        panic!("simd-softmax: {e}");
    }
    out[0]
}

/// [`argmax`] of each row of `row_len` values into `output`, which must hold
/// one entry per row; rows in parallel.
pub fn argmax_rows(
    input: &[f32],
    row_len: usize,
    output: &mut [Option<usize>],
) -> Result<(), Error> {
    Softmax::new().run_argmax_rows(input, row_len, output)
}

/// The softmax backward pass for one row: given the probabilities `probs`
/// (a softmax output) and `grad_out` = dL/dp, writes
/// `grad_in = p ⊙ (g − ⟨g, p⟩)` = dL/dx. Two passes: the dot product, then
/// the write. Errors if the lengths differ (nothing written).
///
/// ```
/// let p = [0.25f32, 0.75];
/// let mut dx = [0.0f32; 2];
/// simd_softmax::softmax_backward(&p, &[1.0, 1.0], &mut dx)?;
/// assert_eq!(dx, [0.0, 0.0]); // a constant gradient does not move softmax
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn softmax_backward(probs: &[f32], grad_out: &[f32], grad_in: &mut [f32]) -> Result<(), Error> {
    Softmax::new().run_backward_rows(probs, grad_out, grad_in, probs.len())
}

/// [`softmax_backward`] for each row of `row_len` values, rows in parallel.
pub fn softmax_backward_rows(
    probs: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
    row_len: usize,
) -> Result<(), Error> {
    Softmax::new().run_backward_rows(probs, grad_out, grad_in, row_len)
}

/// The log-softmax backward pass for one row: given the log-probabilities
/// `log_probs` (a log-softmax output) and `grad_out` = dL/dy, writes
/// `grad_in = g − exp(y)·Σg` = dL/dx. Two passes: the sum, then the write.
///
/// ```
/// let y = [(0.25f32).ln(), (0.75f32).ln()];
/// let mut dx = [0.0f32; 2];
/// simd_softmax::log_softmax_backward(&y, &[1.0, 0.0], &mut dx)?;
/// assert!((dx[0] - 0.75).abs() < 1e-6 && (dx[1] + 0.75).abs() < 1e-6);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn log_softmax_backward(
    log_probs: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
) -> Result<(), Error> {
    Softmax::new().run_log_backward_rows(log_probs, grad_out, grad_in, log_probs.len())
}

/// [`log_softmax_backward`] for each row of `row_len` values, rows in
/// parallel.
pub fn log_softmax_backward_rows(
    log_probs: &[f32],
    grad_out: &[f32],
    grad_in: &mut [f32],
    row_len: usize,
) -> Result<(), Error> {
    Softmax::new().run_log_backward_rows(log_probs, grad_out, grad_in, row_len)
}

/// The Shannon entropy, in nats, of `softmax(input)`, from the logits in
/// one read and with no probability buffer:
/// `H = ln S + Σ p_i·(max − x_i)` with `S = Σ exp(x − max)`, two terms that
/// are never negative. NaN in the row gives NaN; k entries of +inf give
/// ln k (the mass is uniform over them); a row of only −inf (or an empty
/// one) gives 0, its softmax being all zeros.
///
/// ```
/// let h = simd_softmax::entropy(&[0.0, 0.0, 0.0, 0.0]);
/// assert!((h - 4f32.ln()).abs() < 1e-6);
/// assert_eq!(simd_softmax::entropy(&[5.0]), 0.0);
/// ```
///
/// # Panics
/// Only if `SIMD_SOFTMAX_BACKEND` forces a backend this CPU lacks.
pub fn entropy(input: &[f32]) -> f32 {
    if input.is_empty() {
        return 0.0;
    }
    let mut out = [0.0f32];
    if let Err(e) = Softmax::new().run_entropy_rows(input, input.len(), &mut out) {
        panic!("simd-softmax: {e}");
    }
    out[0]
}

/// [`entropy`] of each row of `row_len` values into `output`, which must
/// hold one value per row; rows in parallel.
pub fn entropy_rows(input: &[f32], row_len: usize, output: &mut [f32]) -> Result<(), Error> {
    Softmax::new().run_entropy_rows(input, row_len, output)
}
