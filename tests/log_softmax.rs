//! log-softmax and logsumexp on every backend against the f64 reference:
//! `|y − y_ref| ≤ 2^-22·|y_ref| + 2^-21`, the special values, shapes and
//! determinism.

mod common;

use common::check::{bits, check_log_values};
use common::{builders, normal, normal_row, rng};
use simd_softmax::{Error, Softmax, reference};

/// Runs log-softmax out of place and in place (same bits), checks it and
/// logsumexp against the reference; returns the worst bound share.
fn check(sm: &Softmax, x: &[f32], what: &dyn Fn() -> String) -> f64 {
    let mut y = vec![0.5f32; x.len()];
    sm.run_log(x, &mut y).unwrap();
    let mut z = x.to_vec();
    sm.run_log_in_place(&mut z).unwrap();
    assert_eq!(bits(&y), bits(&z), "{}: in place differs", what());
    let worst = check_log_values(&y, &reference::log_softmax_f64(x), what);
    let mut lse = [0.0f32];
    if !x.is_empty() {
        sm.run_logsumexp_rows(x, x.len(), &mut lse).unwrap();
        let w = check_log_values(&lse, &[reference::logsumexp_f64(x)], &|| {
            format!("{} logsumexp", what())
        });
        return worst.max(w);
    }
    worst
}

#[test]
fn every_length_and_offset() {
    let mut worst = 0.0f64;
    for sm in builders() {
        let mut r = rng(40);
        for n in 0..=300usize {
            for offset in 0..16 {
                let buf = normal_row(&mut r, n + 16, 3.0);
                let x = &buf[offset..offset + n];
                worst = worst.max(check(&sm, x, &|| format!("{sm:?} n={n} offset={offset}")));
            }
        }
    }
    println!("log_softmax every_length_and_offset: worst {worst:.3} of the bound");
}

#[test]
fn long_rows_and_adversarial_orders() {
    let mut r = rng(41);
    let mut rows: Vec<(String, Vec<f32>)> = Vec::new();
    for n in [2047usize, 16385, 50257, 262144] {
        for sigma in [0.01f32, 1.0, 10.0, 1000.0] {
            rows.push((format!("n={n} sigma={sigma}"), normal_row(&mut r, n, sigma)));
        }
    }
    let mut ascending = normal_row(&mut r, 100_000, 3.0);
    ascending.sort_by(f32::total_cmp);
    rows.push(("ascending".into(), ascending));
    rows.push((
        "offset 1e4".into(),
        normal_row(&mut r, 5000, 1.0)
            .iter()
            .map(|v| v + 1e4)
            .collect(),
    ));
    rows.push((
        "tiny steps".into(),
        (0..70000).map(|i| i as f32 * 1e-4).collect(),
    ));
    let mut worst = 0.0f64;
    for sm in builders() {
        for (name, x) in &rows {
            worst = worst.max(check(&sm, x, &|| format!("{sm:?} {name}")));
        }
    }
    println!("log_softmax long rows: worst {worst:.3} of the bound");
}

/// logsumexp's exps drop the reduction's low constant (`exp_for_sum`), an
/// error that grows with `|x − max|`; the sum weights it by each entry's
/// share, so the worst rows hold their mass far below the max: one entry
/// at the max and a tail `gap` below it, in values that make `x − max`
/// exact and values that round it, the tail alone or spread.
#[test]
fn logsumexp_with_its_mass_far_from_the_max() {
    let mut r = rng(42);
    let mut worst = 0.0f64;
    for n in [4097usize, 50257, 262144] {
        let ln_n = (n as f32).ln();
        for gap in [ln_n - 2.3, ln_n, ln_n + 3.0, 30.0, 80.0] {
            for top in [0.0f32, 37.3, -1000.1] {
                let flat: Vec<f32> = (0..n)
                    .map(|i| if i == n / 3 { top } else { top - gap })
                    .collect();
                let spread: Vec<f32> = (0..n)
                    .map(|i| {
                        if i == 7 {
                            top
                        } else {
                            top - gap + 0.5 * normal(&mut r)
                        }
                    })
                    .collect();
                for (shape, x) in [("flat", &flat), ("spread", &spread)] {
                    let want = [reference::logsumexp_f64(x)];
                    for sm in builders() {
                        let mut got = [0.0f32];
                        sm.run_logsumexp_rows(x, n, &mut got).unwrap();
                        worst = worst.max(check_log_values(&got, &want, &|| {
                            format!("{sm:?} n={n} gap={gap} top={top} {shape}")
                        }));
                    }
                }
            }
        }
    }
    println!("logsumexp with its mass far from the max: worst {worst:.3} of the bound");
}

/// One dominant logit over a long tail: the tail's mass, 8190 terms of
/// exp(−41.64) = 8.2e-19, is the dominant entry's log-probability
/// (−6.7e-15), which f32 resolves; a plain f64 sum drops every term beside
/// 1.0 and says 0.
#[test]
fn a_dominant_logit_keeps_its_tail() {
    let mut x = vec![0.0f32; 8191];
    x[0] = 41.640625;
    let tail = 8190.0 * (-41.640625f64).exp();
    let want = -tail.ln_1p();
    let got = reference::log_softmax_f64(&x)[0];
    assert!((got - want).abs() <= 1e-9 * want.abs(), "{got} vs {want}");
    // 41.640625 + 6.7e-15, rounded once (an f64 ULP there is 7.1e-15).
    assert_eq!(reference::logsumexp_f64(&x), 41.640625 - want);
    for sm in builders() {
        check(&sm, &x, &|| format!("{sm:?} dominant"));
    }
}

