//! softmax_backward and log_softmax_backward on every backend against the
//! f64 reference: `|grad_in − ref| ≤ 2^-20·G + 2^-126` (G: the row's largest
//! |grad_out| or |reference grad_in|), hostile gradients, shapes and
//! determinism.

mod common;

use common::check::{bits, check_backward};
use common::{builders, normal_row, rng};
use simd_softmax::{Error, Softmax, reference};

#[test]
fn every_length_and_offset() {
    let mut r = rng(80);
    let mut worst = (0.0f64, 0.0f64);
    for sm in builders() {
        for n in 0..=300usize {
            for offset in [0, 1, 3, 7] {
                let xb = normal_row(&mut r, n + 8, 3.0);
                let gb = normal_row(&mut r, n + 8, 1.0);
                let (x, g) = (&xb[offset..offset + n], &gb[offset..offset + n]);
                let w = check_backward(&sm, x, g, n.max(1), &format!("n={n} offset={offset}"));
                worst = (worst.0.max(w.0), worst.1.max(w.1));
            }
        }
    }
    println!(
        "backward every length: worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
        worst.0, worst.1
    );
}

/// Confident predictions: one probability near 1, so `g − ⟨g, p⟩` cancels
/// at that entry and the row's exact `grad_in` is far smaller than `g`.
/// Evaluating `p·g − p·d` left errors of about 2^-24·|p·g| there; the
/// bound is relative to the row's largest exact |grad_in|.
#[test]
fn dominant_probability_rows() {
    let mut r = rng(82);
    let mut worst = 0.0f64;
    // The error relative to max|grad_in| alone, for gaps up to 18 and 30.
    let mut worst_rel = [0.0f64; 2];
    for sm in builders() {
        for n in [50usize, 1000, 50_257] {
            for gap in [6.0f32, 10.0, 14.0, 18.0, 30.0] {
                let mut x = normal_row(&mut r, n, 1.0);
                x[n / 3] += gap + (n as f32).ln();
                let g = normal_row(&mut r, n, 1.0);
                let w = check_backward(&sm, &x, &g, n, &format!("dominant n={n} gap={gap}"));
                worst = worst.max(w.0);
                // The error relative to the largest exact |grad_in| alone.
                let (p, _) = common::check::probs(&x);
                let want = simd_softmax::reference::softmax_backward_f64(&p, &g);
                let mut got = vec![0.0f32; n];
                sm.run_backward_rows(&p, &g, &mut got, n).unwrap();
                let max_ref = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(&a, &b)| (f64::from(a) - b).abs())
                    .fold(0.0, f64::max);
                let class = usize::from(gap > 20.0);
                worst_rel[class] = worst_rel[class].max(err / max_ref);
            }
        }
    }
    println!(
        "backward, dominant probability: worst {worst:.3} of the bound; largest error {:.3e} of max|grad_in| \
         for gaps 6..18, {:.3e} at gap 30 (where the dot product's term dominates)",
        worst_rel[0], worst_rel[1]
    );
}

#[test]
fn long_rows_and_hard_gradients() {
    let mut r = rng(81);
    let mut worst = (0.0f64, 0.0f64);
    for sm in builders() {
        for n in [1000usize, 65_536 + 5, 140_000] {
            for sigma in [0.1f32, 5.0, 40.0] {
                let x = normal_row(&mut r, n, sigma);
                let gs: Vec<(&str, Vec<f32>)> = vec![
                    ("normal", normal_row(&mut r, n, 1.0)),
                    // A constant gradient: softmax's grad_in is 0 exactly in
                    // exact arithmetic; log-softmax's Σg is large.
                    ("constant", vec![0.37; n]),
                    // Terms that cancel in Σg and ⟨g, p⟩.
                    (
                        "alternating",
                        (0..n)
                            .map(|i| if i % 2 == 0 { 1e4 } else { -1e4 })
                            .collect(),
                    ),
                    (
                        "one-hot",
                        (0..n)
                            .map(|i| if i == n / 3 { -1.0 } else { 0.0 })
                            .collect(),
                    ),
                    ("huge", normal_row(&mut r, n, 1e30)),
                ];
                for (name, g) in gs {
                    let w =
                        check_backward(&sm, &x, &g, n, &format!("n={n} sigma={sigma} g={name}"));
                    worst = (worst.0.max(w.0), worst.1.max(w.1));
                }
            }
        }
    }
    println!(
        "backward long rows: worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
        worst.0, worst.1
    );
}

/// A gradient too large for the non-FMA product split (−f32::MAX, where
/// p = 0) beside small products (p = 0.1, g = 2.9e-32): the pass is redone
/// with only the huge products scaled down. Scaling every product by 2^-64
/// flushed the small ones to 0, so ⟨g, p⟩ was 0 and grad_in came out as
/// p·g (2.9e-33) instead of p·(g − ⟨g, p⟩) (−4.3e-41). Found by
/// `backward_short`.
#[test]
fn a_gradient_beyond_the_split_beside_small_products() {
    for sm in builders() {
        for n in [12usize, 128, 1000] {
            // Ten equal logits of 1e30 and the rest −0: p is 0.1 or 0.
            let x: Vec<f32> = (0..n)
                .map(|i| if i >= n - 10 { 1e30 } else { -0.0 })
                .collect();
            for huge in [-f32::MAX, 3e35, 1.3e30] {
                let g: Vec<f32> = (0..n)
                    .map(|i| match i {
                        1 => huge,
                        2 => 87.45,
                        _ => 2.9e-32,
                    })
                    .collect();
                check_backward(&sm, &x, &g, n, &format!("split n={n} huge={huge:e}"));
            }
        }
    }
}

