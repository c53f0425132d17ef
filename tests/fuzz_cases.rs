//! The fuzz targets' checks on stable: every committed regression under
//! `fuzz/regressions/<target>/` is replayed, and a few thousand
//! `rand`-generated inputs go through the same decoding and checks as the
//! fuzzer's, so machines without nightly run the same oracle.

#[path = "check/mod.rs"]
mod check;

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use check::{ExpCase, SoftmaxCase};
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
fn replay<T: for<'a> Arbitrary<'a> + Debug, R>(target: &str, check: impl Fn(&T) -> R) -> usize {
    let dir = regressions(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.retain(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'));
    files.sort();
    for f in &files {
        eprintln!("replaying {}", f.display());
        run(&std::fs::read(f).unwrap(), &check);
    }
    files.len()
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
    let mut rng = StdRng::seed_from_u64(seed);
    let mut results = Vec::new();
    for i in 0..3000 {
        let bytes = random_bytes(&mut rng, 300);
        if let Ok(case) = SoftmaxCase::arbitrary_take_rest(Unstructured::new(&bytes))
            && check::expand(&case.items).len() > 16384
            && i % 50 != 0
        {
            continue;
        }
        results.extend(run::<SoftmaxCase, _>(&bytes, &check));
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
