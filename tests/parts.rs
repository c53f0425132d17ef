//! Engine-owned threads (`RowPart`, `Softmax::run_rows_part` and kin):
//! the parts of a batch, each computed on its own with its own output,
//! write exactly the bits of the whole call, for every element type,
//! backend, setting and layout; bad parts and outputs are errors with
//! nothing written.

mod common;

use common::check::Ty;
use common::{backends, normal_row, rng};
use simd_softmax::half::{bf16, f16};
use simd_softmax::{Algorithm, Argument, Backend, Error, LogitSettings, RowPart, Softmax};

/// The settings a part must carry over from the whole call: none,
/// temperature, a dense keep mask, a broadcast additive mask, causal
/// offsets (the part's rows keep their row index in the batch).
fn settings<'m>(
    b: Backend,
    keep: &'m [bool],
    add_row: &'m [f32],
) -> Vec<Softmax<LogitSettings<'m>>> {
    let base = Softmax::new().backend(b);
    vec![
        base.settings(LogitSettings::default()),
        base.temperature(0.7),
        base.keep_mask(keep),
        base.additive_mask(add_row).scale(1.5),
        base.causal(0),
        base.causal(-1),
        base.causal(3),
    ]
}

/// A batch of `rows` rows of `row_len` at `stride`, with hostile rows.
fn batch(rows: usize, row_len: usize, stride: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let mut x = normal_row(&mut r, rows * stride, 3.0);
    if rows > 2 && row_len > 2 {
        x[stride] = f32::NAN;
        x[2 * stride + 1] = f32::INFINITY;
    }
    x
}

/// The output slice part `part` writes: its rows at the batch's stride,
/// the gap after its last row included unless it is the batch's end.
fn part_range(part: RowPart, rows: usize, stride: usize, len: usize) -> std::ops::Range<usize> {
    let r = part.rows(rows);
    (r.start * stride).min(len)..(r.end * stride).min(len)
}

/// Runs the whole call and every part of `parts`; asserts the same bits,
/// gaps between rows untouched. Out of place from `X` into `Y`, and with
/// `X = Y` in place.
fn same_bits<X: Ty, Y: Ty>(sm: &Softmax<LogitSettings<'_>>, x: &[f32], row_len: usize, log: bool) {
    let stride_rows = |len: usize, stride: usize| {
        if len == 0 {
            0
        } else {
            (len - row_len) / stride + 1
        }
    };
    let input: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
    let sentinel = Y::of(-7.0);
    for stride in [row_len, row_len + 3] {
        // A tight layout: the last row without its gap.
        let rows = x.len() / (row_len + 3);
        let len = if rows == 0 {
            0
        } else {
            (rows - 1) * stride + row_len
        };
        let input = &input[..len];
        assert_eq!(stride_rows(len, stride), rows);
        let sm = sm.row_stride(stride);
        let mut whole = vec![sentinel; len];
        let result = if log {
            sm.run_log_rows(input, &mut whole, row_len)
        } else {
            sm.run_rows(input, &mut whole, row_len)
        };
        result.unwrap();
        for parts in [1, 2, 3, 5, rows + 2] {
            let mut y = vec![sentinel; len];
            for i in 0..parts {
                let part = RowPart::new(i, parts).unwrap();
                let out = &mut y[part_range(part, rows, stride, len)];
                let result = if log {
                    sm.run_log_rows_part(input, out, row_len, part)
                } else {
                    sm.run_rows_part(input, out, row_len, part)
                };
                result.unwrap();
            }
            let what = format!(
                "{} -> {} log={log} rows={rows} row_len={row_len} stride={stride} parts={parts} {sm:?}",
                X::NAME,
                Y::NAME
            );
            assert_eq!(bits(&y), bits(&whole), "{what}");
            if X::NAME == Y::NAME {
                // In place: each part's rows converted to Y, run in place.
                let mut data: Vec<Y> = input.iter().map(|v| Y::of(v.f32())).collect();
                for i in 0..parts {
                    let part = RowPart::new(i, parts).unwrap();
                    let rows_of_part = &mut data[part_range(part, rows, stride, len)];
                    let result = if log {
                        sm.run_log_rows_part_in_place(rows_of_part, row_len, rows, part)
                    } else {
                        sm.run_rows_part_in_place(rows_of_part, row_len, rows, part)
                    };
                    result.unwrap();
                }
                let mut expected: Vec<Y> = input.iter().map(|v| Y::of(v.f32())).collect();
                let result = if log {
                    sm.run_log_rows_in_place(&mut expected, row_len)
                } else {
                    sm.run_rows_in_place(&mut expected, row_len)
                };
                result.unwrap();
                assert_eq!(bits(&data), bits(&expected), "in place {what}");
            }
        }
    }
}

fn bits<Y: Ty>(y: &[Y]) -> Vec<u32> {
    y.iter().map(|v| v.f32().to_bits()).collect()
}

