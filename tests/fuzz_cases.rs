//! The fuzz targets' checks on stable: every committed regression under
//! `fuzz/regressions/<target>/` is replayed, and a few thousand
//! `rand`-generated inputs go through the same decoding and checks as the
//! fuzzer's, so machines without nightly run the same oracle.

#[path = "check/mod.rs"]
mod check;

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use check::{
    BackwardCase, CrossEntropyCase, Encode, ExpCase, HalfCase, HasRows, Long, SampleCase,
    SettingsCase, ShapesCase, Short, SoftmaxCase,
};
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

/// Replays every file in `fuzz/regressions/<target>/` through `replay_one`
/// (which decodes it as the target does and runs its check, or returns
/// `false` when it does not decode); returns how many. The folder must
/// exist (a missing one would count as zero files and pass), and every kept
/// input must still decode into a case (one that no longer does tests
/// nothing).
fn replay(target: &str, replay_one: ReplayOne) -> usize {
    let dir = regressions(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (every fuzz target has its folder)", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.retain(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'));
    files.sort();
    for f in &files {
        eprintln!("replaying {}", f.display());
        assert!(
            replay_one(&std::fs::read(f).unwrap()),
            "{} no longer decodes into a {target} case",
            f.display(),
        );
    }
    files.len()
}

/// One input through a target's check: `false` when it does not decode.
type ReplayOne = fn(&[u8]) -> bool;

/// Every fuzz target with its check, as `fuzz/fuzz_targets/<name>.rs` runs
/// it on one input.
const TARGETS: [(&str, ReplayOne); 20] = [
    ("softmax_diff", |b| {
        long::<SoftmaxCase, _>(b, SoftmaxCase::check)
    }),
    ("log_softmax_diff", |b| {
        long::<SoftmaxCase, _>(b, SoftmaxCase::check_log)
    }),
    ("argmax_diff", |b| {
        long::<SoftmaxCase, _>(b, SoftmaxCase::check_argmax)
    }),
    ("entropy_diff", |b| {
        long::<SoftmaxCase, _>(b, SoftmaxCase::check_entropy)
    }),
    ("settings_diff", |b| {
        long::<SettingsCase, _>(b, SettingsCase::check)
    }),
    ("shapes_diff", |b| {
        long::<ShapesCase, _>(b, ShapesCase::check)
    }),
    ("cross_entropy_diff", |b| {
        long::<CrossEntropyCase, _>(b, CrossEntropyCase::check)
    }),
    ("backward_diff", |b| {
        long::<BackwardCase, _>(b, BackwardCase::check)
    }),
    ("sample_diff", |b| {
        long::<SampleCase, _>(b, SampleCase::check)
    }),
    ("half_diff", |b| long::<HalfCase, _>(b, HalfCase::check)),
    ("exp_diff", |b| run(b, ExpCase::check).is_some()),
    ("softmax_short", |b| {
        short::<SoftmaxCase, _>(b, SoftmaxCase::check)
    }),
    ("log_softmax_short", |b| {
        short::<SoftmaxCase, _>(b, SoftmaxCase::check_log)
    }),
    ("argmax_short", |b| {
        run(b, |c: &Short<SoftmaxCase>| {
            c.check(SoftmaxCase::check_argmax)
        })
        .is_some()
    }),
    ("entropy_short", |b| {
        run(b, |c: &Short<SoftmaxCase>| {
            c.check(SoftmaxCase::check_entropy)
        })
        .is_some()
    }),
    ("settings_short", |b| {
        short::<SettingsCase, _>(b, SettingsCase::check)
    }),
    ("cross_entropy_short", |b| {
        run(b, |c: &Short<CrossEntropyCase>| {
            c.check(CrossEntropyCase::check)
        })
        .is_some()
    }),
    ("backward_short", |b| {
        short::<BackwardCase, _>(b, BackwardCase::check)
    }),
    ("sample_short", |b| {
        short::<SampleCase, _>(b, SampleCase::check)
    }),
    ("half_short", |b| short::<HalfCase, _>(b, HalfCase::check)),
];

/// One input through a long target's check, in every configuration (the
/// fuzzer ran the one the input chose).
fn long<C: HasRows + for<'a> Arbitrary<'a> + Debug, R>(bytes: &[u8], check: fn(&C) -> R) -> bool {
    run(bytes, |c: &Long<C>| check(&c.case)).is_some()
}

/// One input through a companion target's check.
fn short<C: HasRows + for<'a> Arbitrary<'a> + Debug, R>(bytes: &[u8], check: fn(&C) -> R) -> bool {
    run(bytes, |c: &Short<C>| c.check(check)).is_some()
}

/// The names of the targets in `fuzz/Cargo.toml`.
fn manifest_targets() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "simd-softmax-fuzz")
        .map(str::to_owned)
        .collect()
}

