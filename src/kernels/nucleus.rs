//! Top-p without sorting the row: the smallest most-probable prefix whose
//! weight reaches a goal, from a few candidates.
//!
//! A floor on the logits rules most of the row out when the tokens below it
//! weigh less than `T − goal` together (`T` the row's total weight): the
//! prefix reaching `goal` then lies wholly above it. Two floors serve:
//! - the weight below a few levels, added up in the same read as the total
//!   ([`total_and_below`]; the levels are placed from an estimate), gives
//!   the highest level that works;
//! - where none does, a bound that always holds: every token below the
//!   floor weighs less than `(T − goal)/n`.
//!
//! One compare-only read collects the tokens at or above the floor
//! ([`at_least`]): on the throughput tool's normal logits (σ 3, 128256
//! entries) 1909 of them for t 0.8, p 0.9 and 18737 for t 1.0, p 0.95.
//! A weighted quickselect over the candidates
//! ([`prefix_passing`]) finds the prefix in time linear in their number,
//! and the same selection finds the token a draw lands on inside it, so
//! nothing is sorted.
//!
//! Order is the crate's: larger logit first, then lower index; −0 and +0
//! are equal. The logits are never NaN here (the caller rules NaN rows out).

use core::cmp::Ordering;

use super::{FOLD_VECTORS, Map};
use crate::lanes::Lanes;

/// Logit levels whose weight below them [`total_and_below`] adds up in the
/// same read as the total.
pub(crate) const LEVELS: usize = 4;

/// The relative error of a sum from [`total_and_below`] or `sum_of`: each
/// lane adds up to 4 positive terms in f32 in each of two accumulators and
/// then the two, before f64 takes over (4·2^-24 = 2.4e-7).
pub(crate) const SUM_ERROR: f64 = 3e-7;

/// One read of `x`: `(Σ f(x), [Σ f(x) over x < level])`, each summed like
/// `sum_of` (two f32 accumulators per sum, folded into f64 every
/// [`FOLD_VECTORS`] vectors, good to [`SUM_ERROR`] relative). `f(−inf)`
/// must be 0.
#[inline(always)]
pub(crate) fn total_and_below<S: Lanes>(
    s: S,
    x: &[f32],
    f: impl Map<S>,
    levels: [f32; LEVELS],
) -> (f64, [f64; LEVELS]) {
    let l = S::LANES;
    let zero = s.splat(0.0);
    let empty = (zero, [zero; LEVELS]);
    let mut total = 0.0f64;
    let mut below = [0.0f64; LEVELS];
    let mut blocks = x.chunks_exact(FOLD_VECTORS * l);
    for block in &mut blocks {
        let (mut even, mut odd) = (empty, empty);
        for pair in block.chunks_exact(2 * l) {
            weigh(s, &f, s.load(pair), &levels, &mut even);
            weigh(s, &f, s.load(&pair[l..]), &levels, &mut odd);
        }
        fold(s, even, odd, &mut total, &mut below);
    }
    // Fewer than FOLD_VECTORS vectors: at most FOLD_VECTORS / 2 per
    // accumulator.
    let (mut even, mut odd) = (empty, empty);
    let mut vectors = blocks.remainder().chunks_exact(l);
    for (k, v) in (&mut vectors).enumerate() {
        let acc = if k % 2 == 0 { &mut even } else { &mut odd };
        weigh(s, &f, s.load(v), &levels, acc);
    }
    if !vectors.remainder().is_empty() {
        let v = s.load_partial(vectors.remainder(), f32::NEG_INFINITY);
        weigh(s, &f, v, &levels, &mut odd);
    }
    fold(s, even, odd, &mut total, &mut below);
    (total, below)
}

/// Adds `f(v)` to the total's lanes and to each level's where `v` is below
/// it.
#[inline(always)]
fn weigh<S: Lanes>(
    s: S,
    f: &impl Map<S>,
    v: S::V,
    levels: &[f32; LEVELS],
    acc: &mut (S::V, [S::V; LEVELS]),
) {
    let w = f.apply(s, v);
    acc.0 = s.add(acc.0, w);
    for (part, &level) in acc.1.iter_mut().zip(levels) {
        *part = s.add_where_below(*part, v, level, w);
    }
}

