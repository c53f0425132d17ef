//! Attention batches (`Softmax::attention`): masks of every broadcast
//! shape, the causal mask per (batch, head) block (`causal`,
//! `causal_end`), ALiBi slopes (8, 12 and 32 heads) against
//! `reference::softmax_row_with`, on every backend; parts of such a batch;
//! and the errors.

mod common;

use common::check::{bits, check_with_settings};
use common::{backends, configs, normal_row, rng};
use rand::RngExt;
use simd_softmax::reference::LogitSettings;
use simd_softmax::{Argument, Attention, Error, Mask, Parameter, RowPart, Softmax, alibi_slope};

/// ggml's slopes, from their closed form `2^(−max_bias·k/n)` (`k = h + 1`
/// below `n = 2^⌊log2 heads⌋`, else `(2(h − n) + 1)/2`), rounded to f32.
#[test]
fn alibi_slopes_follow_ggml() {
    for heads in [1usize, 8, 12, 32, 5] {
        let n = 1usize << heads.ilog2();
        for max_bias in [8.0f32, 0.5, 16.0] {
            for h in 0..heads {
                let k = if h < n {
                    (h + 1) as f64
                } else {
                    (2 * (h - n) + 1) as f64 / 2.0
                };
                let want = 2f64.powf(-f64::from(max_bias) * k / n as f64) as f32;
                let got = alibi_slope(max_bias, heads, h);
                let ulp = (got.to_bits() as i64 - want.to_bits() as i64).abs();
                assert!(
                    ulp <= 1,
                    "heads={heads} h={h} bias={max_bias}: {got} vs {want}"
                );
            }
        }
        assert_eq!(alibi_slope(0.0, heads, 0), 1.0);
    }
    // 8 heads, max_bias 8: 1/2, 1/4, ..., 1/256, exactly.
    for h in 0..8 {
        assert_eq!(alibi_slope(8.0, 8, h), 0.5f32.powi(h as i32 + 1));
    }
}

/// The masks of every shape an attention call takes, over `shape`.
fn mask_lengths(shape: Attention) -> [usize; 4] {
    let (b, h, q, k) = (shape.batch, shape.heads, shape.queries, shape.keys);
    [k, q * k, b * q * k, b * h * q * k]
}

#[test]
fn attention_rows_match_the_reference() {
    let mut r = rng(21);
    let mut worst = (0.0f64, 0.0f64);
    for shape in [
        Attention::new(2, 3, 4, 37),
        Attention::new(1, 8, 5, 129),
        Attention::new(1, 12, 2, 20),
        Attention::new(1, 32, 1, 300),
        Attention::new(2, 2, 3, 3),
    ] {
        let (q, k) = (shape.queries, shape.keys);
        let x = normal_row(&mut r, shape.rows() * k, 4.0);
        for mask_len in mask_lengths(shape) {
            let keep: Vec<bool> = (0..mask_len).map(|_| r.random::<f32>() > 0.2).collect();
            // Key positions (ggml's ALiBi mask) or a causal-style bias.
            let add: Vec<f32> = (0..mask_len)
                .map(|i| {
                    if r.random::<f32>() < 0.1 {
                        f32::NEG_INFINITY
                    } else {
                        -((i % k) as f32)
                    }
                })
                .collect();
            let settings = [
                LogitSettings {
                    keep_mask: Some(&keep),
                    causal: Some(0),
                    ..Default::default()
                },
                LogitSettings {
                    additive_mask: Some(&add),
                    scale: 0.125,
                    causal: Some(k as isize - q as isize),
                    ..Default::default()
                },
                LogitSettings {
                    additive_mask: Some(&add),
                    keep_mask: Some(&keep),
                    max_bias: Some(8.0),
                    causal: Some(-1),
                    ..Default::default()
                },
                LogitSettings {
                    additive_mask: Some(&add),
                    max_bias: Some(0.5),
                    temperature: 0.7,
                    ..Default::default()
                },
            ];
            for ls in settings {
                let ls = LogitSettings {
                    attention: Some(shape),
                    ..ls
                };
                for b in backends() {
                    let what = format!("{shape:?} mask_len={mask_len}");
                    let w = check_with_settings(Softmax::new().backend(b), &ls, &x, k, &what);
                    worst = (worst.0.max(w.0), worst.1.max(w.1));
                }
            }
        }
    }
    eprintln!(
        "attention: worst {:.3} of the softmax bound, {:.3} of the log-softmax bound",
        worst.0, worst.1
    );
}