/// Every target in `fuzz/Cargo.toml` has a regression folder, and every
/// input kept there passes that target's check.
#[test]
fn every_fuzz_target_replays_its_regressions() {
    let targets = manifest_targets();
    assert_eq!(targets.len(), TARGETS.len(), "{targets:?}");
    for t in &targets {
        let &(_, replay_one) = TARGETS
            .iter()
            .find(|(name, _)| name == t)
            .unwrap_or_else(|| panic!("no check for fuzz target {t} in TARGETS"));
        let n = replay(t, replay_one);
        println!("{t}: replayed {n} regression inputs");
    }
}

/// Random bytes of random length: the fuzzer's raw input, from `rand`.
fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.random_range(0..max_len);
    (0..len).map(|_| rng.random()).collect()
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
fn shapes_diff_random_cases() {
    let results = random_cases(36, |c: &ShapesCase| &c.rows, ShapesCase::check);
    let worst = results
        .iter()
        .fold((0.0f64, 0.0f64), |a, e| (a.0.max(e.0), a.1.max(e.1)));
    println!(
        "shapes_diff: {} random cases, worst {:.3} (softmax), {:.3} (log-softmax) of the bound",
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
fn half_diff_random_cases() {
    let results = random_cases(42, |c: &HalfCase| &c.rows, HalfCase::check);
    let worst = results.iter().fold(0.0f64, |a, &e| a.max(e));
    println!(
        "half_diff: {} random cases, worst {worst:.3} of the bound",
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
    for (target, _) in TARGETS {
        let max_len = if target == "exp_diff" { 400 } else { 600 };
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

/// The companion targets' cut: an exact prefix of at most
/// `Short::MAX_LEN` values, whatever the items.
#[test]
fn short_cases_are_prefixes() {
    let mut rng = StdRng::seed_from_u64(40);
    let mut cut = 0;
    for _ in 0..3000 {
        let bytes = random_bytes(&mut rng, 300);
        let Ok(case) = SoftmaxCase::arbitrary_take_rest(Unstructured::new(&bytes)) else {
            continue;
        };
        let max = Short::<SoftmaxCase>::MAX_LEN;
        let full = check::expand(&case.items);
        let short = check::expand(&case.truncated(max).items);
        assert_eq!(short.len(), full.len().min(max));
        assert_eq!(check::bits(&short), check::bits(&full[..short.len()]));
        cut += usize::from(full.len() > max);
    }
    assert!(cut > 100, "only {cut} cases were long enough to cut");
}

/// Random inputs through every companion target's check, as the fuzzer
/// feeds them.
#[test]
fn short_targets_random_cases() {
    let mut rng = StdRng::seed_from_u64(41);
    for &(target, replay_one) in TARGETS.iter().filter(|(t, _)| t.ends_with("_short")) {
        let decoded = (0..300)
            .filter(|_| replay_one(&random_bytes(&mut rng, 300)))
            .count();
        println!("{target}: {decoded} random cases");
        assert!(decoded > 200, "{target}: only {decoded} inputs decoded");
    }
}

// ------------------------------------------------------------ kept inputs

/// A kept input: its target, its file name under
/// `fuzz/regressions/<target>/`, and its bytes, encoded from the readable
/// case after checking that they decode back to it.
struct Kept {
    target: &'static str,
    name: &'static str,
    bytes: Vec<u8>,
}

/// A kept input of a long target: `case` as the target's [`Long`] input
/// (its configuration bytes are 0; the replay checks every configuration).
fn kept_long<C: HasRows + for<'a> Arbitrary<'a> + Encode + PartialEq + Debug>(
    target: &'static str,
    name: &'static str,
    case: C,
) -> Kept {
    let input = Long {
        backend: 0,
        algorithm: 0,
        case,
    };
    kept(target, name, input)
}

fn kept<T: for<'a> Arbitrary<'a> + Encode + PartialEq + Debug>(
    target: &'static str,
    name: &'static str,
    case: T,
) -> Kept {
    let bytes = case.to_bytes();
    let decoded = T::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
    assert!(
        decoded == case,
        "{target}/{name} does not decode back to its case"
    );
    assert!(
        name.starts_with("kept-"),
        "{name}: kept inputs are named kept-*"
    );
    Kept {
        target,
        name,
        bytes,
    }
}

/// The inputs of bugs this crate fixed, one per bug, as the cases that
/// found them (decoded from the fuzzer's artifact, or from the failing
/// random case). `kept_inputs_are_in_their_folders` checks that each is
/// in `fuzz/regressions/<target>/` byte for byte (the replay above runs
/// it); `SIMD_SOFTMAX_WRITE_KEPT=1` makes that test write them instead.
fn kept_inputs() -> Vec<Kept> {
    use check::{Item, MaskSeed, RowLen, Scalar, TemperatureChoice};
    let rows = |row_len, offset, items| SoftmaxCase {
        row_len,
        offset,
        items,
    };
    vec![
        // 10516 entries of +inf and one 56.0 got `1/(k as f32)` instead of
        // 1/k rounded from f64 (and the oracle compared against the
        // unrounded f64 1/k). Found by `softmax_diff_random_cases`.
        kept_long(
            "softmax_diff",
            "kept-many-pos-inf",
            rows(
                RowLen::Whole,
                108,
                vec![
                    Item::LongRun {
                        kibi: 10,
                        of: Scalar::Bits(0x7f80_0000),
                    },
                    Item::Run {
                        count: 255,
                        of: Scalar::Bits(0x7f80_0000),
                    },
                    Item::Run {
                        count: 21,
                        of: Scalar::Bits(0x7f80_0000),
                    },
                    Item::One(Scalar::Bits(0x4260_0000)),
                ],
            ),
        ),
        // The keep mask was applied before the additive mask, so a dropped
        // entry (−inf) plus an additive +inf made NaN, and the row NaN
        // instead of the +inf split. Found by `settings_diff_random_cases`.
        kept_long(
            "settings_diff",
            "kept-keep-mask-then-additive-inf",
            SettingsCase {
                rows: rows(
                    RowLen::Any(14228),
                    138,
                    vec![
                        Item::Run {
                            count: 52,
                            of: Scalar::Bits(0x1a5f_442c),
                        },
                        Item::LongRun {
                            kibi: 125,
                            of: Scalar::Bits(0xd5e0_0000),
                        },
                    ],
                ),
                temperature: TemperatureChoice::One,
                scale: Some(128),
                keep: Some(MaskSeed {
                    per_row: true,
                    seed: 16129620586150417050,
                }),
                add: Some(MaskSeed {
                    per_row: false,
                    seed: 9782406406402035757,
                }),
                causal: Some(109),
            },
        ),
        // Σg of 197 × (−f32::MAX) overflows f32: rounded to −inf it made
        // outputs inf or NaN whose exact values are finite (and on the
        // non-FMA backends the product overflowed before the add). Found by
        // `backward_diff_random_cases`.
        kept_long(
            "backward_diff",
            "kept-backward-sum-beyond-f32",
            BackwardCase {
                rows: rows(
                    RowLen::Whole,
                    34,
                    vec![
                        Item::One(Scalar::Bits(0x3f80_0000)),
                        Item::One(Scalar::Bits(0xc2ae_0000)),
                        Item::Run {
                            count: 195,
                            of: Scalar::Bits(0x42b0_c09d),
                        },
                    ],
                ),
                grad: vec![Item::One(Scalar::Bits(0xff7f_ffff))],
            },
        ),
        // Gradients of the smallest subnormal: the backward bound had no
        // floor below the smallest normal. Found by `backward_diff` in CI.
        kept_long(
            "backward_diff",
            "kept-subnormal-gradients",
            BackwardCase {
                rows: rows(
                    RowLen::Whole,
                    87,
                    vec![
                        Item::Run {
                            count: 23,
                            of: Scalar::Special(130),
                        },
                        Item::One(Scalar::Scaled(-1, -1)),
                        Item::Run {
                            count: 165,
                            of: Scalar::Bits(0xb645_1f68),
                        },
                    ],
                ),
                grad: vec![Item::LongRun {
                    kibi: 115,
                    of: Scalar::Special(55),
                }],
            },
        ),
        // An additive mask of +inf on a −inf logit makes NaN, and the row
        // NaN; the reference made it −inf. Found by `settings_diff` in CI.
        kept_long(
            "settings_diff",
            "kept-neg-inf-plus-inf-logit",
            SettingsCase {
                rows: rows(
                    RowLen::Divisor(140),
                    211,
                    vec![Item::LongRun {
                        kibi: 225,
                        of: Scalar::Special(2),
                    }],
                ),
                temperature: TemperatureChoice::Finite(112),
                scale: None,
                keep: Some(MaskSeed {
                    per_row: false,
                    seed: 12957623832641000122,
                }),
                add: Some(MaskSeed {
                    per_row: true,
                    seed: 2887534202030648343,
                }),
                causal: Some(78),
            },
        ),
        // A log-probability below −f32::MAX (f32::MIN, scaled by 209/64, in a
        // row whose maximum is −1.4e-17) is −inf, its correctly rounded f32; the
        // oracle wanted the finite f64. Found by `settings_diff` in CI.
        kept_long(
            "settings_diff",
            "kept-log-beyond-f32-max",
            SettingsCase {
                rows: rows(
                    RowLen::Divisor(169),
                    128,
                    vec![
                        Item::One(Scalar::Special(244)),
                        Item::One(Scalar::Bits(0xcf59_67ad)),
                        Item::Run {
                            count: 76,
                            of: Scalar::Scaled(-127, -125),
                        },
                    ],
                ),
                temperature: TemperatureChoice::One,
                scale: Some(208),
                keep: None,
                add: None,
                causal: None,
            },
        ),
        // f32::MAX at scale 223/64 under an additive mask: the kernels' f32
        // logit `x·c + a` overflows to +inf (so the +inf entries share the
        // mass), the reference's f64 logit did not; and without FMA an
        // additive −inf on such an entry made inf − inf = NaN. Both now
        // follow the f32 logit as FMA gives it. Found by `settings_short`.
        kept_long(
            "settings_diff",
            "kept-logit-beyond-f32-under-additive-mask",
            SettingsCase {
                rows: rows(
                    RowLen::Divisor(129),
                    236,
                    vec![Item::LongRun {
                        kibi: 8,
                        of: Scalar::Special(147),
                    }],
                ),
                temperature: TemperatureChoice::One,
                scale: Some(222),
                keep: Some(MaskSeed {
                    per_row: true,
                    seed: 217020518514230019,
                }),
                add: Some(MaskSeed {
                    per_row: true,
                    seed: 217020518514230019,
                }),
                causal: Some(3),
            },
        ),
        // A row with a NaN (0xffffff91) that the max passed over: the NaN
        // that came out carried another payload in place than out of place
        // (blocked, AVX-512, in the fuzz build's code; the release build
        // happened to agree). A NaN row is now the one quiet NaN on every
        // path. Found by `softmax_short`.
        kept_long(
            "softmax_diff",
            "kept-nan-payload-in-place",
            rows(
                RowLen::Divisor(87),
                87,
                vec![
                    Item::Run {
                        count: 87,
                        of: Scalar::Bits(1459617879),
                    },
                    Item::Run {
                        count: 87,
                        of: Scalar::Logit(22359),
                    },
                    Item::Run {
                        count: 87,
                        of: Scalar::Logit(22359),
                    },
                    Item::Run {
                        count: 87,
                        of: Scalar::Logit(15959),
                    },
                    Item::Run {
                        count: 8,
                        of: Scalar::Bits(0xffff_ff91),
                    },
                    Item::One(Scalar::Scaled(0, 87)),
                    Item::Run {
                        count: 87,
                        of: Scalar::Logit(12887),
                    },
                    Item::Run {
                        count: 87,
                        of: Scalar::Logit(22359),
                    },
                    Item::Run {
                        count: 87,
                        of: Scalar::Scaled(-1, -1),
                    },
                    Item::Run {
                        count: 153,
                        of: Scalar::Special(0),
                    },
                ],
            ),
        ),
        // Logits of 2.2e13 at scale 21/64 under an additive mask: the f32
        // logit cannot resolve the mask's values (its rounding is ~5e5), so
        // the kept entries come out uniform, 1/9 against 1.2e-8; the
        // linear bound ε·p was invalid for ε that large, the bound is now
        // (exp(ε) − 1)·p. Found by `settings_short` (and by CI's run).
        kept_long(
            "settings_diff",
            "kept-mask-below-logit-resolution",
            SettingsCase {
                rows: rows(
                    RowLen::Divisor(33),
                    99,
                    vec![
                        Item::Run {
                            count: 157,
                            of: Scalar::Logit(-15087),
                        },
                        Item::Run {
                            count: 167,
                            of: Scalar::Scaled(80, 76),
                        },
                        Item::One(Scalar::Bits(15501)),
                    ],
                ),
                temperature: TemperatureChoice::One,
                scale: Some(20),
                keep: None,
                add: Some(MaskSeed {
                    per_row: true,
                    seed: u64::MAX,
                }),
                causal: Some(-1),
            },
        ),
        // log_softmax_backward with −inf in the gradient: an entry whose
        // probability flushed to 0 in f32 got 0·inf = NaN, the f64
        // reference +inf (found by `backward_short`, then allowed as a
        // flushed probability). Such a row now runs in f64 and matches.
        kept_long(
            "backward_diff",
            "kept-flushed-probability-times-infinite-sum",
            BackwardCase {
                rows: rows(
                    RowLen::Whole,
                    159,
                    vec![
                        Item::One(Scalar::Special(113)),
                        Item::LongRun {
                            kibi: 2,
                            of: Scalar::Scaled(110, -84),
                        },
                        Item::Run {
                            count: 205,
                            of: Scalar::Special(39),
                        },
                        Item::Run {
                            count: 135,
                            of: Scalar::Special(135),
                        },
                        Item::Run {
                            count: 135,
                            of: Scalar::Special(135),
                        },
                        Item::Run {
                            count: 135,
                            of: Scalar::Special(255),
                        },
                    ],
                ),
                grad: vec![
                    Item::One(Scalar::Bits(2785446129)),
                    Item::One(Scalar::Special(194)),
                    Item::One(Scalar::Bits(185286695)),
                    Item::LongRun {
                        kibi: 72,
                        of: Scalar::Bits(0),
                    },
                ],
            },
        ),
        // top-k 245 where one token holds all the mass: `distribution`
        // listed 244 tokens of probability 0.0 (their f64 weights ~1e-47).
        // Zero-probability tokens are now left out. Found by `sample_short`.
        kept_long(
            "sample_diff",
            "kept-zero-probability-tokens-listed",
            SampleCase {
                rows: rows(
                    RowLen::Whole,
                    1,
                    vec![
                        Item::One(Scalar::Bits(0x0101_0101)),
                        Item::One(Scalar::Bits(0xe100_8601)),
                        Item::LongRun {
                            kibi: 7,
                            of: Scalar::Logit(-15568),
                        },
                        Item::Run {
                            count: 255,
                            of: Scalar::Logit(-15568),
                        },
                        Item::Run {
                            count: 255,
                            of: Scalar::Logit(-15568),
                        },
                        Item::Run {
                            count: 255,
                            of: Scalar::Logit(-15568),
                        },
                        Item::Run {
                            count: 255,
                            of: Scalar::Logit(-15568),
                        },
                        Item::Run {
                            count: 2,
                            of: Scalar::Logit(-15568),
                        },
                    ],
                ),
                temperature: 18,
                top_k: Some(245),
                top_p: None,
                min_p: None,
                seed: 0,
            },
        ),
        // Under an additive mask the max the kernel subtracts is a rounded
        // f32 logit too: the bound left out the rounding of the largest
        // logit's x·s/t (19.4 in row 144), and on the scalar backend an
        // entry of x = 2^-126 came out 1.04 of it. The bound now holds that
        // term (`reference::Expected::logit_size`). Found by `settings_short`.
        kept_long(
            "settings_diff",
            "kept-rounding-of-the-largest-logit",
            SettingsCase {
                rows: rows(
                    RowLen::Divisor(115),
                    115,
                    vec![
                        Item::One(Scalar::Special(149)),
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Special(115),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Bits(2846425088),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(87),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Special(115),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Bits(2846425088),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(87),
                        },
                        Item::Run {
                            count: 3,
                            of: Scalar::Bits(1929379840),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Special(149),
                        },
                        Item::Run {
                            count: 149,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Logit(29555),
                        },
                        Item::Run {
                            count: 115,
                            of: Scalar::Bits(2846425088),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(87),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::Run {
                            count: 169,
                            of: Scalar::Special(169),
                        },
                        Item::LongRun {
                            kibi: 1,
                            of: Scalar::Logit(-24533),
                        },
                        Item::Run {
                            count: 255,
                            of: Scalar::Logit(-24533),
                        },
                        Item::Run {
                            count: 218,
                            of: Scalar::Logit(-24533),
                        },
                    ],
                ),
                temperature: TemperatureChoice::Finite(94),
                scale: None,
                keep: Some(MaskSeed {
                    per_row: false,
                    seed: 5007769093840465251,
                }),
                add: Some(MaskSeed {
                    per_row: true,
                    seed: 9165836953340549250,
                }),
                causal: Some(-93),
            },
        ),
        // 256 tied top logits after 95 whose weights (1.2e-14 each) the
        // reference's plain f64 sum dropped beside 256: its top-p at p =
        // 1/256 kept one token where the top one's probability is below p,
        // and the kernel's draw of the second (right) failed the check. The
        // reference sums with compensation now. Found by `sample_short`.
        kept_long(
            "sample_diff",
            "kept-top-p-tail-a-plain-sum-dropped",
            SampleCase {
                rows: rows(
                    RowLen::Whole,
                    95,
                    vec![
                        Item::Run {
                            count: 95,
                            of: Scalar::Logit(33),
                        },
                        Item::One(Scalar::Logit(24415)),
                        Item::Run {
                            count: 160,
                            of: Scalar::Logit(24415),
                        },
                        Item::Run {
                            count: 95,
                            of: Scalar::Logit(24415),
                        },
                        Item::Run {
                            count: 44,
                            of: Scalar::Special(160),
                        },
                    ],
                ),
                temperature: 95,
                top_k: Some(24415),
                top_p: Some(0),
                min_p: None,
                seed: 4062070252138074368,
            },
        ),
        // Two logits (−3e-31 and 2.6e-17) whose f64 weights at t = 2.06 are
        // both exactly 1: the reference ordered them by index, the kernel
        // (rightly) by logit. Found by `sample_diff_random_cases`.
        kept_long(
            "sample_diff",
            "kept-sample-order-beyond-f64",
            SampleCase {
                rows: rows(
                    RowLen::Whole,
                    206,
                    vec![
                        Item::One(Scalar::Bits(0x8cc4_1abe)),
                        Item::One(Scalar::Bits(0x23ec_858c)),
                    ],
                ),
                temperature: 66,
                top_k: Some(52774),
                top_p: Some(167),
                min_p: None,
                seed: 15751242850349344463,
            },
        ),
        // One logit of 41.64 over 8190 of 8.4e-45: its log-probability is
        // −6.7e-15 (the kernel said −6.2e-15), but the reference's plain
        // f64 sum dropped each 8.2e-19 term beside 1.0, said exactly 0 and
        // the oracle demanded exactness. The reference sums compensated
        // now. Found by a 30 s `settings_short` run.
        kept(
            "settings_short",
            "kept-log-prob-of-a-dominant-logit",
            Short {
                backend: 196,
                algorithm: 204,
                case: SettingsCase {
                    rows: rows(
                        RowLen::Whole,
                        45,
                        vec![
                            Item::One(Scalar::Bits(0xdebb_84d9)),
                            Item::One(Scalar::Logit(10660)),
                            Item::LongRun {
                                kibi: 161,
                                of: Scalar::Bits(6),
                            },
                        ],
                    ),
                    temperature: TemperatureChoice::One,
                    scale: None,
                    keep: None,
                    add: None,
                    causal: None,
                },
            },
        ),
        // Logits of opposite signs near f32::MAX at c = s/t = 0.63: `x − max`
        // overflowed f32 and the log-probability came out −inf where it is
        // −3.27e38. `Factor::times` takes the difference of the halves now.
        // Found by `settings_short`.
        kept(
            "settings_short",
            "kept-scaled-log-prob-of-logits-beyond-f32-apart",
            Short {
                backend: 246,
                algorithm: 251,
                case: SettingsCase {
                    rows: rows(
                        RowLen::Whole,
                        7,
                        vec![
                            Item::One(Scalar::Bits(0xff07_0707)),
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Special(99),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Bits(0x31a3_001c),
                            },
                            Item::LongRun {
                                kibi: 200,
                                of: Scalar::Bits(0xd46c_5a94),
                            },
                        ],
                    ),
                    temperature: TemperatureChoice::Finite(82),
                    scale: Some(208),
                    keep: None,
                    add: None,
                    causal: None,
                },
            },
        ),
        // −f32::MAX in a gradient (where p = 0) made the non-FMA product
        // split redo the dot product on g·2^-64, which flushed the small
        // products (0.1 × 2.9e-32) to 0: grad_in was p·g instead of
        // p·(g − ⟨g, p⟩). Only the huge products are scaled down now. Found
        // by `backward_short`.
        kept(
            "backward_short",
            "kept-huge-gradient-beside-small-products",
            Short {
                backend: 171,
                algorithm: 31,
                case: BackwardCase {
                    rows: rows(
                        RowLen::Divisor(133),
                        133,
                        vec![
                            Item::Run {
                                count: 118,
                                of: Scalar::Special(107),
                            },
                            Item::Run {
                                count: 167,
                                of: Scalar::Special(167),
                            },
                            Item::Run {
                                count: 167,
                                of: Scalar::Special(167),
                            },
                            Item::Run {
                                count: 167,
                                of: Scalar::Special(167),
                            },
                            Item::Run {
                                count: 167,
                                of: Scalar::Special(167),
                            },
                            Item::Run {
                                count: 167,
                                of: Scalar::Special(167),
                            },
                            Item::Run {
                                count: 150,
                                of: Scalar::Scaled(-17, 127),
                            },
                            Item::Run {
                                count: 170,
                                of: Scalar::Bits(0xfba7_1192),
                            },
                            Item::Run {
                                count: 142,
                                of: Scalar::Bits(0x2d2d_2d2d),
                            },
                            Item::One(Scalar::Special(227)),
                            Item::LongRun {
                                kibi: 49,
                                of: Scalar::Logit(-1),
                            },
                            Item::LongRun {
                                kibi: 255,
                                of: Scalar::Scaled(-1, -1),
                            },
                            Item::One(Scalar::Special(79)),
                            Item::Run {
                                count: 12,
                                of: Scalar::Special(255),
                            },
                            Item::One(Scalar::Logit(-31023)),
                            Item::Run {
                                count: 21,
                                of: Scalar::Logit(13165),
                            },
                        ],
                    ),
                    grad: vec![
                        Item::One(Scalar::Logit(22388)),
                        Item::One(Scalar::Special(4)),
                        Item::One(Scalar::Special(93)),
                        Item::One(Scalar::Logit(20485)),
                        Item::Run {
                            count: 66,
                            of: Scalar::Bits(0x31ee_dc28),
                        },
                        Item::LongRun {
                            kibi: 2,
                            of: Scalar::Bits(0x0b17_0857),
                        },
                        Item::LongRun {
                            kibi: 255,
                            of: Scalar::Special(86),
                        },
                    ],
                },
            },
        ),
    ]
}

/// Each kept input is in its folder, byte for byte as its case encodes,
/// and every `kept-*` file there is one of them (none left over from an
/// edit). With `SIMD_SOFTMAX_WRITE_KEPT=1` the files are written instead.
#[test]
fn kept_inputs_are_in_their_folders() {
    let write = std::env::var_os("SIMD_SOFTMAX_WRITE_KEPT").is_some();
    let kept = kept_inputs();
    for k in &kept {
        let path = regressions(k.target).join(k.name);
        if write {
            std::fs::write(&path, &k.bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == k.bytes,
            "{} is not what its case encodes to; rerun with SIMD_SOFTMAX_WRITE_KEPT=1",
            path.display()
        );
    }
    for (target, _) in TARGETS {
        for entry in std::fs::read_dir(regressions(target)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with("kept-")
                    || kept.iter().any(|k| k.target == target && k.name == name),
                "fuzz/regressions/{target}/{name} is no kept input's any more"
            );
        }
    }
}
