//! Temperature, scale, keep/additive masks and the causal mask, inside the
//! kernels, on every backend and algorithm, for softmax and log-softmax,
//! against `reference::softmax_row_with`: the core bound with |x − max|
//! replaced by the exponent |(x − max)·s/t|, masked entries exactly 0
//! (−inf), the temperature limits, bad settings as errors, and the same
//! bits on any thread count.

mod common;

use common::check::{bits, check_with_settings, with_settings};
use common::{configs, normal, normal_row, rng};
use rand::RngExt;
use rand::rngs::StdRng;
use simd_softmax::reference::LogitSettings;
use simd_softmax::{Error, Softmax};

fn keep_flags(r: &mut StdRng, n: usize, p: f64) -> Vec<bool> {
    (0..n).map(|_| r.random_bool(p)).collect()
}

fn additive(r: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match r.random_range(0..10) {
            0 => f32::NEG_INFINITY,
            1 => 0.0,
            _ => normal(r) * 4.0,
        })
        .collect()
}

#[test]
fn temperature_and_scale_every_length() {
    let mut r = rng(70);
    let mut worst = (0.0f64, 0.0f64);
    let lengths: Vec<usize> = (0..=70)
        .chain([255, 256, 257, 2047, 2048, 2049, 5000])
        .collect();
    for sm in configs() {
        for &n in &lengths {
            for (t, s) in [
                (0.7, 1.0),
                (1.0, 0.125),
                (2.5, 0.3),
                (0.05, 1.0),
                (40.0, 3.0),
            ] {
                let sigma = [1.0, 10.0, 300.0][n % 3];
                let buf = normal_row(&mut r, n + 3, sigma);
                let x = &buf[n % 4 / 2..n % 4 / 2 + n];
                let ls = LogitSettings {
                    temperature: t,
                    scale: s,
                    ..Default::default()
                };
                let w = check_with_settings(sm, &ls, x, n.max(1), &format!("n={n} t={t} s={s}"));
                worst = (worst.0.max(w.0), worst.1.max(w.1));
            }
        }
    }
    println!(
        "temperature/scale: worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
        worst.0, worst.1
    );
}

#[test]
fn long_rows_with_settings() {
    let mut r = rng(71);
    let mut worst = (0.0f64, 0.0f64);
    for sm in configs() {
        for n in [65536 + 17, 140_000] {
            let x = normal_row(&mut r, n, 20.0);
            let keep = keep_flags(&mut r, n, 0.9);
            let add = additive(&mut r, n);
            for ls in [
                LogitSettings {
                    temperature: 0.6,
                    scale: 0.5,
                    ..Default::default()
                },
                LogitSettings {
                    keep_mask: Some(&keep),
                    temperature: 1.7,
                    ..Default::default()
                },
                LogitSettings {
                    additive_mask: Some(&add),
                    scale: 0.25,
                    ..Default::default()
                },
                LogitSettings {
                    causal: Some(n as isize / 3),
                    keep_mask: Some(&keep),
                    additive_mask: Some(&add),
                    ..Default::default()
                },
            ] {
                let w = check_with_settings(sm, &ls, &x, n, &format!("long n={n}"));
                worst = (worst.0.max(w.0), worst.1.max(w.1));
            }
        }
    }
    println!(
        "long rows: worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
        worst.0, worst.1
    );
}

#[test]
fn masks_broadcast_and_per_row() {
    let mut r = rng(72);
    let mut worst = (0.0f64, 0.0f64);
    for sm in configs() {
        for row_len in [1usize, 7, 15, 16, 17, 33, 100, 2049] {
            let rows = 6;
            let n = rows * row_len;
            let x = normal_row(&mut r, n, 5.0);
            for per_row in [false, true] {
                let m = if per_row { n } else { row_len };
                let keep = keep_flags(&mut r, m, 0.6);
                let add = additive(&mut r, m);
                for causal in [None, Some(-2), Some(0), Some(3)] {
                    for (k, a) in [(true, false), (false, true), (true, true), (false, false)] {
                        let ls = LogitSettings {
                            keep_mask: k.then_some(&keep[..]),
                            additive_mask: a.then_some(&add[..]),
                            causal,
                            temperature: if a { 0.8 } else { 1.0 },
                            ..Default::default()
                        };
                        let what = format!(
                            "row_len={row_len} per_row={per_row} causal={causal:?} keep={k} add={a}"
                        );
                        let w = check_with_settings(sm, &ls, &x, row_len, &what);
                        worst = (worst.0.max(w.0), worst.1.max(w.1));
                    }
                }
            }
        }
    }
    println!(
        "masks: worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
        worst.0, worst.1
    );
}

