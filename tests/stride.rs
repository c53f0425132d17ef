//! `Softmax::row_stride`: rows every `stride` values, the values between
//! them never read or written, the same bits as the rows stored
//! contiguously, on every backend and algorithm.

mod common;

use common::{configs, normal_row, rng};
use simd_softmax::{Error, Softmax};

/// A sentinel that no softmax writes and that would poison a row if read.
const PAD: f32 = f32::NAN;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `rows` rows of `row_len` from `dense`, every `stride`, padded with PAD;
/// with `short_tail` the last row has no padding after it.
fn strided(dense: &[f32], row_len: usize, stride: usize, short_tail: bool) -> Vec<f32> {
    let rows = dense.len() / row_len;
    let len = if short_tail && rows > 0 {
        (rows - 1) * stride + row_len
    } else {
        rows * stride
    };
    let mut v = vec![PAD; len];
    for (r, row) in dense.chunks(row_len).enumerate() {
        v[r * stride..r * stride + row_len].copy_from_slice(row);
    }
    v
}

fn rows_of(v: &[f32], row_len: usize, stride: usize, rows: usize) -> Vec<f32> {
    (0..rows)
        .flat_map(|r| v[r * stride..r * stride + row_len].iter().copied())
        .collect()
}

fn check(sm: Softmax, dense: &[f32], row_len: usize, stride: usize, threads: usize) {
    let rows = dense.len() / row_len;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    for log in [false, true] {
        let mut want = vec![0.0f32; dense.len()];
        if log {
            pool.install(|| sm.run_log_rows(dense, &mut want, row_len))
                .unwrap();
        } else {
            pool.install(|| sm.run_rows(dense, &mut want, row_len))
                .unwrap();
        }
        for short_tail in [false, true] {
            let x = strided(dense, row_len, stride, short_tail);
            let sm = sm.row_stride(stride);
            let mut y = vec![PAD; x.len()];
            let mut z = x.clone();
            pool.install(|| {
                if log {
                    sm.run_log_rows(&x, &mut y, row_len).unwrap();
                    sm.run_log_rows_in_place(&mut z, row_len).unwrap();
                } else {
                    sm.run_rows(&x, &mut y, row_len).unwrap();
                    sm.run_rows_in_place(&mut z, row_len).unwrap();
                }
            });
            let what = format!(
                "{sm:?} rows={rows} row_len={row_len} stride={stride} log={log} tail={short_tail} threads={threads}"
            );
            assert_eq!(
                bits(&rows_of(&y, row_len, stride, rows)),
                bits(&want),
                "{what}"
            );
            assert_eq!(bits(&y), bits(&z), "{what}: in place differs");
            for r in 0..rows {
                let gap = (r * stride + row_len)..((r + 1) * stride).min(y.len());
                assert!(
                    y[gap.clone()].iter().all(|v| v.is_nan()),
                    "{what}: wrote between rows"
                );
                assert_eq!(
                    bits(&x[gap.clone()]),
                    bits(&z[gap]),
                    "{what}: wrote between rows in place"
                );
            }
        }
    }
}

#[test]
fn strided_rows_match_contiguous_rows() {
    let mut r = rng(41);
    for sm in configs() {
        for (rows, row_len, stride) in [
            (1, 1, 1),
            (3, 1, 2),
            (5, 17, 20),
            (7, 33, 48),
            (2, 1000, 1003),
            (40, 100, 128),
        ] {
            let dense = normal_row(&mut r, rows * row_len, 4.0);
            check(sm, &dense, row_len, stride, 1);
        }
    }
}

/// A long row split across threads, and a batch cut into tasks.
#[test]
fn strided_rows_on_two_threads() {
    let mut r = rng(43);
    for sm in configs() {
        for (rows, row_len, stride) in [(1, 70_000, 70_005), (2, 70_000, 70_016), (300, 100, 130)] {
            let dense = normal_row(&mut r, rows * row_len, 4.0);
            check(sm, &dense, row_len, stride, 2);
        }
    }
}

/// Masks are dense (one row, or rows·row_len values) under a stride, and
/// causal rows count over the call.
#[test]
fn strided_rows_with_settings() {
    let mut r = rng(47);
    let (rows, row_len, stride) = (6usize, 50usize, 64usize);
    let dense = normal_row(&mut r, rows * row_len, 4.0);
    let add: Vec<f32> = (0..rows * row_len).map(|i| -((i % 3) as f32)).collect();
    let keep: Vec<bool> = (0..row_len).map(|i| i % 5 != 1).collect();
    for base in configs() {
        let sm = base
            .temperature(0.7)
            .causal(2)
            .additive_mask(&add)
            .keep_mask(&keep);
        let mut want = vec![0.0f32; dense.len()];
        sm.run_rows(&dense, &mut want, row_len).unwrap();
        let x = strided(&dense, row_len, stride, true);
        let mut y = vec![PAD; x.len()];
        sm.row_stride(stride).run_rows(&x, &mut y, row_len).unwrap();
        assert_eq!(
            bits(&rows_of(&y, row_len, stride, rows)),
            bits(&want),
            "{sm:?}"
        );
    }
}

#[test]
fn bad_strides_are_errors_and_write_nothing() {
    let x = [0.0f32; 10];
    let mut y = [7.0f32; 10];
    let sm = Softmax::new();
    assert_eq!(
        sm.row_stride(2).run_rows(&x, &mut y, 3),
        Err(Error::RowStride {
            stride: 2,
            row_len: 3
        })
    );
    assert_eq!(
        sm.row_stride(4).run_rows(&x, &mut y, 0),
        Err(Error::RowStride {
            stride: 4,
            row_len: 0
        })
    );
    // 10 is neither 4·k nor 4·k + 3.
    assert_eq!(
        sm.row_stride(4).run_log_rows(&x, &mut y, 3),
        Err(Error::StridedLength {
            len: 10,
            row_len: 3,
            stride: 4
        })
    );
    assert_eq!(y, [7.0; 10]);
    // 10 = 3·3 + 1 rows of 1 every 3, and 10 = 2·4 + 2 rows of 2 every 4.
    assert!(sm.row_stride(3).run_rows(&x, &mut y, 1).is_ok());
    assert!(sm.row_stride(4).run_rows_in_place(&mut y, 2).is_ok());
    assert!(
        sm.row_stride(5)
            .run_rows::<f32, f32>(&[], &mut [], 3)
            .is_ok()
    );
}