#[inline(always)]
fn fold<S: Lanes>(
    s: S,
    even: (S::V, [S::V; LEVELS]),
    odd: (S::V, [S::V; LEVELS]),
    total: &mut f64,
    below: &mut [f64; LEVELS],
) {
    *total += s.reduce_sum_f64(s.add(even.0, odd.0));
    for (b, (e, o)) in below.iter_mut().zip(even.1.into_iter().zip(odd.1)) {
        *b += s.reduce_sum_f64(s.add(e, o));
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

#[inline(always)]
fn before(a: &Weighted, b: &Weighted) -> bool {
    a.x > b.x || (a.x == b.x && a.i < b.i)
}

/// The entries of `x` at or above `floor` and their indices, in index
/// order; NaN and −inf (which weighs 0) never are.
#[inline(always)]
pub(crate) fn at_least<S: Lanes>(s: S, x: &[f32], floor: f32) -> (Vec<f32>, Vec<u32>) {
    let l = S::LANES;
    let (mut xs, mut ids) = (Vec::new(), Vec::new());
    // `v > bar` is `v ≥ floor` for every f32 `v` above −inf.
    let bar = s.splat(floor.next_down());
    let mut vectors = x.chunks_exact(l);
    for (k, v) in (&mut vectors).enumerate() {
        let mut mask = s.greater_mask(s.load(v), bar);
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            xs.push(v[j]);
            ids.push((k * l + j) as u32);
            mask &= mask - 1;
        }
    }
    let rest = vectors.remainder();
    let base = x.len() - rest.len();
    for (j, &v) in rest.iter().enumerate() {
        if v >= floor && v > f32::NEG_INFINITY {
            xs.push(v);
            ids.push((base + j) as u32);
        }
    }
    (xs, ids)
}

/// Where [`prefix_passing`] cut: the prefix is `items[..end]`, its weight
/// without its last member `before_last` (which does not pass the goal) and
/// with it `through_last` (which does), as the selection added them up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Prefix {
    pub(crate) end: usize,
    pub(crate) before_last: f64,
    pub(crate) through_last: f64,
}

/// Reorders `items` so that its first `end` entries are the smallest
/// non-empty prefix in rank order whose weight (summed in f64) reaches
/// `goal`, or exceeds it when `strict`, with the last of them in rank order
/// at `end − 1`; the entries past `end` all rank after them. `None` when all
/// of `items` does not get there. Expected time linear in `items.len()`;
/// after a number of unlucky pivots the remaining range is sorted instead
/// (n log n at worst).
pub(crate) fn prefix_passing(items: &mut [Weighted], goal: f64, strict: bool) -> Option<Prefix> {
    let passes = |mass: f64| if strict { mass > goal } else { mass >= goal };
    let (mut lo, mut hi) = (0, items.len());
    // The weight of items[..lo], all of which are in the prefix.
    let mut settled = 0.0f64;
    let mut pivots_left = 2 * (usize::BITS - items.len().leading_zeros()) + 8;
    while lo < hi {
        if pivots_left == 0 {
            items[lo..hi].sort_unstable_by(rank);
            for (j, item) in items[lo..hi].iter().enumerate() {
                let through = settled + f64::from(item.w);
                if passes(through) {
                    return Some(Prefix {
                        end: lo + j + 1,
                        before_last: settled,
                        through_last: through,
                    });
                }
                settled = through;
            }
            return None;
        }
        pivots_left -= 1;
        let (p, better) = partition(&mut items[lo..hi]);
        let p = lo + p;
        let before = settled + better;
        // (An empty `better` passing means a goal of 0 or less, which the
        // first item passes: the prefix is never empty.)
        if p > lo && passes(before) {
            hi = p;
        } else {
            let through = before + f64::from(items[p].w);
            if passes(through) {
                return Some(Prefix {
                    end: p + 1,
                    before_last: before,
                    through_last: through,
                });
            }
            settled = through;
            lo = p + 1;
        }
    }
    None
}