#[test]
fn masked_entries_are_exactly_zero_whatever_they_hold() {
    let hostile = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        1e30,
        -1e30,
    ];
    let mut r = rng(73);
    for sm in configs() {
        for n in [3usize, 17, 40, 3000] {
            let mut x = normal_row(&mut r, n, 2.0);
            let keep: Vec<bool> = (0..n).map(|i| i % 3 != 1).collect();
            for (i, v) in x.iter_mut().enumerate() {
                if i % 3 == 1 {
                    *v = hostile[i % hostile.len()];
                }
            }
            let ls = LogitSettings {
                keep_mask: Some(&keep),
                ..Default::default()
            };
            check_with_settings(sm, &ls, &x, n, &format!("hostile masked n={n}"));
            let mut p = vec![0.0f32; n];
            with_settings(sm, &ls).run(&x, &mut p).unwrap();
            assert!(
                p.iter().zip(&keep).all(|(&p, &k)| k || p.to_bits() == 0),
                "{sm:?} n={n}"
            );
            let total: f64 = p.iter().map(|&v| f64::from(v)).sum();
            assert!((total - 1.0).abs() < 1e-5, "{sm:?} n={n}: sum {total}");
            // The same row with the keep mask as an additive −inf: NaN and
            // +inf plus −inf are NaN, so only finite masked entries are 0.
        }
    }
}

/// A finite logit whose `x·s/t` overflows f32 is +inf (the +inf entries
/// share the mass), and an additive −inf still masks it on every backend,
/// FMA or not (unfused, inf − inf would make the row NaN).
#[test]
fn logits_beyond_f32_under_an_additive_mask() {
    for sm in configs() {
        for n in [5usize, 8, 19, 40, 3000] {
            // f32::MAX everywhere; −inf on every third entry, 0 elsewhere.
            let x = vec![f32::MAX; n];
            let add: Vec<f32> = (0..n)
                .map(|i| if i % 3 == 0 { f32::NEG_INFINITY } else { 0.0 })
                .collect();
            let ls = LogitSettings {
                scale: 3.5,
                additive_mask: Some(&add),
                ..Default::default()
            };
            check_with_settings(sm, &ls, &x, n, &format!("beyond f32 n={n}"));
            let mut p = vec![0.0f32; n];
            with_settings(sm, &ls).run(&x, &mut p).unwrap();
            let k = (0..n).filter(|i| i % 3 != 0).count();
            let share = (1.0 / k as f64) as f32;
            for (i, &v) in p.iter().enumerate() {
                let want = if i % 3 == 0 { 0.0 } else { share };
                assert_eq!(v.to_bits(), want.to_bits(), "{sm:?} n={n} [{i}]");
            }
        }
    }
}

/// Logits of opposite signs near f32::MAX under `c = s/t < 1`: `x − max`
/// is beyond f32, the log-probability `(x − max)·c − ln S` is not (it was
/// −inf). With and without a keep mask. Found by `settings_short`.
#[test]
fn log_probs_of_logits_further_apart_than_f32_holds() {
    for sm in configs() {
        for n in [2usize, 9, 40, 3000] {
            let x: Vec<f32> = (0..n)
                .map(|i| if i % 3 == 0 { -1.79e38 } else { f32::MAX })
                .collect();
            let keep: Vec<bool> = (0..n).map(|i| i % 4 != 3).collect();
            for keep_mask in [None, Some(&keep[..])] {
                let ls = LogitSettings {
                    temperature: 5.1875,
                    scale: 3.265625,
                    keep_mask,
                    ..Default::default()
                };
                check_with_settings(sm, &ls, &x, n, &format!("apart n={n}"));
            }
        }
    }
}

