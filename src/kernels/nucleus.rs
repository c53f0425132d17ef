//! Top-p without sorting the row: the smallest most-probable prefix whose
//! weight reaches a goal, from a few candidates.
//!
//! A floor on the logits rules most of the row out when the tokens below it
//! weigh less than `T − goal` together (`T` the row's total weight): the
//! prefix reaching `goal` then lies wholly above it. Two floors serve:
//! - a few levels whose weight below them is estimated in the same read as
//!   the total, from one vector in eight ([`total_and_below`]; the levels
//!   are placed from an estimate): the highest level the estimates put
//!   enough weight above, checked once its candidates are weighed;
//! - where none does, or the check fails, a bound that always holds: every
//!   token below the floor weighs less than `(T − goal)/n`.
//!
//! Two compare-only reads collect the tokens at or above the floor
//! ([`at_least`]): on the throughput tool's normal logits (σ 3, 128256
//! entries) 1215 of them for t 0.8, p 0.9 and 13337 for t 1.0, p 0.95.
//! A weighted selection over the candidates ([`cut`]: vector passes that
//! add up the weight above a few sampled logits and narrow the range)
//! finds the prefix in time linear in their number, so nothing is sorted;
//! a draw adds up the kept weights in index order ([`Candidates::draw`]).
//!
//! Order is the crate's: larger logit first, then lower index; −0 and +0
//! are equal. The logits are never NaN here (the caller rules NaN rows out).

use core::cmp::Ordering;

use super::{Map, SHORT_FOLD_VECTORS};
use crate::element::Storage;
use crate::lanes::Lanes;
#[cfg(test)]
use crate::lanes::{Job, on_every_backend};

/// Logit levels whose weight below them [`total_and_below`] estimates in
/// the same read as the total.
pub(crate) const LEVELS: usize = 8;

/// The relative error of a sum from `sum_of`: each lane adds up to 4
/// positive terms in f32 in each of two accumulators and then the two,
/// before f64 takes over (4·2^-24 = 2.4e-7).
pub(crate) const SUM_ERROR: f64 = 3e-7;

/// The relative error of [`total_and_below`]'s total: each pair of terms is
/// added once in f32 (2^-24 = 6e-8), then in f64 lanes (below 2^-53 per
/// term of each lane: under 3e-8 for rows of up to 2^32 entries).
pub(crate) const TOTAL_ERROR: f64 = 1e-7;

/// What [`total_and_below`] finds in one read of a row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowWeights {
    /// `Σ f(x)`, good to [`TOTAL_ERROR`] relative.
    pub(crate) total: f64,
    /// Estimates of `Σ f(x)` over `x < level`, one per level.
    pub(crate) below: [f64; LEVELS],
}

/// One read of `x`: the total `Σ f(x)` (each pair of vectors added in f32,
/// then in f64 lanes: a tighter total than `sum_of`'s, at about the same
/// cost, so that the sampler's close calls are rare) and, from one vector
/// in every [`SHORT_FOLD_VECTORS`] (the first of each group), estimates of the
/// weight below each level. The estimates only choose where to look: the
/// sampler checks what it finds against the total. Sampling keeps the
/// levels' cost to a fraction of an operation per vector. `f(−inf)` must
/// be 0.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn total_and_below<S: Lanes, X: Storage>(
    s: S,
    x: &[X],
    f: impl Map<S>,
    levels: [f32; LEVELS],
) -> RowWeights {
    let l = S::LANES;
    let zero = s.splat(0.0);
    let mut total = s.wide_zero();
    // Per lane, f32: one term per group (estimates; no error bound needed).
    let mut below = [zero; LEVELS];
    let mut sampled = 0usize;
    let mut groups = x.chunks_exact(SHORT_FOLD_VECTORS * l);
    for group in &mut groups {
        let v = X::load(s, group);
        let w = f.apply(s, v);
        sample(s, v, w, &levels, &mut below);
        sampled += l;
        total = s.wide_add(total, s.add(w, f.apply(s, X::load(s, &group[l..]))));
        for pair in group[2 * l..].chunks_exact(2 * l) {
            let w = s.add(
                f.apply(s, X::load(s, pair)),
                f.apply(s, X::load(s, &pair[l..])),
            );
            total = s.wide_add(total, w);
        }
    }
    // Fewer than SHORT_FOLD_VECTORS vectors: one at a time; the first is sampled.
    let rest = groups.remainder();
    let mut vectors = rest.chunks_exact(l);
    for (k, v) in (&mut vectors).enumerate() {
        let v = X::load(s, v);
        let w = f.apply(s, v);
        if k == 0 {
            sample(s, v, w, &levels, &mut below);
            sampled += l;
        }
        total = s.wide_add(total, w);
    }
    let tail = vectors.remainder();
    if !tail.is_empty() {
        let v = X::load_partial(s, tail, f32::NEG_INFINITY);
        let w = f.apply(s, v);
        if rest.len() == tail.len() {
            sample(s, v, w, &levels, &mut below);
            sampled += tail.len();
        }
        total = s.wide_add(total, w);
    }
    let scale = if sampled == 0 {
        0.0
    } else {
        x.len() as f64 / sampled as f64
    };
    let mut out = RowWeights {
        total: s.wide_sum(total),
        below: [0.0; LEVELS],
    };
    for (estimate, sum) in out.below.iter_mut().zip(below) {
        *estimate = s.reduce_sum_f64(sum) * scale;
    }
    out
}

