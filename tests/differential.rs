//! Every backend and algorithm against the f64 reference, under the bound
//! `|p − p_ref| ≤ 2^-24·(16 + |x − max|)·p_ref + 2^-126`.

mod common;

use common::{Errors, check_row, configs, normal_row, rng};
use rand::RngExt;

/// Every length 0..=300 at every start offset 0..16 (input and output at
/// different offsets), so each lane boundary, tail and partial vector runs;
/// in place must give the same bits.
#[test]
fn every_length_and_offset() {
    let mut worst = Errors::default();
    for sm in configs() {
        let mut r = rng(1);
        for n in 0..=300usize {
            for offset in 0..16 {
                let buf = normal_row(&mut r, n + 16, 3.0);
                let x = &buf[offset..offset + n];
                let out_offset = (offset * 7 + 3) % 16;
                let mut out = vec![f32::NAN; n + 16];
                sm.run(x, &mut out[out_offset..out_offset + n]).unwrap();
                let y = &out[out_offset..out_offset + n];
                let ctx = || format!("{sm:?} n={n} offset={offset}");
                worst = worst.merge(check_row(x, y, &ctx));
                let mut in_place = buf.clone();
                sm.run_in_place(&mut in_place[offset..offset + n]).unwrap();
                assert!(
                    in_place[offset..offset + n]
                        .iter()
                        .zip(y)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{}: in place differs from out of place",
                    ctx()
                );
            }
        }
    }
    println!("every_length_and_offset: worst {worst:?}");
}

/// Long rows (across the block, fold and chunk boundaries, up to 256k) at
/// logit scales from nearly uniform to nearly one-hot.
#[test]
fn long_rows_at_several_scales() {
    let lengths = [
        1000, 2047, 2048, 2049, 4096, 16383, 16384, 16385, 32769, 50257, 128256, 262144,
    ];
    let sigmas = [0.01f32, 1.0, 3.0, 10.0, 100.0, 1000.0];
    let mut worst = Errors::default();
    let mut r = rng(2);
    let rows: Vec<(usize, f32, Vec<f32>)> = lengths
        .iter()
        .flat_map(|&n| sigmas.iter().map(move |&s| (n, s)))
        .map(|(n, s)| (n, s, normal_row(&mut r, n, s)))
        .collect();
    for sm in configs() {
        for (n, sigma, x) in &rows {
            let mut y = vec![0.0; *n];
            sm.run(x, &mut y).unwrap();
            worst = worst.merge(check_row(x, &y, &|| format!("{sm:?} n={n} sigma={sigma}")));
        }
    }
    println!("long_rows_at_several_scales: worst {worst:?}");
}

/// Orders that stress the online rescaling (a new max in every block) and
/// the sum (one dominant value, or many equal ones).
#[test]
fn adversarial_orders() {
    let n = 262144;
    let mut r = rng(3);
    let mut ascending = normal_row(&mut r, n, 3.0);
    ascending.sort_by(f32::total_cmp);
    let descending: Vec<f32> = ascending.iter().rev().copied().collect();
    let tiny_steps: Vec<f32> = (0..n).map(|i| i as f32 * 1e-4).collect();
    let mut dominant = normal_row(&mut r, n, 1.0);
    dominant[n / 3] = 30.0;
    let mut near_ties = vec![5.0f32; n];
    for v in near_ties.iter_mut() {
        *v += r.random_range(-1e-3f32..1e-3);
    }
    let sawtooth: Vec<f32> = (0..n).map(|i| (i % 4096) as f32 * 0.01).collect();
    let cases = [
        ("ascending", ascending),
        ("descending", descending),
        ("tiny_steps", tiny_steps),
        ("dominant", dominant),
        ("near_ties", near_ties),
        ("sawtooth", sawtooth),
    ];
    let mut worst = Errors::default();
    for sm in configs() {
        for (name, x) in &cases {
            let mut y = vec![0.0; n];
            sm.run(x, &mut y).unwrap();
            worst = worst.merge(check_row(x, &y, &|| format!("{sm:?} {name}")));
        }
    }
    println!("adversarial_orders: worst {worst:?}");
}

/// Batches through `run_rows`: every row must match the reference.
#[test]
fn batches_of_rows() {
    let mut r = rng(4);
    for sm in configs() {
        for &(rows, cols) in &[
            (1usize, 1usize),
            (3, 7),
            (17, 129),
            (64, 1000),
            (5, 20000),
            (300, 64),
        ] {
            let x = normal_row(&mut r, rows * cols, 4.0);
            let mut y = vec![0.0; rows * cols];
            sm.run_rows(&x, &mut y, cols).unwrap();
            for (i, (xr, yr)) in x.chunks(cols).zip(y.chunks(cols)).enumerate() {
                check_row(xr, yr, &|| format!("{sm:?} {rows}x{cols} row {i}"));
            }
        }
    }
}

/// The probabilities of a row sum to 1 within the bound's budget: n
/// outputs each off by at most ~16 units of 2^-24 relative, plus the f32
/// rounding of the sum itself.
#[test]
fn probabilities_sum_to_one() {
    use approx::assert_relative_eq;
    let mut r = rng(5);
    for sm in configs() {
        for n in [1usize, 7, 100, 2048, 50257, 262144] {
            let x = normal_row(&mut r, n, 5.0);
            let mut y = vec![0.0f32; n];
            sm.run(&x, &mut y).unwrap();
            let sum: f64 = y.iter().map(|&p| f64::from(p)).sum();
            assert_relative_eq!(sum, 1.0, max_relative = 17.0 * 2f64.powi(-24));
        }
    }
}

/// Rows whose deepest logit sits around `max + CUTOFF` (where the exp
/// stops needing its flush to 0, which three-pass skips for rows entirely
/// above it), and far below it, at the start, middle and end of rows of
/// several lengths: every backend and algorithm against the reference.
/// A row wrongly taken as above the cutoff gives garbage on the backends
/// that build 2^n from exponent bits (n < −127 leaves the field).
#[test]
fn deepest_logit_around_the_exp_cutoff() {
    use simd_softmax::exp::CUTOFF;
    let mut worst = Errors::default();
    let mut r = rng(11);
    let max = 3.5f32;
    let edge = max + CUTOFF;
    let step = |v: f32, k: i32| f32::from_bits((v.to_bits() as i32 - k) as u32);
    let mut deepest: Vec<f32> = (-3..=3).map(|k| step(edge, k)).collect();
    deepest.extend([max - 88.5, max - 100.0, max - 1e4, -1e30, f32::NEG_INFINITY]);
    for sm in configs() {
        for n in [200usize, 1000, 2049, 5000] {
            for &d in &deepest {
                for at in [0, n / 2, n - 1] {
                    let mut x: Vec<f32> = normal_row(&mut r, n, 1.0)
                        .iter()
                        .map(|v| (max - 4.0 + v).min(max))
                        .collect();
                    x[(at + 1) % n] = max;
                    x[at] = d;
                    let mut y = vec![0.0f32; n];
                    sm.run(&x, &mut y).unwrap();
                    let ctx = || format!("{sm:?} n={n} deepest={d:e} at {at}");
                    worst = worst.merge(check_row(&x, &y, &ctx));
                }
            }
        }
    }
    println!("deepest_logit_around_the_exp_cutoff: worst {worst:?}");
}
