//! Every f32 in [CUTOFF, DOMAIN_MAX] through our exp on every backend this
//! CPU has, against f64 `exp`: at most 2 ULP; and every f32 in [CUTOFF, 0]
//! through the exp logsumexp sums (`exp_for_sum`): at most
//! `2 ULP + 2^-28·|x|·e^x`; and every f32 in [0, 9.5] through the
//! softcap's tanh: at most 3 ULP (above 9.5 exactly 1, negative values by
//! exact symmetry, checked on a stride). ~4.4e9 inputs; run in release
//! mode (`cargo test --release --test exp_exhaustive -- --ignored`; CI
//! does).

use rayon::prelude::*;
use simd_softmax::Backend;
use simd_softmax::Error;
use simd_softmax::exp::{CUTOFF, DOMAIN_MAX, exp_for_sum_slice, exp_slice};
use simd_softmax::tanh_slice;

type ExpSlice = fn(Backend, &[f32], &mut [f32]) -> Result<(), Error>;

/// Error of `got` in units in the last place of the f32 nearest `want`.
fn ulp_error(got: f32, want: f64) -> f64 {
    let exponent = ((want.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    (f64::from(got) - want).abs() / 2f64.powi(exponent.max(-126) - 23)
}

/// `exp_for_sum`'s error bound at `x` in ULP of `want`: 2 plus the
/// reduction's `2^-28·|x|` relative.
fn for_sum_allowance(x: f32, want: f64) -> f64 {
    let exponent = ((want.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    2.0 + 2f64.powi(-28) * f64::from(x).abs() * want / 2f64.powi(exponent.max(-126) - 23)
}

/// The worst `ulp` seen: the error in ULP, or (for `exp_for_sum`) the
/// error as a share of the allowance.
#[derive(Clone, Copy, Debug)]
struct Worst {
    ulp: f64,
    x: f32,
}

fn worst(a: Worst, b: Worst) -> Worst {
    if b.ulp.is_nan() || b.ulp > a.ulp {
        b
    } else {
        a
    }
}

/// The worst `measure(x, got, want)` per backend over the f32 bit patterns
/// `first..=last` through `exp`.
fn worst_over(
    backends: &[Backend],
    exp: ExpSlice,
    measure: fn(f32, f32, f64) -> f64,
    first: u32,
    last: u32,
) -> Vec<Worst> {
    worst_over_of(backends, exp, f64::exp, measure, first, last)
}

/// [`worst_over`] for any function `f` and its f64 reference.
fn worst_over_of(
    backends: &[Backend],
    f: ExpSlice,
    reference: fn(f64) -> f64,
    measure: fn(f32, f32, f64) -> f64,
    first: u32,
    last: u32,
) -> Vec<Worst> {
    let exp = f;
    const CHUNK: u32 = 1 << 16;
    let none = || vec![Worst { ulp: 0.0, x: 0.0 }; backends.len()];
    (0..(last - first) / CHUNK + 1)
        .into_par_iter()
        .map_init(
            || {
                (
                    Vec::with_capacity(CHUNK as usize),
                    vec![0.0f32; CHUNK as usize],
                )
            },
            |(x, y), c| {
                let lo = first + c * CHUNK;
                let hi = (lo + CHUNK - 1).min(last);
                x.clear();
                x.extend((lo..=hi).map(f32::from_bits));
                let y = &mut y[..x.len()];
                let want: Vec<f64> = x.iter().map(|&v| reference(f64::from(v))).collect();
                let mut w = none();
                for (k, &b) in backends.iter().enumerate() {
                    exp(b, x, y).unwrap();
                    for ((&xi, &yi), &wi) in x.iter().zip(y.iter()).zip(&want) {
                        let e = measure(xi, yi, wi);
                        if e.is_nan() || e > w[k].ulp {
                            w[k] = Worst { ulp: e, x: xi };
                        }
                    }
                }
                w
            },
        )
        .reduce(none, |a, b| {
            a.into_iter().zip(b).map(|(a, b)| worst(a, b)).collect()
        })
}

#[test]
#[ignore = "exhaustive: ~2.2e9 inputs, run in release mode by CI"]
fn exp_within_2_ulp_on_every_f32_of_its_domain() {
    let backends: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect();
    for b in Backend::ALL.iter().filter(|b| !b.is_available()) {
        println!("SKIPPED backend {b}: not available on this CPU");
    }
    // [CUTOFF, -0] are the bit patterns 0x8000_0000..=CUTOFF.to_bits(),
    // [+0, DOMAIN_MAX] are 0..=DOMAIN_MAX.to_bits().
    let ulps = |_: f32, got: f32, want: f64| ulp_error(got, want);
    let negative = worst_over(&backends, exp_slice, ulps, 0x8000_0000, CUTOFF.to_bits());
    let positive = worst_over(&backends, exp_slice, ulps, 0, DOMAIN_MAX.to_bits());
    for (k, b) in backends.iter().enumerate() {
        for (range, w) in [
            ("[CUTOFF, 0]", negative[k]),
            ("[0, DOMAIN_MAX]", positive[k]),
        ] {
            println!(
                "exp on {b} over {range}: max error {:.3} ULP at x = {:e} ({:#010x})",
                w.ulp,
                w.x,
                w.x.to_bits()
            );
            assert!(
                w.ulp <= 2.0,
                "exp on {b}: {:.3} ULP at x = {:e}",
                w.ulp,
                w.x
            );
        }
    }
}

/// Only `x − max ≤ 0` reaches it, so only [CUTOFF, 0] is checked.
#[test]
#[ignore = "exhaustive: ~1.1e9 inputs, run in release mode by CI"]
fn exp_for_sum_within_its_bound_on_every_f32_to_0() {
    let backends: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect();
    let share = |x: f32, got: f32, want: f64| ulp_error(got, want) / for_sum_allowance(x, want);
    let worst = worst_over(
        &backends,
        exp_for_sum_slice,
        share,
        0x8000_0000,
        CUTOFF.to_bits(),
    );
    for (k, b) in backends.iter().enumerate() {
        let w = worst[k];
        let mut y = [0.0f32];
        exp_for_sum_slice(*b, &[w.x], &mut y).unwrap();
        let want = f64::from(w.x).exp();
        println!(
            "exp_for_sum on {b} over [CUTOFF, 0]: at most {:.3} of 2 ULP + 2^-28·|x|·e^x, \
             at x = {:e} ({:.3} ULP there)",
            w.ulp,
            w.x,
            ulp_error(y[0], want)
        );
        assert!(
            w.ulp <= 1.0,
            "exp_for_sum on {b}: {:.3} of its bound at x = {:e}",
            w.ulp,
            w.x
        );
    }
}

#[test]
#[ignore = "exhaustive: ~1.1e9 inputs, run in release mode by CI"]
fn tanh_within_3_ulp_on_every_f32() {
    let backends: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect();
    let ulps = |_: f32, got: f32, want: f64| ulp_error(got, want);
    let saturate = 9.5f32.to_bits();
    let worst = worst_over_of(&backends, tanh_slice, f64::tanh, ulps, 0, saturate);
    // Above 9.5 (to +inf) exactly 1; below 0 the negated value, bit for
    // bit: on a stride of the patterns.
    let above: Vec<f32> = (saturate..=f32::INFINITY.to_bits())
        .step_by(251)
        .map(f32::from_bits)
        .collect();
    let below: Vec<f32> = (0..=saturate).step_by(97).map(f32::from_bits).collect();
    for (k, b) in backends.iter().enumerate() {
        let w = worst[k];
        println!(
            "tanh on {b} over [0, 9.5]: max error {:.3} ULP at x = {:e}",
            w.ulp, w.x
        );
        assert!(
            w.ulp <= 3.0,
            "tanh on {b}: {:.3} ULP at x = {:e}",
            w.ulp,
            w.x
        );
        let mut y = vec![0.0f32; above.len()];
        tanh_slice(*b, &above, &mut y).unwrap();
        assert!(y.iter().all(|&v| v == 1.0), "{b}: tanh above 9.5");
        let mut pos = vec![0.0f32; below.len()];
        let mut neg = vec![0.0f32; below.len()];
        let negated: Vec<f32> = below.iter().map(|v| -v).collect();
        tanh_slice(*b, &below, &mut pos).unwrap();
        tanh_slice(*b, &negated, &mut neg).unwrap();
        for ((x, p), n) in below.iter().zip(&pos).zip(&neg) {
            assert_eq!(
                (-p).to_bits() & !0x8000_0000,
                n.to_bits() & !0x8000_0000,
                "{b}: x = {x}"
            );
            assert!(*x == 0.0 || n.is_sign_negative(), "{b}: tanh(-{x}) = {n}");
        }
    }
}

#[test]
fn tanh_special_values() {
    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        let x = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            1e-40,
            0.5,
            -3.0,
        ];
        let mut y = [7.0f32; 7];
        tanh_slice(b, &x, &mut y).unwrap();
        assert!(y[0].is_nan(), "{b}");
        assert_eq!(&y[1..5], &[1.0, -1.0, 0.0, 1e-40], "{b}");
        for i in 5..7 {
            let want = f64::from(x[i]).tanh();
            assert!(
                ulp_error(y[i], want) <= 3.0,
                "{b}: tanh({}) = {}",
                x[i],
                y[i]
            );
        }
    }
}

#[test]
fn exp_special_values() {
    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        let x = [
            f32::NEG_INFINITY,
            f32::NAN,
            -0.0,
            0.0,
            -87.4,
            -1e30,
            f32::MIN,
            CUTOFF,
            -1e-45,
        ];
        for (name, exp) in [
            ("exp", exp_slice as ExpSlice),
            ("exp_for_sum", exp_for_sum_slice),
        ] {
            let mut y = [1.0f32; 9];
            exp(b, &x, &mut y).unwrap();
            assert_eq!(y[0], 0.0, "{b}: {name}(-inf)");
            assert!(y[1].is_nan(), "{b}: {name}(NaN)");
            assert_eq!(y[2], 1.0, "{b}: {name}(-0)");
            assert_eq!(y[3], 1.0, "{b}: {name}(0)");
            assert_eq!(y[4], 0.0, "{b}: {name}: below the cutoff flushes to 0");
            assert_eq!(y[5], 0.0, "{b}: {name}(-1e30)");
            assert_eq!(y[6], 0.0, "{b}: {name}(f32::MIN)");
            assert!(y[7] >= f32::MIN_POSITIVE, "{b}: {name}(CUTOFF) is normal");
            assert_eq!(y[8], 1.0, "{b}: {name}(-tiny)");
        }
    }
}