#[test]
fn fully_masked_rows_follow_the_all_neg_inf_rule() {
    let x = [1.0f32, f32::NAN, 3.0, f32::INFINITY];
    let none = [false; 4];
    for sm in configs() {
        for (i, sm) in [
            sm.keep_mask(&none),
            sm.causal(-1),
            sm.causal(-100),
            sm.keep_mask(&none).temperature(0.0),
            sm.keep_mask(&none).temperature(f32::INFINITY),
        ]
        .into_iter()
        .enumerate()
        {
            let mut p = [9.0f32; 4];
            sm.run(&x, &mut p).unwrap();
            assert_eq!(p, [0.0; 4], "case {i} {sm:?}");
            sm.run_log(&x, &mut p).unwrap();
            assert_eq!(p, [f32::NEG_INFINITY; 4], "case {i} {sm:?}");
        }
        // Causal over rows: row 0 keeps column 0 only, row 1 columns 0..=1.
        let x = [5.0f32, 1.0, 2.0, 3.0, 4.0, 7.0];
        let mut p = [9.0f32; 6];
        sm.causal(0).run_rows(&x, &mut p, 3).unwrap();
        assert_eq!(&p[..3], &[1.0, 0.0, 0.0], "{sm:?}");
        assert_eq!(p[5], 0.0);
        assert!(
            (p[3] - 0.26894143).abs() < 1e-6 && (p[4] - 0.7310586).abs() < 1e-6,
            "{p:?}"
        );
    }
}

#[test]
fn temperature_limits() {
    for sm in configs() {
        // t = 0: one-hot at the maximum, ties split equally.
        let x = [1.0f32, 4.0, -2.0, 4.0, f32::NEG_INFINITY, 4.0];
        let mut p = [9.0f32; 6];
        sm.temperature(0.0).run(&x, &mut p).unwrap();
        let third = (1.0f64 / 3.0) as f32;
        assert_eq!(p, [0.0, third, 0.0, third, 0.0, third], "{sm:?}");
        sm.temperature(0.0).run_log(&x, &mut p).unwrap();
        let ln3 = -(3.0f64.ln()) as f32;
        let ninf = f32::NEG_INFINITY;
        assert_eq!(p, [ninf, ln3, ninf, ln3, ninf, ln3], "{sm:?}");
        // ... the keep mask decides which maximum counts.
        let keep = [true, false, true, false, true, true];
        sm.temperature(0.0)
            .keep_mask(&keep)
            .run(&x, &mut p)
            .unwrap();
        assert_eq!(p, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "{sm:?}");
        // t = +inf: uniform over the entries that are not −inf.
        sm.temperature(f32::INFINITY).run(&x, &mut p).unwrap();
        assert_eq!(p, [0.2, 0.2, 0.2, 0.2, 0.0, 0.2], "{sm:?}");
        // NaN still makes the row NaN in both limits.
        let y = [1.0f32, f32::NAN];
        let mut q = [0.0f32; 2];
        for t in [0.0, f32::INFINITY] {
            sm.temperature(t).run(&y, &mut q).unwrap();
            assert!(q.iter().all(|v| v.is_nan()), "t={t} {sm:?}");
        }
        // A scale and a tiny temperature whose ratio overflows f32 is t → 0.
        sm.temperature(1e-30).scale(1e20).run(&x, &mut p).unwrap();
        assert_eq!(p, [0.0, third, 0.0, third, 0.0, third], "{sm:?}");
    }
}

#[test]
fn limits_against_the_reference_with_masks() {
    let mut r = rng(74);
    for sm in configs() {
        for n in [1usize, 5, 16, 33, 300] {
            // Few distinct values, so the maximum is often tied.
            let x: Vec<f32> = (0..n)
                .map(|_| match r.random_range(0..8) {
                    0 => f32::NEG_INFINITY,
                    1 => f32::INFINITY,
                    k => k as f32,
                })
                .collect();
            let keep = keep_flags(&mut r, n, 0.7);
            let add = additive(&mut r, n);
            for t in [0.0, f32::INFINITY] {
                for (k, a) in [(false, false), (true, false), (false, true), (true, true)] {
                    let ls = LogitSettings {
                        temperature: t,
                        keep_mask: k.then_some(&keep[..]),
                        additive_mask: a.then_some(&add[..]),
                        ..Default::default()
                    };
                    check_with_settings(
                        sm,
                        &ls,
                        &x,
                        n,
                        &format!("limit t={t} n={n} keep={k} add={a}"),
                    );
                }
            }
        }
    }
}

