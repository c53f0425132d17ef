//! f16 and bf16 rows (`Element`): softmax and log-softmax with the same
//! type in and out and with f16/bf16 in and f32 out, in place, in rows
//! with a stride, on every backend and algorithm, against the f64 reference on the exactly
//! converted inputs. The bound is the f32 one plus the one rounding of the
//! result to the output type: half an ULP of that type at the value (half
//! its smallest subnormal below its normal range). The reductions
//! (logsumexp, argmax, entropy) of such rows give the f32 call's bits on
//! the converted rows.

mod common;

use common::check::{
    Ty, backends, check_cross_entropy_results, check_typed, half_ulp, same_sampling,
};
use common::{builders, configs, normal_row, rng};
use simd_softmax::half::{bf16, f16};
use simd_softmax::{CrossEntropyOptions, ElementType, Error, Reduction, Softmax, reference};

/// Rows for type `X`: random at several scales, and the hostile ones.
fn rows<X: Ty>() -> Vec<Vec<f32>> {
    let mut r = rng(12);
    let mut rows = Vec::new();
    let exact = |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|v| X::of(v).f32()).collect() };
    for n in (0..=70).chain([95, 127, 128, 129, 255, 256, 257, 300, 1000, 4097, 40000]) {
        for sigma in [0.3f32, 4.0, 40.0] {
            rows.push(exact(normal_row(&mut r, n, sigma)));
        }
    }
    let big = X::MAX as f32;
    let tiny = X::of(f32::from_bits(1)).f32().max(if X::MIN_EXP == -14 {
        5.9604645e-8
    } else {
        f32::from_bits(1 << 16)
    });
    let specials = [
        vec![f32::NAN, 1.0, 2.0],
        vec![1.0, f32::INFINITY, 3.0, f32::INFINITY],
        vec![f32::NEG_INFINITY; 40],
        vec![f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY, -0.5],
        vec![big, -big, 0.0, big],
        vec![-big, -big, tiny, -tiny, 0.0],
        vec![tiny; 37],
        vec![3.0; 300],
        (0..200)
            .map(|i| if i % 3 == 0 { big } else { -big })
            .collect(),
    ];
    rows.extend(specials.into_iter().map(exact));
    rows
}

/// Softmax and log-softmax of `X` rows into `Y`, out of place, on every
/// backend and algorithm; with `X = Y` also in place (same bits).
fn pair<X: Ty, Y: Ty>() -> (f64, f64) {
    let (mut worst, mut worst_log) = (0.0f64, 0.0f64);
    for x in rows::<X>() {
        let input: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
        for sm in configs() {
            for log in [false, true] {
                let what = || format!("{} -> {} log={log} n={} {sm:?}", X::NAME, Y::NAME, x.len());
                let mut out = vec![Y::of(7.0); x.len()];
                if log {
                    sm.run_log(&input, &mut out).unwrap();
                } else {
                    sm.run(&input, &mut out).unwrap();
                }
                let w = check_typed(&x, &out, log, &what);
                if log {
                    worst_log = worst_log.max(w);
                } else {
                    worst = worst.max(w);
                }
                if X::NAME == Y::NAME {
                    let mut data = input.clone();
                    if log {
                        sm.run_log_in_place(&mut data).unwrap();
                    } else {
                        sm.run_in_place(&mut data).unwrap();
                    }
                    let same = data
                        .iter()
                        .zip(&out)
                        .all(|(a, b)| a.f32().to_bits() == b.f32().to_bits());
                    assert!(same, "{}: in place differs", what());
                }
            }
        }
    }
    println!(
        "{} -> {}: worst {worst:.3} of the softmax bound, {worst_log:.3} of the log bound",
        X::NAME,
        Y::NAME
    );
    (worst, worst_log)
}

#[test]
fn f16_rows_within_the_bound() {
    pair::<f16, f16>();
}

#[test]
fn bf16_rows_within_the_bound() {
    pair::<bf16, bf16>();
}

