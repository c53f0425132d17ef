//! Top-k selection in one read: a threshold (the k-th largest value so
//! far) and a small buffer of candidates above it. Each vector costs one
//! compare against the threshold; only vectors holding a value above it
//! are looked at lane by lane, and when the buffer fills it is cut back to
//! the best k (a linear-time selection), raising the threshold. On random
//! logits the candidates thin out fast (about k·ln(n/k) in all), and the
//! vocabulary is never sorted.
//!
//! Order: larger value first, then lower index (the crate's tie rule);
//! −0 and +0 are equal. NaN is never a candidate, only flagged.

use core::cmp::Ordering;

use super::online::{BlockVisitor, row_max_sum};
use super::{Partial, RowClass};
use crate::element::Storage;
use crate::lanes::Lanes;

/// The k largest values seen so far (and some candidates not yet cut).
pub(crate) struct TopK {
    k: usize,
    /// (value, index); never NaN.
    items: Vec<(f32, u32)>,
    /// Once `k` items are held: the smallest of the best k. A later value
    /// equal to it ranks after it (higher index), so only `> threshold`
    /// can enter.
    threshold: Option<f32>,
}

/// Larger value first, then lower index.
pub(crate) fn rank(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(2 * k + 16),
            threshold: None,
        }
    }

    fn push(&mut self, v: f32, i: usize) {
        self.items.push((v, i as u32));
        // Cut when the first k are in (to get a threshold), then whenever
        // the buffer is full.
        let first = self.threshold.is_none() && self.items.len() == self.k;
        if first || self.items.len() >= 2 * self.k + 16 {
            self.cut();
        }
    }

    /// Offers `values` (element `j` has index `base + j`); returns whether
    /// one was NaN.
    #[cold]
    #[inline(never)]
    fn offer<X: Storage>(&mut self, values: &[X], base: usize) -> bool {
        let mut nan = false;
        for (j, v) in values.iter().enumerate() {
            let v = v.to_f32();
            if v.is_nan() {
                nan = true;
            } else if self.threshold.is_none_or(|t| v > t) {
                self.push(v, base + j);
            }
        }
        nan
    }

    /// Keeps the best k and raises the threshold to the k-th.
    fn cut(&mut self) {
        let k = self.k;
        if self.items.len() > k {
            self.items.select_nth_unstable_by(k - 1, rank);
            self.items.truncate(k);
        }
        let kth = self.items.iter().copied().max_by(rank).map(|(v, _)| v);
        self.threshold = kth;
    }

    /// The best k (fewer if fewer values were seen), best first.
    pub(crate) fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.items.sort_unstable_by(rank);
        self.items.truncate(self.k);
        self.items
    }
}

/// Adds the values of `x` (element `j` has index `base + j`) to `top`.
/// Returns whether `x` holds a NaN.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn scan<S: Lanes, X: Storage>(s: S, x: &[X], base: usize, top: &mut TopK) -> bool {
    let l = S::LANES;
    let mut nan = false;
    // Until k values are held, everything (but NaN) is a candidate.
    let mut start = 0;
    while top.threshold.is_none() && start < x.len() {
        nan |= top.offer(&x[start..start + 1], base + start);
        start += 1;
    }
    let x = &x[start..];
    let base = base + start;
    // The loop holds nothing but the threshold: vectors above it (or with
    // NaN) go to `offer`, out of line and cold, so the loop's registers and
    // index stay in registers (with the candidate code inline, LLVM kept
    // the index and a NaN accumulator in memory: 3× slower).
    let mut bar = s.splat(top.threshold.unwrap_or(f32::INFINITY));
    let mut vectors = x.chunks_exact(l);
    for (k, v) in (&mut vectors).enumerate() {
        if s.any_greater_or_nan(X::load(s, v), bar) {
            nan |= top.offer(v, base + k * l);
            bar = s.splat(top.threshold.unwrap_or(f32::INFINITY));
        }
    }
    let rest = vectors.remainder();
    nan | top.offer(rest, base + x.len() - rest.len())
}

/// One read of `x`: its top k, its `(max, Σ exp(x − max))` and its class, each block scanned for candidates while it is in L1. The sum
/// is `logsumexp`'s (same chunks, blocks and order).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn top_k_and_sum<S: Lanes, X: Storage>(
    s: S,
    x: &[X],
    k: usize,
) -> (Vec<(f32, u32)>, Partial, RowClass) {
    struct Scan(TopK);
    impl<X: Storage> BlockVisitor<X> for Scan {
        #[cfg_attr(not(unoptimized), inline(always))]
        fn visit<S: Lanes>(&mut self, s: S, block: &[X], start: usize, max: f32) {
            // A block wholly at or below the threshold has no candidate:
            // once the threshold settles, most blocks end here.
            if self.0.threshold.is_some_and(|t| max <= t) {
                return;
            }
            scan(s, block, start, &mut self.0);
        }
    }
    let mut visitor = Scan(TopK::new(k));
    let total = row_max_sum::<S, X, false>(s, x, &mut visitor);
    // Skipped blocks were not looked at for NaN, but NaN made the sum NaN.
    let class = RowClass::of(total, x.iter().map(|v| v.to_f32()));
    (visitor.0.into_sorted(), total, class)
}