/// Adds the weights `w` of `v` to each level's lanes where `v` is below it.
#[cfg_attr(not(unoptimized), inline(always))]
fn sample<S: Lanes>(s: S, v: S::V, w: S::V, levels: &[f32; LEVELS], below: &mut [S::V; LEVELS]) {
    for (part, &level) in below.iter_mut().zip(levels) {
        *part = s.add_where_below(*part, v, level, w);
    }
}

/// A candidate token: logit, index and weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Weighted {
    pub(crate) x: f32,
    pub(crate) i: u32,
    pub(crate) w: f32,
}

/// Rank order: larger logit first, then lower index.
pub(crate) fn rank(a: &Weighted, b: &Weighted) -> Ordering {
    b.x.partial_cmp(&a.x)
        .unwrap_or(Ordering::Equal)
        .then(a.i.cmp(&b.i))
}

#[cfg_attr(not(unoptimized), inline(always))]
fn before(a: &Weighted, b: &Weighted) -> bool {
    a.x > b.x || (a.x == b.x && a.i < b.i)
}

/// Candidate tokens as three arrays (logits, weights, indices into the
/// row), so that the passes over them are vector passes.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Candidates {
    pub(crate) x: Vec<f32>,
    pub(crate) w: Vec<f32>,
    pub(crate) id: Vec<u32>,
}

impl Candidates {
    pub(crate) fn len(&self) -> usize {
        self.x.len()
    }

    pub(crate) fn get(&self, k: usize) -> Weighted {
        Weighted {
            x: self.x[k],
            i: self.id[k],
            w: self.w[k],
        }
    }

    /// Every candidate, for the few-candidate paths and the tests.
    pub(crate) fn items(&self) -> Vec<Weighted> {
        (0..self.len()).map(|k| self.get(k)).collect()
    }

