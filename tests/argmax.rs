//! argmax on every backend against the scalar reference: the lowest index
//! of the maximum, `None` for empty rows and rows holding NaN.

mod common;

use common::{backends, normal_row, rng};
use rand::RngExt;
use simd_softmax::{Error, Softmax, reference};

fn argmax(sm: &Softmax, x: &[f32]) -> Option<usize> {
    let mut out = [Some(usize::MAX)];
    if x.is_empty() {
        return None;
    }
    sm.run_argmax_rows(x, x.len(), &mut out).unwrap();
    out[0]
}

/// Every length 0..=300 at every offset, with ties planted (equal maxima,
/// ±0), NaN, and all-equal rows.
#[test]
fn every_length_offset_and_tie() {
    let mut r = rng(50);
    for b in backends() {
        let sm = Softmax::new().backend(b);
        for n in 0..=300usize {
            for offset in 0..16 {
                let mut buf: Vec<f32> = normal_row(&mut r, n + 16, 3.0)
                    .iter()
                    .map(|v| v.round())
                    .collect();
                let x = &mut buf[offset..offset + n];
                if n > 0 && r.random_range(0..4) == 0 {
                    let i = r.random_range(0..n);
                    x[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0][r.random_range(0..4)];
                }
                let x = &*x;
                assert_eq!(
                    argmax(&sm, x),
                    reference::argmax(x),
                    "{b} n={n} offset={offset} {x:?}"
                );
            }
        }
        for n in [1usize, 7, 33, 300] {
            for v in [f32::NEG_INFINITY, 0.0, -0.0, f32::INFINITY, f32::MAX] {
                assert_eq!(argmax(&sm, &vec![v; n]), Some(0), "{b} all {v}");
            }
            let mut z = vec![-0.0f32; n];
            z[n - 1] = 0.0;
            assert_eq!(argmax(&sm, &z), Some(0), "{b} ±0 tie");
        }
    }
    assert_eq!(simd_softmax::argmax::<f32>(&[]), Ok(None));
}

/// Two equal maxima at every pair of positions, every length to 100: the
/// lower one wins wherever the two land (the same lane of two
/// accumulators, the tail after the groups of four vectors, a partial
/// vector).
#[test]
fn every_pair_of_tied_maxima() {
    for b in backends() {
        let sm = Softmax::new().backend(b);
        for n in 1..=100usize {
            let mut x = vec![-1.0f32; n];
            for i in 0..n {
                for j in i..n {
                    x[i] = 2.0;
                    x[j] = 2.0;
                    assert_eq!(argmax(&sm, &x), Some(i), "{b} n={n} i={i} j={j}");
                    x[i] = -1.0;
                    x[j] = -1.0;
                }
            }
        }
    }
}

/// Long rows, the maximum at the far end, in the middle, and repeated; one
/// row longer than a 2^23 span.
#[test]
fn long_rows() {
    let mut r = rng(51);
    for b in backends() {
        let sm = Softmax::new().backend(b);
        for n in [4096usize, 50257, 262144] {
            let mut x = normal_row(&mut r, n, 3.0);
            for at in [n - 1, n / 2, 0, 17] {
                x[at] = 1e9;
                assert_eq!(argmax(&sm, &x), reference::argmax(&x), "{b} n={n} at={at}");
            }
        }
    }
    let n = (1 << 23) + 1000;
    let mut x = vec![1.0f32; n];
    x[(1 << 23) + 5] = 2.0;
    x[(1 << 23) + 900] = 2.0;
    for b in backends() {
        assert_eq!(
            argmax(&Softmax::new().backend(b), &x),
            Some((1 << 23) + 5),
            "{b} beyond one span"
        );
    }
}

#[test]
fn rows_threads_and_shapes() {
    let mut r = rng(52);
    let x: Vec<f32> = normal_row(&mut r, 300 * 129, 3.0)
        .iter()
        .map(|v| v.round())
        .collect();
    let want: Vec<Option<usize>> = x.chunks(129).map(reference::argmax).collect();
    for b in backends() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![None; 300];
            pool.install(|| Softmax::new().backend(b).run_argmax_rows(&x, 129, &mut out))
                .unwrap();
            assert_eq!(out, want, "{b} threads={threads}");
        }
    }
    let mut out = vec![None; 3];
    assert_eq!(
        simd_softmax::argmax_rows(&x[..6], 3, &mut out),
        Err(Error::RowOutputs { rows: 2, output: 3 })
    );
    assert_eq!(
        simd_softmax::argmax_rows(&x[..6], 4, &mut out[..1]),
        Err(Error::RaggedRows { len: 6, row_len: 4 })
    );
    assert_eq!(out, vec![None; 3]);
}
