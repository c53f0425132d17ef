//! Fused cross-entropy with its gradient on every backend against the f64
//! reference: each row's loss within 2^-22·L + 2^-21, the gradient within
//! the softmax bound plus 2^-22·(p + q) (times the reduction's weight),
//! PyTorch's semantics for ignore_index and the reductions, the special
//! values, errors and determinism.

mod common;

use common::check::{
    bits, check_cross_entropy, check_cross_entropy_results, sharded_cross_entropy,
};
use common::{builders, normal_row, rng};
use rand::RngExt;
use simd_softmax::half::{bf16, f16};
use simd_softmax::{
    Argument, CrossEntropyOptions, CrossEntropyPartial, Error, Parameter, Reduction, Softmax,
};

#[test]
fn every_row_length_reduction_and_smoothing() {
    let mut r = rng(90);
    let mut worst = (0.0f64, 0.0f64);
    let lengths: Vec<usize> = (1..=70)
        .chain([255, 256, 257, 2047, 2048, 2049, 5000])
        .collect();
    for sm in builders() {
        for &n in &lengths {
            let rows = 4;
            let x = normal_row(&mut r, rows * n, [0.5, 3.0, 30.0][n % 3]);
            let targets: Vec<usize> = (0..rows).map(|_| r.random_range(0..n)).collect();
            for (eps, reduction) in [
                (0.0, Reduction::Mean),
                (0.1, Reduction::Sum),
                (0.0, Reduction::None),
                (0.3, Reduction::Mean),
            ] {
                let w = check_cross_entropy(
                    &sm,
                    &x,
                    n,
                    &targets,
                    (eps, None, reduction),
                    &format!("n={n} eps={eps} {reduction:?}"),
                );
                worst = (worst.0.max(w.0), worst.1.max(w.1));
            }
        }
    }
    println!(
        "cross_entropy: worst {:.3} (loss), {:.3} (gradient) of the bound",
        worst.0, worst.1
    );
}

#[test]
fn long_rows_confident_and_ignored() {
    let mut r = rng(91);
    let mut worst = (0.0f64, 0.0f64);
    for sm in builders() {
        for n in [65_536 + 3, 128_256] {
            let rows = 3;
            let mut x = normal_row(&mut r, rows * n, 2.0);
            // Row 0: a confident, correct prediction (tiny loss); row 1:
            // the target far below the max (large loss); row 2 ignored.
            let targets = [17usize, 5, 999_999];
            x[17] = 40.0;
            x[n + 5] = -60.0;
            for eps in [0.0, 0.05] {
                for reduction in [Reduction::Mean, Reduction::Sum] {
                    let w = check_cross_entropy(
                        &sm,
                        &x,
                        n,
                        &targets,
                        (eps, Some(999_999), reduction),
                        &format!("long n={n}"),
                    );
                    worst = (worst.0.max(w.0), worst.1.max(w.1));
                }
                // A single long row (split across threads when it has a grad).
                let w = check_cross_entropy(
                    &sm,
                    &x[..n],
                    n,
                    &targets[..1],
                    (eps, None, Reduction::Mean),
                    &format!("single n={n}"),
                );
                worst = (worst.0.max(w.0), worst.1.max(w.1));
            }
        }
    }
    println!(
        "cross_entropy long rows: worst {:.3} (loss), {:.3} (gradient) of the bound",
        worst.0, worst.1
    );
}