#[test]
fn half_in_f32_out_within_the_bound() {
    pair::<f16, f32>();
    pair::<bf16, f32>();
}

/// f16 or bf16 into f32 is the f32 call on the converted values, bit for
/// bit (it converts into the output and runs there in place).
#[test]
fn half_into_f32_has_the_bits_of_the_f32_call() {
    let mut r = rng(9);
    for n in [1usize, 17, 128, 1000, 70000] {
        let x = normal_row(&mut r, 3 * n, 5.0);
        let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let b: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let hx: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
        let bx: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
        for sm in configs() {
            let sm = sm.temperature(0.9);
            for log in [false, true] {
                let run = |x: &dyn Fn(&mut [f32])| {
                    let mut y = vec![0.0f32; 3 * n];
                    x(&mut y);
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                let go = |input: &[f32], y: &mut [f32]| {
                    if log {
                        sm.run_log_rows(input, y, n)
                    } else {
                        sm.run_rows(input, y, n)
                    }
                    .unwrap()
                };
                let want_h = run(&|y| go(&hx, y));
                let want_b = run(&|y| go(&bx, y));
                let got_h = run(&|y| {
                    if log {
                        sm.run_log_rows(&h, y, n)
                    } else {
                        sm.run_rows(&h, y, n)
                    }
                    .unwrap()
                });
                let got_b = run(&|y| {
                    if log {
                        sm.run_log_rows(&b, y, n)
                    } else {
                        sm.run_rows(&b, y, n)
                    }
                    .unwrap()
                });
                assert_eq!(got_h, want_h, "f16 n={n} log={log} {sm:?}");
                assert_eq!(got_b, want_b, "bf16 n={n} log={log} {sm:?}");
            }
        }
    }
}

/// logsumexp, argmax and entropy of f16 and bf16 rows (converted in
/// registers) have the bits of the same calls on the rows converted to f32,
/// whose bounds `tests/log_softmax.rs`, `argmax.rs` and `entropy.rs` check
/// against the reference: on every backend, row by row and as one batch,
/// over the lengths around the lanes and the hostile rows.
#[test]
fn half_reductions_have_the_bits_of_the_f32_call() {
    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }
    fn check<X: Ty>() {
        let rows = rows::<X>();
        for sm in builders() {
            for x in &rows {
                let what = || format!("{} n={} {sm:?}", X::NAME, x.len());
                let input: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
                let n = x.len().max(1);
                let rows_of = |len: usize| usize::from(len > 0);
                let (mut lse, mut want_lse) = ([0.0f32], [0.0f32]);
                let (mut h, mut want_h) = ([0.0f32], [0.0f32]);
                let (mut arg, mut want_arg) = ([Some(7usize)], [Some(7usize)]);
                let k = rows_of(x.len());
                sm.run_logsumexp_rows(&input, n, &mut lse[..k]).unwrap();
                sm.run_logsumexp_rows(x, n, &mut want_lse[..k]).unwrap();
                sm.run_entropy_rows(&input, n, &mut h[..k]).unwrap();
                sm.run_entropy_rows(x, n, &mut want_h[..k]).unwrap();
                sm.run_argmax_rows(&input, n, &mut arg[..k]).unwrap();
                sm.run_argmax_rows(x, n, &mut want_arg[..k]).unwrap();
                assert!(same(lse[0], want_lse[0]), "logsumexp {}", what());
                assert!(same(h[0], want_h[0]), "entropy {}", what());
                assert_eq!(arg, want_arg, "argmax {}", what());
            }
            // One batch of 5 rows of each length, hostile values spread.
            for x in rows.iter().filter(|x| !x.is_empty()).step_by(7) {
                let n = x.len();
                let batch: Vec<f32> = (0..5)
                    .flat_map(|r| x.iter().map(move |&v| if r % 2 == 1 { -v } else { v }))
                    .collect();
                let input: Vec<X> = batch.iter().map(|&v| X::of(v)).collect();
                let (mut a, mut b) = (vec![0.0f32; 5], vec![0.0f32; 5]);
                sm.run_logsumexp_rows(&input, n, &mut a).unwrap();
                sm.run_logsumexp_rows(&batch, n, &mut b).unwrap();
                assert!(
                    a.iter().zip(&b).all(|(&a, &b)| same(a, b)),
                    "logsumexp batch {} n={n}",
                    X::NAME
                );
                sm.run_entropy_rows(&input, n, &mut a).unwrap();
                sm.run_entropy_rows(&batch, n, &mut b).unwrap();
                assert!(
                    a.iter().zip(&b).all(|(&a, &b)| same(a, b)),
                    "entropy batch {} n={n}",
                    X::NAME
                );
                let (mut ia, mut ib) = (vec![None; 5], vec![None; 5]);
                sm.run_argmax_rows(&input, n, &mut ia).unwrap();
                sm.run_argmax_rows(&batch, n, &mut ib).unwrap();
                assert_eq!(ia, ib, "argmax batch {} n={n}", X::NAME);
            }
        }
        // The free functions take the types too.
        let x: Vec<X> = [1.0f32, 3.0, 2.0, 3.0].iter().map(|&v| X::of(v)).collect();
        assert_eq!(simd_softmax::argmax(&x), Ok(Some(1)));
        let want = simd_softmax::logsumexp(&[1.0f32, 3.0, 2.0, 3.0]).unwrap();
        assert_eq!(simd_softmax::logsumexp(&x), Ok(want));
        let want = simd_softmax::entropy(&[1.0f32, 3.0, 2.0, 3.0]).unwrap();
        assert_eq!(simd_softmax::entropy(&x), Ok(want));
    }
    check::<f16>();
    check::<bf16>();
}

