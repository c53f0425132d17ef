//! `(max, sum)` partials (`partial`, `Partial::merge`, `exp_shifted`,
//! `Softmax::run_with`) against the f64 reference: the sharded-row recipe
//! (shards merged in any order, each normalized within the core bound;
//! fixed parts merged in order give one online call's bits), the special
//! rows, and the errors.

mod common;

use common::check::{bits, check_row};
use common::{backends, normal_row, rng};
use rand::RngExt;
use simd_softmax::{
    Algorithm, Error, FIXED_PART_LEN, Parameter, Partial, Softmax, exp_shifted,
    exp_shifted_in_place, partial, partial_rows, reference,
};

/// Rows around the lane and block boundaries, at several scales, and
/// hostile ones.
fn rows() -> Vec<Vec<f32>> {
    let mut r = rng(31);
    let mut rows = Vec::new();
    for n in (0..=40).chain([63, 64, 65, 255, 256, 257, 1000, 16383, 16384, 16385, 40000]) {
        for sigma in [0.5f32, 8.0, 100.0] {
            rows.push(normal_row(&mut r, n, sigma));
        }
    }
    rows.extend([
        vec![f32::NAN, 1.0, 2.0],
        vec![1.0, f32::INFINITY, 3.0, f32::INFINITY],
        vec![f32::NEG_INFINITY; 40],
        vec![f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY],
        vec![f32::MAX, -f32::MAX, 0.0, f32::MAX],
        vec![f32::from_bits(1); 33],
        vec![3.0; 300],
        vec![-1e30, 1e-40, -1e-40, 0.0],
    ]);
    rows
}

fn check_partial(p: Partial, row: &[f32], what: &str) -> f64 {
    let (max, sum) = reference::partial_f64(row);
    if max.is_nan() {
        assert!(p.max().is_nan() && p.sum().is_nan(), "{what}: {p:?}");
        return 0.0;
    }
    assert_eq!(p.max(), max, "{what}: max");
    if !max.is_finite() {
        assert_eq!(p.sum(), sum, "{what}: sum of a special row");
        return 0.0;
    }
    let share = (p.sum() - sum).abs() / reference::partial_sum_tolerance(sum);
    assert!(
        share <= 1.0,
        "{what}: sum {} vs {sum}: {share} of the bound",
        p.sum()
    );
    share
}

#[test]
fn partials_of_rows_are_within_the_bound() {
    let mut worst = 0.0f64;
    for row in rows() {
        for b in backends() {
            let what = format!("n={} {b:?}", row.len());
            let p = Softmax::new().backend(b).run_partial(&row).unwrap();
            worst = worst.max(check_partial(p, &row, &what));
            if !row.is_empty() {
                // Rows of a batch give the same partial as alone.
                let batch = [row.clone(), row.clone()].concat();
                let mut out = [Partial::EMPTY; 2];
                let sm = Softmax::new().backend(b);
                sm.run_partial_rows(&batch, row.len(), &mut out).unwrap();
                assert!(
                    out.iter().all(|q| same(*q, p)),
                    "{what}: rows {out:?} vs {p:?}"
                );
            }
        }
    }
    eprintln!("partial sums: worst {worst:.3} of the bound");
}

/// Equal, NaN equal to NaN.
fn same(a: Partial, b: Partial) -> bool {
    let bits = |p: Partial| (p.max().to_bits(), p.sum().to_bits());
    bits(a) == bits(b) || (a.sum().is_nan() && b.sum().is_nan())
}

/// Cuts `n` values into `shards` pieces at random points (some empty).
fn cuts(n: usize, shards: usize, seed: u64) -> Vec<std::ops::Range<usize>> {
    let mut r = rng(seed);
    let mut points: Vec<usize> = (1..shards).map(|_| r.random_range(0..=n)).collect();
    points.sort();
    let mut start = 0;
    let mut ranges = Vec::new();
    for p in points.into_iter().chain([n]) {
        ranges.push(start..p);
        start = p;
    }
    ranges
}

