//! Shannon entropy of softmax(x) from the logits, in one read and with no
//! probability buffer: `H = ln S + T/S` with `S = Σ e_i`, `T = Σ e_i·(M − x_i)`
//! and `e_i = exp(x_i − M)`. Both terms are ≥ 0, so nothing cancels.
//!
//! Like the online max-sum, the max moves once per block of vectors (read
//! twice from L1: max, then exp); when it moves from `m` to `M`, a part's
//! sums move with it exactly: `S' = S·r` and `T' = r·(T + (M − m)·S)` with
//! `r = exp(m − M)`, in f64.

use super::{Partial, Plain, RowClass, SHORT_FOLD_VECTORS, max};
use crate::element::Storage;
use crate::exp::{CUTOFF, exp};
use crate::lanes::Lanes;

/// Vectors per step of the running max.
const BLOCK_VECTORS: usize = 64;

/// `(M, S, T)` of a part of a row relative to its max `M`.
#[derive(Clone, Copy, Debug)]
struct Sums {
    max: f32,
    s: f64,
    t: f64,
}

impl Sums {
    /// The sums relative to `m ≥ self.max` (finite).
    fn at(self, m: f32) -> (f64, f64) {
        if self.max == m {
            return (self.s, self.t);
        }
        let shift = f64::from(m) - f64::from(self.max);
        let r = (-shift).exp();
        (self.s * r, r * (self.t + shift * self.s))
    }
}

/// The entropy (nats) of the softmax of `x`. NaN → NaN; k entries of +inf
/// → ln k; no entry above −inf (or empty) → 0.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn entropy<S: Lanes, X: Storage>(s: S, x: &[X]) -> f32 {
    let mut total = Sums {
        max: f32::NEG_INFINITY,
        s: 0.0,
        t: 0.0,
    };
    for block in x.chunks(BLOCK_VECTORS * S::LANES) {
        let m = max(s, block, Plain);
        if !m.is_finite() {
            if m == f32::INFINITY {
                total.max = m;
                break;
            }
            // Only −inf (and perhaps NaN) in this block: nothing to add but NaN.
            if block.iter().any(|v| v.to_f32().is_nan()) {
                total.s = f64::NAN;
            }
            continue;
        }
        let (bs, bt) = block_sums(s, block, m);
        let part = Sums {
            max: m,
            s: bs,
            t: bt,
        };
        if total.max == f32::NEG_INFINITY {
            // NaN seen so far stays in `s`.
            total = Sums {
                s: bs + total.s,
                ..part
            };
            continue;
        }
        let top = if m > total.max { m } else { total.max };
        let (s0, t0) = total.at(top);
        let (s1, t1) = part.at(top);
        total = Sums {
            max: top,
            s: s0 + s1,
            t: t0 + t1,
        };
    }
    let row = Partial {
        max: total.max,
        sum: total.s,
    };
    match RowClass::of(row, x.iter().map(|v| v.to_f32())) {
        RowClass::Finite => (total.s.ln() + total.t / total.s) as f32,
        RowClass::Nan => f32::NAN,
        RowClass::PosInf(k) => (k as f64).ln() as f32,
        RowClass::NoMass => 0.0,
    }
}

/// `(Σ e, Σ e·(m − x))` over a block with finite max `m`: f32 sums folded
/// into f64 every `SHORT_FOLD_VECTORS` vectors. Entries far
/// below `m` (−inf among them) add exactly 0 to both.
#[cfg_attr(not(unoptimized), inline(always))]
fn block_sums<S: Lanes, X: Storage>(s: S, x: &[X], m: f32) -> (f64, f64) {
    let l = S::LANES;
    let mv = s.splat(m);
    let zero = s.splat(0.0);
    let (mut total_s, mut total_t) = (0.0f64, 0.0f64);
    let mut groups = x.chunks_exact(SHORT_FOLD_VECTORS * l);
    for g in &mut groups {
        let (mut s0, mut t0, mut s1, mut t1) = (zero, zero, zero, zero);
        for k in (0..SHORT_FOLD_VECTORS).step_by(2) {
            let (e, ez) = term(s, X::load(s, &g[k * l..]), mv);
            s0 = s.add(s0, e);
            t0 = s.sub(t0, ez);
            let (e, ez) = term(s, X::load(s, &g[(k + 1) * l..]), mv);
            s1 = s.add(s1, e);
            t1 = s.sub(t1, ez);
        }
        total_s += s.reduce_sum_f64(s.add(s0, s1));
        total_t += s.reduce_sum_f64(s.add(t0, t1));
    }
    let (mut s0, mut t0) = (zero, zero);
    for v in groups.remainder().chunks(l) {
        let v = if v.len() == l {
            X::load(s, v)
        } else {
            X::load_partial(s, v, f32::NEG_INFINITY)
        };
        let (e, ez) = term(s, v, mv);
        s0 = s.add(s0, e);
        t0 = s.sub(t0, ez);
    }
    (
        total_s + s.reduce_sum_f64(s0),
        total_t + s.reduce_sum_f64(t0),
    )
}

/// `(e, e·z)` for `z = v − m`, `e = exp(z)`. A function, not a closure: a
/// closure is not inlined into the backend entry (see `Map`), and this one
/// made the loop 40× slower.
#[cfg_attr(not(unoptimized), inline(always))]
fn term<S: Lanes>(s: S, v: S::V, m: S::V) -> (S::V, S::V) {
    let z = s.sub(v, m);
    let e = exp(s, z);
    // 0·(−inf) would be NaN: below the cutoff the product is 0.
    (e, s.zero_where_below(z, CUTOFF, s.mul(e, z)))
}
