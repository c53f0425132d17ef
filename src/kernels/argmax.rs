//! Lowest index of the largest value in one read: per lane the running max
//! and the start index of the vector it came from (an f32 tag, exact for
//! spans below 2^24), with NaN flagged on the side.

use crate::lanes::Lanes;

/// Elements per span: tags (start indices within the span) stay exact in f32.
const SPAN: usize = 1 << 23;

/// `None` for an empty row or one holding NaN.
#[inline(always)]
pub(crate) fn argmax<S: Lanes>(s: S, x: &[f32]) -> Option<usize> {
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

#[inline(always)]
fn argmax_span<S: Lanes>(s: S, x: &[f32], nan: &mut S::V) -> (f32, usize) {
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
            s.load(g),
            s.load(&g[l..]),
            s.load(&g[2 * l..]),
            s.load(&g[3 * l..]),
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
        let v = s.load(v);
        (m0, t0) = s.track_max(v, m0, tag, t0);
        flags = s.or_nan(flags, v);
        tag = s.add(tag, step);
    }
    if !rest.remainder().is_empty() {
        let v = s.load_partial(rest.remainder(), f32::NEG_INFINITY);
        (m0, t0) = s.track_max(v, m0, tag, t0);
        flags = s.or_nan(flags, v);
    }
    *nan = flags;

    // Lane by lane: the largest value, then the lowest index holding it.
    let mut maxima = [f32::NEG_INFINITY; 64];
    let mut tags = [0.0f32; 64];
    for (a, (m, t)) in [(m0, t0), (m1, t1), (m2, t2), (m3, t3)]
        .into_iter()
        .enumerate()
    {
        s.store(m, &mut maxima[a * l..]);
        s.store(t, &mut tags[a * l..]);
    }
    let lanes = 4 * l;
    let best = maxima[..lanes]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
    let index = (0..lanes)
        .filter(|&k| maxima[k] == best)
        .map(|k| tags[k] as usize + k % l)
        .min()
        .unwrap_or(0);
    (best, index)
}