    /// Their weight: each lane adds its weights in f64, then the lanes in a
    /// fixed order.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn weight<S: Lanes>(&self, s: S) -> f64 {
        let l = S::LANES;
        let mut acc = s.wide_zero();
        let mut vectors = self.w.chunks_exact(l);
        for w in &mut vectors {
            acc = s.wide_add(acc, s.load(w));
        }
        acc = s.wide_add(acc, s.load_partial(vectors.remainder(), 0.0));
        s.wide_sum(acc)
    }

    /// Whether every weight is above 0.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn all_weigh<S: Lanes>(&self, s: S) -> bool {
        let l = S::LANES;
        let zero = s.splat(0.0);
        let mut vectors = self.w.chunks_exact(l);
        let mut all = u32::MAX;
        for w in &mut vectors {
            all &= s.greater_mask(s.load(w), zero);
        }
        let rest = vectors.remainder();
        let tail = s.greater_mask(s.load_partial(rest, 1.0), zero);
        all & tail & ((1 << l) - 1) == (1 << l) - 1
    }

    /// The candidates whose lanes `keep` sets, in order, as a new set
    /// (one read to count them, one to copy them).
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn select<S: Lanes>(&self, s: S, keep: &mut impl Keep<S>) -> Candidates {
        let l = S::LANES;
        let n = self.len();
        let mut count = 0;
        let mut j = 0;
        while j < n {
            let (x, w) = self.vector(s, j);
            count += (keep.lanes(s, x, w) & lanes_from(n - j, l)).count_ones() as usize;
            j += l;
        }
        // `l` spare entries: a compress may write a whole vector.
        let mut out = Candidates {
            x: vec![0.0; count + l],
            w: vec![0.0; count + l],
            id: vec![0; count + l],
        };
        let mut k = 0;
        let mut j = 0;
        while j < n {
            let (x, w) = self.vector(s, j);
            let mask = keep.lanes(s, x, w) & lanes_from(n - j, l);
            // The selections narrow: most vectors keep nothing, a branch
            // that predicts well and saves three compresses.
            if mask != 0 {
                s.compress(x, mask, &mut out.x[k..]);
                s.compress(w, mask, &mut out.w[k..]);
                k += s.compress_u32(&self.ids(j, l), mask, &mut out.id[k..]);
            }
            j += l;
        }
        out.truncate(k);
        out
    }

    /// Keeps the candidates whose lanes `keep` sets, in order, in place.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn retain<S: Lanes>(&mut self, s: S, keep: &mut impl Keep<S>) {
        let l = S::LANES;
        let n = self.len();
        let mut k = 0;
        let mut j = 0;
        // Whole vectors: the write at `k ≤ j` (a whole vector) ends at or
        // before the end of the vector just read.
        while j + l <= n {
            let (x, w) = self.vector(s, j);
            let id = self.ids(j, l);
            let mask = keep.lanes(s, x, w);
            s.compress(x, mask, &mut self.x[k..]);
            s.compress(w, mask, &mut self.w[k..]);
            k += s.compress_u32(&id, mask, &mut self.id[k..]);
            j += l;
        }
        if j < n {
            let (x, w) = self.vector(s, j);
            let id = self.ids(j, l);
            let mask = keep.lanes(s, x, w) & lanes_from(n - j, l);
            let (mut xs, mut ws, mut ids) = ([0.0f32; 16], [0.0f32; 16], [0u32; 16]);
            s.compress(x, mask, &mut xs);
            s.compress(w, mask, &mut ws);
            let m = s.compress_u32(&id, mask, &mut ids);
            self.x[k..k + m].copy_from_slice(&xs[..m]);
            self.w[k..k + m].copy_from_slice(&ws[..m]);
            self.id[k..k + m].copy_from_slice(&ids[..m]);
            k += m;
        }
        self.truncate(k);
    }

    /// The draw over the candidates ranking at or before `last` (all of
    /// them for `None`): the first, in index order, where their weight
    /// added up in f64 passes `goal`; the last of them in index order when
    /// rounding leaves `goal` beyond them all; `None` when none weighs.
    ///
    /// In index order, not rank order, so that it is one pass of vector
    /// sums over [`DRAW_BLOCK`] candidates at a time, and a scalar walk
    /// through the block the goal falls in (or one with ties to `last`).
    /// The candidates must be in index order, as [`at_least`] gives them.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn draw<S: Lanes>(&self, s: S, last: Option<Weighted>, goal: f64) -> Option<u32> {
        let l = S::LANES;
        // Without `last` every candidate is kept: none is below −inf.
        let bar = last.map_or(f32::NEG_INFINITY, |t| t.x);
        let kept = |k: usize| self.w[k] > 0.0 && last.is_none_or(|t| !before(&t, &self.get(k)));
        let (above, at_least) = (s.splat(bar), s.splat(bar.next_down()));
        let mut mass = 0.0f64;
        // The last block with weight in it, for a goal beyond them all.
        let mut weighing = None;
        for start in (0..self.len()).step_by(DRAW_BLOCK) {
            let end = self.len().min(start + DRAW_BLOCK);
            let mut block = s.wide_zero();
            let mut ties = false;
            // Blocks are whole vectors but the last (which `vector` pads).
            for j in (start..end).step_by(l) {
                let (x, w) = self.vector(s, j);
                ties |= s.greater_mask(x, above) != s.greater_mask(x, at_least);
                block = s.wide_add(block, s.zero_where_below(x, bar, w));
            }
            let block = s.wide_sum(block);
            if ties || mass + block > goal {
                // Token by token, ties to `last` ranked by index.
                for k in (start..end).filter(|&k| kept(k)) {
                    mass += f64::from(self.w[k]);
                    weighing = Some(start);
                    if mass > goal {
                        return Some(self.id[k]);
                    }
                }
            } else if block > 0.0 {
                mass += block;
                weighing = Some(start);
            }
        }
        let start = weighing?;
        let end = self.len().min(start + DRAW_BLOCK);
        (start..end).rev().find(|&k| kept(k)).map(|k| self.id[k])
    }

    /// The vector of logits and of weights at `j` (past the end: −inf and
    /// 0).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn vector<S: Lanes>(&self, s: S, j: usize) -> (S::V, S::V) {
        let l = S::LANES;
        if j + l <= self.len() {
            (s.load(&self.x[j..]), s.load(&self.w[j..]))
        } else {
            (
                s.load_partial(&self.x[j..], f32::NEG_INFINITY),
                s.load_partial(&self.w[j..], 0.0),
            )
        }
    }

    /// The `l` indices at `j`, a copy (0 past the end).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn ids(&self, j: usize, l: usize) -> [u32; 16] {
        let mut id = [0u32; 16];
        if j + l <= self.len() {
            // A copy of a length known at compile time: no call.
            id[..l].copy_from_slice(&self.id[j..j + l]);
        } else {
            id[..self.len() - j].copy_from_slice(&self.id[j..]);
        }
        id
    }

    fn truncate(&mut self, n: usize) {
        self.x.truncate(n);
        self.w.truncate(n);
        self.id.truncate(n);
    }
}

