//! Engine-owned threads: the rows one thread of an engine's own pool
//! computes. ggml and ONNX Runtime run an operation on their threads as
//! `(ith, nth)`, each thread calling the kernel for its share of the rows;
//! [`RowPart`] names that share and `Softmax::run_rows_part` computes it on
//! the calling thread, without rayon.

use core::ops::Range;

use crate::Error;

/// Part `index` of `count` of a batch of rows, as an engine thread
/// `(ith, nth)` sees its share. The parts are contiguous, in order, cover
/// every row once, and differ in size by at most one row:
/// part `i` of `n` holds rows `⌊i·rows/n⌋ .. ⌊(i+1)·rows/n⌋`.
///
/// ```
/// use simd_softmax::RowPart;
/// let parts: Vec<_> = (0..3).map(|i| RowPart::new(i, 3).unwrap().rows(10)).collect();
/// assert_eq!(parts, [0..3, 3..6, 6..10]);
/// assert!(RowPart::new(3, 3).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RowPart {
    index: usize,
    count: usize,
}

impl RowPart {
    /// Part `index` of `count`: errs unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self, Error> {
        if index < count {
            Ok(RowPart { index, count })
        } else {
            Err(Error::InvalidPart {
                part: index,
                parts: count,
            })
        }
    }

    /// The part's index (`ith`).
    pub fn index(self) -> usize {
        self.index
    }

    /// The number of parts (`nth`).
    pub fn count(self) -> usize {
        self.count
    }

    /// The rows of a batch of `rows` rows that this part holds (empty when
    /// there are fewer rows than parts and this part gets none).
    pub fn rows(self, rows: usize) -> Range<usize> {
        let cut = |i: usize| (i as u128 * rows as u128 / self.count as u128) as usize;
        cut(self.index)..cut(self.index + 1)
    }
}