/// Sampling from f16 and bf16 logits (converted in registers) gives the
/// tokens, distributions and top-k probabilities of the call on the logits
/// converted to f32, whose bounds `tests/sample.rs` checks: on every
/// backend, each path of the sampler, rows and batches.
#[test]
fn half_sampling_has_the_bits_of_the_f32_call() {
    fn check<X: Ty>() {
        let rows = rows::<X>();
        for b in backends() {
            for x in &rows {
                let input: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
                same_sampling(b, &input, x, x.len());
            }
            // Batches of 3 rows of one length, hostile values spread.
            for x in rows.iter().filter(|x| !x.is_empty()).step_by(5) {
                let batch: Vec<f32> = (0..3)
                    .flat_map(|r| x.iter().map(move |&v| if r == 1 { -v } else { v }))
                    .collect();
                let input: Vec<X> = batch.iter().map(|&v| X::of(v)).collect();
                same_sampling(b, &input, &batch, x.len());
            }
        }
    }
    check::<f16>();
    check::<bf16>();
}

/// Cross-entropy of f16 and bf16 logits with the gradient in their own
/// type: the losses within their bound, the gradient within the f32
/// gradient's bound plus half an ULP of the type, on every backend, with
/// smoothing, ignored rows and each reduction, rows split across threads
/// or not; a gradient of another 16-bit type is refused.
#[test]
fn half_cross_entropy_gradient_in_the_logits_type() {
    fn check<X: Ty>() -> f64 {
        let mut r = rng(14);
        let mut worst = 0.0f64;
        let lengths = (1..=40).chain([63, 64, 65, 255, 256, 257, 2049, 70_000]);
        for n in lengths {
            for sm in builders() {
                let rows = if n > 10_000 { 1 } else { 3 };
                let x: Vec<f32> = normal_row(&mut r, rows * n, [0.5, 3.0, 30.0][n % 3])
                    .into_iter()
                    .map(|v| X::of(v).f32())
                    .collect();
                let input: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
                let targets: Vec<usize> = (0..rows).map(|k| (k * 7 + 1) % n).collect();
                for settings in [
                    (0.0, None, Reduction::Mean),
                    (0.1, Some(1 % n), Reduction::Sum),
                    (0.3, None, Reduction::None),
                ] {
                    let options = || CrossEntropyOptions {
                        label_smoothing: settings.0,
                        ignore_index: settings.1,
                        reduction: settings.2,
                        ..Default::default()
                    };
                    let mut grad = vec![X::of(7.0); x.len()];
                    let with = sm
                        .run_cross_entropy(&input, n, &targets, options().with_grad(&mut grad))
                        .unwrap();
                    let without = sm
                        .run_cross_entropy(&input, n, &targets, options())
                        .unwrap();
                    let what = format!("{} n={n} {settings:?} {sm:?}", X::NAME);
                    let w = check_cross_entropy_results(
                        &x,
                        n,
                        &targets,
                        settings,
                        [&with, &without],
                        &grad,
                        &what,
                    );
                    worst = worst.max(w.1);
                }
            }
        }
        worst
    }
    let f16 = check::<f16>();
    let bf16 = check::<bf16>();
    println!("16-bit cross-entropy gradient: worst {f16:.3} (f16), {bf16:.3} (bf16) of the bound");
    // Special rows.
    for sm in builders() {
        let inf = f32::INFINITY;
        for (x, t) in [
            (vec![inf, 1.0, inf], 0),
            (vec![f32::NAN, 1.0, 2.0], 1),
            (vec![f32::NEG_INFINITY; 3], 2),
            (vec![1.0, f32::NEG_INFINITY, 2.0], 1),
        ] {
            let input: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            for eps in [0.0, 0.2] {
                let mut grad = vec![bf16::from_f32(7.0); 3];
                let options = CrossEntropyOptions {
                    label_smoothing: eps,
                    reduction: Reduction::Sum,
                    ..Default::default()
                };
                let ce = sm
                    .run_cross_entropy(&input, 3, &[t], options.with_grad(&mut grad))
                    .unwrap();
                let settings = (eps, None, Reduction::Sum);
                let what = format!("special {x:?} eps={eps} {sm:?}");
                check_cross_entropy_results(&x, 3, &[t], settings, [&ce, &ce], &grad, &what);
            }
        }
    }
    // f16 logits with a bf16 gradient: refused, nothing written.
    let input = [f16::from_f32(1.0); 4];
    let mut grad = [bf16::from_f32(7.0); 4];
    let options = CrossEntropyOptions::default().with_grad(&mut grad);
    assert_eq!(
        simd_softmax::cross_entropy(&input, 2, &[0, 1], options),
        Err(Error::UnsupportedElements {
            input: ElementType::F16,
            output: ElementType::Bf16
        })
    );
    assert_eq!(grad, [bf16::from_f32(7.0); 4]);
    let mut grad = [f16::from_f32(7.0); 4];
    let options = CrossEntropyOptions::default().with_grad(&mut grad);
    assert!(matches!(
        simd_softmax::cross_entropy(&[1.0f32; 4], 2, &[0, 1], options),
        Err(Error::UnsupportedElements { .. })
    ));
}