fn every_setting<X: Ty, Y: Ty>() {
    for (row_len, rows) in [(1, 4), (7, 5), (33, 9), (300, 3), (5000, 2)] {
        let x = batch(rows, row_len, row_len + 3, row_len as u64);
        let keep: Vec<bool> = (0..rows * row_len).map(|i| i % 5 != 1).collect();
        let add_row: Vec<f32> = (0..row_len).map(|i| -(i as f32) * 0.25).collect();
        for b in backends() {
            for sm in settings(b, &keep, &add_row) {
                for log in [false, true] {
                    same_bits::<X, Y>(&sm, &x, row_len, log);
                }
            }
        }
    }
}

#[test]
fn parts_of_f32_rows_are_the_whole_call() {
    every_setting::<f32, f32>();
}

#[test]
fn parts_of_f16_rows_are_the_whole_call() {
    every_setting::<f16, f16>();
}

#[test]
fn parts_of_bf16_rows_are_the_whole_call() {
    every_setting::<bf16, bf16>();
    every_setting::<bf16, f32>();
}

/// Rows long enough that the whole call splits them across a 2-thread
/// pool and picks the blocked algorithm: a part, on one thread, gives the
/// same bits.
#[test]
fn parts_of_long_rows_are_the_whole_call() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (rows, row_len) in [(1, 200_000), (3, 70_000)] {
        let x = batch(rows, row_len, row_len + 3, 9);
        let keep: Vec<bool> = (0..rows * row_len).map(|i| i % 7 != 2).collect();
        for algorithm in [Algorithm::Auto, Algorithm::Online, Algorithm::ThreePass] {
            let sm = Softmax::new().algorithm(algorithm).keep_mask(&keep);
            pool.install(|| {
                same_bits::<f32, f32>(&sm, &x, row_len, false);
                same_bits::<bf16, bf16>(&sm, &x, row_len, false);
                same_bits::<f16, f32>(&sm, &x, row_len, true);
            });
        }
    }
}

#[test]
fn row_parts_cover_every_row_once_in_order() {
    for rows in 0..60 {
        for parts in 1..12 {
            let mut next = 0;
            for i in 0..parts {
                let r = RowPart::new(i, parts).unwrap().rows(rows);
                assert_eq!(r.start, next, "rows={rows} parts={parts}");
                let even = rows / parts;
                assert!(r.len() == even || r.len() == even + 1, "{r:?}");
                next = r.end;
            }
            assert_eq!(next, rows);
        }
    }
    let last = RowPart::new(2, 3).unwrap().rows(usize::MAX);
    assert_eq!(last.end, usize::MAX);
    let part = RowPart::new(1, 4).unwrap();
    assert_eq!((part.index(), part.count()), (1, 4));
}

#[test]
fn bad_parts_and_outputs_are_errors_and_write_nothing() {
    assert_eq!(
        RowPart::new(0, 0),
        Err(Error::InvalidPart { part: 0, parts: 0 })
    );
    assert_eq!(
        RowPart::new(3, 3),
        Err(Error::InvalidPart { part: 3, parts: 3 })
    );
    let x = [1.0f32; 12]; // 4 rows of 3
    let part = RowPart::new(1, 2).unwrap(); // rows 2..4
    let sm = Softmax::new();
    // The whole batch's output instead of the part's.
    let mut y = [9.0f32; 12];
    assert_eq!(
        sm.run_rows_part(&x, &mut y, 3, part),
        Err(Error::SliceLength {
            name: Argument::Output,
            len: 12,
            expected: 6
        })
    );
    assert_eq!(y, [9.0; 12]);
    let mut y = [9.0f32; 5];
    assert!(sm.run_rows_part(&x, &mut y, 3, part).is_err());
    assert_eq!(y, [9.0; 5]);
    // A ragged batch.
    let mut y = [9.0f32; 6];
    assert_eq!(
        sm.run_rows_part(&x[..11], &mut y, 3, part),
        Err(Error::RaggedRows {
            len: 11,
            row_len: 3
        })
    );
    // f32 into bf16.
    let mut y = [bf16::from_f32(9.0); 6];
    assert!(matches!(
        sm.run_rows_part(&x, &mut y, 3, part),
        Err(Error::UnsupportedElements { .. })
    ));
    // A mask for neither one row nor the whole batch (the part's length).
    let keep = [true; 6];
    let mut y = [9.0f32; 6];
    let masked = Softmax::new().keep_mask(&keep);
    assert!(matches!(
        masked.run_rows_part(&x, &mut y, 3, part),
        Err(Error::MaskLength { .. })
    ));
    assert_eq!(y, [9.0; 6]);
    // In place: the part's rows of a batch of 4.
    let mut data = [1.0f32; 6];
    sm.run_rows_part_in_place(&mut data, 3, 4, part).unwrap();
    assert_eq!(data, [1.0 / 3.0; 6]);
    let mut data = [1.0f32; 3];
    assert!(sm.run_rows_part_in_place(&mut data, 3, 4, part).is_err());
    assert_eq!(data, [1.0; 3]);
    let stride_too_short = Softmax::new().row_stride(2);
    assert_eq!(
        stride_too_short.run_rows_part_in_place(&mut data, 3, 4, part),
        Err(Error::RowStride {
            stride: 2,
            row_len: 3
        })
    );
    // A part with no rows takes an empty output.
    let none = RowPart::new(0, 8).unwrap();
    sm.run_rows_part(&x, &mut [0.0f32; 0], 3, none).unwrap();
}
