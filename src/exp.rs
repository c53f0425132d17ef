//! Our polynomial `exp`, written once over the lane trait (`lanes::Lanes`).
//!
//! `exp(x) = 2^n · e^t` with `n = round(x / ln 2)` and `t = x − n·ln 2`,
//! `|t| ≤ ln 2 / 2`:
//! - `n` is rounded by adding a magic bias `1.5·2^23 + 127`, which leaves
//!   `n + 127` in the low mantissa bits, so one shift turns it into `2^n`
//!   (AVX-512 scales by `2^n` with `vscalefps` instead: `Lanes::pow2_one_plus`).
//! - `t` comes from a two-constant Cody–Waite reduction: `ln2_hi` has 8 zero
//!   low bits, so `n·ln2_hi` is exact even without FMA.
//! - `e^t ≈ 1 + t·p(t)`, evaluated as `2^n·(1 + t·p(t))` with the leading 1
//!   added last and one rounding there. With FMA `p` has degree 4 (so degree
//!   5 in all); without it, degree 5: the unfused evaluation's roundings
//!   leave no room for the shorter polynomial (2.18 ULP measured).
//! - Where the lanes hold a 16-entry table in a register (AVX-512,
//!   `Lanes::pow2_sixteenths`), `n = round(16·x/ln 2)` instead, `2^(n/16)`
//!   comes from the table entry `n mod 16` with `⌊n/16⌋` added to its
//!   exponent bits, `|t| ≤ ln 2/32`, and `e^t ≈ 1 + t + t²/2 + q·t³`
//!   (`q` a little above 1/6): three fewer multiply-adds than the
//!   polynomial, where those are what bounds an exp pass (Zen 5: single
//!   softmax rows 4–9% faster), and 1.48 ULP instead of 1.98. The exp of an
//!   exact product (temperature, below) reads the same table; the exp of a
//!   sum keeps the polynomial.
//! - Below `CUTOFF = ln(2^-126)` the result would be subnormal: it is
//!   flushed to 0, which also covers −inf and the garbage a huge negative
//!   `n` makes of the shifted bits. NaN stays NaN.
//!
//! Domain: `x ≤ DOMAIN_MAX ≈ 88.3762` (so that `n ≤ 127`); above it the
//! result is unspecified. The softmax kernels only ever pass `x − max ≤ 0`.
//! Error: at most 2 ULP against the correctly rounded result for every f32
//! in `[CUTOFF, DOMAIN_MAX]`, exactly 0 below `CUTOFF` (−inf included), NaN
//! for NaN (exhaustive test `tests/exp_exhaustive.rs`, fuzz target
//! `exp_diff`).

use crate::lanes::Lanes;

const LOG2E: f32 = f32::from_bits(0x3fb8_aa3b); // 1.44269502
/// `1.5·2^23 + 127`: `x + MAGIC_BIAS` leaves `round(x) + 127` in the low
/// mantissa bits (for |x| < 2^22).
pub(crate) const MAGIC_BIAS: f32 = f32::from_bits(0x4b40_007f);
const MINUS_LN2_HI: f32 = -f32::from_bits(0x3f31_7200); // 0.693145751953125
const MINUS_LN2_LO: f32 = -f32::from_bits(0x35bf_be8e); // 1.42860677e-6
// p(t) ≈ (e^t − 1)/t on [−ln2/2, ln2/2], for backends without FMA:
// weighted minimax for the relative error of 1 + t·p(t) (2^-28 with these
// f32 coefficients), fitted one coefficient at a time, each refit after
// rounding the previous ones to f32. Degree 5: the degree 4 below reaches
// 2.18 ULP with unfused roundings.
const C1: f32 = 1.0;
const C2: f32 = f32::from_bits(0x3eff_ffff);
const C3: f32 = f32::from_bits(0x3e2a_aa4f);
const C4: f32 = f32::from_bits(0x3d2a_abd5);
const C5: f32 = f32::from_bits(0x3c09_1956);
const C6: f32 = f32::from_bits(0x3ab5_6741);
// The degree-4 p for backends with FMA: minimax coefficients as XNNPACK
// publishes them for its `p5` exp (0x1.FFFFF6p-1, 0x1.FFFDC6p-2,
// 0x1.555A80p-3, 0x1.573A1Ap-5, 0x1.0F9F9Cp-7). Within 2 ULP over the
// whole domain with fused evaluation (exhaustive test).
const F1: f32 = f32::from_bits(0x3f7f_fffb);
const F2: f32 = f32::from_bits(0x3eff_fee3);
const F3: f32 = f32::from_bits(0x3e2a_ad40);
const F4: f32 = f32::from_bits(0x3d2b_9d0d);
const F5: f32 = f32::from_bits(0x3c07_cfce);

