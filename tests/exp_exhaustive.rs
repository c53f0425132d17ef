//! Every f32 in [CUTOFF, DOMAIN_MAX] through our exp on every backend this
//! CPU has, against f64 `exp`: at most 2 ULP; and every f32 in [CUTOFF, 0]
//! through the exp logsumexp sums (`exp_for_sum`): at most
//! `2 ULP + 2^-28·|x|·e^x`. ~3.3e9 inputs; run in release mode
//! (`cargo test --release --test exp_exhaustive -- --ignored`; CI does).

use rayon::prelude::*;
use simd_softmax::Backend;
use simd_softmax::Error;
use simd_softmax::exp::{CUTOFF, DOMAIN_MAX, exp_for_sum_slice, exp_slice};

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
                let want: Vec<f64> = x.iter().map(|&v| f64::from(v).exp()).collect();
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