/// Cross-entropy of f16 and bf16 logits (converted in registers) has the
/// bits of the call on the logits converted to f32, loss, per-row losses
/// and the f32 gradient, whose bounds `tests/cross_entropy.rs` checks: on
/// every backend, with and without smoothing, ignored rows and gradient.
#[test]
fn half_cross_entropy_has_the_bits_of_the_f32_call() {
    use simd_softmax::{CrossEntropyOptions, Reduction};
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter()
            .map(|v| if v.is_nan() { 0x7fc0_0000 } else { v.to_bits() })
            .collect()
    }
    fn check<X: Ty>() {
        for sm in builders() {
            for x in rows::<X>().iter().filter(|x| !x.is_empty()).step_by(3) {
                let n = x.len();
                // Three rows: the row, its negation, the row again.
                let batch: Vec<f32> = (0..3)
                    .flat_map(|r| x.iter().map(move |&v| if r == 1 { -v } else { v }))
                    .collect();
                let input: Vec<X> = batch.iter().map(|&v| X::of(v)).collect();
                let targets = [0, n / 2, n - 1];
                for (eps, reduction, ignore, grad) in [
                    (0.0, Reduction::Mean, None, false),
                    (0.0, Reduction::Sum, None, true),
                    (0.1, Reduction::Mean, Some(n / 2), true),
                    (0.25, Reduction::None, None, false),
                ] {
                    let what = || format!("{} n={n} eps={eps} {reduction:?} {sm:?}", X::NAME);
                    let (mut g, mut want_g) = (vec![0.0f32; 3 * n], vec![0.0f32; 3 * n]);
                    fn options(
                        eps: f32,
                        ignore_index: Option<usize>,
                        reduction: Reduction,
                        grad: Option<&mut [f32]>,
                    ) -> CrossEntropyOptions<'_> {
                        CrossEntropyOptions {
                            label_smoothing: eps,
                            ignore_index,
                            reduction,
                            grad,
                        }
                    }
                    let g_arg = grad.then_some(&mut g[..]);
                    let got = sm
                        .run_cross_entropy(
                            &input,
                            n,
                            &targets,
                            options(eps, ignore, reduction, g_arg),
                        )
                        .unwrap();
                    let g_arg = grad.then_some(&mut want_g[..]);
                    let want = sm
                        .run_cross_entropy(
                            &batch,
                            n,
                            &targets,
                            options(eps, ignore, reduction, g_arg),
                        )
                        .unwrap();
                    assert_eq!(bits(&[got.loss]), bits(&[want.loss]), "loss {}", what());
                    assert_eq!(
                        bits(&got.per_row),
                        bits(&want.per_row),
                        "per row {}",
                        what()
                    );
                    assert_eq!(got.counted, want.counted, "{}", what());
                    assert_eq!(bits(&g), bits(&want_g), "grad {}", what());
                }
            }
        }
    }
    check::<f16>();
    check::<bf16>();
}

