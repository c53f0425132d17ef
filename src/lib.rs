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
//! `sample_diff`, `half_diff` and `exp_diff`, whose bodies (`tests/check/mod.rs`) also run on stable
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
//! A fully masked row (only −inf, or nothing kept by a mask or the causal
//! offset) is all zeros, and all −inf for log-softmax: the attention
//! convention of PyTorch's `_safe_softmax` (what its fused attention
//! uses), not its plain `torch.softmax`, which gives NaN there (`0/0`).
//! A caller who wants the NaN tests the row's [`Partial`] for no mass.
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
//! only within blocks of 16 vectors, summed as a tree), so the largest
//! probabilities of a 256k row come out within about 1e-6 relative (worst
//! seen: 2e-6 where `|x − max|` is small), and a row's probabilities sum to
//! 1 within 17·2^-24 (`probabilities_sum_to_one`).
//!
//! **Element types** ([`Element`]: `f32`, [`half::f16`], [`half::bf16`];
//! `tests/half.rs`): softmax and log-softmax take the same element type
//! in and out, or f16 or bf16 in and f32 out ([`Softmax::run`] and kin;
//! the free functions take one type for both; f32 into a 16-bit type and
//! f16 into bf16 are [`Error::UnsupportedElements`] for now). Inputs convert to f32 exactly, so every bound here holds on the
//! converted logits; a 16-bit output is the f32 result rounded once to its
//! type (to nearest, ties to even), so its bound adds half an ULP of that
//! type at the value (half its smallest subnormal below its normal range),
//! and a log-probability beyond f16's range (below −65504) is −inf. The
//! conversions happen in registers (F16C and AVX-512 `vcvtph2ps`/`vcvtps2ph`,
//! bf16 by shifts), never through an f32 copy of the row; the scalar and
//! portable backends convert one value at a time. Rows of a 16-bit type
//! in and out run the three-pass algorithm whatever [`Algorithm`] says,
//! their exps stored in an f32 scratch row of the thread's (4 bytes per
//! value, kept between calls for rows up to 2^20 values), never in the
//! 16-bit output, where they would be rounded before the scale;
//! f16 or bf16 into f32 is converted into the output first and then runs
//! as f32 rows in place, with their bits. [`logsumexp`], [`argmax`] and
//! [`entropy`] (and their `_rows`) take f16 and bf16 rows, converted in
//! registers, and give the bits of the f32 call on the converted row;
//! so do [`cross_entropy`] (its f32 gradient too), [`cross_entropy_partial`]
//! and [`cross_entropy_shard`], and the sampler ([`Sampler::sample`],
//! [`Sampler::sample_rows`], [`Sampler::distribution`], [`top_k_probs`],
//! [`top_k_log_probs`]: the same tokens, distributions and bits). A
//! cross-entropy gradient in the logits' own type
//! ([`CrossEntropyOptions::with_grad`]) is within the f32 gradient's bound
//! plus half an ULP of the type (its values written once from the row's
//! max and sum). The
//! backward passes take f32 rows for now.
//!
//! **Log-softmax and logsumexp** ([`log_softmax`], [`logsumexp`];
//! `tests/log_softmax.rs`): `|y − y_ref| ≤ 2^-22·|y_ref| + 2^-21`
//! ([`reference::log_tolerance`]) against [`reference::log_softmax_f64`] and
//! [`reference::logsumexp_f64`]; NaN anywhere → NaN; all −inf → −inf (and
//! logsumexp of an empty row is −inf); k entries of +inf → −ln k there and
//! −inf elsewhere (logsumexp: +inf); values beyond −f32::MAX (from ±3.4e38
//! extremes) are −inf, their correctly rounded f32. logsumexp keeps only the
//! sum, so on backends with FMA its exps save one multiply-add of the
//! reduction (`exp_for_sum`: within 2 ULP + 2^-28·|x − max| relative,
//! exhaustively checked); each term's error counts by its share of the sum,
//! and the bound holds with the mass far below the max
//! (`logsumexp_with_its_mass_far_from_the_max`).
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
//! logit `w` is an f32, and the bound adds `2·|x·s/t| + |w|` to that term,
//! for the entry and again for the largest logit ([`reference::Expected`]; the
//! log-softmax bound adds 2^-24 times it). Entries the keep mask or the
//! causal mask drop are exactly 0 (−inf for log-softmax), whatever they hold
//! and even when NaN elsewhere makes the row NaN; a row with nothing kept is
//! all zeros (all −inf). The additive mask is arithmetic: −inf drops an
//! entry, NaN or `+inf + −inf` makes the row NaN; an f16 or bf16 mask is
//! its f32 values (the same bits; converted once per call). Temperature 0 and +inf
//! are the limits (see [`Softmax::temperature`]). A negative or NaN
//! temperature, a scale that is not finite and positive, or a mask of the
//! wrong length is an [`Error`] before anything is written.
//!
//! **Attention batches** ([`Softmax::attention`], [`Softmax::alibi`],
//! [`Softmax::sinks`], [`Softmax::causal_end`]; `tests/attention.rs`,
//! fuzz target `shapes_diff`, against [`reference::softmax_row_with`]):
//! rows `[batch, heads, queries, keys]`, masks broadcast as [`Attention`]
//! says, the causal mask per (batch, head) block. ALiBi multiplies the
//! additive mask by the head's slope ([`alibi_slope`], ggml's), the
//! product rounded to f32: the bound above with `|slope·a|` added to the
//! logit's term. A sink adds `exp(sink − max)` (f64) to its rows'
//! denominator: the same bound, the max being the row's own largest
//! logit (a NaN sink makes the row NaN, +inf takes all the mass).
//! Soft-capping ([`Softmax::softcap`]): `v = c·tanh(x/c)` in f32 through
//! our tanh (within 3 ULP on every f32, `tests/exp_exhaustive.rs`), each
//! `v` within `8·2^-24·|v|`; the bound adds that error, for the entry and
//! for the largest `|v|`, times `s/t` to the logit's term.
//!
//! **Backward passes** ([`softmax_backward`], [`log_softmax_backward`];
//! `tests/backward.rs`): softmax's within
//! `2^-20·max|grad_in| + 2^-42·p_i·Σ|p·g| + 2^-126` of
//! [`reference::softmax_backward_f64`] ([`reference::softmax_backward_tolerance`]:
//! relative to the row's largest exact `|grad_in|`, so confident
//! predictions, where `g − ⟨g, p⟩` cancels, keep their accuracy);
//! log-softmax's within 2^-20·G + 2^-126 of
//! [`reference::log_softmax_backward_f64`], G the row's largest magnitude
//! among `grad_out` and the exact `grad_in` ([`reference::backward_tolerance`]);
//! both including gradients that cancel or whose sum is beyond f32 (outputs
//! are ±inf only where the exact value is); NaN propagates.
//!
//! **Cross-entropy** ([`cross_entropy`]; `tests/cross_entropy.rs`): each
//! row's loss within 2^-22·L + 2^-21 of [`reference::cross_entropy_f64`]
//! (the loss is a sum of non-negative parts, so small losses keep their
//! relative accuracy), the reduction in f64; the gradient within the
//! softmax bound plus 2^-22·(p + q), times the reduction's weight, of
//! [`reference::cross_entropy_grad_f64`]. A target whose logit is −inf costs
//! +inf, NaN in a row gives NaN, +inf logits follow the softmax rule;
//! ignored rows count nowhere and get zero gradient; a mean over no rows
//! is NaN. Vocabulary-sharded ([`cross_entropy_partial`],
//! [`CrossEntropyPartial::merge`], [`cross_entropy_shard`]): the loss
//! within the same bound (one shard: the bits of the call without
//! gradient), each shard's gradient within the gradient's bound, for 1, 2,
//! 3 and 8 shards merged in any order.
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
//! **Partials** ([`partial`], [`Partial::merge`], [`Softmax::run_with`],
//! [`exp_shifted`]; `tests/partials.rs`): a partial's max is exact and its
//! sum within `2^-20·sum` of [`reference::partial_f64`]'s
//! ([`reference::partial_sum_tolerance`]); a row cut into shards whose
//! partials are merged in any order and each normalized with the total is
//! within the softmax bound above (shards at multiples of
//! [`FIXED_PART_LEN`] merged from the first on: the bits of one
//! `Algorithm::Online` call); `exp_shifted` within
//! [`reference::exp_shifted_tolerance`] per value.
//!
//! **exp** (`exp::exp_slice`, the polynomial all kernels use): within 2 ULP
//! of the correctly rounded result for every f32 in
//! `[exp::CUTOFF, exp::DOMAIN_MAX] ≈ [−87.3365, 88.3762]` (checked
//! exhaustively, `tests/exp_exhaustive.rs`: 1.48 ULP on AVX-512, which
//! reads `2^(j/16)` from a table, 1.98 ULP with FMA, where the polynomial is
//! a degree shorter, 1.18 ULP without); exactly +0 below `CUTOFF` (where e^x is not a normal f32),
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
//! backends may differ within the bound. The parts of a batch computed on
//! an engine's own threads ([`RowPart`], [`Softmax::run_rows_part`]) write
//! the bits of the whole call (`tests/parts.rs`).
//!
//! # Backends
//!
//! [`backend()`] reports the one in use (never panicking), the fastest the CPU has: `avx512f`,
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
#![warn(clippy::incompatible_msrv)]