#[test]
fn bad_settings_are_errors_and_write_nothing() {
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let sm = Softmax::new();
    let bad = [
        (sm.temperature(-1.0), "temperature"),
        (sm.temperature(f32::NAN), "temperature"),
        (sm.temperature(-0.0).scale(0.0), "scale"),
        (sm.scale(-2.0), "scale"),
        (sm.scale(f32::INFINITY), "scale"),
        (sm.scale(f32::NAN), "scale"),
    ];
    for (sm, name) in bad {
        let mut y = [7.0f32; 4];
        match sm.run(&x, &mut y) {
            Err(Error::InvalidParameter { name: n, .. }) => assert_eq!(n.name(), name),
            other => panic!("{sm:?}: {other:?}"),
        }
        assert!(sm.run_log_rows(&x, &mut y, 2).is_err());
        assert_eq!(y, [7.0; 4], "{sm:?} wrote");
    }
    let keep = [true; 3];
    let add = [0.0f32; 5];
    let mut y = [7.0f32; 4];
    assert_eq!(
        sm.keep_mask(&keep).run_rows(&x, &mut y, 2),
        Err(Error::MaskLength {
            mask: simd_softmax::Mask::Keep,
            mask_len: 3,
            row_len: 2,
            len: 4
        })
    );
    assert_eq!(
        sm.additive_mask(&add).run_log(&x, &mut y),
        Err(Error::MaskLength {
            mask: simd_softmax::Mask::Additive,
            mask_len: 5,
            row_len: 4,
            len: 4
        })
    );
    assert_eq!(y, [7.0; 4]);
    let msg = sm
        .additive_mask(&add)
        .run_log(&x, &mut y)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("additive_mask holds 5 values"), "{msg}");
    // Operations that do not apply the settings cannot be called with
    // them: a type error now, checked by the `compile_fail` doctests in
    // `src/builder.rs`.
}

#[test]
fn same_bits_on_any_thread_count() {
    let mut r = rng(75);
    let row_len = 70_001;
    let x = normal_row(&mut r, row_len * 3, 3.0);
    let keep = keep_flags(&mut r, row_len, 0.8);
    let add = additive(&mut r, row_len);
    for sm in configs() {
        let sm = sm
            .keep_mask(&keep)
            .additive_mask(&add)
            .scale(0.7)
            .causal(60_000);
        let run = |threads: usize, rows: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut y = vec![0.0f32; rows * row_len];
            pool.install(|| sm.run_rows(&x[..rows * row_len], &mut y, row_len))
                .unwrap();
            bits(&y)
        };
        for rows in [1, 3] {
            let one = run(1, rows);
            assert_eq!(one, run(2, rows), "{sm:?} rows={rows}");
            assert_eq!(one, run(3, rows), "{sm:?} rows={rows}");
        }
    }
}

/// A settings_short finding: under an additive mask the max the kernel
/// subtracts is a rounded f32 logit too, off by the rounding of `x·s/t`
/// for the largest entry (115.45/5.94 = 19.4 here), which the bound left
/// out (it held `|max w|` only). On the scalar backend (two roundings) entry
/// 0, whose own logit is exact (x = 2^-126), came out 1.04 of that bound.
#[test]
fn the_rounding_of_the_largest_logit_is_in_the_bound() {
    let mut x = [f32::MIN_POSITIVE; 8];
    x[7] = 115.44922;
    let keep = [true, true, false, false, true, true, true, true];
    let add = [
        -0.08826351f32,
        -6.8186703,
        -5.6229153,
        5.022047,
        0.0,
        -8.075785,
        9.915426,
        -0.846673,
    ];
    let ls = LogitSettings {
        temperature: 95.0 / 16.0,
        keep_mask: Some(&keep),
        additive_mask: Some(&add),
        ..LogitSettings::default()
    };
    for sm in configs() {
        check_with_settings(sm, &ls, &x, 8, "largest logit's rounding");
    }
}
