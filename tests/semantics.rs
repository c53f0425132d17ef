//! Every line of the semantics table in the crate docs, on every backend
//! and algorithm, at lengths that put the special values in full vectors,
//! in the tail, and in later blocks and chunks.

mod common;

use common::{check_row, configs, normal_row, rng};
use simd_softmax::{Error, Softmax};

const LENGTHS: [usize; 11] = [1, 2, 7, 8, 9, 33, 300, 2049, 5000, 40000, 70000];

/// Positions to plant a value: first, last, middle and the start of the tail.
fn positions(n: usize) -> Vec<usize> {
    let mut p = vec![0, n - 1, n / 2, n - n % 8];
    p.retain(|&i| i < n);
    p.sort_unstable();
    p.dedup();
    p
}

fn run_both(sm: &Softmax, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.5f32; x.len()];
    sm.run(x, &mut y).unwrap();
    let mut z = x.to_vec();
    sm.run_in_place(&mut z).unwrap();
    assert!(
        y.iter().zip(&z).all(|(a, b)| a.to_bits() == b.to_bits()),
        "{sm:?}: in place differs: n={} {:?}",
        x.len(),
        y.iter()
            .zip(&z)
            .zip(x)
            .enumerate()
            .find(|(_, ((a, b), _))| a.to_bits() != b.to_bits())
    );
    y
}

#[test]
fn nan_poisons_row() {
    let mut r = rng(10);
    for sm in configs() {
        for n in LENGTHS {
            for at in positions(n) {
                for background in [0.0f32, f32::NEG_INFINITY, f32::INFINITY] {
                    let mut x = if background == 0.0 {
                        normal_row(&mut r, n, 3.0)
                    } else {
                        vec![background; n]
                    };
                    x[at] = f32::NAN;
                    let y = run_both(&sm, &x);
                    assert!(
                        y.iter().all(|v| v.is_nan()),
                        "{sm:?} n={n} NaN at {at} in {background}"
                    );
                }
            }
        }
    }
}

#[test]
fn all_neg_inf_is_zeros() {
    for sm in configs() {
        for n in LENGTHS {
            let y = run_both(&sm, &vec![f32::NEG_INFINITY; n]);
            assert!(
                y.iter().all(|&v| v == 0.0 && v.is_sign_positive()),
                "{sm:?} n={n}: {:?}",
                &y[..n.min(9)]
            );
        }
    }
}

#[test]
fn pos_inf_splits_mass() {
    let mut r = rng(11);
    for sm in configs() {
        for n in LENGTHS {
            let mut x = normal_row(&mut r, n, 3.0);
            let at = positions(n);
            for &i in &at {
                x[i] = f32::INFINITY;
            }
            if n > 3 {
                x[1] = f32::NEG_INFINITY;
            }
            let y = run_both(&sm, &x);
            let share = 1.0 / at.len() as f32;
            for (i, (&xi, &yi)) in x.iter().zip(&y).enumerate() {
                let want = if xi == f32::INFINITY { share } else { 0.0 };
                assert_eq!(yi, want, "{sm:?} n={n} i={i}");
            }
        }
    }
}

#[test]
fn neg_inf_entries_are_exact_zero() {
    let mut r = rng(12);
    for sm in configs() {
        for n in LENGTHS.into_iter().filter(|&n| n > 1) {
            let mut x = normal_row(&mut r, n, 3.0);
            for i in (0..n).step_by(3) {
                x[i] = f32::NEG_INFINITY;
            }
            let y = run_both(&sm, &x);
            for i in (0..n).step_by(3) {
                assert_eq!(y[i], 0.0, "{sm:?} n={n} i={i}");
            }
            check_row(&x, &y, &|| format!("{sm:?} n={n}"));
        }
    }
}