#[cfg(not(feature = "std"))]
compile_error!(
    "simd-softmax needs its `std` feature (run-time CPU detection); there is no no_std build yet"
);

mod algorithm;
#[allow(unsafe_code)]
// the AVX2 and AVX-512 lanes: the only unsafe code, each block with a SAFETY note
mod arch;
mod attention;
mod builder;
mod cross_entropy;
mod dispatch;
mod driver;
mod element;
mod error;
#[doc(hidden)]
pub mod exp;
mod kernels;
mod lanes;
mod ops;
mod part;
mod partial;
#[cfg(feature = "rayon")]
mod pool;
pub mod reference;
mod sample;
mod shape;
mod tanh;

/// The README's example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use algorithm::Algorithm;
pub use attention::{Attention, alibi_slope};
pub use builder::{LogitSettings, NoSettings, Settings, Softmax};
pub use cross_entropy::{
    CrossEntropy, CrossEntropyOptions, CrossEntropyPartial, Reduction, cross_entropy,
    cross_entropy_partial, cross_entropy_shard,
};
pub use dispatch::{BACKEND_ENV, Backend, backend, backends_that_ran, try_backend};
pub use element::{Element, ElementType};
pub use error::{Argument, Error, Mask, Parameter, SampleFailure};
/// The `half` crate, whose [`f16`](half::f16) and [`bf16`](half::bf16) are
/// element types here.
pub use half;
pub use part::RowPart;
pub use partial::{
    FIXED_PART_LEN, Partial, exp_shifted, exp_shifted_in_place, partial, partial_rows,
};
pub use sample::{Sampler, SamplerBuilder, top_k_log_probs, top_k_probs};

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
pub fn softmax<E: Element>(input: &[E], output: &mut [E]) -> Result<(), Error> {
    Softmax::new().run(input, output)
}

