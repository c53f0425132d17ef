use core::fmt;

use crate::{Backend, ElementType};

/// What can go wrong before a kernel runs. Nothing is written when a call
/// returns an error.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// `output.len() != input.len()`.
    LengthMismatch {
        /// Length of the input.
        input: usize,
        /// Length of the output.
        output: usize,
    },
    /// A slice whose length does not fit the call (e.g. `grad_out` beside
    /// `probs`, or `targets` beside the rows of `logits`).
    SliceLength {
        /// The argument.
        name: Argument,
        /// Its length.
        len: usize,
        /// The length the call needs.
        expected: usize,
    },
    /// A cross-entropy target index beyond its row (and not the
    /// `ignore_index`).
    TargetOutOfRange {
        /// The row.
        row: usize,
        /// Its target.
        target: usize,
        /// The row length.
        row_len: usize,
    },
    /// A counted row of a vocabulary-sharded cross-entropy whose merged
    /// partials hold no logit for its target: the shard that holds it was
    /// not merged in.
    MissingTarget {
        /// The row.
        row: usize,
        /// Its target.
        target: usize,
    },
    /// `row_len == 0` with `len` values to split into rows.
    ZeroRowLength {
        /// Number of values.
        len: usize,
    },
    /// `len` is not a multiple of `row_len`.
    RaggedRows {
        /// Number of values.
        len: usize,
        /// The requested row length.
        row_len: usize,
    },
    /// A per-row output (e.g. `logsumexp_rows`) does not hold one value per row.
    RowOutputs {
        /// Number of rows in the input.
        rows: usize,
        /// Length of the output.
        output: usize,
    },
    /// A setting outside its domain, e.g. a negative temperature: `name`
    /// is the setting, `expected` its domain.
    InvalidParameter {
        /// The setting; [`Parameter::domain`] says what it must be.
        name: Parameter,
        /// The value given.
        value: f64,
    },
    /// A mask holds neither one row (`row_len` values) nor one value per
    /// element (`len`).
    MaskLength {
        /// Which mask.
        mask: Mask,
        /// Its length.
        mask_len: usize,
        /// The row length of the call.
        row_len: usize,
        /// The number of values of the call.
        len: usize,
    },
    /// A row stride shorter than the row (or rows of 0 with a stride).
    RowStride {
        /// The stride.
        stride: usize,
        /// The row length.
        row_len: usize,
    },
    /// Strided data whose length is neither `rows·stride` nor
    /// `(rows − 1)·stride + row_len` for any number of rows.
    StridedLength {
        /// Number of values.
        len: usize,
        /// The row length.
        row_len: usize,
        /// The row stride.
        stride: usize,
    },
    /// A row no token can be drawn from: it holds NaN, is empty, or has
    /// nothing above −inf.
    CannotSample {
        /// The row (0 for a single row).
        row: usize,
        /// Why.
        reason: SampleFailure,
    },
    /// A row longer than the operation can index (e.g. 32-bit token ids).
    RowTooLong {
        /// Its length.
        len: usize,
        /// The longest row the operation takes.
        max: usize,
    },
    /// An (input, output) pair of element types this call does not take
    /// yet: softmax and log-softmax take the same type in and out, or f16
    /// or bf16 in and f32 out.
    UnsupportedElements {
        /// The input's type.
        input: ElementType,
        /// The output's type.
        output: ElementType,
    },
    /// A [`RowPart`](crate::RowPart) whose index is not below its count.
    InvalidPart {
        /// The part's index.
        part: usize,
        /// The number of parts.
        parts: usize,
    },
    /// Rows that do not fit the attention layout: it needs
    /// `shape.rows()` rows of `shape.keys` values.
    AttentionShape {
        /// The layout.
        shape: crate::Attention,
        /// The rows of the call.
        rows: usize,
        /// Its row length.
        row_len: usize,
    },
    /// The requested backend needs instructions this CPU lacks.
    BackendUnavailable(Backend),
    /// `SIMD_SOFTMAX_BACKEND` holds a name that is no backend.
    UnknownBackend(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LengthMismatch { input, output } => write!(
                f,
                "output length {output} differs from input length {input}"
            ),
            Error::SliceLength {
                name,
                len,
                expected,
            } => write!(
                f,
                "{} holds {len} values; the call needs {expected}",
                name.name()
            ),
            Error::TargetOutOfRange {
                row,
                target,
                row_len,
            } => write!(
                f,
                "row {row}: target {target} is out of range for rows of {row_len}"
            ),
            Error::MissingTarget { row, target } => write!(
                f,
                "row {row}: no merged partial holds target {target} (was its shard merged in?)"
            ),
            Error::ZeroRowLength { len } => {
                write!(
                    f,
                    "row_len is 0 but there are {len} values to split into rows"
                )
            }
            Error::RaggedRows { len, row_len } => write!(
                f,
                "length {len} is not a multiple of row_len {row_len} ({} full rows and {} left over)",
                len / row_len,
                len % row_len
            ),
            Error::RowOutputs { rows, output } => {
                write!(
                    f,
                    "output holds {output} values for {rows} rows (one per row)"
                )
            }
            Error::InvalidParameter { name, value } => write!(
                f,
                "{} = {value} is invalid: it must be {}",
                name.name(),
                name.domain()
            ),
            Error::MaskLength {
                mask,
                mask_len,
                row_len,
                len,
            } => write!(
                f,
                "{} holds {mask_len} values; it must hold one row ({row_len}) or one per element ({len})",
                mask.name()
            ),
            Error::RowStride { stride, row_len } => write!(
                f,
                "row stride {stride} is shorter than the row length {row_len} (or the rows are empty)"
            ),
            Error::StridedLength {
                len,
                row_len,
                stride,
            } => write!(
                f,
                "length {len} is neither rows·{stride} nor (rows − 1)·{stride} + {row_len} for rows of {row_len} every {stride}"
            ),
            Error::CannotSample { row, reason } => {
                write!(f, "row {row} cannot be sampled: {}", reason.describe())
            }
            Error::RowTooLong { len, max } => {
                write!(
                    f,
                    "a row of {len} entries is longer than the {max} this call takes"
                )
            }
            Error::UnsupportedElements { input, output } => write!(
                f,
                "{input} in and {output} out is not supported yet: the same type in and out, or f16 or bf16 in and f32 out"
            ),
            Error::InvalidPart { part, parts } => write!(
                f,
                "part {part} of {parts} does not exist: parts count from 0 and there must be at least one"
            ),
            Error::AttentionShape {
                shape,
                rows,
                row_len,
            } => write!(
                f,
                "{rows} rows of {row_len} do not fit attention [{}, {}, {}, {}]: it needs {} rows of {}",
                shape.batch,
                shape.heads,
                shape.queries,
                shape.keys,
                shape.rows(),
                shape.keys
            ),
            Error::BackendUnavailable(b) => write!(
                f,
                "backend {} ({b}) is not available on this CPU; available: {}",
                b.name(),
                Backend::ALL
                    .iter()
                    .filter(|b| b.is_available())
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::UnknownBackend(name) => write!(
                f,
                "{}={name:?} names no backend; use one of: {}",
                crate::BACKEND_ENV,
                Backend::ALL.map(Backend::name).join(", ")
            ),
        }
    }
}