/// Merges `parts` in a random order, as a random tree.
fn merge_shuffled(parts: &[Partial], seed: u64) -> Partial {
    let mut r = rng(seed);
    let mut pool = parts.to_vec();
    while pool.len() > 1 {
        let a = pool.swap_remove(r.random_range(0..pool.len()));
        let b = pool.swap_remove(r.random_range(0..pool.len()));
        pool.push(if r.random::<bool>() {
            a.merge(b)
        } else {
            b.merge(a)
        });
    }
    pool.pop().unwrap_or(Partial::EMPTY)
}

/// The recipe a distributed engine follows: a 256k row in 2, 3 and 8
/// shards; each shard's partial; merged in any order; each shard
/// normalized with the total: within the core bound of the row's softmax.
#[test]
fn sharded_rows_normalize_within_the_core_bound() {
    let mut r = rng(5);
    let mut worst = 0.0f64;
    let mut row = normal_row(&mut r, 256_000, 4.0);
    let mut hostile = row.clone();
    hostile[1000] = f32::NEG_INFINITY;
    hostile[200_000] = 80.0; // far above the rest: most of the mass
    row[7] = -1e30;
    for x in [row, hostile] {
        for b in backends() {
            let sm = Softmax::new().backend(b);
            for shards in [2, 3, 8] {
                for seed in 0..3 {
                    let ranges = cuts(x.len(), shards, seed * 10 + shards as u64);
                    let parts: Vec<Partial> = ranges
                        .iter()
                        .map(|r| sm.run_partial(&x[r.clone()]).unwrap())
                        .collect();
                    let total = merge_shuffled(&parts, seed);
                    let mut y = vec![0.0f32; x.len()];
                    for r in &ranges {
                        sm.run_with(&x[r.clone()], &mut y[r.clone()], total)
                            .unwrap();
                    }
                    let what = || format!("{b:?} shards={shards} seed={seed}");
                    worst = worst.max(check_row(&x, &y, &what).bound_ratio);
                }
            }
        }
    }
    eprintln!("sharded softmax: worst {worst:.3} of the core bound");
}

/// Shards cut at the fixed parts, merged from the first on: one online
/// call's bits, in place too.
#[test]
fn fixed_part_shards_give_the_online_bits() {
    let mut r = rng(6);
    for n in [3 * FIXED_PART_LEN, 8 * FIXED_PART_LEN + 77, 256_000] {
        let x = normal_row(&mut r, n, 3.0);
        for b in backends() {
            let sm = Softmax::new().backend(b);
            let mut whole = vec![0.0f32; n];
            sm.algorithm(Algorithm::Online).run(&x, &mut whole).unwrap();
            for parts_per_shard in [1, 3] {
                let shard = parts_per_shard * FIXED_PART_LEN;
                let total = x
                    .chunks(FIXED_PART_LEN)
                    .map(|c| sm.run_partial(c).unwrap())
                    .fold(Partial::EMPTY, Partial::merge);
                let mut y = x.clone();
                for c in y.chunks_mut(shard) {
                    sm.run_with_in_place(c, total).unwrap();
                }
                assert!(bits(&y) == bits(&whole), "{b:?} n={n} shard={shard}");
            }
        }
    }
}

#[test]
fn special_partials_merge_by_the_rules() {
    let nan = partial(&[1.0, f32::NAN]).unwrap();
    let inf2 = partial(&[f32::INFINITY, 0.0, f32::INFINITY]).unwrap();
    let inf1 = partial(&[f32::INFINITY]).unwrap();
    let none = partial(&[f32::NEG_INFINITY, f32::NEG_INFINITY]).unwrap();
    let plain = partial(&[0.0, 0.0]).unwrap();
    assert!(nan.sum().is_nan() && nan.max().is_nan());
    assert_eq!((inf2.max(), inf2.sum()), (f32::INFINITY, 2.0));
    assert_eq!(none, Partial::EMPTY);
    assert_eq!(partial(&[]).unwrap(), Partial::EMPTY);
    assert_eq!((plain.max(), plain.sum()), (0.0, 2.0));
    for p in [nan, inf2, none, plain] {
        assert!(same(p.merge(Partial::EMPTY), p) && same(Partial::EMPTY.merge(p), p));
        assert!(p.merge(nan).sum().is_nan() && nan.merge(p).sum().is_nan());
    }
    let infs = inf2.merge(plain).merge(inf1);
    assert_eq!((infs.max(), infs.sum()), (f32::INFINITY, 3.0));
    assert_eq!(plain.merge(plain).sum(), 4.0);
    assert_eq!(plain.logsumexp(), 2f32.ln());
    assert_eq!(inf1.logsumexp(), f32::INFINITY);
    assert_eq!(none.logsumexp(), f32::NEG_INFINITY);
    assert!(nan.logsumexp().is_nan());
    assert!(Partial::new(f32::NAN, 1.0).sum().is_nan());
    assert_eq!(Partial::new(f32::NEG_INFINITY, 5.0), Partial::EMPTY);
    // Merged sums beyond f32's range stay in f64.
    let wide = Partial::new(0.0, 1e300);
    assert_eq!(wide.merge(wide).sum(), 2e300);

    // Normalizing with special totals: what softmax gives such a row.
    let sm = Softmax::new();
    let x = [f32::INFINITY, 1.0, f32::NEG_INFINITY];
    let mut y = [7.0f32; 3];
    sm.run_with(&x, &mut y, infs).unwrap();
    assert_eq!(y, [1.0 / 3.0, 0.0, 0.0]);
    sm.run_with(&x, &mut y, nan).unwrap();
    assert!(y.iter().all(|v| v.is_nan()));
    sm.run_with(&x, &mut y, none).unwrap();
    assert_eq!(y, [0.0; 3]);
}