/// The mask of the first `min(n, l)` lanes.
#[cfg_attr(not(unoptimized), inline(always))]
fn lanes_from(n: usize, l: usize) -> u32 {
    if n >= l { u32::MAX } else { (1u32 << n) - 1 }
}

/// Which lanes of a vector of candidates (logits `x`, weights `w`)
/// [`Candidates::select`] keeps: a bit per lane. A trait with an
/// `#[inline(always)]` method rather than a closure, so that the lane
/// operations inline into the vectorized entry.
pub(crate) trait Keep<S: Lanes> {
    fn lanes(&mut self, s: S, x: S::V, w: S::V) -> u32;
}

/// Logits `x` with `x > above` and not `x > below`.
pub(crate) struct LogitIn<S: Lanes> {
    above: S::V,
    below: S::V,
}

impl<S: Lanes> LogitIn<S> {
    /// `lo ≤ x < hi` for candidates (neither −inf nor +inf): `x > lo'`
    /// and not `x > hi'`, with `'` the f32 below. `hi` +inf keeps
    /// everything at or above `lo`.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn new(s: S, lo: f32, hi: f32) -> Self {
        LogitIn {
            above: s.splat(lo.next_down()),
            below: s.splat(hi.next_down()),
        }
    }
}

impl<S: Lanes> Keep<S> for LogitIn<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn lanes(&mut self, s: S, x: S::V, _: S::V) -> u32 {
        s.greater_mask(x, self.above) & !s.greater_mask(x, self.below)
    }
}

/// Weights above a value.
pub(crate) struct WeightAbove<S: Lanes>(pub(crate) S::V);

impl<S: Lanes> Keep<S> for WeightAbove<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn lanes(&mut self, s: S, _: S::V, w: S::V) -> u32 {
        s.greater_mask(w, self.0)
    }
}

/// Logits at or above a value, noting whether any equals it.
struct AtOrAbove<S: Lanes> {
    value: S::V,
    below: S::V,
    ties: bool,
}

impl<S: Lanes> Keep<S> for AtOrAbove<S> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn lanes(&mut self, s: S, x: S::V, _: S::V) -> u32 {
        let (above, at_least) = (s.greater_mask(x, self.value), s.greater_mask(x, self.below));
        self.ties |= above != at_least;
        at_least
    }
}

/// The entries of `x` at or above `floor` and their indices, in index
/// order (weights 0, for the caller to fill in); NaN and −inf (which
/// weighs 0) never are.
///
/// Two reads, neither with a branch that depends on the data per vector:
/// the compares write one bit per entry, then the set bits are read off a
/// word at a time. A compress per vector in the first read costs a branch
/// that a scattered few percent of candidates mispredicts, or a compress
/// on every vector (each about 3× the whole read's other work here).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn at_least<S: Lanes, X: Storage>(s: S, x: &[X], floor: f32) -> Candidates {
    let l = S::LANES;
    // `v > bar` is `v ≥ floor` for every f32 `v` above −inf.
    let bar = s.splat(floor.next_down());
    let mut bits = vec![0u64; x.len().div_ceil(64)];
    let mut words = x.chunks_exact(64);
    for (word, entries) in bits.iter_mut().zip(&mut words) {
        X::greater_bits64(s, entries, bar, word);
    }
    if let Some(word) = bits.last_mut()
        && !words.remainder().is_empty()
    {
        for (j, v) in words.remainder().iter().enumerate() {
            let v = v.to_f32();
            if v >= floor && v > f32::NEG_INFINITY {
                *word |= 1 << j;
            }
        }
    }
    let count = bits.iter().map(|w| w.count_ones() as usize).sum();
    // `l` spare entries: a compress writes a whole vector.
    let mut c = Candidates {
        x: vec![0.0; count + l],
        w: vec![0.0; count],
        id: vec![0; count + l],
    };
    let mut k = 0;
    for (word, &bits) in bits.iter().enumerate() {
        if bits.count_ones() >= DENSE {
            // Many: compress the word's vectors (a whole word; a partial
            // last one is read off bit by bit).
            let start = 64 * word;
            if start + 64 <= x.len() {
                for j in (0..64).step_by(l) {
                    let mask = ((bits >> j) as u32) & ((1 << l) - 1);
                    s.compress(X::load(s, &x[start + j..]), mask, &mut c.x[k..]);
                    k += s.compress_index((start + j) as u32, mask, &mut c.id[k..]);
                }
                continue;
            }
        }
        let mut w = bits;
        while w != 0 {
            let i = 64 * word + w.trailing_zeros() as usize;
            c.x[k] = x[i].to_f32();
            c.id[k] = i as u32;
            k += 1;
            w &= w - 1;
        }
    }
    c.x.truncate(count);
    c.id.truncate(count);
    c
}