/// The smallest x whose exp is a normal f32: `ln(2^-126) ≈ −87.3365`.
pub const CUTOFF: f32 = f32::from_bits(0xc2ae_ac4f);

/// The top of the domain: `n = round(x·log2 e)` must stay ≤ 127 for `2^n`
/// to be built from exponent bits. Just below `127.5·ln 2 ≈ 88.37627`.
pub const DOMAIN_MAX: f32 = 88.3762;

/// `e^x` lane-wise; see the module docs for the domain and the error.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn exp<S: Lanes>(s: S, x: S::V) -> S::V {
    s.zero_where_below(x, CUTOFF, exp_above_cutoff(s, x))
}

/// [`exp`] for `x ≥ CUTOFF` (or NaN): the same bits there, without the
/// compare that flushes what lies below. For rows whose every exponent is
/// known to be above it (the row's min is found with its max).
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn exp_above_cutoff<S: Lanes>(s: S, x: S::V) -> S::V {
    if S::POW2_SIXTEENTHS {
        return exp_sixteenths(s, x);
    }
    let biased = s.mul_add(x, s.splat(LOG2E), s.splat(MAGIC_BIAS));
    let n = s.sub(biased, s.splat(MAGIC_BIAS));
    let t = s.mul_add(n, s.splat(MINUS_LN2_HI), x);
    let t = s.mul_add(n, s.splat(MINUS_LN2_LO), t);
    exp_reduced(s, biased, t)
}

/// [`exp`] for a term of a sum whose stated bound is relative to the sum
/// (logsumexp): where multiply-adds fuse, the reduction is one of them,
/// `t = x − n·ln2'` with `ln2' = f32(ln 2)/2^k` (the table's `1/16` on
/// AVX-512), not two. `ln2'` is off by 1.19e-10 per unit of `n`, which
/// adds at most `2^-28·|x|` relative error to `exp`'s 2 ULP: up to 4 ULP
/// near the cutoff, but a sum weights each term's error by its share, and
/// shares fall as `e^x` (`tests/exp_exhaustive.rs` checks that bound on
/// every f32 of `[CUTOFF, 0]`). Without FMA it is [`exp`].
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn exp_for_sum<S: Lanes>(s: S, x: S::V) -> S::V {
    if !S::FMA {
        return exp(s, x);
    }
    let e = if S::POW2_SIXTEENTHS {
        let biased = s.mul_add(x, s.splat(SIXTEEN_LOG2E), s.splat(MAGIC_16));
        let n = s.sub(biased, s.splat(MAGIC_16));
        let t = s.mul_add(n, s.splat(-LN2 / 16.0), x);
        sixteenths_times_exp(s, biased, t)
    } else {
        let biased = s.mul_add(x, s.splat(LOG2E), s.splat(MAGIC_BIAS));
        let n = s.sub(biased, s.splat(MAGIC_BIAS));
        let t = s.mul_add(n, s.splat(-LN2), x);
        exp_reduced(s, biased, t)
    };
    s.zero_where_below(x, CUTOFF, e)
}

/// [`exp_above_cutoff`] through a table of `2^(j/16)`: `n = round(16·x/ln 2)`,
/// `t = x − n·ln2/16` (`|t| ≤ ln2/32`), then [`sixteenths_times_exp`].
#[cfg_attr(not(unoptimized), inline(always))]
fn exp_sixteenths<S: Lanes>(s: S, x: S::V) -> S::V {
    const MINUS_LN2_HI_16: f32 = -f32::from_bits(0x3d31_7200);
    const MINUS_LN2_LO_16: f32 = -f32::from_bits(0x33bf_be8e);
    let biased = s.mul_add(x, s.splat(SIXTEEN_LOG2E), s.splat(MAGIC_16));
    let n = s.sub(biased, s.splat(MAGIC_16));
    let t = s.mul_add(n, s.splat(MINUS_LN2_HI_16), x);
    let t = s.mul_add(n, s.splat(MINUS_LN2_LO_16), t);
    sixteenths_times_exp(s, biased, t)
}

const SIXTEEN_LOG2E: f32 = f32::from_bits(0x41b8_aa3b); // 16·log2 e