/// `causal_end` is `causal(keys − queries)`, under a layout and without.
#[test]
fn causal_end_is_the_offset_from_the_last_key() {
    let mut r = rng(22);
    for (shape, stride) in [
        (Attention::new(2, 3, 4, 9), 9),
        (Attention::new(1, 2, 7, 5), 6),
    ] {
        let (q, k) = (shape.queries, shape.keys);
        let rows = shape.rows();
        let x = normal_row(&mut r, (rows - 1) * stride + k, 2.0);
        let sm = Softmax::new().row_stride(stride).attention(shape);
        let (mut a, mut b) = (vec![7.0f32; x.len()], vec![7.0f32; x.len()]);
        sm.causal_end().run_rows(&x, &mut a, k).unwrap();
        sm.causal(k as isize - q as isize)
            .run_rows(&x, &mut b, k)
            .unwrap();
        assert_eq!(bits(&a), bits(&b), "{shape:?}");
        // Without a layout the call's rows are the queries.
        let plain = Softmax::new().row_stride(stride);
        plain.causal_end().run_rows(&x, &mut a, k).unwrap();
        plain
            .causal(k as isize - rows as isize)
            .run_rows(&x, &mut b, k)
            .unwrap();
        assert_eq!(bits(&a), bits(&b), "{shape:?} without the layout");
    }
}

/// f16 and bf16 additive masks (ggml's are f16) give the bits of the call
/// with the mask converted to f32, under every broadcast shape, ALiBi and
/// causal, on every backend, for f32 and 16-bit rows, in one call and in
/// engine-thread parts.
#[test]
fn half_masks_are_their_f32_values() {
    use simd_softmax::half::{bf16, f16};
    fn check<M: simd_softmax::Element>(to: fn(f32) -> M, back: fn(M) -> f32) {
        let mut r = rng(24);
        let shape = Attention::new(2, 4, 3, 70);
        let k = shape.keys;
        let x = normal_row(&mut r, shape.rows() * k, 3.0);
        let xh: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        for len in mask_lengths(shape) {
            let mut mask: Vec<M> = (0..len)
                .map(|i| to(-((i % k) as f32) * 0.37 + r.random_range(-2.0..2.0)))
                .collect();
            mask[len / 2] = to(f32::NEG_INFINITY);
            let exact: Vec<f32> = mask.iter().map(|&v| back(v)).collect();
            for b in backends() {
                let with = |sm: Softmax| sm.backend(b).attention(shape).alibi(8.0).causal_end();
                let typed = with(Softmax::new()).additive_mask(&mask);
                let f32_mask = with(Softmax::new()).additive_mask(&exact);
                let (mut got, mut want) = (vec![7.0f32; x.len()], vec![7.0f32; x.len()]);
                typed.run_rows(&x, &mut got, k).unwrap();
                f32_mask.run_rows(&x, &mut want, k).unwrap();
                assert_eq!(bits(&got), bits(&want), "mask of {len} on {b:?}");
                let (mut got, mut want) = (vec![bf16::ZERO; x.len()], vec![bf16::ZERO; x.len()]);
                typed.run_log_rows(&xh, &mut got, k).unwrap();
                f32_mask.run_log_rows(&xh, &mut want, k).unwrap();
                assert_eq!(got, want, "bf16 rows, mask of {len} on {b:?}");
                let mut parts = vec![7.0f32; x.len()];
                for i in 0..3 {
                    let part = RowPart::new(i, 3).unwrap();
                    let rows = part.rows(shape.rows());
                    let out = &mut parts[rows.start * k..rows.end * k];
                    typed.run_rows_part(&x, out, k, part).unwrap();
                }
                let mut whole = vec![7.0f32; x.len()];
                f32_mask.run_rows(&x, &mut whole, k).unwrap();
                assert_eq!(bits(&parts), bits(&whole), "parts, mask of {len} on {b:?}");
            }
        }
        // A mask that fits no shape is an error naming it, whatever its type.
        let short = vec![to(0.0); k + 1];
        let mut y = vec![7.0f32; x.len()];
        assert!(matches!(
            Softmax::new()
                .attention(shape)
                .additive_mask(&short)
                .run_rows(&x, &mut y, k),
            Err(Error::MaskLength {
                mask: Mask::Additive,
                ..
            })
        ));
        assert!(y.iter().all(|&v| v == 7.0));
    }
    check(f16::from_f32, f16::to_f32);
    check(bf16::from_f32, bf16::to_f32);
}