/// Candidates per block of [`Candidates::draw`] (a multiple of every
/// backend's lane count).
const DRAW_BLOCK: usize = 64;

/// Set bits in a word of [`at_least`] from which a compress of its vectors
/// beats reading the bits off one by one.
const DENSE: u32 = 8;

/// Where [`cut`] found the prefix to end: its last member in rank order,
/// and the prefix's weight without it (`before`, which does not pass the
/// goal) and with it (`through`, which does), as the selection added them
/// up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cut {
    pub(crate) last: Weighted,
    pub(crate) before: f64,
    pub(crate) through: f64,
}

impl Cut {
    /// Keeps the candidates in the prefix (ranking at or before the last
    /// member), in their order.
    #[cfg_attr(not(unoptimized), inline(always))]
    pub(crate) fn keep_prefix<S: Lanes>(&self, s: S, c: &mut Candidates) {
        let last = self.last;
        let mut keep = AtOrAbove {
            value: s.splat(last.x),
            below: s.splat(last.x.next_down()),
            ties: false,
        };
        c.retain(s, &mut keep);
        if keep.ties {
            // Logits equal to the last member's (rare): those of a later
            // index rank after it.
            let mut k = 0;
            for j in 0..c.len() {
                if !before(&last, &c.get(j)) {
                    c.x[k] = c.x[j];
                    c.w[k] = c.w[j];
                    c.id[k] = c.id[j];
                    k += 1;
                }
            }
            c.truncate(k);
        }
    }
}

/// The smallest non-empty prefix of the candidates in rank order whose
/// weight (summed in f64) reaches `goal`; `None` when all of them do not
/// get there. Expected time linear in their number, nothing sorted but a
/// few.
///
/// The last member is found by narrowing a range of logits: each round
/// adds up, in one vector read of the range, the weight at or above
/// [`PIVOTS`] logits sampled from it, keeps the candidates between the two
/// pivots the goal falls between, and carries the weight above them. A
/// range of at most [`FEW`] candidates (or of equal logits, or after a
/// number of unlucky rounds) is sorted.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn cut<S: Lanes>(s: S, c: &Candidates, goal: f64) -> Option<Cut> {
    let passes = |mass: f64| mass >= goal;
    // The weight of the candidates ranking before the range, and of the
    // range (for placing the pivots).
    let mut settled = 0.0f64;
    let mut range_weight = c.weight(s);
    let mut narrowed: Option<Candidates> = None;
    // Against logits placed to defeat the sample: sort after this many.
    let mut rounds_left = 2 * (usize::BITS - c.len().leading_zeros()) + 4;
    loop {
        let range = narrowed.as_ref().unwrap_or(c);
        if range.len() <= FEW || rounds_left == 0 {
            return last_passing(range.items(), settled, &passes);
        }
        let pivots = pivots(range, range_weight, goal - settled);
        let above = weight_at_or_above(s, range, &pivots);
        // The candidates from the first pivot whose weight passes up to
        // the one before it; past the last pivot if none does.
        let j = above.iter().position(|&w| passes(settled + w));
        let (lo, hi) = match j {
            Some(0) => (pivots[0], f32::INFINITY),
            Some(j) => (pivots[j], pivots[j - 1]),
            None => (f32::NEG_INFINITY, pivots[PIVOTS - 1]),
        };
        let before = range.len();
        let mut keep = LogitIn::new(s, lo, hi);
        let next = match narrowed.take() {
            Some(mut range) => {
                range.retain(s, &mut keep);
                range
            }
            None => c.select(s, &mut keep),
        };
        if next.len() == 0 {
            // Past the last pivot with nothing there: the goal is beyond
            // all of the candidates.
            return None;
        }
        if next.len() == before {
            // Only equal logits left: no pivot splits them.
            return last_passing(next.items(), settled, &passes);
        }
        let (left, weight) = match j {
            Some(0) => (0.0, above[0]),
            Some(j) => (above[j - 1], above[j] - above[j - 1]),
            None => (above[PIVOTS - 1], range_weight - above[PIVOTS - 1]),
        };
        settled += left;
        range_weight = weight;
        narrowed = Some(next);
        rounds_left -= 1;
    }
}