#[test]
fn special_values() {
    let nan = f32::NAN;
    let (inf, ninf) = (f32::INFINITY, f32::NEG_INFINITY);
    let cases: Vec<Vec<f32>> = vec![
        vec![1.0, nan, 2.0],
        vec![ninf; 37],
        vec![ninf, nan, ninf],
        vec![inf, 1.0, inf, ninf, 3.0],
        vec![inf; 20],
        vec![ninf, 0.0, ninf, 5.0],
        vec![f32::MAX, f32::MIN, 0.0, 1e-30],
        vec![f32::MIN; 40],
        (0..300).map(|i| f32::from_bits(i + 1)).collect(),
        (0..5000)
            .map(|i| if i == 4321 { 88.0 } else { -88.0 })
            .collect(),
    ];
    for sm in builders() {
        for x in &cases {
            check(&sm, x, &|| format!("{sm:?} {:?}", &x[..x.len().min(5)]));
        }
        // Spelled out once: all −inf gives −inf (log-softmax and logsumexp).
        let mut y = [0.0f32; 3];
        sm.run_log(&[ninf; 3], &mut y).unwrap();
        assert_eq!(y, [ninf; 3]);
        let mut y = [0.0f32; 3];
        sm.run_log(&[inf, 0.0, inf], &mut y).unwrap();
        assert_eq!(y, [-std::f32::consts::LN_2, ninf, -std::f32::consts::LN_2]);
    }
    assert_eq!(simd_softmax::logsumexp(&[ninf, ninf]), Ok(ninf));
    assert_eq!(simd_softmax::logsumexp(&[1.0, inf]), Ok(inf));
    assert!(simd_softmax::logsumexp(&[inf, nan]).unwrap().is_nan());
    assert_eq!(simd_softmax::logsumexp::<f32>(&[]), Ok(ninf));
}

#[test]
fn rows_threads_and_shapes() {
    let mut r = rng(42);
    for sm in builders() {
        for &(rows, cols) in &[(1usize, 70000usize), (7, 129), (64, 1000), (3, 50257)] {
            let x = normal_row(&mut r, rows * cols, 3.0);
            let mut want = vec![0.0f32; rows * cols];
            for (xr, yr) in x.chunks(cols).zip(want.chunks_mut(cols)) {
                sm.run_log(xr, yr).unwrap();
            }
            let mut lse_want = vec![0.0f32; rows];
            for (xr, l) in x.chunks(cols).zip(lse_want.iter_mut()) {
                sm.run_logsumexp_rows(xr, cols, std::slice::from_mut(l))
                    .unwrap();
            }
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut y = vec![0.0f32; rows * cols];
                pool.install(|| sm.run_log_rows(&x, &mut y, cols)).unwrap();
                assert_eq!(
                    bits(&y),
                    bits(&want),
                    "{sm:?} {rows}x{cols} threads={threads}"
                );
                let mut z = x.clone();
                pool.install(|| sm.run_log_rows_in_place(&mut z, cols))
                    .unwrap();
                assert_eq!(
                    bits(&z),
                    bits(&want),
                    "{sm:?} {rows}x{cols} threads={threads} in place"
                );
                let mut lse = vec![0.0f32; rows];
                pool.install(|| sm.run_logsumexp_rows(&x, cols, &mut lse))
                    .unwrap();
                assert_eq!(
                    bits(&lse),
                    bits(&lse_want),
                    "{sm:?} {rows}x{cols} threads={threads} logsumexp"
                );
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors_and_write_nothing() {
    let x = [1.0f32; 6];
    let mut y = [7.0f32; 5];
    assert_eq!(
        simd_softmax::log_softmax(&x, &mut y),
        Err(Error::LengthMismatch {
            input: 6,
            output: 5
        })
    );
    let mut y6 = [7.0f32; 6];
    assert_eq!(
        simd_softmax::log_softmax_rows(&x, &mut y6, 4),
        Err(Error::RaggedRows { len: 6, row_len: 4 })
    );
    assert_eq!(
        simd_softmax::log_softmax_rows(&x, &mut y6, 0),
        Err(Error::ZeroRowLength { len: 6 })
    );
    let mut d = x;
    assert_eq!(
        simd_softmax::log_softmax_rows_in_place(&mut d, 5),
        Err(Error::RaggedRows { len: 6, row_len: 5 })
    );
    let mut out = [7.0f32; 3];
    assert_eq!(
        simd_softmax::logsumexp_rows(&x, 3, &mut out),
        Err(Error::RowOutputs { rows: 2, output: 3 })
    );
    assert_eq!(
        simd_softmax::logsumexp_rows(&x, 4, &mut out[..1]),
        Err(Error::RaggedRows { len: 6, row_len: 4 })
    );
    assert_eq!(simd_softmax::logsumexp_rows::<f32>(&[], 0, &mut []), Ok(()));
    assert_eq!((y, y6, d, out), ([7.0; 5], [7.0; 6], x, [7.0; 3]));
    let msg = Error::RowOutputs { rows: 2, output: 3 }.to_string();
    assert!(msg.contains('2') && msg.contains('3'), "{msg}");
}