/// A gradient sum just beyond f32 where log-softmax's exact `grad_in` is
/// −f32::MAX (found by `backward_diff`): the total, rounded to one f32
/// even when scaled, is off by an ulp at f32::MAX, which carried the result
/// to −inf. Every length puts the two entries in another lane.
#[test]
fn a_log_backward_result_of_minus_f32_max_stays_finite() {
    let big = f32::from_bits(0x774e_42c5); // 4.18e33
    for sm in builders() {
        for n in 2..40usize {
            let mut y = vec![f32::NEG_INFINITY; n];
            let mut g = vec![0.0f32; n];
            (y[n - 2], y[n - 1]) = (0.0, big - f32::MAX);
            (g[n - 2], g[n - 1]) = (big, f32::MAX);
            let mut out = vec![0.0f32; n];
            sm.run_log_backward_rows(&y, &g, &mut out, n).unwrap();
            assert_eq!(out[n - 2], -f32::MAX, "{sm:?} n={n}");
            assert_eq!(out[n - 1], f32::MAX, "{sm:?} n={n}");
            assert!(out[..n - 2].iter().all(|&v| v == 0.0), "{sm:?} n={n}");
        }
    }
}

/// Six entries, three of them +inf logits (y = −ln 3), and g = −f32::MAX
/// everywhere: the exact result there, f32::MAX·(6·exp(y) − 1), is one ulp
/// below f32::MAX, and an exp rounded up by one ulp took it to +inf (found
/// by `backward_short`). Every placement of the three.
#[test]
fn a_log_backward_result_one_ulp_below_f32_max_stays_finite() {
    let third = -(3.0f32.ln());
    let g = [-f32::MAX; 6];
    for sm in builders() {
        for three in (0u32..64).filter(|m| m.count_ones() == 3) {
            let y: [f32; 6] = std::array::from_fn(|i| {
                if three >> i & 1 == 1 {
                    third
                } else {
                    f32::NEG_INFINITY
                }
            });
            let mut out = [0.0f32; 6];
            sm.run_log_backward_rows(&y, &g, &mut out, 6).unwrap();
            let want = reference::log_softmax_backward_f64(&y, &g);
            let at = three.trailing_zeros() as usize;
            assert!(want[at] < f64::from(f32::MAX), "{want:?}");
            for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                assert_eq!(got, want as f32, "{sm:?} {y:?} [{i}]");
            }
        }
    }
}

#[test]
fn nan_and_infinities_propagate() {
    for sm in builders() {
        let p = [0.5f32, 0.25, 0.25];
        let y = p.map(f32::ln);
        let mut out = [0.0f32; 3];
        // NaN in grad_out reaches every entry through the dot product / sum.
        sm.run_backward_rows(&p, &[1.0, f32::NAN, 0.0], &mut out, 3)
            .unwrap();
        assert!(out.iter().all(|v| v.is_nan()), "{sm:?} {out:?}");
        sm.run_log_backward_rows(&y, &[1.0, f32::NAN, 0.0], &mut out, 3)
            .unwrap();
        assert!(out.iter().all(|v| v.is_nan()), "{sm:?} {out:?}");
        // A log-probability of −inf (p = 0) passes grad_out through.
        sm.run_log_backward_rows(&[0.0, f32::NEG_INFINITY], &[2.0, 3.0], &mut out[..2], 2)
            .unwrap();
        assert_eq!(&out[..2], &[-3.0, 3.0], "{sm:?}");
        // A zero probability gets exactly zero gradient.
        sm.run_backward_rows(&[1.0, 0.0], &[2.0, 5.0], &mut out[..2], 2)
            .unwrap();
        assert_eq!(&out[..2], &[0.0, 0.0], "{sm:?}");
    }
}

#[test]
fn rows_threads_and_shapes() {
    let mut r = rng(82);
    let (rows, row_len) = (37, 1001);
    let x = normal_row(&mut r, rows * row_len, 2.0);
    let g = normal_row(&mut r, rows * row_len, 1.0);
    for sm in builders() {
        check_backward(&sm, &x, &g, row_len, "rows");
        let run = |threads: usize, log: bool| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0f32; x.len()];
            pool.install(|| {
                if log {
                    sm.run_log_backward_rows(&x, &g, &mut out, row_len)
                } else {
                    sm.run_backward_rows(&x, &g, &mut out, row_len)
                }
            })
            .unwrap();
            bits(&out)
        };
        for log in [false, true] {
            let one = run(1, log);
            assert_eq!(one, run(2, log), "{sm:?} log={log}");
            assert_eq!(one, run(3, log), "{sm:?} log={log}");
        }
    }
    let mut out = [7.0f32; 4];
    let sm = Softmax::new();
    assert_eq!(
        sm.run_backward_rows(&[0.5; 4], &[1.0; 3], &mut out, 2),
        Err(Error::SliceLength {
            name: simd_softmax::Argument::GradOut,
            len: 3,
            expected: 4
        })
    );
    assert_eq!(
        simd_softmax::log_softmax_backward(&[0.5; 3], &[1.0; 3], &mut out),
        Err(Error::SliceLength {
            name: simd_softmax::Argument::GradIn,
            len: 4,
            expected: 3
        })
    );
    assert_eq!(
        simd_softmax::softmax_backward_rows(&[0.5; 4], &[1.0; 4], &mut out, 3),
        Err(Error::RaggedRows { len: 4, row_len: 3 })
    );
    // The logit settings cannot be given to a backward pass (a type error:
    // the `compile_fail` doctests in `src/builder.rs`).
    assert_eq!(out, [7.0; 4], "an error wrote");
}
