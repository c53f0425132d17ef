//! The fuzz targets' checks on stable: every committed regression under
//! `fuzz/regressions/<target>/` is replayed, and a few thousand
//! `rand`-generated inputs go through the same decoding and checks as the
//! fuzzer's, so machines without nightly run the same oracle.

#[path = "check/mod.rs"]
mod check;

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use check::{BackwardCase, CrossEntropyCase, ExpCase, SampleCase, SettingsCase, SoftmaxCase};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn regressions(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target)
}

/// Decodes `bytes` the way `fuzz_target!` does and runs `check`; on a
/// failure prints the case's reproducer first.
fn run<T: for<'a> Arbitrary<'a> + Debug, R>(bytes: &[u8], check: impl Fn(&T) -> R) -> Option<R> {
    let case = T::arbitrary_take_rest(Unstructured::new(bytes)).ok()?;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&case))) {
        Ok(r) => Some(r),
        Err(panic) => {
            eprintln!("failing case:\n{case:?}");
            std::panic::resume_unwind(panic)
        }
    }
}

/// Replays every file in `fuzz/regressions/<target>/`; returns how many.
/// The folder must exist (a missing one would count as zero files and
/// pass), and every kept input must still decode into a case (one that
/// no longer does tests nothing).
fn replay<T: for<'a> Arbitrary<'a> + Debug, R>(target: &str, check: impl Fn(&T) -> R) -> usize {
    let dir = regressions(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (every fuzz target has its folder)", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.retain(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'));
    files.sort();
    for f in &files {
        eprintln!("replaying {}", f.display());
        let decoded = run(&std::fs::read(f).unwrap(), &check);
        assert!(
            decoded.is_some(),
            "{} no longer decodes into a {} case",
            f.display(),
            std::any::type_name::<T>()
        );
    }
    files.len()
}

/// Every target in `fuzz/Cargo.toml` has a regression folder and a replay
/// test here.
#[test]
fn every_fuzz_target_has_its_regressions() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    let this = std::fs::read_to_string(file!()).unwrap_or_else(|_| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_cases.rs"))
            .unwrap()
    });
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "simd-softmax-fuzz")
        .collect();
    assert!(targets.len() >= 9, "{targets:?}");
    for t in targets {
        assert!(regressions(t).is_dir(), "fuzz/regressions/{t}/ is missing");
        assert!(
            this.contains(&format!("fn {t}_regressions()")),
            "no replay test for {t}"
        );
    }
}

/// Random bytes of random length: the fuzzer's raw input, from `rand`.
fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.random_range(0..max_len);
    (0..len).map(|_| rng.random()).collect()
}

#[test]
fn softmax_diff_regressions() {
    let n = replay::<SoftmaxCase, _>("softmax_diff", SoftmaxCase::check);
    println!("softmax_diff: replayed {n} regression inputs");
}

#[test]
fn log_softmax_diff_regressions() {
    let n = replay::<SoftmaxCase, _>("log_softmax_diff", SoftmaxCase::check_log);
    println!("log_softmax_diff: replayed {n} regression inputs");
}

#[test]
fn argmax_diff_regressions() {
    let n = replay::<SoftmaxCase, _>("argmax_diff", SoftmaxCase::check_argmax);
    println!("argmax_diff: replayed {n} regression inputs");
}

#[test]
fn settings_diff_regressions() {
    let n = replay::<SettingsCase, _>("settings_diff", SettingsCase::check);
    println!("settings_diff: replayed {n} regression inputs");
}

#[test]
fn cross_entropy_diff_regressions() {
    let n = replay::<CrossEntropyCase, _>("cross_entropy_diff", CrossEntropyCase::check);
    println!("cross_entropy_diff: replayed {n} regression inputs");
}

#[test]
fn backward_diff_regressions() {
    let n = replay::<BackwardCase, _>("backward_diff", BackwardCase::check);
    println!("backward_diff: replayed {n} regression inputs");
}

#[test]
fn entropy_diff_regressions() {
    let n = replay::<SoftmaxCase, _>("entropy_diff", SoftmaxCase::check_entropy);
    println!("entropy_diff: replayed {n} regression inputs");
}

#[test]
fn sample_diff_regressions() {
    let n = replay::<SampleCase, _>("sample_diff", SampleCase::check);
    println!("sample_diff: replayed {n} regression inputs");
}