/// Softmax of one row, in place. Errors only if `SIMD_SOFTMAX_BACKEND`
/// forces a backend this CPU lacks (nothing written).
///
/// ```
/// let mut x = [1.0f32, 1.0, f32::NEG_INFINITY, 1.0];
/// simd_softmax::softmax_in_place(&mut x)?;
/// assert_eq!(x[2], 0.0);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn softmax_in_place<E: Element>(data: &mut [E]) -> Result<(), Error> {
    Softmax::new().run_in_place(data)
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
pub fn softmax_rows<E: Element>(
    input: &[E],
    output: &mut [E],
    row_len: usize,
) -> Result<(), Error> {
    Softmax::new().run_rows(input, output, row_len)
}

/// Softmax of each row of `row_len` values, in place, rows in parallel.
pub fn softmax_rows_in_place<E: Element>(data: &mut [E], row_len: usize) -> Result<(), Error> {
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
pub fn log_softmax<E: Element>(input: &[E], output: &mut [E]) -> Result<(), Error> {
    Softmax::new().run_log(input, output)
}

/// Log-softmax of one row, in place.
pub fn log_softmax_in_place<E: Element>(data: &mut [E]) -> Result<(), Error> {
    Softmax::new().run_log_in_place(data)
}

/// Log-softmax of each row of `row_len` values, rows in parallel on the
/// current rayon pool.
pub fn log_softmax_rows<E: Element>(
    input: &[E],
    output: &mut [E],
    row_len: usize,
) -> Result<(), Error> {
    Softmax::new().run_log_rows(input, output, row_len)
}

/// Log-softmax of each row of `row_len` values, in place, rows in parallel.
pub fn log_softmax_rows_in_place<E: Element>(data: &mut [E], row_len: usize) -> Result<(), Error> {
    Softmax::new().run_log_rows_in_place(data, row_len)
}

/// `ln Σ exp(x)` of a row in one read (online max and rescaled sum):
/// NaN if any entry is NaN, +inf if any is +inf, −inf if all are −inf or
/// the row is empty. f16 and bf16 rows convert exactly in registers: the
/// result has the bits of the call on the row converted to f32.
///
/// ```
/// let lse = simd_softmax::logsumexp(&[0.0, 0.0])?;
/// assert_eq!(lse, std::f32::consts::LN_2);
/// assert_eq!(simd_softmax::logsumexp::<f32>(&[])?, f32::NEG_INFINITY);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn logsumexp<E: Element>(input: &[E]) -> Result<f32, Error> {
    let mut out = [f32::NEG_INFINITY];
    Softmax::new().run_logsumexp_rows(
        input,
        input.len(),
        &mut out[..usize::from(!input.is_empty())],
    )?;
    Ok(out[0])
}