/// Partitions `items` (not empty) around a median-of-three pivot: those
/// ranking before it, the pivot, the rest. Returns the pivot's position and
/// the weight before it.
fn partition(items: &mut [Weighted]) -> (usize, f64) {
    let last = items.len() - 1;
    let mid = last / 2;
    // Median of three into `last`.
    if before(&items[mid], &items[0]) {
        items.swap(mid, 0);
    }
    if before(&items[last], &items[0]) {
        items.swap(last, 0);
    }
    if before(&items[mid], &items[last]) {
        items.swap(mid, last);
    }
    let pivot = items[last];
    let mut store = 0;
    let mut better = 0.0f64;
    // Without branches (the outcome is a coin toss on random logits): the
    // swap always happens, and moves two entries of the rest among
    // themselves when `j` is not before the pivot.
    for j in 0..last {
        let item = items[j];
        let is_before = before(&item, &pivot);
        items[j] = items[store];
        items[store] = item;
        store += usize::from(is_before);
        better += if is_before { f64::from(item.w) } else { 0.0 };
    }
    items.swap(store, last);
    (store, better)
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
    fn sorted_prefix(items: &[Weighted], goal: f64, strict: bool) -> Option<Vec<Weighted>> {
        let mut sorted = items.to_vec();
        sorted.sort_by(rank);
        let mut cum = 0.0f64;
        for j in 0..sorted.len() {
            cum += f64::from(sorted[j].w);
            if if strict { cum > goal } else { cum >= goal } {
                return Some(sorted[..=j].to_vec());
            }
        }
        None
    }

    /// Random, heavily tied and already-ordered candidates, every goal
    /// from nothing to beyond the total: the same set as the sorted prefix
    /// (up to f64 rounding at the very boundary, which small integer
    /// weights rule out), its last member at `end − 1`, everything after
    /// it ranking later.
    #[test]
    fn prefix_passing_is_the_sorted_prefix() {
        let mut next = stream(7);
        for n in (1..40).chain([100, 1000, 5000]) {
            for shape in 0..4 {
                let items: Vec<Weighted> = (0..n)
                    .map(|k| {
                        let r = next();
                        let x = match shape {
                            0 => (r % 1000) as f32 - 500.0,
                            1 => (r % 3) as f32,
                            2 => -(k as f32),
                            _ => [0.0, -0.0][(r % 2) as usize],
                        };
                        Weighted {
                            x,
                            i: k as u32,
                            w: ((r >> 32) % 8) as f32,
                        }
                    })
                    .collect();
                let total: f64 = items.iter().map(|t| f64::from(t.w)).sum();
                for step in 0..=20 {
                    let goal = total * f64::from(step) / 19.0;
                    for strict in [false, true] {
                        let mut got = items.clone();
                        let cut = prefix_passing(&mut got, goal, strict);
                        let want = sorted_prefix(&items, goal, strict);
                        let what = format!("n={n} shape={shape} goal={goal} strict={strict}");
                        let (Some(cut), Some(want)) = (cut, &want) else {
                            assert_eq!(cut.is_none(), want.is_none(), "{what}");
                            continue;
                        };
                        let end = cut.end;
                        let mass: f64 = want.iter().map(|t| f64::from(t.w)).sum();
                        assert_eq!(cut.through_last, mass, "{what}: weight");
                        let last = f64::from(want.last().unwrap().w);
                        assert_eq!(cut.before_last, mass - last, "{what}: weight before");
                        let mut prefix = got[..end].to_vec();
                        prefix.sort_by(rank);
                        assert_eq!(&prefix, want, "{what}");
                        assert_eq!(got[end - 1], *want.last().unwrap(), "{what}: last");
                        let worst = want.last().unwrap();
                        assert!(got[end..].iter().all(|t| before(worst, t)), "{what}: rest");
                    }
                }
            }
        }
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
        let (xs, ids) = at_least(s, &x, 1.0);
        assert_eq!(xs, [1.0, 3.0, 1.0, f32::INFINITY]);
        assert_eq!(ids, [0, 3, 5, 6]);
        assert_eq!(at_least(s, &x, f32::NEG_INFINITY).1, [0, 2, 3, 5, 6]);
    }
}