#[cfg_attr(not(unoptimized), inline(always))]
fn add_at_or_above<S: Lanes>(
    s: S,
    acc: &mut [S::Wide; PIVOTS],
    x: S::V,
    w: S::V,
    pivots: &[f32; PIVOTS],
) {
    for (a, &p) in acc.iter_mut().zip(pivots) {
        *a = s.wide_add(*a, s.zero_where_below(x, p, w));
    }
}

/// Logits sampled per round of [`cut`].
const PIVOTS: usize = 4;

/// Ranges this small are sorted.
const FEW: usize = 64;

/// [`cut`] on a few candidates, by sorting them; `settled` is the weight
/// ranking before them.
fn last_passing(
    mut few: Vec<Weighted>,
    settled: f64,
    passes: &impl Fn(f64) -> bool,
) -> Option<Cut> {
    few.sort_unstable_by(rank);
    let mut mass = settled;
    for item in few {
        let through = mass + f64::from(item.w);
        if passes(through) {
            return Some(Cut {
                last: item,
                before: mass,
                through,
            });
        }
        mass = through;
    }
    None
}

/// [`PIVOTS`] logits of `c` (more than [`FEW`] of them), largest first
/// (a repeated value repeats), placed around where the weight at or above
/// them reaches `target`, as a sample of 64 estimates it: the weight on
/// the lighter side of that point (below it where top-p's prefix ends:
/// many small weights), added up from that end of the sample. Only speed
/// depends on the estimate. On the throughput tool's row of 256000 (t 1,
/// p 0.95) pivots one and four sample points either side of the estimate
/// all fell below the end of the prefix, and the first round kept 89% of
/// the candidates; spaced by the estimate's own error they bracket it.
fn pivots(c: &Candidates, weight: f64, target: f64) -> [f32; PIVOTS] {
    const SAMPLE: usize = 64;
    let stride = c.len() / SAMPLE;
    let mut sample: [(f32, f32); SAMPLE] = core::array::from_fn(|k| {
        let i = k * stride + stride / 2;
        (c.x[i], c.w[i])
    });
    sample.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let scale = c.len() as f64 / SAMPLE as f64;
    // The smaller side of where the prefix ends, estimated from that end
    // of the sample (the number of points k it takes tells how good the
    // estimate is: off by about 1/√k of it). Pivots at its multiples
    // e^(±δ/2) and e^(±2δ), δ = 1/√k: a pair close by for a good estimate,
    // one far enough for a poor one.
    let below_end = weight - target;
    let from_bottom = below_end <= target;
    let part = if from_bottom { below_end } else { target };
    if from_bottom {
        sample.reverse();
    }
    let points = sample;
    let mut mass = 0.0;
    let k = points
        .iter()
        .take_while(|&&(_, w)| {
            let short = mass < part;
            mass += scale * f64::from(w);
            short
        })
        .count();
    let delta = 1.0 / (k.max(1) as f64).sqrt();
    // Nearest multiple first.
    let spread = [-2.0 * delta, -0.5 * delta, 0.5 * delta, 2.0 * delta].map(f64::exp);
    let mut found = [points[SAMPLE - 1].0; PIVOTS];
    let mut mass = 0.0;
    let mut next = 0;
    for &(x, w) in &points {
        mass += scale * f64::from(w);
        while next < PIVOTS && mass >= part * spread[next] {
            found[next] = x;
            next += 1;
        }
    }
    // Largest first.
    if from_bottom {
        found.reverse();
    }
    found
}