/// `1.5·2^23`: `x + MAGIC_16` leaves `round(x)` in the low mantissa bits.
const MAGIC_16: f32 = f32::from_bits(0x4b40_0000);

/// `2^(n/16)·e^t` for `n` held in `biased = n + MAGIC_16` and `|t| ≤
/// ln2/32`: the table's power of two times `1 + t + t²/2 + q·t³` (`q` a
/// little above 1/6, for the error).
#[cfg_attr(not(unoptimized), inline(always))]
fn sixteenths_times_exp<S: Lanes>(s: S, biased: S::V, t: S::V) -> S::V {
    const Q3: f32 = f32::from_bits(0x3e2a_aaaf); // 0x1.55555Ep-3
    let scale = s.pow2_sixteenths(biased);
    let q = s.mul_add(s.splat(Q3), t, s.splat(0.5));
    let q = s.mul_add(q, t, s.splat(1.0));
    s.mul_add(s.mul(t, scale), q, scale)
}

/// `e^(hi + lo)` for an exponent held as an unevaluated sum (`|lo|` at most
/// an ulp or so of `hi`): the reduction `hi − n·ln2_hi` is exact, and `lo`
/// joins the small remainder, so the exponent is not rounded to one f32
/// first. Used for `(x − max)·c`, whose product `two_prod` keeps exact.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn exp_sum<S: Lanes>(s: S, hi: S::V, lo: S::V) -> S::V {
    let biased = s.mul_add(hi, s.splat(LOG2E), s.splat(MAGIC_BIAS));
    let n = s.sub(biased, s.splat(MAGIC_BIAS));
    let t = s.mul_add(n, s.splat(MINUS_LN2_HI), hi);
    let t = s.mul_add(n, s.splat(MINUS_LN2_LO), t);
    s.zero_where_below(hi, CUTOFF, exp_reduced(s, biased, s.add(t, lo)))
}

/// `2^(d·k)` with `k = k_hi + k_lo`, the product kept exact: for
/// `exp((x − max)·c)` with `k = c·log2 e` on backends with FMA. The
/// reduction is in base 2: `n = round(d·k_hi)`, `r = d·k − n` from one fused
/// multiply-add (exact product, `|r| ≤ 1/2`, so one small rounding) plus the
/// low part, then `e^(r·ln 2)` by the same polynomial. One operation more
/// than [`exp`], where splitting the product (`two_prod`, `exp_sum`) costs
/// four. Results below 2^-126.5 (`n < −126`) are 0.
#[cfg_attr(not(unoptimized), inline(always))]
pub(crate) fn exp2_of_product<S: Lanes>(s: S, d: S::V, k_hi: f32, k_lo: f32) -> S::V {
    if S::POW2_SIXTEENTHS {
        return exp2_of_product_sixteenths(s, d, k_hi, k_lo);
    }
    let biased = s.mul_add(d, s.splat(k_hi), s.splat(MAGIC_BIAS));
    let minus_n = s.sub(s.splat(MAGIC_BIAS), biased);
    let r = s.mul_add(d, s.splat(k_hi), minus_n);
    let r = s.mul_add(d, s.splat(k_lo), r);
    let t = s.mul(r, s.splat(LN2));
    // n < −126: `shift_into_exponent` would leave the exponent field.
    // `t` carries one rounding more than `exp`'s, which the degree-4 `p`
    // has no room for (2.02 ULP): the longer one.
    let e = exp_reduced_of_degree::<S, false>(s, biased, t);
    s.zero_where_below(biased, MAGIC_BIAS - 126.0, e)
}

/// [`exp2_of_product`] through the table of `2^(j/16)`: `n = round(16·d·k)`
/// (`16·k` is exact), `r = 16·d·k − n` from the same fused multiply-adds
/// (`|r| ≤ 1/2`), `t = r·ln2/16`, then [`sixteenths_times_exp`]. Results
/// below `2^-126` (`n < −2016`) are 0.
#[cfg_attr(not(unoptimized), inline(always))]
fn exp2_of_product_sixteenths<S: Lanes>(s: S, d: S::V, k_hi: f32, k_lo: f32) -> S::V {
    let (k_hi, k_lo) = (16.0 * k_hi, 16.0 * k_lo);
    let biased = s.mul_add(d, s.splat(k_hi), s.splat(MAGIC_16));
    let minus_n = s.sub(s.splat(MAGIC_16), biased);
    let r = s.mul_add(d, s.splat(k_hi), minus_n);
    let r = s.mul_add(d, s.splat(k_lo), r);
    let t = s.mul(r, s.splat(LN2 / 16.0));
    let e = sixteenths_times_exp(s, biased, t);
    s.zero_where_below(biased, MAGIC_16 - 2016.0, e)
}

