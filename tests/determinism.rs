//! The same row gives the same bits whatever the thread count, the batch
//! size, its position in the batch, its alignment, and in or out of place.

mod common;

use common::{configs, normal_row, rng};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

#[test]
fn rows_match_single_rows_at_any_thread_count_position_and_alignment() {
    let mut r = rng(20);
    for sm in configs() {
        for &(rows, cols) in &[(9usize, 1000usize), (40, 129), (3, 50257), (2, 300000)] {
            let x = normal_row(&mut r, rows * cols, 3.0);
            // Each row alone, at an odd offset.
            let alone: Vec<Vec<u32>> = x
                .chunks(cols)
                .map(|row| {
                    let mut buf = vec![0.0f32; cols + 3];
                    buf[3..].copy_from_slice(row);
                    sm.run_in_place(&mut buf[3..]).unwrap();
                    bits(&buf[3..])
                })
                .collect();
            for threads in [1, 2, 3] {
                let mut y = vec![0.0f32; rows * cols];
                pool(threads)
                    .install(|| sm.run_rows(&x, &mut y, cols))
                    .unwrap();
                let mut z = x.clone();
                pool(threads)
                    .install(|| sm.run_rows_in_place(&mut z, cols))
                    .unwrap();
                for (i, (yr, zr)) in y.chunks(cols).zip(z.chunks(cols)).enumerate() {
                    assert_eq!(
                        bits(yr),
                        alone[i],
                        "{sm:?} {rows}x{cols} threads={threads} row {i}"
                    );
                    assert_eq!(
                        bits(zr),
                        alone[i],
                        "{sm:?} {rows}x{cols} threads={threads} row {i} in place"
                    );
                }
                // The same rows as a smaller batch (row 1 moves to position 0).
                let mut tail = vec![0.0f32; (rows - 1) * cols];
                pool(threads)
                    .install(|| sm.run_rows(&x[cols..], &mut tail, cols))
                    .unwrap();
                assert_eq!(
                    bits(&tail[..cols]),
                    alone[1],
                    "{sm:?} {rows}x{cols} sub-batch"
                );
            }
        }
    }
}

#[test]
fn single_long_row_at_any_thread_count() {
    let mut r = rng(21);
    for sm in configs() {
        for n in [16385usize, 70000, 262144, 1 << 20] {
            let x = normal_row(&mut r, n, 3.0);
            let mut want = vec![0.0f32; n];
            pool(1).install(|| sm.run(&x, &mut want)).unwrap();
            for threads in [2, 3, 4] {
                let mut y = vec![0.0f32; n];
                pool(threads).install(|| sm.run(&x, &mut y)).unwrap();
                assert_eq!(bits(&y), bits(&want), "{sm:?} n={n} threads={threads}");
            }
        }
    }
}

/// A row with a NaN is the one quiet NaN (`f32::NAN`'s bits) everywhere,
/// whatever NaN it held and wherever the max read it: its bits do not
/// depend on which NaN the arithmetic would carry, in place or not.
#[test]
fn nan_rows_are_the_quiet_nan_in_place_and_out() {
    let mut r = rng(21);
    let payloads = [0xffff_ff91u32, 0x7f80_0001, 0xffc0_0000, 0x7fc0_0000];
    for sm in configs() {
        for n in [1usize, 7, 16, 100, 2049, 20000] {
            for (k, &nan) in payloads.iter().enumerate() {
                let mut x = normal_row(&mut r, n, 3.0);
                x[(k * 7919) % n] = f32::from_bits(nan);
                let mut out = vec![0.0f32; n];
                sm.run(&x, &mut out).unwrap();
                let mut inplace = x.clone();
                sm.run_in_place(&mut inplace).unwrap();
                let mut log = vec![0.0f32; n];
                sm.run_log(&x, &mut log).unwrap();
                let quiet = f32::NAN.to_bits();
                for (what, y) in [("out", &out), ("in place", &inplace), ("log", &log)] {
                    assert!(
                        y.iter().all(|v| v.to_bits() == quiet),
                        "{sm:?} n={n} NaN {nan:#x} {what}: {:#x}",
                        y.iter().find(|v| v.to_bits() != quiet).unwrap().to_bits()
                    );
                }
            }
        }
    }
}