#[test]
fn exp_shifted_is_within_the_bound() {
    let mut worst = (0.0f64, 0.0f64);
    for row in rows() {
        let finite_max = row
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0f32, f32::max);
        for m in [finite_max, finite_max + 3.5, 0.0] {
            let mut y = vec![7.0f32; row.len()];
            let sum = exp_shifted(&row, &mut y, m).unwrap();
            let mut in_place = row.clone();
            assert_eq!(
                exp_shifted_in_place(&mut in_place, m).unwrap().to_bits(),
                sum.to_bits()
            );
            assert_eq!(bits(&in_place), bits(&y));
            let mut exact_sum = 0.0f64;
            let mut nan = false;
            for (&x, &e) in row.iter().zip(&y) {
                let want = (f64::from(x) - f64::from(m)).exp();
                if x.is_nan() {
                    assert!(e.is_nan());
                    nan = true;
                    continue;
                }
                exact_sum += want;
                if x - m > simd_softmax::exp::DOMAIN_MAX {
                    // Beyond the exp's domain: +inf (documented).
                    assert_eq!(e, f32::INFINITY, "x={x} m={m}");
                    continue;
                }
                let share =
                    (f64::from(e) - want).abs() / reference::exp_shifted_tolerance(x, m, want);
                assert!(share <= 1.0, "x={x} m={m}: {e} vs {want}");
                worst.0 = worst.0.max(share);
            }
            if nan {
                assert!(sum.is_nan());
            } else if exact_sum.is_finite() && exact_sum < f64::from(f32::MAX) {
                let share = (sum - exact_sum).abs()
                    / reference::partial_sum_tolerance(exact_sum).max(f64::MIN_POSITIVE);
                assert!(
                    share <= 1.0 || exact_sum < 1e-37,
                    "n={} m={m}: sum {sum} vs {exact_sum}",
                    row.len()
                );
                worst.1 = worst.1.max(if exact_sum < 1e-37 { 0.0 } else { share });
            }
        }
    }
    eprintln!(
        "exp_shifted: worst {:.3} of the value bound, {:.3} of the sum bound",
        worst.0, worst.1
    );
}

#[test]
fn bad_calls_are_errors_and_write_nothing() {
    let mut y = [7.0f32; 2];
    for m in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let err = exp_shifted(&[1.0, 2.0], &mut y, m).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidParameter {
                name: Parameter::Shift,
                ..
            }
        ));
    }
    assert!(matches!(
        exp_shifted(&[1.0], &mut y, 0.0),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        Softmax::new().run_with(&[1.0], &mut y, Partial::new(1.0, 1.0)),
        Err(Error::LengthMismatch { .. })
    ));
    let mut out = [Partial::EMPTY; 3];
    assert!(matches!(
        partial_rows(&[1.0; 4], 2, &mut out),
        Err(Error::RowOutputs { .. })
    ));
    assert_eq!(y, [7.0; 2]);
    assert_eq!(out, [Partial::EMPTY; 3]);
}