impl std::error::Error for Error {}

/// A slice argument named in [`Error::SliceLength`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Argument {
    /// The incoming gradient of a backward pass.
    GradOut,
    /// The gradient a backward pass writes.
    GradIn,
    /// The cross-entropy targets (one per row).
    Targets,
    /// The cross-entropy gradient (one per logit).
    Grad,
    /// The output of a part of a batch (its rows only).
    Output,
    /// The attention sinks (one per head).
    Sinks,
    /// The merged partials of a vocabulary-sharded cross-entropy (one per
    /// row).
    Totals,
}

impl Argument {
    /// The argument's name in the function signature.
    pub fn name(self) -> &'static str {
        match self {
            Argument::GradOut => "grad_out",
            Argument::GradIn => "grad_in",
            Argument::Targets => "targets",
            Argument::Grad => "grad",
            Argument::Output => "output",
            Argument::Sinks => "sinks",
            Argument::Totals => "totals",
        }
    }
}

/// A mask named in [`Error::MaskLength`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mask {
    /// [`Softmax::keep_mask`](crate::Softmax::keep_mask).
    Keep,
    /// [`Softmax::additive_mask`](crate::Softmax::additive_mask).
    Additive,
}

impl Mask {
    /// The builder method's name.
    pub fn name(self) -> &'static str {
        match self {
            Mask::Keep => "keep_mask",
            Mask::Additive => "additive_mask",
        }
    }
}

/// A setting named in [`Error::InvalidParameter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Parameter {
    /// The softmax temperature: ≥ 0, 0 and +inf being the limits.
    Temperature,
    /// The softmax scale: finite and > 0.
    Scale,
    /// Cross-entropy label smoothing: in [0, 1).
    LabelSmoothing,
    /// The sampler's temperature: finite and ≥ 0.
    SamplerTemperature,
    /// The sampler's top-k: ≥ 1.
    TopK,
    /// The sampler's top-p: in (0, 1].
    TopP,
    /// The sampler's min-p: in [0, 1).
    MinP,
    /// The shift `m` of [`exp_shifted`](crate::exp_shifted): finite.
    Shift,
    /// ALiBi's `max_bias`: finite and ≥ 0, with an additive mask.
    MaxBias,
    /// The soft cap `c`: finite and > 0.
    Softcap,
}

impl Parameter {
    /// The setting's name, as the builder method names it.
    pub fn name(self) -> &'static str {
        match self {
            Parameter::Temperature | Parameter::SamplerTemperature => "temperature",
            Parameter::Scale => "scale",
            Parameter::LabelSmoothing => "label_smoothing",
            Parameter::TopK => "top_k",
            Parameter::TopP => "top_p",
            Parameter::MinP => "min_p",
            Parameter::Shift => "m",
            Parameter::MaxBias => "max_bias",
            Parameter::Softcap => "softcap",
        }
    }

    /// What the setting must be.
    pub fn domain(self) -> &'static str {
        match self {
            Parameter::Temperature => "≥ 0 (0 and +inf are the limits)",
            Parameter::Scale => "finite and > 0",
            Parameter::LabelSmoothing => "in [0, 1)",
            Parameter::SamplerTemperature => "finite and ≥ 0",
            Parameter::TopK => "≥ 1",
            Parameter::TopP => "in (0, 1]",
            Parameter::MinP => "in [0, 1)",
            Parameter::Shift => "finite",
            Parameter::MaxBias => "finite and ≥ 0, with an additive mask (the slopes multiply it)",
            Parameter::Softcap => "finite and > 0",
        }
    }
}

/// Why a row cannot be sampled ([`Error::CannotSample`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleFailure {
    /// The row holds NaN.
    Nan,
    /// No logit is above −inf (or the row is empty).
    NoMass,
    /// The row has more than 2^32 − 1 entries (token indices are 32-bit).
    TooLong,
}

impl SampleFailure {
    /// A sentence for messages.
    pub fn describe(self) -> &'static str {
        match self {
            SampleFailure::Nan => "the row holds NaN",
            SampleFailure::NoMass => "no logit is above −inf",
            SampleFailure::TooLong => {
                "the row has more than 2^32 - 1 entries (token indices are 32-bit)"
            }
        }
    }
}
