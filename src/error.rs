use core::fmt;

use crate::Backend;

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
        /// The argument, as the function names it.
        name: &'static str,
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
        /// The setting, as the builder method names it.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
    /// A mask holds neither one row (`row_len` values) nor one value per
    /// element (`len`).
    MaskLength {
        /// Which mask: `"additive_mask"` or `"keep_mask"`.
        mask: &'static str,
        /// Its length.
        mask_len: usize,
        /// The row length of the call.
        row_len: usize,
        /// The number of values of the call.
        len: usize,
    },
    /// A builder setting that the called operation does not apply (e.g. a
    /// mask on `run_argmax_rows`); refused rather than ignored.
    NotApplicable {
        /// The setting.
        setting: &'static str,
        /// The operation called.
        operation: &'static str,
    },
    /// A row no token can be drawn from: it holds NaN, is empty, or has
    /// nothing above −inf.
    CannotSample {
        /// The row (0 for a single row).
        row: usize,
        /// Why.
        reason: &'static str,
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
            } => write!(f, "{name} holds {len} values; the call needs {expected}"),
            Error::TargetOutOfRange {
                row,
                target,
                row_len,
            } => write!(
                f,
                "row {row}: target {target} is out of range for rows of {row_len}"
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
            Error::InvalidParameter {
                name,
                value,
                expected,
            } => write!(f, "{name} = {value} is invalid: it must be {expected}"),
            Error::MaskLength {
                mask,
                mask_len,
                row_len,
                len,
            } => write!(
                f,
                "{mask} holds {mask_len} values; it must hold one row ({row_len}) or one per element ({len})"
            ),
            Error::NotApplicable { setting, operation } => {
                write!(f, "{setting} does not apply to {operation}")
            }
            Error::CannotSample { row, reason } => {
                write!(f, "row {row} cannot be sampled: {reason}")
            }
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