/// The weight (in f64) of the candidates at or above each pivot, in one
/// read.
#[cfg_attr(not(unoptimized), inline(always))]
fn weight_at_or_above<S: Lanes>(s: S, c: &Candidates, pivots: &[f32; PIVOTS]) -> [f64; PIVOTS] {
    let l = S::LANES;
    let mut acc = [s.wide_zero(); PIVOTS];
    let (mut xs, mut ws) = (c.x.chunks_exact(l), c.w.chunks_exact(l));
    for (x, w) in (&mut xs).zip(&mut ws) {
        add_at_or_above(s, &mut acc, s.load(x), s.load(w), pivots);
    }
    let x = s.load_partial(xs.remainder(), f32::NEG_INFINITY);
    let w = s.load_partial(ws.remainder(), 0.0);
    add_at_or_above(s, &mut acc, x, w, pivots);
    let mut sums = [0.0f64; PIVOTS];
    for (sum, a) in sums.iter_mut().zip(acc) {
        *sum = s.wide_sum(a);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small generator, so that the test needs no dependency.
    fn stream(seed: u64) -> impl FnMut() -> u64 {
        let mut z = seed | 1;
        move || {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            z
        }
    }

    /// The prefix the slow way: sort, then add up in rank order.
    fn sorted_prefix(items: &[Weighted], goal: f64) -> Option<Vec<Weighted>> {
        let mut sorted = items.to_vec();
        sorted.sort_by(rank);
        let mut cum = 0.0f64;
        for j in 0..sorted.len() {
            cum += f64::from(sorted[j].w);
            if cum >= goal {
                return Some(sorted[..=j].to_vec());
            }
        }
        None
    }

    /// Every backend, lengths around the group and vector sizes, weights
    /// spread over 2^-30..1: the total is within [`TOTAL_ERROR`] of the
    /// f64 sum of the same f32 weights (as the backend's exp gives them).
    #[test]
    fn total_is_good_to_total_error() {
        #[derive(Clone)]
        struct Check;
        impl Job for Check {
            type Output = ();
            #[cfg_attr(not(unoptimized), inline(always))]
            fn run<S: Lanes>(self, s: S) {
                use crate::kernels::{ExpMinus, Io, Plain};
                let mut next = stream(17);
                for n in (0..300).chain([1000, 4099, 65536, 131075]) {
                    let x: Vec<f32> = (0..n)
                        .map(|_| {
                            -((next() % (30 << 16)) as f32) / 65536.0 * core::f32::consts::LN_2
                        })
                        .collect();
                    let mut w = vec![0.0f32; n];
                    Io::new(Some(&x), &mut w).map_store(s, ExpMinus::new(s, 0.0, Plain));
                    let exact: f64 = w.iter().map(|&v| f64::from(v)).sum();
                    let levels = [-1.0, -2.0, -4.0, -8.0, -12.0, -16.0, -20.0, -25.0];
                    let row = total_and_below(s, &x, ExpMinus::new(s, 0.0, Plain), levels);
                    assert!(
                        (row.total - exact).abs() <= TOTAL_ERROR * exact,
                        "n={n}: {} against {exact}",
                        row.total
                    );
                }
            }
        }
        on_every_backend(Check);
    }

    /// Random, heavily tied and already-ordered candidates, every goal
    /// from nothing to beyond the total, on every backend: the same set as
    /// the sorted prefix (up to f64 rounding at the very boundary, which
    /// small integer weights rule out), the same last member and weights
    /// before and through it. Sizes around the sorted range's and past
    /// several rounds of pivots.
    #[test]
    fn cut_is_where_the_sorted_prefix_ends() {
        #[derive(Clone)]
        struct Check;
        impl Job for Check {
            type Output = ();
            #[cfg_attr(not(unoptimized), inline(always))]
            fn run<S: Lanes>(self, s: S) {
                check_cut(s);
            }
        }
        on_every_backend(Check);
    }

    /// `n` candidates in index order with integer weights 0 to 7 (every
    /// sum exact) and logits of one of four shapes: random, three values
    /// (ties), descending, ±0.
    fn shaped(next: &mut impl FnMut() -> u64, n: usize, shape: u32) -> (Vec<Weighted>, Candidates) {
        let items: Vec<Weighted> = (0..n)
            .map(|k| {
                let r = next();
                let x = match shape {
                    0 => (r % 1000) as f32 - 500.0,
                    1 => (r % 3) as f32,
                    2 => -(k as f32),
                    _ => [0.0, -0.0][(r % 2) as usize],
                };
                let w = ((r >> 32) % 8) as f32;
                Weighted { x, i: k as u32, w }
            })
            .collect();
        let candidates = Candidates {
            x: items.iter().map(|t| t.x).collect(),
            w: items.iter().map(|t| t.w).collect(),
            id: items.iter().map(|t| t.i).collect(),
        };
        (items, candidates)
    }

    fn check_cut<S: Lanes>(s: S) {
        let mut next = stream(7);
        for n in (1..40).chain([63, 64, 65, 100, 300, 1000, 5000, 20000]) {
            for shape in 0..4 {
                let (items, candidates) = shaped(&mut next, n, shape);
                let total: f64 = items.iter().map(|t| f64::from(t.w)).sum();
                assert_eq!(candidates.weight(s), total);
                for step in 0..=20 {
                    let goal = total * f64::from(step) / 19.0;
                    let cut = cut(s, &candidates, goal);
                    let want = sorted_prefix(&items, goal);
                    let what = format!("n={n} shape={shape} goal={goal}");
                    let (Some(cut), Some(want)) = (cut, &want) else {
                        assert_eq!(cut.is_none(), want.is_none(), "{what}");
                        continue;
                    };
                    let mass: f64 = want.iter().map(|t| f64::from(t.w)).sum();
                    assert_eq!(cut.through, mass, "{what}: weight");
                    let last = f64::from(want.last().unwrap().w);
                    assert_eq!(cut.before, mass - last, "{what}: weight before");
                    assert_eq!(cut.last, *want.last().unwrap(), "{what}: last");
                    let mut kept = candidates.clone();
                    cut.keep_prefix(s, &mut kept);
                    let mut kept = kept.items();
                    // In index order, as the candidates were.
                    assert!(kept.windows(2).all(|p| p[0].i < p[1].i), "{what}: order");
                    kept.sort_by(rank);
                    assert_eq!(&kept, want, "{what}");
                }
            }
        }
    }

    /// Every backend, lengths around the vector and block sizes, logits
    /// with many ties (to the last member too) and weights of 0 (integer
    /// weights: every sum exact, so the draw must match to the token), and
    /// goals from 0 to past the whole weight: the draw is the first kept
    /// token in index order whose running weight passes the goal.
    #[test]
    fn draw_is_where_the_running_weight_passes_the_goal() {
        #[derive(Clone)]
        struct Check;
        impl Job for Check {
            type Output = ();
            #[cfg_attr(not(unoptimized), inline(always))]
            fn run<S: Lanes>(self, s: S) {
                check_draw(s);
            }
        }
        on_every_backend(Check);
    }

    fn check_draw<S: Lanes>(s: S) {
        let mut next = stream(13);
        for n in (1..40).chain([63, 64, 65, 127, 128, 129, 1000, 5000]) {
            for shape in 0..4 {
                let (items, candidates) = shaped(&mut next, n, shape);
                let mut sorted = items.clone();
                sorted.sort_by(rank);
                let lasts = [
                    None,
                    Some(sorted[0]),
                    Some(sorted[n / 3]),
                    Some(sorted[n - 1]),
                ];
                for last in lasts {
                    let kept: Vec<&Weighted> = items
                        .iter()
                        .filter(|t| t.w > 0.0 && last.is_none_or(|l| !before(&l, t)))
                        .collect();
                    let weight: f64 = kept.iter().map(|t| f64::from(t.w)).sum();
                    for step in 0..=20 {
                        let goal = weight * f64::from(step) / 19.0;
                        let mut mass = 0.0;
                        let want = kept
                            .iter()
                            .find(|t| {
                                mass += f64::from(t.w);
                                mass > goal
                            })
                            .or(kept.last())
                            .map(|t| t.i);
                        let what = format!("n={n} shape={shape} last={last:?} goal={goal}");
                        assert_eq!(candidates.draw(s, last, goal), want, "{what}");
                    }
                }
            }
        }
    }

    /// Every backend, every length to 300 and a few long ones, sparse and
    /// dense (the word-at-a-time compress), with NaN, ±inf and −0: the
    /// entries a plain filter keeps, in index order.
    #[test]
    fn at_least_is_a_filter() {
        #[derive(Clone)]
        struct Check;
        impl Job for Check {
            type Output = ();
            #[cfg_attr(not(unoptimized), inline(always))]
            fn run<S: Lanes>(self, s: S) {
                let mut next = stream(11);
                for n in (0..300).chain([1000, 4099, 65536]) {
                    let x: Vec<f32> = (0..n)
                        .map(|_| match next() % 50 {
                            0 => f32::NAN,
                            1 => f32::INFINITY,
                            2 => f32::NEG_INFINITY,
                            3 => -0.0,
                            r => (r as f32 - 25.0) / 4.0,
                        })
                        .collect();
                    for floor in [f32::NEG_INFINITY, -3.0, 0.0, 5.0, f32::INFINITY] {
                        let c = at_least(s, &x, floor);
                        let want: Vec<u32> = (0..n as u32)
                            .filter(|&i| {
                                let v = x[i as usize];
                                v >= floor && v > f32::NEG_INFINITY
                            })
                            .collect();
                        assert_eq!(c.id, want, "n={n} floor={floor}");
                        let values: Vec<u32> =
                            want.iter().map(|&i| x[i as usize].to_bits()).collect();
                        assert_eq!(c.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), values);
                        assert_eq!(c.w.len(), want.len());
                    }
                }
            }
        }
        on_every_backend(Check);
    }

    #[test]
    fn at_least_collects_in_index_order() {
        let s = crate::lanes::Scalar;
        let x = [
            1.0,
            f32::NAN,
            -2.0,
            3.0,
            f32::NEG_INFINITY,
            1.0,
            f32::INFINITY,
        ];
        let c = at_least(s, &x, 1.0);
        assert_eq!(c.x, [1.0, 3.0, 1.0, f32::INFINITY]);
        assert_eq!(c.id, [0, 3, 5, 6]);
        assert_eq!(at_least(s, &x, f32::NEG_INFINITY).id, [0, 2, 3, 5, 6]);
    }
}
