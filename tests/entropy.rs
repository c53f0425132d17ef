//! entropy and entropy_rows on every backend against the f64 reference:
//! `|H − H_ref| ≤ 2^-24·(16·H + Σ p·(x − max)²) + 2^-21`, special values,
//! shapes and determinism.

mod common;

use common::check::check_entropy;
use common::{builders, normal_row, rng};
use simd_softmax::Error;

#[test]
fn every_length_offset_and_spread() {
    let mut r = rng(100);
    let mut worst = 0.0f64;
    for sm in builders() {
        for n in 1..=300usize {
            for offset in [0, 1, 5] {
                let sigma = [0.01f32, 1.0, 8.0, 200.0][n % 4];
                let buf = normal_row(&mut r, n + 8, sigma);
                worst = worst.max(check_entropy(
                    &sm,
                    &buf[offset..offset + n],
                    n,
                    &format!("n={n} offset={offset}"),
                ));
            }
        }
    }
    println!("entropy every length: worst {worst:.3} of the bound");
}

#[test]
fn long_rows_rows_and_threads() {
    let mut r = rng(101);
    let mut worst = 0.0f64;
    for sm in builders() {
        for (rows, n) in [(1usize, 128_256usize), (1, 262_144), (9, 5000)] {
            for sigma in [0.1f32, 3.0, 50.0] {
                let mut x = normal_row(&mut r, rows * n, sigma);
                // Ascending runs make the running max move often.
                x[..n.min(4000)].sort_by(f32::total_cmp);
                worst = worst.max(check_entropy(
                    &sm,
                    &x,
                    n,
                    &format!("{rows}x{n} sigma={sigma}"),
                ));
            }
        }
        let x = normal_row(&mut r, 40 * 3001, 2.0);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut h = vec![0.0f32; 40];
            pool.install(|| sm.run_entropy_rows(&x, 3001, &mut h))
                .unwrap();
            h.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(2), "{sm:?}");
        assert_eq!(run(1), run(3), "{sm:?}");
    }
    println!("entropy long rows: worst {worst:.3} of the bound");
}

#[test]
fn special_values_and_shapes() {
    let (inf, ninf, nan) = (f32::INFINITY, f32::NEG_INFINITY, f32::NAN);
    for sm in builders() {
        let h = |x: &[f32]| {
            let mut out = [7.0f32];
            sm.run_entropy_rows(x, x.len(), &mut out).unwrap();
            out[0]
        };
        assert_eq!(h(&[3.0]), 0.0, "{sm:?}");
        assert_eq!(h(&[ninf, ninf]), 0.0, "{sm:?}");
        assert!(h(&[1.0, nan, 2.0]).is_nan());
        assert!(h(&[inf, nan]).is_nan());
        assert!(h(&[ninf, nan]).is_nan());
        assert_eq!(h(&[inf, 1.0, inf, ninf, inf]), 3f32.ln());
        // −inf entries carry no mass and add nothing.
        let with = h(&[1.0, ninf, 2.0, ninf]);
        assert_eq!(with, h(&[1.0, 2.0]), "{sm:?}");
        // All equal: ln n; a one-hot row: 0 (within the absolute term).
        let n = 1000;
        assert!((h(&vec![0.5; n]) - (n as f32).ln()).abs() < 1e-5);
        let mut one_hot = vec![-1e4f32; n];
        one_hot[3] = 0.0;
        assert_eq!(h(&one_hot), 0.0);
        check_entropy(&sm, &[f32::MAX, -f32::MAX, 0.0, f32::MAX], 4, "huge");
        check_entropy(&sm, &[1e-40, -1e-40, 0.0], 3, "subnormal");
    }
    assert_eq!(simd_softmax::entropy::<f32>(&[]), Ok(0.0));
    let mut out = [0.0f32; 2];
    assert_eq!(
        simd_softmax::entropy_rows(&[0.0; 6], 2, &mut out),
        Err(Error::RowOutputs { rows: 3, output: 2 })
    );
    // The logit settings cannot be given to entropy (a type error: the
    // `compile_fail` doctests in `src/builder.rs`).
}