/// Engine threads over an attention batch: the masks broadcast and the
/// heads counted from the batch, not from the part.
#[test]
fn parts_of_an_attention_batch_are_the_whole_call() {
    let mut r = rng(23);
    let shape = Attention::new(2, 4, 3, 50);
    let k = shape.keys;
    let x = normal_row(&mut r, shape.rows() * k, 3.0);
    let add: Vec<f32> = (0..shape.queries * k).map(|i| -((i % k) as f32)).collect();
    let sm = Softmax::new()
        .attention(shape)
        .additive_mask(&add)
        .alibi(8.0)
        .causal_end();
    let mut whole = vec![0.0f32; x.len()];
    sm.run_rows(&x, &mut whole, k).unwrap();
    for parts in [2, 3, 5, 24, 30] {
        let mut y = vec![7.0f32; x.len()];
        for i in 0..parts {
            let part = RowPart::new(i, parts).unwrap();
            let rows = part.rows(shape.rows());
            let out = &mut y[rows.start * k..rows.end * k];
            sm.run_rows_part(&x, out, k, part).unwrap();
        }
        assert_eq!(bits(&y), bits(&whole), "parts={parts}");
    }
}

#[test]
fn bad_attention_calls_are_errors_and_write_nothing() {
    let shape = Attention::new(1, 2, 3, 4); // 6 rows of 4
    let x = [0.5f32; 24];
    let mut y = [7.0f32; 24];
    let sm = Softmax::new().attention(shape);
    assert_eq!(
        sm.run_rows(&x, &mut y, 3),
        Err(Error::AttentionShape {
            shape,
            rows: 8,
            row_len: 3
        })
    );
    assert!(matches!(
        sm.run_rows(&x[..20], &mut y[..20], 4),
        Err(Error::AttentionShape { rows: 5, .. })
    ));
    // A mask of 2 rows fits neither [q, k], [b, 1, q, k] nor every row.
    let keep = [true; 8];
    assert!(matches!(
        sm.keep_mask(&keep).run_rows(&x, &mut y, 4),
        Err(Error::MaskLength {
            mask: Mask::Keep,
            ..
        })
    ));
    let add = [0.0f32; 12];
    for bias in [-1.0, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            sm.additive_mask(&add).alibi(bias).run_rows(&x, &mut y, 4),
            Err(Error::InvalidParameter {
                name: Parameter::MaxBias,
                ..
            })
        ));
    }
    // ALiBi multiplies the additive mask: without one it is an error.
    assert!(matches!(
        sm.alibi(8.0).run_rows(&x, &mut y, 4),
        Err(Error::InvalidParameter {
            name: Parameter::MaxBias,
            ..
        })
    ));
    assert_eq!(y, [7.0; 24]);
    sm.additive_mask(&add)
        .alibi(8.0)
        .run_rows(&x, &mut y, 4)
        .unwrap();
}

