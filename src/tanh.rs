//! `tanh` in lanes, for logit soft-capping (`c·tanh(x/c)`, Gemma 2's
//! `final_logit_softcapping`): within 3 ULP of the correctly rounded result
//! for every f32 (checked exhaustively per backend,
//! `tests/exp_exhaustive.rs`).
//!
//! Odd, so computed on `a = |y|` and the sign put back: below
//! [`SMALL`], `a + a·t·P(t)` with `t = a²` and `P` a degree-4 fit of
//! `(tanh(a)/a − 1)/t` (relative error 4e-9 before rounding); from there
//! `1 − 2/(exp(2a) + 1)`, whose error is the exp's scaled down by
//! `2/(e^{2a} + 1) < 0.45`. From [`SATURATE`] on, tanh is 1 in f32, and
//! `a` is clamped there so that the exp stays in its domain. NaN in, NaN
//! out; ±inf give ±1.

use crate::exp::exp;
use crate::lanes::Lanes;

/// Where the polynomial hands over to the exp.
const SMALL: f32 = 0.625;

/// tanh(9.5) = 1 − 1.1e-8 rounds to 1: every larger `a` is clamped here.
const SATURATE: f32 = 9.5;

/// `P(t) ≈ (tanh(√t)/√t − 1)/t` on `[0, SMALL²]`, lowest degree first
/// (weighted least squares for the relative error of tanh).
const P: [f32; 5] = [
    -0.333_332_84,
    0.133_314_91,
    -0.053_743_467,
    0.020_650_499,
    -0.005_716_954_4,
];

/// `tanh(y)` lane by lane.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn tanh<S: Lanes>(s: S, y: S::V) -> S::V {
    let zero = s.splat(0.0);
    // |y|, clamped (a NaN may come out of max/min as a number: it is put
    // back at the end).
    let a = s.min(s.max(y, s.sub(zero, y)), s.splat(SATURATE));
    let t = s.mul(a, a);
    let mut p = s.splat(P[4]);
    for &c in P[..4].iter().rev() {
        p = s.mul_add(p, t, s.splat(c));
    }
    let small = s.mul_add(s.mul(a, t), p, a);
    let one = s.splat(1.0);
    let e = exp(s, s.add(a, a));
    let large = s.sub(one, s.div(s.splat(2.0), s.add(e, one)));
    let magnitude = s.zero_where_below(a, SMALL, large);
    let magnitude = s.add_where_below(magnitude, a, SMALL, small);
    // The sign of y: −magnitude where y < 0.
    let signed = s.zero_where_below(y, 0.0, magnitude);
    let signed = s.add_where_below(signed, y, 0.0, s.sub(zero, magnitude));
    s.or_nan(signed, y)
}

/// [`tanh`] as a call: `Lanes::tanh` of the backends without target
/// features (the x86 ones have their own, compiled for their instruction
/// set).
#[inline(never)]
pub(crate) fn tanh_out_of_line<S: Lanes>(s: S, y: S::V) -> S::V {
    tanh(s, y)
}

/// `c·tanh(x/c)`: the soft cap of `x` at `±c` (`c > 0`, finite).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn softcap<S: Lanes>(s: S, x: S::V, c: f32) -> S::V {
    s.mul(s.tanh(s.div(x, s.splat(c))), s.splat(c))
}
