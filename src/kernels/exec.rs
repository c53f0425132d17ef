//! How an algorithm walks the chunks of a row: in order on this thread, or
//! across the rayon pool. Either way the per-chunk results are combined in
//! chunk order, so a split row gets the same bits as a whole one.

#[cfg(feature = "rayon")]
use super::CHUNK;
use super::{Io, Logits};
use crate::element::{Elements, F32};
#[cfg(feature = "rayon")]
use crate::lanes::Job;
use crate::lanes::Lanes;
#[cfg(feature = "rayon")]
use crate::pool;

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
    #[cfg_attr(not(unoptimized), inline(always))]
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
        let chunks = io.len().div_ceil(chunk_len);
        let mut outs: Vec<Option<J::Out>> = Vec::with_capacity(chunks);
        outs.resize_with(chunks, || None);
        let mut work = Chunks {
            s: self.0,
            job,
            chunk_len,
            first: 0,
            part: Some(io.slice(0..io.len())),
            outs: &mut outs,
        };
        // Chunks shorter than CHUNK are grouped into tasks of about CHUNK
        // elements: a rayon task per 2048 values once cost a third of a gain.
        let per_task = (CHUNK / chunk_len).max(1);
        pool::run_divided(&mut work, per_task, pool::Cut::AsStolen);
        // Every slot is filled: `run` fills each slot it is given.
        outs.into_iter().flatten().fold(init, f)
    }
}

/// Consecutive chunks of a row from chunk `first` on, and the slots for
/// their results (`part` is `None` once run or split).
#[cfg(feature = "rayon")]
struct Chunks<'a, 'o, S, J: ChunkJob<E>, T: Logits, E: Elements> {
    s: S,
    job: &'a J,
    chunk_len: usize,
    first: usize,
    part: Option<Io<'a, T, E>>,
    outs: &'o mut [Option<J::Out>],
}

#[cfg(feature = "rayon")]
impl<S: Lanes, J: ChunkJob<E>, T: Logits, E: Elements> pool::Divisible
    for Chunks<'_, '_, S, J, T, E>
{
    fn units(&self) -> usize {
        self.outs.len()
    }
    fn split_then(
        &mut self,
        n: usize,
        both: &mut dyn FnMut(&mut dyn pool::Divisible, &mut dyn pool::Divisible),
    ) {
        let Some(io) = self.part.take() else {
            return;
        };
        let (io_a, io_b) = io.split_at(n * self.chunk_len);
        let (outs_a, outs_b) = core::mem::take(&mut self.outs).split_at_mut(n);
        let part = |first, io, outs| Chunks {
            s: self.s,
            job: self.job,
            chunk_len: self.chunk_len,
            first,
            part: Some(io),
            outs,
        };
        both(
            &mut part(self.first, io_a, outs_a),
            &mut part(self.first + n, io_b, outs_b),
        );
    }
    fn run(&mut self) {
        let Some(mut io) = self.part.take() else {
            return;
        };
        let n = io.len();
        for (k, out) in self.outs.iter_mut().enumerate() {
            let start = k * self.chunk_len;
            let chunk = io.slice(start..n.min(start + self.chunk_len));
            *out = Some(self.s.vectorize(OneChunk {
                job: self.job,
                index: self.first + k,
                chunk,
            }));
        }
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
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> J::Out {
        self.job.run(s, self.index, self.chunk)
    }
}