const LN2: f32 = core::f32::consts::LN_2;

/// `2^n·e^t` from the biased `n` and the reduced argument `t` (no cutoff:
/// each caller zeroes what its own exponent puts below it).
#[cfg_attr(not(unoptimized), inline(always))]
fn exp_reduced<S: Lanes>(s: S, biased: S::V, t: S::V) -> S::V {
    if S::FMA {
        exp_reduced_of_degree::<S, true>(s, biased, t)
    } else {
        exp_reduced_of_degree::<S, false>(s, biased, t)
    }
}

/// [`exp_reduced`] with the degree-4 `p` when `SHORT`, else degree 5.
#[cfg_attr(not(unoptimized), inline(always))]
fn exp_reduced_of_degree<S: Lanes, const SHORT: bool>(s: S, biased: S::V, t: S::V) -> S::V {
    let p = if SHORT {
        let p = s.mul_add(s.splat(F5), t, s.splat(F4));
        let p = s.mul_add(p, t, s.splat(F3));
        let p = s.mul_add(p, t, s.splat(F2));
        s.mul_add(p, t, s.splat(F1))
    } else {
        let p = s.mul_add(s.splat(C6), t, s.splat(C5));
        let p = s.mul_add(p, t, s.splat(C4));
        let p = s.mul_add(p, t, s.splat(C3));
        let p = s.mul_add(p, t, s.splat(C2));
        s.mul_add(p, t, s.splat(C1))
    };
    s.pow2_one_plus(biased, t, p)
}

/// The slice form for the exhaustive test, the fuzz targets and the
/// throughput tool (an entry like every public call: it lives in `lib.rs`).
pub use crate::{exp_for_sum_slice, exp_slice};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{self, Backend, WithLanes};
    use crate::lanes::Job;

    /// `exp(d·c)` as the scaled kernels compute it (`Factor::exp_times`:
    /// base 2 with FMA, Dekker's product without).
    struct ExpOfProduct<'a> {
        d: &'a [f32],
        c: f64,
        out: &'a mut [f32],
    }

    impl WithLanes for ExpOfProduct<'_> {
        type Output = ();
        fn with<S: Lanes>(self, s: S) {
            s.vectorize(self);
        }
    }

    impl Job for ExpOfProduct<'_> {
        type Output = ();
        #[cfg_attr(not(unoptimized), inline(always))]
        fn run<S: Lanes>(self, s: S) {
            let factor = crate::kernels::Factor::new(self.c);
            for (d, out) in self
                .d
                .chunks_exact(S::LANES)
                .zip(self.out.chunks_exact_mut(S::LANES))
            {
                s.store(factor.exp_times(s, s.load(d)), out);
            }
        }
    }

    /// The scaled exp is within 2 ULP of the correctly rounded `exp(d·c)`
    /// (c exact as hi + lo), over the whole range the kernels use.
    #[test]
    fn exp_of_an_exact_product_within_two_ulp() {
        let mut worst = 0.0f64;
        let d: Vec<f32> = (0..1 << 16)
            .map(|i| -(i as f32) * 0.0013 - 1e-3 * (i % 7) as f32)
            .collect();
        for c in [0.075f64, 1.0 / 3.0, 0.125, 1.7, 1.0 / 0.7, 40.0] {
            for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
                let mut out = vec![0.0f32; d.len()];
                dispatch::run(
                    backend,
                    ExpOfProduct {
                        d: &d,
                        c,
                        out: &mut out,
                    },
                )
                .unwrap();
                for (&d, &got) in d.iter().zip(&out) {
                    let want = (f64::from(d) * c).exp();
                    if want < f64::from(f32::MIN_POSITIVE) * 1.01 {
                        continue; // the flush to 0 near the cutoff
                    }
                    let w = want as f32;
                    let ulp = f64::from(f32::from_bits(w.to_bits() + 1) - w);
                    let err = (f64::from(got) - want).abs() / ulp;
                    assert!(
                        err <= 2.0,
                        "{backend:?} d={d} c={c:?}: {got} vs {want} ({err:.2} ULP)"
                    );
                    worst = worst.max(err);
                }
            }
        }
        println!("exp((x − max)·c): worst {worst:.3} ULP");
    }
}