/// `ln Σ exp(x)` of each row of `row_len` values into `output`, which must
/// hold one value per row; rows in parallel.
pub fn logsumexp_rows<E: Element>(
    input: &[E],
    row_len: usize,
    output: &mut [f32],
) -> Result<(), Error> {
    Softmax::new().run_logsumexp_rows(input, row_len, output)
}

/// The lowest index of the largest value, in one read; `None` for an empty
/// row or one holding NaN. ±0 compare equal, +inf is the largest, and a row
/// of only −inf gives `Some(0)`. f16 and bf16 rows as their f32 values.
///
/// ```
/// assert_eq!(simd_softmax::argmax(&[1.0, 3.0, 2.0, 3.0])?, Some(1));
/// assert_eq!(simd_softmax::argmax(&[1.0, f32::NAN])?, None);
/// assert_eq!(simd_softmax::argmax::<f32>(&[])?, None);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn argmax<E: Element>(input: &[E]) -> Result<Option<usize>, Error> {
    let mut out = [None];
    Softmax::new().run_argmax_rows(
        input,
        input.len(),
        &mut out[..usize::from(!input.is_empty())],
    )?;
    Ok(out[0])
}

/// [`argmax`] of each row of `row_len` values into `output`, which must hold
/// one entry per row; rows in parallel.
pub fn argmax_rows<E: Element>(
    input: &[E],
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
/// `grad_in = g − exp(y)·Σg` = dL/dx. Two passes: the sum, then the write;
/// a row of huge gradients (`|Σg| + max|g| ≥ 2^127`, or NaN or ±inf in
/// them) is written in scalar f64 instead, so that an output is ±inf only
/// where the exact result rounded to f32 is (for `y ≤ 0`).
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
/// one) gives 0, its softmax being all zeros. f16 and bf16 rows convert
/// exactly in registers: the bits of the call on the row in f32.
///
/// ```
/// let h = simd_softmax::entropy(&[0.0, 0.0, 0.0, 0.0])?;
/// assert!((h - 4f32.ln()).abs() < 1e-6);
/// assert_eq!(simd_softmax::entropy(&[5.0])?, 0.0);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn entropy<E: Element>(input: &[E]) -> Result<f32, Error> {
    let mut out = [0.0f32];
    Softmax::new().run_entropy_rows(
        input,
        input.len(),
        &mut out[..usize::from(!input.is_empty())],
    )?;
    Ok(out[0])
}

/// [`entropy`] of each row of `row_len` values into `output`, which must
/// hold one value per row; rows in parallel.
pub fn entropy_rows<E: Element>(
    input: &[E],
    row_len: usize,
    output: &mut [f32],
) -> Result<(), Error> {
    Softmax::new().run_entropy_rows(input, row_len, output)
}

/// Our lane `exp` over a slice on `backend`, for the exhaustive test, the
/// fuzz targets and the throughput tool. Not part of the stable API: inputs
/// above [`exp::DOMAIN_MAX`] are outside its domain.
#[doc(hidden)]
pub fn exp_slice(backend: Backend, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    let backend = backend.check()?;
    shape::same_length(input.len(), output.len())?;
    dispatch::run(
        backend,
        ops::ExpCall::<false>(kernels::Io::new(Some(input), output)),
    )
}

/// Our lane `tanh` (logit soft-capping's) over a slice on `backend`, for
/// its exhaustive test. Not part of the stable API.
#[doc(hidden)]
pub fn tanh_slice(backend: Backend, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    let backend = backend.check()?;
    shape::same_length(input.len(), output.len())?;
    dispatch::run(
        backend,
        ops::TanhCall(kernels::Io::new(Some(input), output)),
    )
}

/// The `exp` logsumexp sums (one fused multiply-add less in the reduction
/// where the backend has FMA: the `exp` module's `exp_for_sum`) over a slice on
/// `backend`, for the exhaustive test. Not part of the stable API.
#[doc(hidden)]
pub fn exp_for_sum_slice(backend: Backend, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    let backend = backend.check()?;
    shape::same_length(input.len(), output.len())?;
    dispatch::run(
        backend,
        ops::ExpCall::<true>(kernels::Io::new(Some(input), output)),
    )
}