#[test]
fn exp_diff_regressions() {
    let n = replay::<ExpCase, _>("exp_diff", ExpCase::check);
    println!("exp_diff: replayed {n} regression inputs");
}

/// Found by `softmax_diff_random_cases`: 10516 entries of +inf got
/// `1/(k as f32)`, and the oracle compared f32 against the unrounded f64
/// 1/k. Both fixed; the row stays here.
#[test]
fn regression_many_pos_inf() {
    check::check_softmax(
        &check::from_runs(&[(0x7f800000, 10516), (0x42600000, 1)]),
        10517,
        108,
    );
}

/// 3000 random byte strings through `check`; random bytes often decode to
/// long runs, so only one long row (over 16384 values, up to 2^17) in 50 is
/// kept, for speed. Returns how many were checked and their results.
fn random_softmax_cases<R>(seed: u64, check: impl Fn(&SoftmaxCase) -> R) -> Vec<R> {
    random_cases(seed, |c: &SoftmaxCase| c, check)
}

/// [`random_softmax_cases`] for any case type holding its rows as a
/// `SoftmaxCase` (`rows` picks them out).
fn random_cases<T: for<'a> Arbitrary<'a> + Debug, R>(
    seed: u64,
    rows: impl Fn(&T) -> &SoftmaxCase,
    check: impl Fn(&T) -> R,
) -> Vec<R> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut results = Vec::new();
    for i in 0..3000 {
        let bytes = random_bytes(&mut rng, 300);
        if let Ok(case) = T::arbitrary_take_rest(Unstructured::new(&bytes))
            && check::expand(&rows(&case).items).len() > 16384
            && i % 50 != 0
        {
            continue;
        }
        results.extend(run::<T, _>(&bytes, &check));
    }
    assert!(
        results.len() > 1000,
        "only {} inputs checked",
        results.len()
    );
    results
}

#[test]
fn softmax_diff_random_cases() {
    let results = random_softmax_cases(30, SoftmaxCase::check);
    let worst = results
        .iter()
        .fold(check::Errors::default(), |a, &e| a.merge(e));
    println!(
        "softmax_diff: {} random cases, worst {worst:?}",
        results.len()
    );
}

#[test]
fn log_softmax_diff_random_cases() {
    let results = random_softmax_cases(33, SoftmaxCase::check_log);
    let worst = results.iter().fold(0.0f64, |a, &e| a.max(e));
    println!(
        "log_softmax_diff: {} random cases, worst {worst:.3} of the bound",
        results.len()
    );
}

#[test]
fn argmax_diff_random_cases() {
    let results = random_softmax_cases(34, SoftmaxCase::check_argmax);
    println!("argmax_diff: {} random cases", results.len());
}