#[test]
fn special_values() {
    let ninf = f32::NEG_INFINITY;
    for sm in builders() {
        let cases: Vec<(&str, Vec<f32>, usize)> = vec![
            ("target at -inf", vec![1.0, ninf, 2.0, 0.5], 1),
            ("other -inf", vec![1.0, ninf, 2.0, 0.5], 2),
            ("NaN", vec![1.0, f32::NAN, 2.0, 0.5], 0),
            (
                "target at +inf",
                vec![f32::INFINITY, 1.0, f32::INFINITY, 0.0],
                2,
            ),
            ("other +inf", vec![f32::INFINITY, 1.0, 3.0, 0.0], 2),
            ("all -inf", vec![ninf; 4], 3),
            ("huge", vec![f32::MAX, -f32::MAX, 0.0, f32::MAX], 1),
        ];
        for (name, x, t) in &cases {
            for eps in [0.0, 0.2] {
                check_cross_entropy(&sm, x, 4, &[*t], (eps, None, Reduction::Sum), name);
            }
        }
        let ce = |x: &[f32], t: usize| {
            sm.run_cross_entropy(x, x.len(), &[t], CrossEntropyOptions::default())
                .unwrap()
                .loss
        };
        assert_eq!(ce(&cases[0].1, 1), f32::INFINITY, "{sm:?}");
        assert!(ce(&cases[2].1, 0).is_nan());
        assert!((ce(&cases[3].1, 2) - 2f32.ln()).abs() < 1e-7);
        // Every row ignored: the mean is 0/0, and every gradient is 0.
        let mut grad = [7.0f32; 4];
        let all_ignored = sm
            .run_cross_entropy(
                &[1.0, 2.0, 3.0, 4.0],
                2,
                &[9, 9],
                CrossEntropyOptions {
                    ignore_index: Some(9),
                    grad: Some(&mut grad),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(all_ignored.loss.is_nan() && all_ignored.counted == 0);
        assert_eq!(grad, [0.0; 4]);
    }
}

#[test]
fn errors_name_the_problem_and_write_nothing() {
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let sm = Softmax::new();
    let run = |targets: &[usize], eps: f32, grad: &mut [f32]| {
        sm.run_cross_entropy(
            &x,
            3,
            targets,
            CrossEntropyOptions {
                label_smoothing: eps,
                ignore_index: Some(100),
                grad: Some(grad),
                ..Default::default()
            },
        )
    };
    let mut grad = [7.0f32; 6];
    assert_eq!(
        run(&[0, 3], 0.0, &mut grad),
        Err(Error::TargetOutOfRange {
            row: 1,
            target: 3,
            row_len: 3
        })
    );
    assert_eq!(
        run(&[0], 0.0, &mut grad),
        Err(Error::SliceLength {
            name: simd_softmax::Argument::Targets,
            len: 1,
            expected: 2
        })
    );
    assert_eq!(
        run(&[0, 1], 0.0, &mut grad[..5]),
        Err(Error::SliceLength {
            name: simd_softmax::Argument::Grad,
            len: 5,
            expected: 6
        })
    );
    for eps in [1.0, -0.1, f32::NAN] {
        assert!(
            matches!(
                run(&[0, 1], eps, &mut grad),
                Err(Error::InvalidParameter {
                    name: simd_softmax::Parameter::LabelSmoothing,
                    ..
                })
            ),
            "eps={eps}"
        );
    }
    let msg = run(&[0, 3], 0.0, &mut grad).unwrap_err().to_string();
    assert!(msg.contains("row 1"), "{msg}");
    assert_eq!(grad, [7.0; 6], "an error wrote");
    assert!(
        run(&[100, 1], 0.0, &mut grad).is_ok(),
        "the ignore index may be out of range"
    );
    // The logit settings cannot be given to cross-entropy (a type error:
    // the `compile_fail` doctests in `src/builder.rs`).
}

#[test]
fn same_bits_on_any_thread_count() {
    let mut r = rng(92);
    for (rows, row_len) in [(40usize, 3000usize), (1, 100_000)] {
        let x = normal_row(&mut r, rows * row_len, 3.0);
        let targets: Vec<usize> = (0..rows).map(|_| r.random_range(0..row_len)).collect();
        for sm in builders() {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut grad = vec![0.0f32; x.len()];
                let ce = pool
                    .install(|| {
                        sm.run_cross_entropy(
                            &x,
                            row_len,
                            &targets,
                            CrossEntropyOptions {
                                label_smoothing: 0.1,
                                grad: Some(&mut grad),
                                ..Default::default()
                            },
                        )
                    })
                    .unwrap();
                (ce.loss.to_bits(), bits(&ce.per_row), bits(&grad))
            };
            let one = run(1);
            assert_eq!(one, run(2), "{sm:?} {rows}x{row_len}");
            assert_eq!(one, run(3), "{sm:?} {rows}x{row_len}");
        }
    }
}

// ------------------------------------------------ vocabulary-parallel

#[test]
fn vocabulary_sharded_matches_the_whole_row() {
    let mut r = rng(93);
    let mut worst = (0.0f64, 0.0f64);
    let ninf = f32::NEG_INFINITY;
    for sm in builders() {
        for n in [1usize, 2, 3, 7, 8, 9, 16, 17, 33, 64, 65, 257, 5000, 50257] {
            let rows = 4;
            let mut x = normal_row(&mut r, rows * n, [0.5, 3.0, 30.0][n % 3]);
            let mut targets: Vec<usize> = (0..rows).map(|_| r.random_range(0..n)).collect();
            // Row 3: ignored; on longer rows row 1 holds the hostile values.
            targets[3] = 1_000_000;
            if n >= 8 {
                x[n..n + 8].copy_from_slice(&[ninf, 1.0, 2.0, ninf, -1e30, 0.0, 3.0, ninf]);
            }
            for settings in [
                (0.0, Some(1_000_000), Reduction::Mean),
                (0.1, Some(1_000_000), Reduction::Sum),
                (0.3, None, Reduction::None),
            ] {
                let targets: Vec<usize> = if settings.1.is_some() {
                    targets.clone()
                } else {
                    targets.iter().map(|&t| t % n).collect()
                };
                let whole = sm
                    .run_cross_entropy(
                        &x,
                        n,
                        &targets,
                        CrossEntropyOptions {
                            label_smoothing: settings.0,
                            ignore_index: settings.1,
                            reduction: settings.2,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                for shards in [1, 2, 3, 8] {
                    let what = format!("n={n} {shards} shards {settings:?} {sm:?}");
                    let rotate = r.random_range(0..shards);
                    let (ce, grad) =
                        sharded_cross_entropy(&sm, &x, n, &targets, shards, settings, rotate);
                    if shards == 1 {
                        // One shard reads the row as the call without
                        // gradient does: its bits.
                        assert_eq!(ce.loss.to_bits(), whole.loss.to_bits(), "{what}");
                        assert_eq!(bits(&ce.per_row), bits(&whole.per_row), "{what}");
                    }
                    let w = check_cross_entropy_results(
                        &x,
                        n,
                        &targets,
                        settings,
                        [&ce, &ce],
                        &grad,
                        &what,
                    );
                    worst = (worst.0.max(w.0), worst.1.max(w.1));
                    // f16 and bf16 shards give the bits of the f32 shards
                    // of their converted logits.
                    if n == 257 {
                        let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
                        let hf: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
                        let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
                        let bf: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
                        let got =
                            sharded_cross_entropy(&sm, &h, n, &targets, shards, settings, rotate);
                        let want =
                            sharded_cross_entropy(&sm, &hf, n, &targets, shards, settings, rotate);
                        assert_eq!(bits(&got.0.per_row), bits(&want.0.per_row), "f16 {what}");
                        assert_eq!(bits(&got.1), bits(&want.1), "f16 {what}");
                        let got =
                            sharded_cross_entropy(&sm, &b, n, &targets, shards, settings, rotate);
                        let want =
                            sharded_cross_entropy(&sm, &bf, n, &targets, shards, settings, rotate);
                        assert_eq!(bits(&got.0.per_row), bits(&want.0.per_row), "bf16 {what}");
                        assert_eq!(bits(&got.1), bits(&want.1), "bf16 {what}");
                    }
                }
            }
        }
    }
    println!(
        "vocabulary-parallel cross_entropy: worst {:.3} (loss), {:.3} (gradient) of the bound",
        worst.0, worst.1
    );
}

#[test]
fn vocabulary_sharded_special_rows() {
    let ninf = f32::NEG_INFINITY;
    let inf = f32::INFINITY;
    for sm in builders() {
        let cases: Vec<(&str, Vec<f32>, usize)> = vec![
            ("target at -inf", vec![1.0, ninf, 2.0, 0.5, 0.0, 1.0], 1),
            ("NaN", vec![1.0, 0.0, 2.0, 0.5, f32::NAN, 1.0], 0),
            ("target at +inf", vec![inf, 1.0, 0.0, 0.0, inf, 0.0], 4),
            ("other +inf", vec![inf, 1.0, 3.0, 0.0, 2.0, 0.0], 2),
            ("all +inf", vec![inf; 6], 2),
            ("all -inf", vec![ninf; 6], 3),
            (
                "huge",
                vec![f32::MAX, -f32::MAX, 0.0, f32::MAX, 1.0, 2.0],
                1,
            ),
        ];
        for (name, x, t) in &cases {
            for eps in [0.0, 0.2] {
                let settings = (eps, None, Reduction::Sum);
                let whole = sm
                    .run_cross_entropy(
                        x,
                        6,
                        &[*t],
                        CrossEntropyOptions {
                            label_smoothing: eps,
                            reduction: Reduction::Sum,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                for shards in [1, 2, 3, 8] {
                    let what = format!("{name} eps={eps} {shards} shards {sm:?}");
                    let (ce, grad) =
                        sharded_cross_entropy(&sm, x, 6, &[*t], shards, settings, shards - 1);
                    check_cross_entropy_results(x, 6, &[*t], settings, [&ce, &ce], &grad, &what);
                    let (a, b) = (ce.loss, whole.loss);
                    assert!(
                        a.to_bits() == b.to_bits() || (a - b).abs() <= 1e-6 * b.abs(),
                        "{what}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn vocabulary_sharded_errors_write_nothing() {
    let sm = Softmax::new();
    let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 rows of a 3-column shard
    let targets = [1usize, 4];
    // Ragged shard, wrong target count, bad ε.
    assert!(matches!(
        sm.run_cross_entropy_partial(&x, 4, &targets, 0, 0.0),
        Err(Error::RaggedRows { .. })
    ));
    assert!(matches!(
        sm.run_cross_entropy_partial(&x, 3, &[1], 0, 0.0),
        Err(Error::SliceLength {
            name: Argument::Targets,
            ..
        })
    ));
    assert!(matches!(
        sm.run_cross_entropy_partial(&x, 3, &targets, 0, 1.0),
        Err(Error::InvalidParameter {
            name: Parameter::LabelSmoothing,
            ..
        })
    ));
    // Shards [0, 3) and [3, 6) of rows of 6; row 1's target lives in the
    // second.
    let left = sm
        .run_cross_entropy_partial(&x, 3, &targets, 0, 0.0)
        .unwrap();
    let right = sm
        .run_cross_entropy_partial(&x, 3, &targets, 3, 0.0)
        .unwrap();
    let merged: Vec<_> = left.iter().zip(&right).map(|(a, b)| a.merge(*b)).collect();
    let mut grad = [7.0f32; 6];
    let finish = |totals: &[CrossEntropyPartial], targets: &[usize], eps: f32, grad: &mut [f32]| {
        sm.run_cross_entropy_shard(
            &x,
            3,
            targets,
            0,
            totals,
            CrossEntropyOptions {
                label_smoothing: eps,
                grad: Some(grad),
                ..Default::default()
            },
        )
    };
    assert_eq!(
        finish(&left, &targets, 0.0, &mut grad),
        Err(Error::TargetOutOfRange {
            row: 1,
            target: 4,
            row_len: 3
        }),
        "only the left shard merged: 3 columns"
    );
    let gapped: Vec<_> = right
        .iter()
        .map(|p| p.merge(CrossEntropyPartial::EMPTY).merge(*p))
        .collect();
    assert_eq!(
        finish(&gapped, &[1, 4], 0.0, &mut grad),
        Err(Error::MissingTarget { row: 0, target: 1 }),
        "the right shard twice: 6 columns, no column 1"
    );
    assert!(matches!(
        finish(&merged[..1], &targets, 0.0, &mut grad),
        Err(Error::SliceLength {
            name: Argument::Totals,
            ..
        })
    ));
    assert!(
        matches!(
            finish(&merged, &targets, 0.1, &mut grad),
            Err(Error::InvalidParameter {
                name: Parameter::LabelSmoothing,
                ..
            })
        ),
        "partials without smoothing cannot finish a smoothed loss"
    );
    assert_eq!(grad, [7.0; 6], "nothing written");
    assert!(finish(&merged, &targets, 0.0, &mut grad).is_ok());
    assert_ne!(grad, [7.0; 6]);
}
