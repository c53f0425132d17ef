//! Lowest index of the largest value in one read: per lane the running max
//! and the start index of the vector it came from (an f32 tag, exact for
//! spans below 2^24), with NaN flagged on the side.

use crate::element::Storage;
use crate::lanes::Lanes;

/// Elements per span: tags (start indices within the span) stay exact in f32.
const SPAN: usize = 1 << 23;
/// Above every index in a span, and exact in f32.
const TOP: f32 = (1 << 24) as f32;
/// Lane `j` holds `j`: a lane's index is its vector's tag plus this.
const LANE_INDEX: [f32; 16] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];

/// `None` for an empty row or one holding NaN.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn argmax<S: Lanes, X: Storage>(s: S, x: &[X]) -> Option<usize> {
    let mut nan = s.splat(0.0);
    let mut best: Option<(f32, usize)> = None;
    for (k, span) in x.chunks(SPAN).enumerate() {
        let (m, i) = argmax_span(s, span, &mut nan);
        // Strictly greater: an earlier span keeps a tie.
        if best.is_none_or(|(b, _)| m > b) {
            best = Some((m, k * SPAN + i));
        }
    }
    if s.any_flag(nan) {
        return None;
    }
    // All −inf: no lane ever moved, and the answer is the first index.
    best.map(|(m, i)| if m == f32::NEG_INFINITY { 0 } else { i })
}

#[cfg_attr(not(unoptimized), inline(always))]
fn argmax_span<S: Lanes, X: Storage>(s: S, x: &[X], nan: &mut S::V) -> (f32, usize) {
    let l = S::LANES;
    let lowest = s.splat(f32::NEG_INFINITY);
    let (mut m0, mut m1, mut m2, mut m3) = (lowest, lowest, lowest, lowest);
    let (mut t0, mut t1, mut t2, mut t3) = (s.splat(0.0), s.splat(0.0), s.splat(0.0), s.splat(0.0));
    let (mut tag0, mut tag1) = (s.splat(0.0), s.splat(l as f32));
    let (mut tag2, mut tag3) = (s.splat((2 * l) as f32), s.splat((3 * l) as f32));
    let step = s.splat((4 * l) as f32);
    let mut flags = *nan;
    let mut groups = x.chunks_exact(4 * l);
    for g in &mut groups {
        let (v0, v1, v2, v3) = (
            X::load(s, g),
            X::load(s, &g[l..]),
            X::load(s, &g[2 * l..]),
            X::load(s, &g[3 * l..]),
        );
        (m0, t0) = s.track_max(v0, m0, tag0, t0);
        (m1, t1) = s.track_max(v1, m1, tag1, t1);
        (m2, t2) = s.track_max(v2, m2, tag2, t2);
        (m3, t3) = s.track_max(v3, m3, tag3, t3);
        flags = s.or_nan(s.or_nan(flags, v0), v1);
        flags = s.or_nan(s.or_nan(flags, v2), v3);
        tag0 = s.add(tag0, step);
        tag1 = s.add(tag1, step);
        tag2 = s.add(tag2, step);
        tag3 = s.add(tag3, step);
    }
    // The rest: whole vectors, then one partial (filled with −inf, which
    // never wins), all into accumulator 0.
    let done = x.len() - groups.remainder().len();
    let mut tag = s.splat(done as f32);
    let step = s.splat(l as f32);
    let mut rest = groups.remainder().chunks_exact(l);
    for v in &mut rest {
        let v = X::load(s, v);
        (m0, t0) = s.track_max(v, m0, tag, t0);
        flags = s.or_nan(flags, v);
        tag = s.add(tag, step);
    }
    if !rest.remainder().is_empty() {
        let v = X::load_partial(s, rest.remainder(), f32::NEG_INFINITY);
        (m0, t0) = s.track_max(v, m0, tag, t0);
        flags = s.or_nan(flags, v);
    }
    *nan = flags;

    // The largest value, then the lowest index holding it, in registers:
    // each lane holding the largest becomes `TOP − index` and every other
    // lane 0, so one more max finds the lowest index (exact in f32: indices
    // in a span stay below 2^23 < TOP). Ties across accumulators need this;
    // accumulator 0 also took the rest, so its tags are not the lowest.
    let best = s.reduce_max(s.max(s.max(m0, m1), s.max(m2, m3)));
    let lane = s.load(&LANE_INDEX);
    let top = s.splat(TOP);
    let flip = |m, t| s.zero_where_below(m, best, s.sub(top, s.add(t, lane)));
    let lowest = s.max(
        s.max(flip(m0, t0), flip(m1, t1)),
        s.max(flip(m2, t2), flip(m3, t3)),
    );
    (best, (TOP - s.reduce_max(lowest)) as usize)
}