/// Sinks (one logit per head, or one for all rows) against the reference:
/// every backend and algorithm, with the other settings, hostile sinks.
#[test]
fn sinks_take_their_share_of_the_mass() {
    let mut r = rng(24);
    let mut worst = (0.0f64, 0.0f64);
    for (shape, sigma) in [
        (Attention::new(1, 8, 3, 40), 3.0f32),
        (Attention::new(2, 4, 1, 300), 1.0),
        (Attention::new(1, 4, 2, 5000), 8.0),
    ] {
        let (q, k, heads) = (shape.queries, shape.keys, shape.heads);
        let x = normal_row(&mut r, shape.rows() * k, sigma);
        let mut sinks: Vec<f32> = (0..heads).map(|_| r.random::<f32>() * 6.0 - 1.0).collect();
        let hostile = [
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            1e30,
            -1e30,
            60.0,
        ];
        for (h, v) in hostile.into_iter().enumerate().take(heads / 2) {
            sinks[2 * h] = v;
        }
        let add: Vec<f32> = (0..q * k).map(|i| -((i % k) as f32) * 0.01).collect();
        let keep: Vec<bool> = (0..k).map(|i| i % 7 != 3).collect();
        let one = [2.5f32];
        let settings = [
            LogitSettings {
                sinks: Some(&sinks),
                ..Default::default()
            },
            LogitSettings {
                sinks: Some(&sinks),
                scale: 0.125,
                causal: Some(k as isize - q as isize),
                ..Default::default()
            },
            LogitSettings {
                sinks: Some(&sinks),
                additive_mask: Some(&add),
                max_bias: Some(8.0),
                keep_mask: Some(&keep),
                ..Default::default()
            },
            LogitSettings {
                sinks: Some(&sinks),
                temperature: 0.7,
                ..Default::default()
            },
        ];
        for ls in settings {
            let ls = LogitSettings {
                attention: Some(shape),
                ..ls
            };
            for sm in configs() {
                let what = format!("{shape:?}");
                let w = check_with_settings(sm, &ls, &x, k, &what);
                worst = (worst.0.max(w.0), worst.1.max(w.1));
            }
        }
        // Without a layout: one sink for every row.
        let ls = LogitSettings {
            sinks: Some(&one),
            scale: 0.5,
            ..Default::default()
        };
        for sm in configs() {
            let w = check_with_settings(sm, &ls, &x, k, "one sink");
            worst = (worst.0.max(w.0), worst.1.max(w.1));
        }
    }
    eprintln!(
        "sinks: worst {:.3} of the softmax bound, {:.3} of the log-softmax bound",
        worst.0, worst.1
    );
    // One sink per head, or one: another length is an error.
    let mut y = [7.0f32; 24];
    let sm = Softmax::new().attention(Attention::new(1, 2, 3, 4));
    assert_eq!(
        sm.sinks(&[0.0; 3]).run_rows(&[0.0; 24], &mut y, 4),
        Err(Error::SliceLength {
            name: Argument::Sinks,
            len: 3,
            expected: 2
        })
    );
    assert_eq!(y, [7.0; 24]);
}

/// Soft-capping (`c·tanh(x/c)` before everything else) against the
/// reference, alone and with the other settings, on every backend and
/// algorithm; a cap that is not finite and positive is an error.
#[test]
fn softcap_rows_match_the_reference() {
    let mut r = rng(25);
    let mut worst = (0.0f64, 0.0f64);
    for (n, sigma) in [
        (1usize, 10.0f32),
        (37, 40.0),
        (300, 300.0),
        (5000, 20.0),
        (70_000, 3.0),
    ] {
        let mut x = normal_row(&mut r, 2 * n, sigma);
        if n > 8 {
            x[3] = f32::INFINITY;
            x[5] = f32::NEG_INFINITY;
            x[n + 1] = 1e30;
            x[n + 2] = -1e30;
        }
        let add: Vec<f32> = (0..n).map(|i| -((i % 9) as f32)).collect();
        let keep: Vec<bool> = (0..2 * n).map(|i| i % 5 != 2).collect();
        let sink = [4.0f32];
        for cap in [50.0f32, 30.0, 1.0] {
            let settings = [
                LogitSettings {
                    softcap: Some(cap),
                    ..Default::default()
                },
                LogitSettings {
                    softcap: Some(cap),
                    scale: 0.125,
                    temperature: 0.8,
                    ..Default::default()
                },
                LogitSettings {
                    softcap: Some(cap),
                    additive_mask: Some(&add),
                    keep_mask: Some(&keep),
                    causal: Some(3),
                    ..Default::default()
                },
                LogitSettings {
                    softcap: Some(cap),
                    sinks: Some(&sink),
                    ..Default::default()
                },
            ];
            for ls in settings {
                for sm in configs() {
                    let what = format!("n={n} cap={cap}");
                    let w = check_with_settings(sm, &ls, &x, n, &what);
                    worst = (worst.0.max(w.0), worst.1.max(w.1));
                }
            }
        }
        // NaN stays NaN.
        let mut y = vec![0.0f32; n];
        let mut nan = x[..n].to_vec();
        nan[n / 2] = f32::NAN;
        Softmax::new().softcap(30.0).run(&nan, &mut y).unwrap();
        assert!(y.iter().all(|v| v.is_nan()), "n={n}");
    }
    eprintln!(
        "softcap: worst {:.3} of the softmax bound, {:.3} of the log-softmax bound",
        worst.0, worst.1
    );
    let mut y = [7.0f32; 2];
    for cap in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            Softmax::new().softcap(cap).run(&[1.0, 2.0], &mut y),
            Err(Error::InvalidParameter {
                name: Parameter::Softcap,
                ..
            })
        ));
    }
    assert_eq!(y, [7.0; 2]);
}