#[test]
fn settings_diff_random_cases() {
    let results = random_cases(35, |c: &SettingsCase| &c.rows, SettingsCase::check);
    let worst = results
        .iter()
        .fold((0.0f64, 0.0f64), |a, e| (a.0.max(e.0), a.1.max(e.1)));
    println!(
        "settings_diff: {} random cases, worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
        results.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn cross_entropy_diff_random_cases() {
    let results = random_cases(36, |c: &CrossEntropyCase| &c.rows, CrossEntropyCase::check);
    let worst = results
        .iter()
        .fold((0.0f64, 0.0f64), |a, e| (a.0.max(e.0), a.1.max(e.1)));
    println!(
        "cross_entropy_diff: {} random cases, worst {:.3} (loss), {:.3} (gradient) of the bound",
        results.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn backward_diff_random_cases() {
    let results = random_cases(37, |c: &BackwardCase| &c.rows, BackwardCase::check);
    let worst = results
        .iter()
        .fold((0.0f64, 0.0f64), |a, e| (a.0.max(e.0), a.1.max(e.1)));
    println!(
        "backward_diff: {} random cases, worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
        results.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn entropy_diff_random_cases() {
    let results = random_softmax_cases(38, SoftmaxCase::check_entropy);
    let worst = results.iter().fold(0.0f64, |a, &e| a.max(e));
    println!(
        "entropy_diff: {} random cases, worst {worst:.3} of the bound",
        results.len()
    );
}

#[test]
fn sample_diff_random_cases() {
    let results = random_cases(39, |c: &SampleCase| &c.rows, SampleCase::check);
    let worst = results.iter().fold(0.0f64, |a, &e| a.max(e));
    println!(
        "sample_diff: {} random cases, worst relative error {worst:.2e}",
        results.len()
    );
}

#[test]
fn exp_diff_random_cases() {
    let mut rng = StdRng::seed_from_u64(31);
    let mut worst = 0.0f64;
    let mut checked = 0;
    for _ in 0..3000 {
        if let Some(e) = run::<ExpCase, _>(&random_bytes(&mut rng, 2000), ExpCase::check) {
            worst = worst.max(e);
            checked += 1;
        }
    }
    println!("exp_diff: {checked} random cases, worst {worst:.3} ULP");
    assert!(checked > 2500, "only {checked} inputs decoded");
}

/// Writes the seed corpora the fuzz runs start from (`.ci/run` calls this
/// before fuzzing): random inputs from a fixed seed, so nothing hand-made.
#[test]
#[ignore = "writes fuzz/corpus; run by .ci/run before fuzzing"]
fn write_seed_corpus() {
    let mut rng = StdRng::seed_from_u64(32);
    for (target, max_len) in [
        ("softmax_diff", 600),
        ("log_softmax_diff", 600),
        ("argmax_diff", 600),
        ("settings_diff", 600),
        ("cross_entropy_diff", 600),
        ("backward_diff", 600),
        ("entropy_diff", 600),
        ("sample_diff", 600),
        ("exp_diff", 400),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..64 {
            std::fs::write(
                dir.join(format!("seed-{k:02}")),
                random_bytes(&mut rng, max_len),
            )
            .unwrap();
        }
    }
}

/// Found by `settings_diff_random_cases`: the keep mask was applied before
/// the additive mask, so a dropped entry (−inf) plus an additive +inf made
/// NaN, and the row NaN instead of the +inf split. The keep mask now
/// applies last.
#[test]
fn regression_keep_mask_then_additive_inf() {
    SettingsCase {
        rows: SoftmaxCase {
            row_len: check::RowLen::Any(14228),
            offset: 138,
            items: vec![
                check::Item::Run {
                    count: 52,
                    of: check::Scalar::Bits(0x1a5f_442c),
                },
                check::Item::LongRun {
                    kibi: 125,
                    of: check::Scalar::Bits(0xd5e0_0000),
                },
            ],
        },
        temperature: check::TemperatureChoice::One,
        scale: Some(128),
        keep: Some(check::MaskSeed {
            per_row: true,
            seed: 16129620586150417050,
        }),
        add: Some(check::MaskSeed {
            per_row: false,
            seed: 9782406406402035757,
        }),
        causal: Some(109),
    }
    .check();
}

/// Found by `backward_diff_random_cases`: Σg of 197 × (−f32::MAX) overflows
/// f32; rounded to −inf it made outputs inf or NaN whose exact values are
/// finite (and on the non-FMA backends the product overflowed before the
/// add). The sum is now carried as a power of two times an f32.
#[test]
fn regression_backward_sum_beyond_f32() {
    BackwardCase {
        rows: SoftmaxCase {
            row_len: check::RowLen::Whole,
            offset: 34,
            items: vec![
                check::Item::One(check::Scalar::Bits(0x3f80_0000)),
                check::Item::One(check::Scalar::Bits(0xc2ae_0000)),
                check::Item::Run {
                    count: 195,
                    of: check::Scalar::Bits(0x42b0_c09d),
                },
            ],
        },
        grad: vec![check::Item::One(check::Scalar::Bits(0xff7f_ffff))],
    }
    .check();
}

/// Found by `sample_diff_random_cases`: two logits (−3e-31 and 2.6e-17)
/// whose f64 weights at t = 2.06 are both exactly 1; the reference ordered
/// them by index, the kernel (rightly) by logit. The reference now sorts by
/// logit too.
#[test]
fn regression_sample_order_beyond_f64() {
    SampleCase {
        rows: SoftmaxCase {
            row_len: check::RowLen::Whole,
            offset: 206,
            items: vec![
                check::Item::One(check::Scalar::Bits(0x8cc4_1abe)),
                check::Item::One(check::Scalar::Bits(0x23ec_858c)),
            ],
        },
        temperature: 66,
        top_k: Some(52774),
        top_p: Some(167),
        min_p: None,
        seed: 15751242850349344463,
    }
    .check();
}
