//! How an algorithm walks the chunks of a row: in order on this thread, or
//! across the rayon pool. Either way the per-chunk results are combined in
//! chunk order, so a split row gets the same bits as a whole one.

#[cfg(feature = "rayon")]
use rayon::prelude::*;

#[cfg(feature = "rayon")]
use super::{CHUNK, Data};
use super::{Io, Logits};
use crate::element::{Elements, F32};
#[cfg(feature = "rayon")]
use crate::lanes::Job;
use crate::lanes::Lanes;

/// Work on one chunk of a row (`index` counts chunks from the row start).
pub(crate) trait ChunkJob<E: Elements = F32>: Sync {
    type Out: Send;
    fn run<S: Lanes, T: Logits>(&self, s: S, index: usize, chunk: Io<'_, T, E>) -> Self::Out;
}

pub(crate) trait Exec {
    /// Runs `job` on each `chunk_len` piece of `io` (the last may be
    /// shorter) and folds the results with `f` in chunk order.
    fn fold<J: ChunkJob<E>, A, T: Logits, E: Elements>(
        &self,
        io: &mut Io<'_, T, E>,
        chunk_len: usize,
        job: &J,
        init: A,
        f: impl FnMut(A, J::Out) -> A,
    ) -> A;
}

/// Chunks in order on this thread, inside the caller's vectorized code.
pub(crate) struct Sequential<S>(pub S);

impl<S: Lanes> Exec for Sequential<S> {
    #[inline(always)]
    fn fold<J: ChunkJob<E>, A, T: Logits, E: Elements>(
        &self,
        io: &mut Io<'_, T, E>,
        chunk_len: usize,
        job: &J,
        init: A,
        mut f: impl FnMut(A, J::Out) -> A,
    ) -> A {
        let n = io.len();
        let mut acc = init;
        let (mut start, mut index) = (0, 0);
        while start < n {
            let end = n.min(start + chunk_len);
            acc = f(acc, job.run(self.0, index, io.slice(start..end)));
            start = end;
            index += 1;
        }
        acc
    }
}

/// Chunks across the current rayon pool, each entering the backend of the
/// token it carries.
#[cfg(feature = "rayon")]
pub(crate) struct Parallel<S>(pub S);

#[cfg(feature = "rayon")]
impl<S: Lanes> Exec for Parallel<S> {
    fn fold<J: ChunkJob<E>, A, T: Logits, E: Elements>(
        &self,
        io: &mut Io<'_, T, E>,
        chunk_len: usize,
        job: &J,
        init: A,
        f: impl FnMut(A, J::Out) -> A,
    ) -> A {
        let s = self.0;
        let logits = io.logits();
        let run = |index: usize, data: Data<'_, E>| {
            let start = index * chunk_len;
            let chunk = Io::from_parts(data, logits);
            let len = chunk.len();
            let chunk = chunk.with_logits(logits.slice(start..start + len));
            s.vectorize(OneChunk { job, index, chunk })
        };
        // Chunks shorter than CHUNK are grouped into tasks of about CHUNK
        // elements: a rayon task per 2048 values once cost a third of a gain.
        let per_task = (CHUNK / chunk_len).max(1);
        let outs: Vec<J::Out> = match io.data_mut() {
            Data::InPlace(data) => data
                .par_chunks_mut(chunk_len)
                .enumerate()
                .with_min_len(per_task)
                .map(|(index, c)| run(index, Data::InPlace(c)))
                .collect(),
            Data::OutOfPlace { input, output } => input
                .par_chunks(chunk_len)
                .zip(output.par_chunks_mut(chunk_len))
                .enumerate()
                .with_min_len(per_task)
                .map(|(index, (input, output))| run(index, Data::OutOfPlace { input, output }))
                .collect(),
        };
        outs.into_iter().fold(init, f)
    }
}

#[cfg(feature = "rayon")]
struct OneChunk<'a, J, T: Logits, E: Elements> {
    job: &'a J,
    index: usize,
    chunk: Io<'a, T, E>,
}

#[cfg(feature = "rayon")]
impl<J: ChunkJob<E>, T: Logits, E: Elements> Job for OneChunk<'_, J, T, E> {
    type Output = J::Out;
    #[inline(always)]
    fn run<S: Lanes>(self, s: S) -> J::Out {
        self.job.run(s, self.index, self.chunk)
    }
}