/// The pairs not taken yet (f32 into a 16-bit type, f16 into bf16 and
/// back) are an error naming the types, before anything is written, even
/// for empty rows.
#[test]
fn unsupported_pairs_are_errors_and_write_nothing() {
    fn refuse<X: Ty, Y: Ty>() {
        let x = vec![X::of(1.0); 6];
        let mut y = vec![Y::of(5.0); 6];
        let error = simd_softmax::Error::UnsupportedElements {
            input: X::TYPE,
            output: Y::TYPE,
        };
        let msg = error.to_string();
        let want = Err(error);
        assert_eq!(Softmax::new().run(&x, &mut y), want);
        assert_eq!(Softmax::new().run_log_rows(&x, &mut y, 3), want);
        assert_eq!(Softmax::new().run(&x[..0], &mut y[..0]), want);
        assert!(y.iter().all(|v| v.f32() == 5.0));
        assert!(msg.contains(X::NAME) && msg.contains(Y::NAME), "{msg}");
    }
    refuse::<f32, f16>();
    refuse::<f32, bf16>();
    refuse::<f16, bf16>();
    refuse::<bf16, f16>();
}

/// The logit settings on 16-bit rows: the same reference as f32 rows
/// (`softmax_row_with`) on the converted inputs, plus the output rounding.
#[test]
fn settings_on_half_rows_within_the_bound() {
    let mut r = rng(5);
    let n = 300;
    let x: Vec<f32> = normal_row(&mut r, 2 * n, 3.0)
        .into_iter()
        .map(|v| bf16::from_f32(v).to_f32())
        .collect();
    let input: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let keep: Vec<bool> = (0..n).map(|i| i % 7 != 3).collect();
    let add: Vec<f32> = (0..n)
        .map(|i| {
            if i % 11 == 5 {
                f32::NEG_INFINITY
            } else {
                (i % 5) as f32 * 0.25
            }
        })
        .collect();
    for b in common::backends() {
        let builders = [
            (
                Softmax::new().backend(b).temperature(0.7),
                reference::LogitSettings {
                    temperature: 0.7,
                    ..Default::default()
                },
            ),
            (
                Softmax::new().backend(b).scale(0.125).keep_mask(&keep),
                reference::LogitSettings {
                    scale: 0.125,
                    keep_mask: Some(&keep),
                    ..Default::default()
                },
            ),
            (
                Softmax::new().backend(b).additive_mask(&add).causal(100),
                reference::LogitSettings {
                    additive_mask: Some(&add),
                    causal: Some(100),
                    ..Default::default()
                },
            ),
        ];
        for (sm, settings) in builders {
            for log in [false, true] {
                let mut out = vec![bf16::from_f32(7.0); 2 * n];
                if log {
                    sm.run_log_rows(&input, &mut out, n).unwrap();
                } else {
                    sm.run_rows(&input, &mut out, n).unwrap();
                }
                for row in 0..2 {
                    let want = reference::softmax_row_with(
                        &x[row * n..(row + 1) * n],
                        row,
                        &settings,
                        log,
                    );
                    for (i, (g, w)) in out[row * n..(row + 1) * n].iter().zip(&want).enumerate() {
                        let g = f64::from(g.to_f32());
                        let ctx = format!(
                            "{b:?} log={log} {settings:?} row {row} [{i}]: got {g:e} want {:e}",
                            w.value
                        );
                        if !w.value.is_finite() {
                            assert_eq!(g, w.value, "{ctx}");
                            continue;
                        }
                        let bound = if log {
                            w.log_tolerance()
                        } else {
                            w.tolerance()
                        };
                        let bound = bound + half_ulp::<bf16>(w.value.abs() + bound);
                        assert!((g - w.value).abs() <= bound, "{ctx}");
                    }
                }
            }
        }
    }
}

