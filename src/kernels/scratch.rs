//! A per-thread f32 row for the exps of a softmax row whose output is 16
//! bits wide: stored there rather than in the output (where they would be
//! rounded to 8 or 11 bits before the scale), so that such a row takes one
//! exp per value, as an f32 row does, and its results are rounded once.

use std::cell::Cell;

/// Rows up to this many values (4 MiB of f32) keep their buffer for the
/// thread's next row; a longer row's buffer is freed after it. A fresh
/// buffer of a vocabulary's size costs its page faults on every row, about
/// the time of the row itself.
const KEEP_UP_TO: usize = 1 << 20;

std::thread_local! {
    static EXPS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// An f32 buffer of a row's length (contents unspecified): the thread's
/// own, taken out while in use, so that a row this thread runs meanwhile
/// (rayon may, while it waits in a split row) finds none and allocates its
/// own; put back when dropped. A guard rather than a function taking a
/// closure: the kernels using the row must inline into the backend's
/// entry, and a closure passed to a function that is not inlined is
/// compiled outside it, without the instruction set (50 times slower).
pub(crate) struct Scratch {
    buffer: Vec<f32>,
    len: usize,
}

impl Scratch {
    /// A buffer of `len` values.
    pub(crate) fn take(len: usize) -> Scratch {
        let mut buffer = if len <= KEEP_UP_TO {
            EXPS.try_with(Cell::take).unwrap_or_default()
        } else {
            Vec::new()
        };
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        Scratch { buffer, len }
    }

    /// The row.
    pub(crate) fn row(&mut self) -> &mut [f32] {
        &mut self.buffer[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.len <= KEEP_UP_TO {
            let buffer = core::mem::take(&mut self.buffer);
            // Fails only while the thread is being torn down: then it is
            // freed.
            let _ = EXPS.try_with(|cell| cell.set(buffer));
        }
    }
}
