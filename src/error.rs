use core::fmt;

use crate::Backend;

/// What can go wrong before a kernel runs. Nothing is written when a call
/// returns an error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `output.len() != input.len()`.
    LengthMismatch {
        /// Length of the input.
        input: usize,
        /// Length of the output.
        output: usize,
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
