//! The shape checks every public call makes before anything is written.

use crate::Error;
use crate::error::Argument;

/// `output` as long as `input`.
pub(crate) fn same_length(input: usize, output: usize) -> Result<(), Error> {
    if input == output {
        Ok(())
    } else {
        Err(Error::LengthMismatch { input, output })
    }
}

/// An argument as long as the call needs.
pub(crate) fn argument_length(name: Argument, len: usize, expected: usize) -> Result<(), Error> {
    if len == expected {
        Ok(())
    } else {
        Err(Error::SliceLength {
            name,
            len,
            expected,
        })
    }
}

/// The number of rows of `row_len` in `len` contiguous values.
pub(crate) fn rows(len: usize, row_len: usize) -> Result<usize, Error> {
    if row_len == 0 {
        if len == 0 {
            Ok(0)
        } else {
            Err(Error::ZeroRowLength { len })
        }
    } else if !len.is_multiple_of(row_len) {
        Err(Error::RaggedRows { len, row_len })
    } else {
        Ok(len / row_len)
    }
}

/// The number of rows of `row_len` starting every `stride` values in
/// `len`: the data holds `rows·stride` or `(rows − 1)·stride + row_len`.
pub(crate) fn strided_rows(len: usize, row_len: usize, stride: usize) -> Result<usize, Error> {
    if stride == row_len {
        return rows(len, row_len);
    }
    if row_len == 0 || stride < row_len {
        return Err(Error::RowStride { stride, row_len });
    }
    if len.is_multiple_of(stride) {
        Ok(len / stride)
    } else if len >= row_len && (len - row_len).is_multiple_of(stride) {
        Ok((len - row_len) / stride + 1)
    } else {
        Err(Error::StridedLength {
            len,
            row_len,
            stride,
        })
    }
}

/// One output per row.
pub(crate) fn row_outputs(rows: usize, output: usize) -> Result<(), Error> {
    if output == rows {
        Ok(())
    } else {
        Err(Error::RowOutputs { rows, output })
    }
}