/// Strided rows of bf16 give the bits of the same rows alone, on 1 and 2
/// threads, and nothing between rows is touched; a row long enough to be
/// split across threads gives the same bits on both.
#[test]
fn half_rows_with_a_stride_and_threads_give_the_same_bits() {
    let mut r = rng(77);
    for &(rows, row_len, stride) in &[
        (5usize, 1000usize, 1003usize),
        (3, 33, 40),
        (1, 131072, 131072),
    ] {
        let x: Vec<bf16> = normal_row(&mut r, rows * stride, 2.0)
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        for sm in configs() {
            let mut alone = vec![bf16::ZERO; rows * stride];
            for k in 0..rows {
                let span = k * stride..k * stride + row_len;
                sm.run(&x[span.clone()], &mut alone[span]).unwrap();
            }
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let pad = bf16::from_f32(-9.0);
                let mut y = vec![pad; rows * stride];
                pool.install(|| sm.row_stride(stride).run_rows(&x, &mut y, row_len))
                    .unwrap();
                for (i, (a, b)) in y.iter().zip(&alone).enumerate() {
                    if i % stride < row_len {
                        assert_eq!(a.to_bits(), b.to_bits(), "{sm:?} threads {threads} [{i}]");
                    } else {
                        assert_eq!(a.to_bits(), pad.to_bits(), "{sm:?} wrote between rows");
                    }
                }
            }
        }
    }
}

/// Lengths that differ are an error before anything is written, whatever
/// the types.
#[test]
fn half_shape_errors_write_nothing() {
    let x = [f16::from_f32(1.0); 4];
    let mut y = [bf16::from_f32(5.0); 3];
    assert!(Softmax::new().run(&x, &mut y).is_err());
    assert!(y.iter().all(|v| v.to_f32() == 5.0));
    let mut z = [f16::from_f32(5.0); 5];
    assert!(simd_softmax::softmax_rows_in_place(&mut z, 2).is_err());
    assert!(z.iter().all(|v| v.to_f32() == 5.0));
}