/// Leading blocks and chunks of only −inf before the finite values: the
/// running max and the merges must not turn −inf − (−inf) into NaN.
#[test]
fn leading_masked_chunks() {
    let mut r = rng(13);
    for sm in configs() {
        for masked in [8, 2048, 4096, 16384, 40000] {
            let mut x = vec![f32::NEG_INFINITY; masked];
            x.extend(normal_row(&mut r, 5000, 3.0));
            let y = run_both(&sm, &x);
            check_row(&x, &y, &|| format!("{sm:?} masked={masked}"));
            assert!(y[..masked].iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn finite_extremes_stay_finite() {
    let mut r = rng(14);
    let rows: Vec<Vec<f32>> = vec![
        vec![f32::MAX, f32::MIN, 0.0, 1e-30, -1e-30],
        vec![f32::MAX; 100],
        vec![f32::MIN; 100],
        vec![f32::MIN, f32::MAX],
        (0..1000)
            .map(|i| if i % 2 == 0 { 3.0e38 } else { -3.0e38 })
            .collect(),
        (0..1000).map(|i| (i as f32 - 500.0) * 6e35).collect(),
        (0..300).map(|i| f32::from_bits(i + 1)).collect(), // subnormals
        normal_row(&mut r, 5000, 1e30),
        normal_row(&mut r, 5000, 1e-30),
        (0..5000)
            .map(|i| if i == 4321 { 88.0 } else { -88.0 })
            .collect(),
    ];
    for sm in configs() {
        for x in &rows {
            let y = run_both(&sm, x);
            assert!(y.iter().all(|v| v.is_finite()), "{sm:?} {:?}", &x[..4]);
            check_row(x, &y, &|| format!("{sm:?} {:?}", &x[..4]));
        }
    }
}

#[test]
fn all_equal_is_uniform() {
    for sm in configs() {
        for n in LENGTHS {
            for v in [0.0f32, -1e30, 1e30, 7.5, f32::MAX, f32::MIN] {
                let y = run_both(&sm, &vec![v; n]);
                let want = (1.0 / n as f64) as f32;
                assert!(
                    y.iter().all(|&p| p == want),
                    "{sm:?} n={n} v={v}: {} vs {want}",
                    y[0]
                );
            }
        }
    }
}

#[test]
fn empty_is_ok() {
    for sm in configs() {
        let mut out: [f32; 0] = [];
        let none: &[f32] = &[];
        assert_eq!(sm.run(none, &mut out), Ok(()));
        assert_eq!(sm.run_in_place::<f32>(&mut []), Ok(()));
        assert_eq!(sm.run_rows(none, &mut out, 0), Ok(()));
        assert_eq!(sm.run_rows(none, &mut out, 5), Ok(()));
        assert_eq!(sm.run_rows_in_place::<f32>(&mut [], 3), Ok(()));
    }
    simd_softmax::softmax_in_place::<f32>(&mut []).unwrap();
}

#[test]
fn bad_shapes_are_errors_and_write_nothing() {
    let x = [1.0f32; 6];
    let mut y = [7.0f32; 5];
    assert_eq!(
        simd_softmax::softmax(&x, &mut y),
        Err(Error::LengthMismatch {
            input: 6,
            output: 5
        })
    );
    let mut y6 = [7.0f32; 6];
    assert_eq!(
        simd_softmax::softmax_rows(&x, &mut y6, 0),
        Err(Error::ZeroRowLength { len: 6 })
    );
    assert_eq!(
        simd_softmax::softmax_rows(&x, &mut y6, 4),
        Err(Error::RaggedRows { len: 6, row_len: 4 })
    );
    assert_eq!(
        simd_softmax::softmax_rows(&x, &mut y, 3),
        Err(Error::LengthMismatch {
            input: 6,
            output: 5
        })
    );
    let mut d = [1.0f32; 6];
    assert_eq!(
        simd_softmax::softmax_rows_in_place(&mut d, 5),
        Err(Error::RaggedRows { len: 6, row_len: 5 })
    );
    assert_eq!(y, [7.0; 5]);
    assert_eq!(y6, [7.0; 6]);
    assert_eq!(d, [1.0; 6]);
    let msg = Error::RaggedRows { len: 6, row_len: 4 }.to_string();
    assert!(msg.contains('6') && msg.contains('4'), "{msg}");
    let msg = Error::LengthMismatch {
        input: 6,
        output: 5,
    }
    .to_string();
    assert!(msg.contains('6') && msg.contains('5'), "{msg}");
}

/// Short rows run two at a time in a batch (`kernels::short::pair`): each
/// row of a batch, softmax and log-softmax, must have the bits it has alone, with a hostile row at
/// an even or odd position (paired with a normal row, or left over at the
/// end), or every row hostile, at lengths that fill 1, 2, 3, 4 and more
/// vectors on every backend.
#[test]
fn short_rows_in_batches_match_rows_alone() {
    const ROWS: usize = 7;
    let mut r = rng(17);
    let hostile = |case: usize, n: usize, r: &mut _| -> Vec<f32> {
        let mut x = normal_row(r, n, 3.0);
        match case {
            0 => x[n / 2] = f32::NAN,
            1 => x.fill(f32::NEG_INFINITY),
            2 => x[n - 1] = f32::INFINITY,
            3 => {
                x[0] = f32::INFINITY;
                x[n - 1] = f32::INFINITY;
            }
            4 => x.fill(-1.5),
            5 => {
                x[0] = 3e38;
                x[n - 1] = -3e38;
            }
            _ => x.iter_mut().for_each(|v| *v *= 1e-40),
        }
        x
    };
    for sm in configs() {
        for n in [1, 5, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 127, 128] {
            for case in 0..7 {
                for at in [Some(0), Some(1), Some(2), Some(5), Some(ROWS - 1), None] {
                    let rows: Vec<Vec<f32>> = (0..ROWS)
                        .map(|i| match at {
                            Some(at) if at != i => normal_row(&mut r, n, 3.0),
                            _ => hostile(case, n, &mut r),
                        })
                        .collect();
                    let x = rows.concat();
                    for log in [false, true] {
                        let mut y = vec![0.5f32; x.len()];
                        let mut z = x.clone();
                        if log {
                            sm.run_log_rows(&x, &mut y, n).unwrap();
                            sm.run_log_rows_in_place(&mut z, n).unwrap();
                        } else {
                            sm.run_rows(&x, &mut y, n).unwrap();
                            sm.run_rows_in_place(&mut z, n).unwrap();
                        }
                        for (i, row) in rows.iter().enumerate() {
                            let mut alone = vec![0.5f32; n];
                            if log {
                                sm.run_log(row, &mut alone).unwrap();
                            } else {
                                sm.run(row, &mut alone).unwrap();
                            }
                            for (what, got) in [("out of place", &y), ("in place", &z)] {
                                let got = &got[i * n..(i + 1) * n];
                                assert!(
                                    got.iter()
                                        .zip(&alone)
                                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                                    "{sm:?} log {log} n={n} case {case} hostile at {at:?}: row {i} \
                                     {what} differs from the row alone: {got:?} vs {alone:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
