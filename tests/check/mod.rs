//! The fuzz targets' bodies, in one place: the cases (`Arbitrary`, with a
//! `Debug` that prints a ready-to-paste reproducer) and the checks against
//! the f64 reference under the documented contract. Compiled into the fuzz
//! crate (`fuzz/fuzz_targets/*.rs`) and into the stable tests
//! (`tests/fuzz_cases.rs`), which replay `fuzz/regressions/` and drive
//! thousands of `rand`-generated cases.
#![allow(dead_code)]

use std::fmt::{self, Debug};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;
use simd_softmax::exp::{CUTOFF, DOMAIN_MAX, exp_slice};
use simd_softmax::half::{bf16, f16};
use simd_softmax::reference::{
    LogitSettings, SamplingSettings, sample_distribution, softmax_row_with,
};
use simd_softmax::{
    Algorithm, BACKEND_ENV, Backend, CrossEntropy, CrossEntropyOptions, CrossEntropyPartial,
    Element, Error, Reduction, Sampler, Softmax, reference,
};

/// Longest row a case expands to: long enough for blocks, chunks and the
/// split across threads (65536), short enough to fuzz fast.
pub const MAX_LEN: usize = 1 << 17;

/// The backends to check: the one `SIMD_SOFTMAX_BACKEND` forces (CI runs
/// the tests once per backend), else every backend this CPU has; or only
/// a fuzz input's one configuration, while it runs (see [`OneConfig`]).
pub fn backends() -> Vec<Backend> {
    match ONLY.get() {
        Some((b, _)) => vec![b],
        None => all_backends(),
    }
}

/// The algorithms to check: every one, or a fuzz input's one.
pub fn algorithms() -> Vec<Algorithm> {
    match ONLY.get() {
        Some((_, a)) => vec![a],
        None => Algorithm::ALL.to_vec(),
    }
}

thread_local! {
    /// Set by [`OneConfig::check`] for the duration of one case.
    static ONLY: std::cell::Cell<Option<(Backend, Algorithm)>> = const { std::cell::Cell::new(None) };
}

/// [`backends`] without a fuzz input's choice.
fn all_backends() -> Vec<Backend> {
    if let Ok(name) = std::env::var(BACKEND_ENV) {
        let b = Backend::from_name(&name).unwrap_or_else(|| panic!("{BACKEND_ENV}={name}?"));
        assert!(
            b.is_available(),
            "{BACKEND_ENV}={name} but this CPU lacks it"
        );
        return vec![b];
    }
    Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

// ------------------------------------------------------------ values

/// Values where softmax and exp change behaviour.
pub const SPECIALS: [f32; 24] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    f32::from_bits(1),           // smallest subnormal
    f32::from_bits(0x007f_ffff), // largest subnormal
    f32::from_bits(0x8000_0001),
    0.0,
    -0.0,
    1.0,
    -1.0,
    CUTOFF,
    -87.33654,
    -87.3366,
    -87.0,
    -88.0,
    -103.97,
    87.3,
    88.0,
    DOMAIN_MAX,
    1e30,
];

/// One logit.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// Any f32 at all.
    Bits(u32),
    /// A moderate logit in [−128, 128) in steps of 1/256.
    Logit(i16),
    /// One of [`SPECIALS`].
    Special(u8),
    /// `m · 2^e` with e in [−64, 63]: huge spreads and tiny values.
    Scaled(i8, i8),
}

impl Scalar {
    pub fn value(self) -> f32 {
        match self {
            Scalar::Bits(b) => f32::from_bits(b),
            Scalar::Logit(v) => f32::from(v) / 256.0,
            Scalar::Special(i) => SPECIALS[usize::from(i) % SPECIALS.len()],
            Scalar::Scaled(m, e) => f32::from(m) * 2f32.powi(i32::from(e) / 2),
        }
    }
}

/// One value, or a run of equal values. Long runs (up to [`MAX_LEN`],
/// past blocks, chunks and the split across threads) are their own variant
/// so that most cases stay short and fast.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum Item {
    One(Scalar),
    Run { count: u8, of: Scalar },
    LongRun { kibi: u8, of: Scalar },
}

/// Expands items into a row of at most [`MAX_LEN`] values.
pub fn expand(items: &[Item]) -> Vec<f32> {
    let mut x = Vec::new();
    for item in items {
        let (count, v) = match *item {
            Item::One(s) => (1, s.value()),
            Item::Run { count, of } => (usize::from(count), of.value()),
            Item::LongRun { kibi, of } => (usize::from(kibi) * 1024, of.value()),
        };
        let count = count.min(MAX_LEN - x.len());
        x.extend(std::iter::repeat_n(v, count));
    }
    x
}

/// Writes `x` as Rust source: runs of equal values as `(bits, count)`.
fn write_runs(f: &mut fmt::Formatter<'_>, x: &[f32]) -> fmt::Result {
    write!(f, "&check::from_runs(&[")?;
    let mut i = 0;
    while i < x.len() {
        let bits = x[i].to_bits();
        let n = x[i..].iter().take_while(|v| v.to_bits() == bits).count();
        write!(f, "({bits:#010x}, {n}), ")?;
        i += n;
    }
    write!(f, "])")
}

/// The inverse of the reproducers' `(bits, count)` runs.
pub fn from_runs(runs: &[(u32, usize)]) -> Vec<f32> {
    runs.iter()
        .flat_map(|&(b, n)| std::iter::repeat_n(f32::from_bits(b), n))
        .collect()
}

// ------------------------------------------------------------ softmax_diff

/// How a case cuts its values into rows.
#[derive(Arbitrary, Clone, Copy, PartialEq, Debug)]
pub enum RowLen {
    /// One row of everything.
    Whole,
    /// The k-th divisor of the length (cyclically): a valid batch.
    Divisor(u8),
    /// Any row length, usually not a divisor: then every call must be `Err`.
    Any(u16),
}

impl RowLen {
    pub fn resolve(self, n: usize) -> usize {
        match self {
            RowLen::Whole => n,
            RowLen::Any(v) => usize::from(v),
            RowLen::Divisor(k) => {
                let divisors: Vec<usize> = (1..=n).filter(|&d| n.is_multiple_of(d)).collect();
                if divisors.is_empty() {
                    0
                } else {
                    divisors[usize::from(k) % divisors.len()]
                }
            }
        }
    }
}

/// A batch of rows for `softmax_diff`.
#[derive(Arbitrary, Clone, PartialEq)]
pub struct SoftmaxCase {
    pub row_len: RowLen,
    /// Start offset of input and output within their buffers (alignment).
    pub offset: u8,
    pub items: Vec<Item>,
}

impl fmt::Debug for SoftmaxCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = expand(&self.items);
        writeln!(
            f,
            "SoftmaxCase reproducer (paste into a test that has `mod check;`):"
        )?;
        write!(f, "check::check_softmax(")?;
        write_runs(f, &x)?;
        write!(f, ", {}, {});", self.row_len.resolve(x.len()), self.offset)
    }
}

impl SoftmaxCase {
    pub fn check(&self) -> Errors {
        let x = expand(&self.items);
        check_softmax(&x, self.row_len.resolve(x.len()), usize::from(self.offset))
    }
}

/// The worst errors a check saw: the share of the bound used (≤ 1 passes)
/// and the relative error of outputs with p_ref > 2^-100.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Errors {
    pub bound_ratio: f64,
    pub relative: f64,
}

impl Errors {
    pub fn merge(self, o: Errors) -> Errors {
        Errors {
            bound_ratio: self.bound_ratio.max(o.bound_ratio),
            relative: self.relative.max(o.relative),
        }
    }
}

/// Reports a new worst error on stderr (for the fuzz logs): the running
/// worst of each figure.
fn record_worst(e: Errors, what: &str) {
    static WORST_RATIO: AtomicU64 = AtomicU64::new(0);
    static WORST_RELATIVE: AtomicU64 = AtomicU64::new(0);
    let ratio = f64::from_bits(WORST_RATIO.fetch_max(e.bound_ratio.to_bits(), Ordering::Relaxed));
    let relative =
        f64::from_bits(WORST_RELATIVE.fetch_max(e.relative.to_bits(), Ordering::Relaxed));
    if e.bound_ratio > ratio || e.relative > relative {
        eprintln!(
            "new worst {what}: bound ratio {:.4}, relative {:.3e}",
            e.bound_ratio.max(ratio),
            e.relative.max(relative)
        );
    }
}

/// The f64 reference for one input row, and the contract check against it.
pub struct Reference<'a> {
    input: &'a [f32],
    want: Vec<f64>,
    has_nan: bool,
    max: f32,
}

impl<'a> Reference<'a> {
    pub fn new(input: &'a [f32]) -> Self {
        Reference {
            input,
            want: reference::softmax_f64(input),
            has_nan: input.iter().any(|v| v.is_nan()),
            max: input.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        }
    }

    /// Checks `output` under the contract: NaN anywhere → all NaN; +inf
    /// split and −inf entries exact; otherwise `|p − p_ref| ≤
    /// reference::tolerance`. Panics with `context` on a violation.
    pub fn check(&self, output: &[f32], context: &dyn Fn() -> String) -> Errors {
        // A short output would make the zip below check only a prefix.
        assert_eq!(
            output.len(),
            self.input.len(),
            "{}: output length differs from the input's",
            context()
        );
        let mut e = Errors::default();
        for (i, ((&x, &p), &r)) in self.input.iter().zip(output).zip(&self.want).enumerate() {
            if self.has_nan {
                assert!(p.is_nan(), "{}: NaN row but output[{i}] = {p}", context());
                continue;
            }
            assert!(
                !p.is_nan(),
                "{}: output[{i}] is NaN (x = {x}, want {r})",
                context()
            );
            if !self.max.is_finite() || x == f32::NEG_INFINITY {
                // +inf split (1/k rounded once to f32), all −inf rows and −inf
                // entries are exact.
                let exact = (r as f32).to_bits();
                assert_eq!(
                    p.to_bits(),
                    exact,
                    "{}: output[{i}] (x = {x}) must be exactly {r}",
                    context()
                );
                continue;
            }
            let err = (f64::from(p) - r).abs();
            let tol = reference::tolerance(x, self.max, r);
            assert!(
                err <= tol,
                "{}: output[{i}] = {p:e}, want {r:e} (x = {x}, max = {}): error {err:e} > bound {tol:e}",
                context(),
                self.max
            );
            e.bound_ratio = e.bound_ratio.max(err / tol);
            if r > 2f64.powi(-100) {
                e.relative = e.relative.max(err / r);
            }
        }
        e
    }
}

/// [`Reference::check`] for one row.
pub fn check_row(input: &[f32], output: &[f32], context: &dyn Fn() -> String) -> Errors {
    Reference::new(input).check(output, context)
}

fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: OnceLock<[rayon::ThreadPool; 2]> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        [1, 2].map(|t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
    });
    &pools[threads - 1]
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `x` copied into a buffer at `offset % 16`, so that alignment varies.
fn at_offset(x: &[f32], offset: usize) -> (Vec<f32>, usize) {
    let offset = offset % 16;
    let mut buffer = vec![0.0f32; x.len() + 16];
    buffer[offset..offset + x.len()].copy_from_slice(x);
    (buffer, offset)
}

/// What a call with these sizes must return.
fn expected(len: usize, row_len: usize) -> Result<(), Error> {
    if row_len == 0 && len > 0 {
        Err(Error::ZeroRowLength { len })
    } else if row_len > 0 && !len.is_multiple_of(row_len) {
        Err(Error::RaggedRows { len, row_len })
    } else {
        Ok(())
    }
}

/// The `softmax_diff` body: every backend and algorithm, in place and out of
/// place, on 1 and 2 threads, rows and single rows, against the reference;
/// bad shapes must be `Err` and write nothing.
pub fn check_softmax(x: &[f32], row_len: usize, offset: usize) -> Errors {
    let n = x.len();
    let (buffer, offset) = at_offset(x, offset);
    let input = &buffer[offset..offset + n];
    let want = expected(n, row_len);
    const SENTINEL: f32 = 12345.0;
    let configs: Vec<(Backend, Algorithm)> = backends()
        .into_iter()
        .flat_map(|b| algorithms().into_iter().map(move |a| (b, a)))
        .collect();
    let softmax = |&(b, a): &(Backend, Algorithm)| Softmax::new().backend(b).algorithm(a);
    let ctx = |&(b, a): &(Backend, Algorithm), what: &str| {
        format!("{b} {a:?} {what} n={n} row_len={row_len}")
    };

    // Out of place on 1 thread (at the case's alignment): the results to check.
    let outputs: Vec<Vec<f32>> = pool(1).install(|| {
        configs
            .iter()
            .map(|c| {
                let mut out = vec![SENTINEL; n + 16];
                let got = softmax(c).run_rows(input, &mut out[offset..offset + n], row_len);
                assert_eq!(got, want, "{}", ctx(c, "run_rows"));
                if want.is_err() {
                    assert!(
                        out.iter().all(|&v| v == SENTINEL),
                        "{}: wrote on error",
                        ctx(c, "run_rows")
                    );
                }
                out[offset..offset + n].to_vec()
            })
            .collect()
    });
    // The same on 2 threads, in place, one row alone, and a length mismatch.
    pool(2).install(|| {
        for (c, y) in configs.iter().zip(&outputs) {
            let sm = softmax(c);
            let mut data = input.to_vec();
            assert_eq!(
                sm.run_rows_in_place(&mut data, row_len),
                want,
                "{}",
                ctx(c, "in place")
            );
            if want.is_err() {
                assert_eq!(
                    bits(&data),
                    bits(input),
                    "{}: wrote on error",
                    ctx(c, "in place")
                );
                continue;
            }
            assert_eq!(
                bits(&data),
                bits(y),
                "{}: differs from 1 thread out of place",
                ctx(c, "2 threads in place")
            );
            let mut two = vec![0.0f32; n];
            sm.run_rows(input, &mut two, row_len).unwrap();
            assert_eq!(
                bits(&two),
                bits(y),
                "{}: differs from 1 thread",
                ctx(c, "2 threads")
            );
            if let Some(first) = input.get(..row_len) {
                let mut single = vec![0.0f32; row_len];
                sm.run(first, &mut single).unwrap();
                assert_eq!(
                    bits(&single),
                    bits(&y[..row_len]),
                    "{}: differs from the batch",
                    ctx(c, "run")
                );
            }
            let mut long = vec![SENTINEL; n + 1];
            let e = sm.run_rows(input, &mut long, row_len.max(1));
            assert_eq!(
                e,
                Err(Error::LengthMismatch {
                    input: n,
                    output: n + 1
                }),
                "{}",
                ctx(c, "length")
            );
            assert!(
                long.iter().all(|&v| v == SENTINEL),
                "{}: wrote on error",
                ctx(c, "length")
            );
        }
    });
    if want.is_err() || n == 0 {
        return Errors::default();
    }
    // Against the reference, computed once per row.
    let mut worst = Errors::default();
    for (r, xr) in input.chunks(row_len).enumerate() {
        let reference = Reference::new(xr);
        for (c, y) in configs.iter().zip(&outputs) {
            let yr = &y[r * row_len..(r + 1) * row_len];
            worst = worst.merge(reference.check(yr, &|| ctx(c, &format!("row {r}"))));
        }
    }
    record_worst(worst, "softmax");
    worst
}

// ------------------------------------------------------------ exp_diff

/// One input for `exp_diff`.
#[derive(Arbitrary, Clone, Copy, PartialEq)]
pub enum ExpInput {
    /// Any f32.
    Bits(u32),
    /// Spread over the bit patterns of [CUTOFF, DOMAIN_MAX].
    InDomain(u32),
    /// Within ±32767 ULP of CUTOFF, of 0, or of DOMAIN_MAX.
    NearCutoff(i16),
    NearZero(i16),
    NearTop(i16),
}

impl ExpInput {
    pub fn value(self) -> f32 {
        let near = |x: f32, d: i16| f32::from_bits(x.to_bits().wrapping_add_signed(i32::from(d)));
        match self {
            ExpInput::Bits(b) => f32::from_bits(b),
            ExpInput::InDomain(u) => {
                let negatives = CUTOFF.to_bits() - 0x8000_0000 + 1;
                let total = u64::from(negatives) + u64::from(DOMAIN_MAX.to_bits()) + 1;
                let k = ((u64::from(u) * total) >> 32) as u32;
                if k < negatives {
                    f32::from_bits(0x8000_0000 + k)
                } else {
                    f32::from_bits(k - negatives)
                }
            }
            ExpInput::NearCutoff(d) => near(CUTOFF, d),
            ExpInput::NearZero(d) => {
                f32::from_bits(i32::from(d).unsigned_abs() | if d < 0 { 0x8000_0000 } else { 0 })
            }
            ExpInput::NearTop(d) => near(DOMAIN_MAX, d.min(0)),
        }
    }
}

#[derive(Arbitrary, Clone, PartialEq)]
pub struct ExpCase {
    pub inputs: Vec<ExpInput>,
}

impl fmt::Debug for ExpCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x: Vec<String> = self
            .inputs
            .iter()
            .map(|v| format!("{:#010x}", v.value().to_bits()))
            .collect();
        writeln!(
            f,
            "ExpCase reproducer (paste into a test that has `mod check;`):"
        )?;
        write!(
            f,
            "check::check_exp(&[{}].map(f32::from_bits));",
            x.join(", ")
        )
    }
}

impl ExpCase {
    pub fn check(&self) -> f64 {
        let x: Vec<f32> = self.inputs.iter().map(|v| v.value()).collect();
        check_exp(&x)
    }
}

/// Error of `got` in units in the last place of the f32 nearest `want`.
pub fn ulp_error(got: f32, want: f64) -> f64 {
    let exponent = ((want.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    (f64::from(got) - want).abs() / 2f64.powi(exponent.max(-126) - 23)
}

/// The `exp_diff` body: on every backend, NaN → NaN, below CUTOFF → exactly
/// 0, [CUTOFF, DOMAIN_MAX] → within 2 ULP of f64 exp (above DOMAIN_MAX the
/// result is unspecified). Returns the worst ULP error.
pub fn check_exp(x: &[f32]) -> f64 {
    let mut worst = 0.0f64;
    let mut y = vec![0.0f32; x.len()];
    for backend in backends() {
        exp_slice(backend, x, &mut y).unwrap();
        for (&xi, &yi) in x.iter().zip(&y) {
            if xi.is_nan() {
                assert!(yi.is_nan(), "{backend}: exp(NaN) = {yi}");
            } else if xi < CUTOFF {
                assert_eq!(yi.to_bits(), 0, "{backend}: exp({xi:e}) = {yi:e}, want +0");
            } else if xi <= DOMAIN_MAX {
                let e = ulp_error(yi, f64::from(xi).exp());
                assert!(
                    e <= 2.0,
                    "{backend}: exp({xi:e} = {:#010x}) = {yi:e}: {e:.3} ULP",
                    xi.to_bits()
                );
                worst = worst.max(e);
            }
        }
    }
    static WORST: AtomicU64 = AtomicU64::new(0);
    if worst.to_bits() > WORST.fetch_max(worst.to_bits(), Ordering::Relaxed) {
        eprintln!("new worst exp error: {worst:.4} ULP");
    }
    worst
}

// ------------------------------------------------------------ log-softmax

/// Checks a log-softmax output row (or one logsumexp value) against the
/// f64 reference: NaN ↔ NaN, infinities exact, otherwise
/// `|y − y_ref| ≤ 2^-22·|y_ref| + 2^-21`. Returns the worst share of the
/// bound used.
pub fn check_log_values(got: &[f32], want: &[f64], context: &dyn Fn() -> String) -> f64 {
    let mut worst = 0.0f64;
    for (i, (&y, &r)) in got.iter().zip(want).enumerate() {
        if r.is_nan() {
            assert!(y.is_nan(), "{}: [{i}] = {y}, want NaN", context());
        } else if (r as f32).is_infinite() {
            // Infinite, or beyond the f32 range (x − max of ±3.4e38 extremes):
            // the f32 result is that infinity.
            assert_eq!(y, r as f32, "{}: [{i}] must be {r}", context());
        } else {
            assert!(y.is_finite(), "{}: [{i}] = {y}, want {r}", context());
            let err = (f64::from(y) - r).abs();
            let tol = reference::log_tolerance(r);
            assert!(
                err <= tol,
                "{}: [{i}] = {y:e}, want {r:e}: error {err:e} > bound {tol:e}",
                context()
            );
            worst = worst.max(err / tol);
        }
    }
    worst
}

/// The `log_softmax_diff` body: log-softmax and logsumexp of every row on
/// every backend, 1 and 2 threads, in place and out of place (same bits),
/// against the f64 references; bad shapes must be `Err` and write nothing.
/// Returns the worst share of the bound used.
pub fn check_log_softmax(x: &[f32], row_len: usize, offset: usize) -> f64 {
    let n = x.len();
    let (buffer, offset) = at_offset(x, offset);
    let input = &buffer[offset..offset + n];
    let want = expected(n, row_len);
    const SENTINEL: f32 = 12345.0;
    let rows = if want.is_ok() {
        n.checked_div(row_len).unwrap_or(0)
    } else {
        0
    };
    let mut worst = 0.0f64;
    for backend in backends() {
        let sm = Softmax::new().backend(backend);
        let ctx = |what: &str| format!("{backend} log-softmax {what} n={n} row_len={row_len}");
        let mut out = vec![SENTINEL; n + 16];
        let got = pool(1).install(|| sm.run_log_rows(input, &mut out[offset..offset + n], row_len));
        assert_eq!(got, want, "{}", ctx("run_log_rows"));
        let mut lse = vec![SENTINEL; rows];
        let lse_got = pool(1).install(|| sm.run_logsumexp_rows(input, row_len, &mut lse));
        assert_eq!(lse_got, want, "{}", ctx("logsumexp_rows"));
        if want.is_err() {
            assert!(
                out.iter().all(|&v| v == SENTINEL),
                "{}: wrote on error",
                ctx("run_log_rows")
            );
            continue;
        }
        let y = &out[offset..offset + n];
        pool(2).install(|| {
            let mut two = vec![0.0f32; n];
            sm.run_log_rows(input, &mut two, row_len).unwrap();
            assert_eq!(
                bits(&two),
                bits(y),
                "{}: 2 threads differ",
                ctx("run_log_rows")
            );
            let mut data = input.to_vec();
            sm.run_log_rows_in_place(&mut data, row_len).unwrap();
            assert_eq!(
                bits(&data),
                bits(y),
                "{}: in place differs",
                ctx("run_log_rows_in_place")
            );
            let mut lse2 = vec![0.0f32; rows];
            sm.run_logsumexp_rows(input, row_len, &mut lse2).unwrap();
            assert_eq!(
                bits(&lse2),
                bits(&lse),
                "{}: 2 threads differ",
                ctx("logsumexp_rows")
            );
        });
        if n == 0 {
            continue;
        }
        for (r, (xr, yr)) in input.chunks(row_len).zip(y.chunks(row_len)).enumerate() {
            let w = check_log_values(yr, &reference::log_softmax_f64(xr), &|| {
                ctx(&format!("row {r}"))
            });
            let l = check_log_values(&lse[r..r + 1], &[reference::logsumexp_f64(xr)], &|| {
                ctx(&format!("logsumexp row {r}"))
            });
            worst = worst.max(w).max(l);
        }
    }
    static WORST: AtomicU64 = AtomicU64::new(0);
    if worst.to_bits() > WORST.fetch_max(worst.to_bits(), Ordering::Relaxed) {
        eprintln!("new worst log-softmax: {worst:.4} of the bound");
    }
    worst
}

impl SoftmaxCase {
    /// The case through [`check_log_softmax`].
    pub fn check_log(&self) -> f64 {
        let x = expand(&self.items);
        check_log_softmax(&x, self.row_len.resolve(x.len()), usize::from(self.offset))
    }
}

// ------------------------------------------------------------ argmax

/// The `argmax_diff` body: `argmax_rows` on every backend, 1 and 2 threads,
/// against the scalar reference; bad shapes must be `Err` and write nothing.
pub fn check_argmax(x: &[f32], row_len: usize, offset: usize) {
    let n = x.len();
    let (buffer, offset) = at_offset(x, offset);
    let input = &buffer[offset..offset + n];
    let want = expected(n, row_len);
    let rows = if want.is_ok() {
        n.checked_div(row_len).unwrap_or(0)
    } else {
        0
    };
    let reference: Vec<Option<usize>> = if want.is_ok() && row_len > 0 {
        input.chunks(row_len).map(reference::argmax).collect()
    } else {
        Vec::new()
    };
    for backend in backends() {
        let sm = Softmax::new().backend(backend);
        for threads in [1, 2] {
            let mut out = vec![Some(usize::MAX); rows];
            let got = pool(threads).install(|| sm.run_argmax_rows(input, row_len, &mut out));
            assert_eq!(got, want, "{backend} argmax_rows n={n} row_len={row_len}");
            if want.is_ok() {
                assert_eq!(
                    out, reference,
                    "{backend} argmax n={n} row_len={row_len} threads={threads}"
                );
            }
        }
    }
}

impl SoftmaxCase {
    /// The case through [`check_argmax`].
    pub fn check_argmax(&self) {
        let x = expand(&self.items);
        check_argmax(&x, self.row_len.resolve(x.len()), usize::from(self.offset))
    }
}

// ------------------------------------------------------------ logit settings

pub fn with_settings<'m>(
    sm: Softmax,
    ls: &LogitSettings<'m>,
) -> Softmax<simd_softmax::LogitSettings<'m>> {
    let mut sm = sm.settings(Default::default());
    if ls.temperature != 1.0 {
        sm = sm.temperature(ls.temperature);
    }
    if ls.scale != 1.0 {
        sm = sm.scale(ls.scale);
    }
    if let Some(k) = ls.keep_mask {
        sm = sm.keep_mask(k);
    }
    if let Some(a) = ls.additive_mask {
        sm = sm.additive_mask(a);
    }
    if let Some(o) = ls.causal {
        sm = sm.causal(o);
    }
    if let Some(a) = ls.attention {
        sm = sm.attention(a);
    }
    if let Some(b) = ls.max_bias {
        sm = sm.alibi(b);
    }
    if let Some(s) = ls.sinks {
        sm = sm.sinks(s);
    }
    if let Some(c) = ls.softcap {
        sm = sm.softcap(c);
    }
    sm
}

/// Softmax and log-softmax of `x` in rows of `row_len` under `ls`, out of
/// place and in place (same bits), each output against the reference.
/// Returns the worst share of the bound (softmax, log-softmax).
pub fn check_with_settings(
    sm: Softmax,
    ls: &LogitSettings<'_>,
    x: &[f32],
    row_len: usize,
    what: &str,
) -> (f64, f64) {
    let sm = with_settings(sm, ls);
    let mut worst = (0.0f64, 0.0f64);
    for log in [false, true] {
        let mut y = vec![0.5f32; x.len()];
        let mut z = x.to_vec();
        if log {
            sm.run_log_rows(x, &mut y, row_len).unwrap();
            sm.run_log_rows_in_place(&mut z, row_len).unwrap();
        } else {
            sm.run_rows(x, &mut y, row_len).unwrap();
            sm.run_rows_in_place(&mut z, row_len).unwrap();
        }
        assert_eq!(bits(&y), bits(&z), "{what} log={log}: in place differs");
        for (r, (row, out)) in x.chunks(row_len).zip(y.chunks(row_len)).enumerate() {
            let want = softmax_row_with(row, r, ls, log);
            for (i, (&got, e)) in out.iter().zip(&want).enumerate() {
                let at = || {
                    format!(
                        "{what} {sm:?} log={log} row {r} [{i}] x={} got {got} want {}",
                        row[i], e.value
                    )
                };
                if e.value.is_nan() {
                    assert!(got.is_nan(), "{}", at());
                    continue;
                }
                if e.value == 0.0 || (e.value as f32).is_infinite() {
                    // Masked, underflowed or a special-value row: exact; a
                    // log-probability beyond −f32::MAX (huge logits times a
                    // scale) is −inf, its correctly rounded f32.
                    assert_eq!(got, e.value as f32, "{}", at());
                    continue;
                }
                let tol = if log {
                    e.log_tolerance()
                } else {
                    e.tolerance()
                };
                let share = (f64::from(got) - e.value).abs() / tol;
                assert!(share <= 1.0, "{} ({share:.2} of the bound)", at());
                // The reported worst leaves out outputs near 2^-126, whose
                // flush to 0 uses the bound's absolute term in full.
                if log {
                    worst.1 = worst.1.max(share);
                } else if e.value > 1e-30 {
                    worst.0 = worst.0.max(share);
                }
            }
        }
    }
    worst
}

// ------------------------------------------------------------ cross-entropy

/// Runs the call with and without a gradient under (ε, ignore_index,
/// reduction),
/// checks losses, the reduction and the gradient against the reference.
/// Returns the worst share of the bounds (loss, gradient).
pub fn check_cross_entropy(
    sm: &Softmax,
    x: &[f32],
    row_len: usize,
    targets: &[usize],
    (eps, ignore, reduction): (f32, Option<usize>, Reduction),
    what: &str,
) -> (f64, f64) {
    let mut grad = vec![7.0f32; x.len()];
    let opts = |grad| CrossEntropyOptions {
        label_smoothing: eps,
        ignore_index: ignore,
        reduction,
        grad,
    };
    let with = sm
        .run_cross_entropy(x, row_len, targets, opts(Some(&mut grad)))
        .unwrap();
    let without = sm
        .run_cross_entropy(x, row_len, targets, opts(None))
        .unwrap();
    // With a gradient the sum comes from the blocked softmax's partials,
    // without one from the online pass: both are checked below, and may
    // differ in their last bits.
    check_cross_entropy_results(
        x,
        row_len,
        targets,
        (eps, ignore, reduction),
        [&with, &without],
        &grad,
        &format!("{what} {sm:?}"),
    )
}

/// Checks the results of cross-entropy calls on `x` (their losses, their
/// reduction and `grad`, the gradient one of them wrote, in f32 or a
/// 16-bit type: the f32 bound plus half an ULP of the type) against the
/// reference. Returns the worst share of the bounds (loss, gradient).
pub fn check_cross_entropy_results<G: Ty>(
    x: &[f32],
    row_len: usize,
    targets: &[usize],
    (eps, ignore, reduction): (f32, Option<usize>, Reduction),
    results: [&CrossEntropy; 2],
    grad: &[G],
    what: &str,
) -> (f64, f64) {
    let [with, without] = results;
    let counted = targets.iter().filter(|&&t| Some(t) != ignore).count();
    assert_eq!(with.counted, counted);
    let weight = if reduction == Reduction::Mean {
        1.0 / counted as f64
    } else {
        1.0
    };
    let (mut worst_loss, mut worst_grad) = (0.0f64, 0.0f64);
    let mut total = 0.0f64;
    for (r, ((row, &t), g)) in x
        .chunks(row_len)
        .zip(targets)
        .zip(grad.chunks(row_len))
        .enumerate()
    {
        let at = || format!("{what} row {r} target {t}");
        if Some(t) == ignore {
            assert_eq!(with.per_row[r], 0.0, "{}", at());
            assert!(
                g.iter().all(|&v| v.f32().to_bits() == 0),
                "{}: ignored row's grad",
                at()
            );
            continue;
        }
        let want = reference::cross_entropy_f64(row, t, f64::from(eps));
        total += want;
        for got in [with.per_row[r], without.per_row[r]].map(f64::from) {
            // Beyond f32::MAX the correctly rounded loss is +inf.
            let want = saturated(want);
            if want.is_nan() || want.is_infinite() {
                assert!(
                    got.is_nan() == want.is_nan() && (want.is_nan() || got == want),
                    "{}: {got} vs {want}",
                    at()
                );
            } else {
                let share = (got - want).abs() / (want.abs() * 2f64.powi(-22) + 2f64.powi(-21));
                assert!(
                    share <= 1.0,
                    "{}: loss {got} vs {want} ({share:.2} of the bound)",
                    at()
                );
                worst_loss = worst_loss.max(share);
            }
        }
        let want_g = reference::cross_entropy_grad_f64(row, t, f64::from(eps), weight);
        let p = reference::softmax_f64(row);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (i, (got, &want)) in g.iter().zip(&want_g).enumerate() {
            let got = got.f32();
            if want.is_nan() {
                assert!(got.is_nan(), "{} [{i}]", at());
                continue;
            }
            let q =
                f64::from(eps) / row_len as f64 + if i == t { 1.0 - f64::from(eps) } else { 0.0 };
            let tol = weight * (softmax_part(row[i], max, p[i]) + 2f64.powi(-22) * (p[i] + q));
            // A 16-bit gradient: the f32 one rounded once.
            let tol = tol + half_ulp::<G>(want.abs() + tol);
            let err = (f64::from(got) - want).abs();
            let share = if err == 0.0 { 0.0 } else { err / tol };
            assert!(
                share <= 1.0,
                "{} grad[{i}] {got} vs {want} ({share:.2} of the bound)",
                at()
            );
            // Outputs near 2^-126 use the absolute term in full (flush to
            // 0); the reported worst leaves them out.
            if want.abs() > 1e-30 {
                worst_grad = worst_grad.max(share);
            }
        }
    }
    let want_total = if reduction == Reduction::Mean {
        total / counted as f64
    } else {
        total
    };
    let want_total = saturated(want_total);
    for got in [with.loss, without.loss].map(f64::from) {
        if want_total.is_finite() {
            assert!(
                (got - want_total).abs() <= want_total.abs() * 2f64.powi(-22) + 2f64.powi(-21),
                "{what}: loss {got} vs {want_total}"
            );
        } else {
            assert!(
                got.is_nan() == want_total.is_nan() && (want_total.is_nan() || got == want_total),
                "{what}: loss {got} vs {want_total}"
            );
        }
    }
    (worst_loss, worst_grad)
}

// ------------------------------------------------ vocabulary-parallel

/// Column ranges of `shards` shards of rows of `n` (uneven, some empty
/// when `shards > n`).
pub fn shard_ranges(n: usize, shards: usize) -> Vec<std::ops::Range<usize>> {
    (0..shards)
        .map(|k| k * n / shards..(k + 1) * n / shards)
        .collect()
}

/// Columns `range` of each row of `x`.
fn columns<E: Copy>(x: &[E], n: usize, range: std::ops::Range<usize>) -> Vec<E> {
    x.chunks(n)
        .flat_map(|row| row[range.clone()].to_vec())
        .collect()
}

/// The vocabulary-sharded cross-entropy recipe on `x`: each shard's
/// partials, merged in the order of the shards rotated by `rotate`, then each shard's loss and gradient (scattered back into rows of
/// `n`). Every shard's result must be the same; returns it and the
/// gradient.
pub fn sharded_cross_entropy<E: Element>(
    sm: &Softmax,
    x: &[E],
    n: usize,
    targets: &[usize],
    shards: usize,
    (eps, ignore, reduction): (f32, Option<usize>, Reduction),
    rotate: usize,
) -> (CrossEntropy, Vec<f32>) {
    let ranges = shard_ranges(n, shards);
    let xs: Vec<Vec<E>> = ranges.iter().map(|c| columns(x, n, c.clone())).collect();
    let mut parts: Vec<Vec<CrossEntropyPartial>> = ranges
        .iter()
        .zip(&xs)
        .map(|(c, xk)| {
            sm.run_cross_entropy_partial(xk, c.len(), targets, c.start, eps)
                .unwrap()
        })
        .collect();
    parts.rotate_left(rotate % shards.max(1));
    let merged: Vec<CrossEntropyPartial> = (0..targets.len())
        .map(|row| {
            parts
                .iter()
                .fold(CrossEntropyPartial::EMPTY, |m, p| m.merge(p[row]))
        })
        .collect();
    let mut grad = vec![7.0f32; x.len()];
    let mut result = None::<CrossEntropy>;
    for (c, xk) in ranges.iter().zip(&xs) {
        let mut gk = vec![7.0f32; xk.len()];
        let ce = sm
            .run_cross_entropy_shard(
                xk,
                c.len(),
                targets,
                c.start,
                &merged,
                CrossEntropyOptions {
                    label_smoothing: eps,
                    ignore_index: ignore,
                    reduction,
                    grad: Some(&mut gk),
                },
            )
            .unwrap();
        if let Some(first) = &result {
            assert_eq!(
                bits(&first.per_row),
                bits(&ce.per_row),
                "same on every shard"
            );
        }
        result = Some(ce);
        for (row, g) in grad.chunks_mut(n).zip(gk.chunks(c.len().max(1))) {
            row[c.clone()].copy_from_slice(&g[..c.len()]);
        }
    }
    (result.unwrap(), grad)
}

/// `v`, or +inf where its correctly rounded f32 is (beyond f32::MAX).
pub fn saturated(v: f64) -> f64 {
    if v.is_finite() && (v as f32).is_infinite() {
        f64::INFINITY
    } else {
        v
    }
}

/// The softmax bound's part; special-value rows (max ±inf) are exact.
pub fn softmax_part(x: f32, max: f32, p: f64) -> f64 {
    if max.is_finite() {
        reference::tolerance(x, max, p)
    } else {
        2f64.powi(-126)
    }
}

// ------------------------------------------------------------ backward

/// Probabilities and log-probabilities of `x` from the reference.
pub fn probs(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut p = vec![0.0; x.len()];
    let mut y = vec![0.0; x.len()];
    reference::softmax(x, &mut p);
    reference::log_softmax(x, &mut y);
    (p, y)
}

/// Both passes over rows of `row_len`, against the reference row by row;
/// returns the worst share of the bound (softmax, log-softmax).
pub fn check_backward(
    sm: &Softmax,
    x: &[f32],
    g: &[f32],
    row_len: usize,
    what: &str,
) -> (f64, f64) {
    let (mut p, mut y) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for (r, row) in x.chunks(row_len.max(1)).enumerate() {
        let (pr, yr) = probs(row);
        p[r * row_len..(r + 1) * row_len].copy_from_slice(&pr);
        y[r * row_len..(r + 1) * row_len].copy_from_slice(&yr);
    }
    let mut worst = (0.0f64, 0.0f64);
    for log in [false, true] {
        let input = if log { &y } else { &p };
        let mut out = vec![7.0f32; x.len()];
        if log {
            sm.run_log_backward_rows(input, g, &mut out, row_len)
                .unwrap();
        } else {
            sm.run_backward_rows(input, g, &mut out, row_len).unwrap();
        }
        for (r, ((a, gr), got)) in input
            .chunks(row_len.max(1))
            .zip(g.chunks(row_len.max(1)))
            .zip(out.chunks(row_len.max(1)))
            .enumerate()
        {
            let want = if log {
                reference::log_softmax_backward_f64(a, gr)
            } else {
                reference::softmax_backward_f64(a, gr)
            };
            let tols = if log {
                vec![reference::backward_tolerance(gr, &want); want.len()]
            } else {
                reference::softmax_backward_tolerance(a, gr, &want)
            };
            for (i, ((&got, &want), &tol)) in got.iter().zip(&want).zip(&tols).enumerate() {
                if (want as f32).is_infinite() {
                    // ±inf, or beyond f32::MAX: the correctly rounded result
                    // is ±inf. A finite value just past f32::MAX rounds to
                    // ±inf, but ±f32::MAX is within the bound of it too.
                    let within = want.is_finite() && (f64::from(got) - want).abs() <= tol;
                    if !within {
                        assert_eq!(got, want as f32, "{what} log={log} row {r}[{i}]");
                    }
                    continue;
                }
                if want.is_nan() {
                    assert!(got.is_nan(), "{what} log={log} row {r}[{i}]: {got} vs NaN");
                    continue;
                }
                let err = (f64::from(got) - want).abs();
                let share = if tol > 0.0 {
                    err / tol
                } else if err == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                };
                assert!(
                    share <= 1.0,
                    "{what} {sm:?} log={log} row {r}[{i}]: {got} vs {want} ({share:.2} of the bound)"
                );
                if log {
                    worst.1 = worst.1.max(share);
                } else {
                    worst.0 = worst.0.max(share);
                }
            }
        }
    }
    worst
}

// ------------------------------------------------------------ entropy

/// Entropy of each row against the reference; the worst share of the bound.
pub fn check_entropy(sm: &Softmax, x: &[f32], row_len: usize, what: &str) -> f64 {
    let rows = x.len().checked_div(row_len).unwrap_or(0);
    let mut h = vec![7.0f32; rows];
    sm.run_entropy_rows(x, row_len, &mut h).unwrap();
    let mut worst = 0.0f64;
    for (r, (row, &got)) in x.chunks(row_len.max(1)).zip(&h).enumerate() {
        let want = reference::entropy_f64(row);
        if want.is_nan() {
            assert!(got.is_nan(), "{what} row {r}: {got} vs NaN");
            continue;
        }
        let share = (f64::from(got) - want).abs() / reference::entropy_tolerance(row);
        assert!(
            share <= 1.0,
            "{what} {sm:?} row {r}: {got} vs {want} ({share:.2} of the bound)"
        );
        worst = worst.max(share);
    }
    worst
}

// ------------------------------------------------------------ family fuzz cases

/// splitmix64 of `(seed, i)`: masks and values derived from one seed, so a
/// case stays short and its reproducer prints in one line.
pub fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The valid rows of a case: `Some((x at its offset, row_len))`, or `None`
/// when the shape is bad (shapes are `softmax_diff`'s job) or empty.
fn rows_of(case: &SoftmaxCase) -> Option<(Vec<f32>, usize)> {
    let x = expand(&case.items);
    let row_len = case.row_len.resolve(x.len());
    if x.is_empty() || row_len == 0 || expected(x.len(), row_len).is_err() {
        return None;
    }
    Some((x, row_len))
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub enum TemperatureChoice {
    One,
    /// (k + 1)/16.
    Finite(u8),
    Zero,
    Infinite,
    /// −1 (true) or NaN (false): every call must be an error.
    Bad(bool),
}

/// One mask: a row broadcast to every row, or one entry per element.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq)]
pub struct MaskSeed {
    pub per_row: bool,
    pub seed: u64,
}

/// Softmax and log-softmax under temperature, scale, masks and causal.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct SettingsCase {
    pub rows: SoftmaxCase,
    pub temperature: TemperatureChoice,
    /// (k + 1)/64.
    pub scale: Option<u8>,
    pub keep: Option<MaskSeed>,
    pub add: Option<MaskSeed>,
    pub causal: Option<i8>,
}

impl SettingsCase {
    /// The `settings_diff` body: every backend and algorithm against
    /// `reference::softmax_row_with`, 1 and 2 threads bit-identical, bad
    /// temperatures an error that writes nothing.
    pub fn check(&self) -> (f64, f64) {
        let Some((x, row_len)) = rows_of(&self.rows) else {
            return (0.0, 0.0);
        };
        let mask_len = |m: MaskSeed| if m.per_row { x.len() } else { row_len };
        let keep: Option<Vec<bool>> = self.keep.map(|m| {
            (0..mask_len(m))
                .map(|i| !mix(m.seed, i as u64).is_multiple_of(4))
                .collect()
        });
        let add: Option<Vec<f32>> = self.add.map(|m| {
            (0..mask_len(m))
                .map(|i| match mix(m.seed, i as u64) {
                    h if h % 8 == 0 => f32::NEG_INFINITY,
                    h if h % 8 == 1 => 0.0,
                    h if h % 64 == 2 => f32::INFINITY,
                    h if h % 64 == 3 => f32::NAN,
                    h => (h >> 40) as f32 / (1u64 << 24) as f32 * 20.0 - 10.0,
                })
                .collect()
        });
        let temperature = match self.temperature {
            TemperatureChoice::One => 1.0,
            TemperatureChoice::Finite(k) => (f32::from(k) + 1.0) / 16.0,
            TemperatureChoice::Zero => 0.0,
            TemperatureChoice::Infinite => f32::INFINITY,
            TemperatureChoice::Bad(true) => -1.0,
            TemperatureChoice::Bad(false) => f32::NAN,
        };
        let ls = LogitSettings {
            temperature,
            scale: self.scale.map_or(1.0, |k| (f32::from(k) + 1.0) / 64.0),
            keep_mask: keep.as_deref(),
            additive_mask: add.as_deref(),
            causal: self.causal.map(isize::from),
            ..Default::default()
        };
        let (buffer, offset) = at_offset(&x, usize::from(self.rows.offset));
        let input = &buffer[offset..offset + x.len()];
        if matches!(self.temperature, TemperatureChoice::Bad(_)) {
            for backend in backends() {
                let sm = with_settings(Softmax::new().backend(backend), &ls);
                let mut y = vec![7.0f32; x.len()];
                let got = sm.run_rows(input, &mut y, row_len);
                assert!(
                    matches!(got, Err(Error::InvalidParameter { .. })),
                    "{got:?}"
                );
                assert!(y.iter().all(|&v| v == 7.0), "an error wrote");
            }
            return (0.0, 0.0);
        }
        let mut worst = (0.0f64, 0.0f64);
        for backend in backends() {
            for algorithm in algorithms() {
                let sm = Softmax::new().backend(backend).algorithm(algorithm);
                let w = pool(1).install(|| check_with_settings(sm, &ls, input, row_len, "fuzz"));
                worst = (worst.0.max(w.0), worst.1.max(w.1));
                let sm = with_settings(sm, &ls);
                let run = |threads: usize| {
                    let mut y = vec![0.0f32; x.len()];
                    pool(threads).install(|| sm.run_rows(input, &mut y, row_len).unwrap());
                    bits(&y)
                };
                assert_eq!(run(1), run(2), "{sm:?}: 2 threads differ");
            }
        }
        worst
    }
}

/// Cross-entropy rows against targets derived from the case.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct CrossEntropyCase {
    pub rows: SoftmaxCase,
    /// Row r's target is `targets[r % len] % (row_len + 2)`: sometimes out
    /// of range (an error unless it is the ignore index).
    pub targets: Vec<u16>,
    /// ε = 0 below 128, else (k − 128)/128.
    pub smoothing: u8,
    pub ignore: Option<u16>,
    pub reduction: u8,
}

impl CrossEntropyCase {
    /// The `cross_entropy_diff` body: every backend against the reference
    /// with and without a gradient, 1 and 2 threads bit-identical; a target
    /// out of range is `TargetOutOfRange` for the first such row and
    /// writes nothing.
    pub fn check(&self) -> (f64, f64) {
        let Some((x, row_len)) = rows_of(&self.rows) else {
            return (0.0, 0.0);
        };
        let rows = x.len() / row_len;
        let wrap = |t: u16| usize::from(t) % (row_len + 2);
        let targets: Vec<usize> = (0..rows)
            .map(|r| {
                self.targets
                    .get(r % self.targets.len().max(1))
                    .map_or(0, |&t| wrap(t))
            })
            .collect();
        let ignore = self.ignore.map(wrap);
        let eps = if self.smoothing < 128 {
            0.0
        } else {
            f32::from(self.smoothing - 128) / 128.0
        };
        let reduction =
            [Reduction::Mean, Reduction::Sum, Reduction::None][usize::from(self.reduction % 3)];
        let bad = targets
            .iter()
            .enumerate()
            .find(|&(_, &t)| Some(t) != ignore && t >= row_len);
        let mut worst = (0.0f64, 0.0f64);
        for backend in backends() {
            let sm = Softmax::new().backend(backend);
            if let Some((row, &target)) = bad {
                let mut grad = vec![7.0f32; x.len()];
                let got = sm.run_cross_entropy(
                    &x,
                    row_len,
                    &targets,
                    CrossEntropyOptions {
                        label_smoothing: eps,
                        ignore_index: ignore,
                        reduction,
                        grad: Some(&mut grad),
                    },
                );
                assert_eq!(
                    got,
                    Err(Error::TargetOutOfRange {
                        row,
                        target,
                        row_len
                    })
                );
                assert!(grad.iter().all(|&v| v == 7.0), "an error wrote");
                continue;
            }
            let w = pool(1).install(|| {
                check_cross_entropy(&sm, &x, row_len, &targets, (eps, ignore, reduction), "fuzz")
            });
            worst = (worst.0.max(w.0), worst.1.max(w.1));
            // The same rows held as vocabulary shards.
            let settings = (eps, ignore, reduction);
            let shards = [1, 2, 3, 8][rows % 4];
            let (ce, grad) = pool(1).install(|| {
                sharded_cross_entropy(&sm, &x, row_len, &targets, shards, settings, rows)
            });
            let w = check_cross_entropy_results(
                &x,
                row_len,
                &targets,
                settings,
                [&ce, &ce],
                &grad,
                &format!("fuzz, {shards} shards {sm:?}"),
            );
            worst = (worst.0.max(w.0), worst.1.max(w.1));
            let run = |threads: usize| {
                let mut grad = vec![0.0f32; x.len()];
                let ce = pool(threads)
                    .install(|| {
                        sm.run_cross_entropy(
                            &x,
                            row_len,
                            &targets,
                            CrossEntropyOptions {
                                label_smoothing: eps,
                                ignore_index: ignore,
                                reduction,
                                grad: Some(&mut grad),
                            },
                        )
                    })
                    .unwrap();
                (ce.loss.to_bits(), bits(&ce.per_row), bits(&grad))
            };
            assert_eq!(run(1), run(2), "{backend}: 2 threads differ");
        }
        worst
    }
}

/// Backward passes: the logits give the probabilities, `grad` the gradient.
#[derive(Arbitrary, Clone, PartialEq)]
pub struct BackwardCase {
    pub rows: SoftmaxCase,
    /// Cycled over the row's length (zeros when empty).
    pub grad: Vec<Item>,
}

impl fmt::Debug for BackwardCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "BackwardCase: logits {:?}", self.rows)?;
        write!(f, "grad (cycled): ")?;
        write_runs(f, &expand(&self.grad))
    }
}

impl BackwardCase {
    /// The `backward_diff` body: both passes on every backend against the
    /// reference, 1 and 2 threads bit-identical.
    pub fn check(&self) -> (f64, f64) {
        let Some((x, row_len)) = rows_of(&self.rows) else {
            return (0.0, 0.0);
        };
        let g0 = expand(&self.grad);
        let g: Vec<f32> = (0..x.len())
            .map(|i| if g0.is_empty() { 0.0 } else { g0[i % g0.len()] })
            .collect();
        let mut worst = (0.0f64, 0.0f64);
        for backend in backends() {
            let sm = Softmax::new().backend(backend);
            let w = pool(1).install(|| check_backward(&sm, &x, &g, row_len, "fuzz"));
            worst = (worst.0.max(w.0), worst.1.max(w.1));
            let run = |threads: usize| {
                let mut out = vec![0.0f32; x.len()];
                pool(threads).install(|| sm.run_backward_rows(&x, &g, &mut out, row_len).unwrap());
                bits(&out)
            };
            assert_eq!(run(1), run(2), "{backend}: 2 threads differ");
        }
        worst
    }
}

impl SoftmaxCase {
    /// The `entropy_diff` body: entropy rows on every backend against the
    /// reference, 1 and 2 threads bit-identical.
    pub fn check_entropy(&self) -> f64 {
        let Some((x, row_len)) = rows_of(self) else {
            return 0.0;
        };
        let mut worst = 0.0f64;
        for backend in backends() {
            let sm = Softmax::new().backend(backend);
            worst = worst.max(pool(1).install(|| check_entropy(&sm, &x, row_len, "fuzz")));
            let run = |threads: usize| {
                let mut h = vec![0.0f32; x.len() / row_len];
                pool(threads).install(|| sm.run_entropy_rows(&x, row_len, &mut h).unwrap());
                bits(&h)
            };
            assert_eq!(run(1), run(2), "{backend}: 2 threads differ");
        }
        worst
    }
}

// ------------------------------------------------------------ sampling

/// `distribution` against the reference: the same tokens in the same
/// order with probabilities within 1e-5 relative, except that a top-p or
/// min-p boundary whose reference value is within 1e-5 of the cut may fall
/// either way (the kernels' weights are f32 there). Returns the worst
/// relative error.
pub fn check_sample_distribution(sp: &Sampler, s: &SamplingSettings, x: &[f32], what: &str) -> f64 {
    let want = sample_distribution(x, s);
    let got = sp.distribution(x);
    let Some(want) = want else {
        assert!(
            matches!(got, Err(Error::CannotSample { .. })),
            "{what}: {got:?}"
        );
        return 0.0;
    };
    let got = got.unwrap();
    assert!(
        got.iter().all(|t| t.1 > 0.0),
        "{what}: a token of probability 0 is listed"
    );
    // Probabilities below 2^-126 flush to 0 (the softmax contract), so
    // such tokens may be listed or not, on either side.
    let got: Vec<(usize, f32)> = got
        .into_iter()
        .filter(|t| f64::from(t.1) >= 2f64.powi(-126))
        .collect();
    let want: Vec<(usize, f64)> = want
        .into_iter()
        .filter(|t| t.1 >= 2f64.powi(-126))
        .collect();
    let n = got.len().min(want.len());
    if got.len() != want.len() {
        assert!(
            borderline_cut(x, s, n),
            "{what}: kept {} tokens, reference {}",
            got.len(),
            want.len()
        );
        return 0.0;
    }
    let mut worst = 0.0f64;
    for (j, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.0, w.0, "{what}: token #{j}");
        let rel = (f64::from(g.1) - w.1).abs() / w.1;
        assert!(
            rel < 1e-5,
            "{what}: token {} p {} vs {} (rel {rel:.2e})",
            g.0,
            g.1,
            w.1
        );
        worst = worst.max(rel);
    }
    worst
}

/// Whether a kept set of `n` tokens and one of `n + 1` may both be right:
/// the top-p or min-p cut after the `n` most likely tokens is within 1e-5
/// of its threshold in the reference (the kernels' weights are f32).
fn borderline_cut(x: &[f32], s: &SamplingSettings, n: usize) -> bool {
    let full = sample_distribution(
        x,
        &SamplingSettings {
            top_p: None,
            min_p: None,
            ..*s
        },
    )
    .unwrap();
    let cum: f64 = full.iter().take(n).map(|t| t.1).sum();
    let near_p = s.top_p.is_some_and(|p| (cum - f64::from(p)).abs() < 1e-5);
    let near_min = s.min_p.is_some_and(|p| {
        let next = full.get(n).map_or(0.0, |t| t.1);
        (next / full[0].1 - f64::from(p)).abs() < 1e-5
    });
    near_p || near_min
}

/// A sampler with `s`'s settings on `backend`.
pub fn sampler(backend: Backend, s: &SamplingSettings) -> Sampler {
    let mut b = Sampler::builder()
        .backend(backend)
        .temperature(s.temperature);
    if let Some(k) = s.top_k {
        b = b.top_k(k);
    }
    if let Some(p) = s.top_p {
        b = b.top_p(p);
    }
    if let Some(p) = s.min_p {
        b = b.min_p(p);
    }
    b.build().unwrap()
}

/// A row to sample from, with settings.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct SampleCase {
    pub rows: SoftmaxCase,
    /// 0 is greedy; else k/32.
    pub temperature: u8,
    pub top_k: Option<u16>,
    /// (k + 1)/256.
    pub top_p: Option<u8>,
    /// k/256.
    pub min_p: Option<u8>,
    pub seed: u64,
}

impl SampleCase {
    /// The `sample_diff` body: on every backend, the kept set and its
    /// probabilities against `reference::sample_distribution`, every drawn
    /// token inside it, rows on 1 and 2 threads the same tokens, rows that
    /// cannot be sampled an error naming the first one.
    pub fn check(&self) -> f64 {
        let Some((x, row_len)) = rows_of(&self.rows) else {
            return 0.0;
        };
        let s = SamplingSettings {
            temperature: f32::from(self.temperature) / 32.0,
            top_k: self.top_k.map(|k| usize::from(k).max(1)),
            top_p: self.top_p.map(|p| (f32::from(p) + 1.0) / 256.0),
            min_p: self.min_p.map(|p| f32::from(p) / 256.0),
        };
        let rows: Vec<&[f32]> = x.chunks(row_len).collect();
        let first_bad = rows
            .iter()
            .position(|row| sample_distribution(row, &s).is_none());
        let mut worst = 0.0f64;
        for backend in backends() {
            let sp = sampler(backend, &s);
            for (r, row) in rows.iter().enumerate().take(8) {
                let what = format!("{backend} row {r} {s:?}");
                worst = worst.max(check_sample_distribution(&sp, &s, row, &what));
            }
            let run = |threads: usize| {
                let mut out = vec![usize::MAX; rows.len()];
                let got =
                    pool(threads).install(|| sp.sample_rows(&x, row_len, self.seed, &mut out));
                (got, out)
            };
            let (got, out) = run(1);
            match first_bad {
                Some(row) => {
                    assert!(
                        matches!(got, Err(Error::CannotSample { row: r, .. }) if r == row),
                        "{got:?}"
                    );
                    assert!(out.iter().all(|&t| t == usize::MAX), "an error wrote");
                }
                None => {
                    got.unwrap();
                    for (r, (row, &t)) in rows.iter().zip(&out).enumerate() {
                        let kept = sample_distribution(row, &s).unwrap();
                        if kept.iter().any(|k| k.0 == t) {
                            continue;
                        }
                        // Past a borderline cut (which `distribution` may
                        // draw either way): in the kernels' own kept set.
                        let own = sp.distribution(row).unwrap();
                        assert!(
                            own.iter().any(|k| k.0 == t)
                                && borderline_cut(row, &s, kept.len().min(own.len())),
                            "{backend} row {r}: token {t} is not kept"
                        );
                    }
                    assert_eq!(run(2).1, out, "{backend}: 2 threads drew other tokens");
                }
            }
        }
        worst
    }
}

// ------------------------------------------------------------ half_diff: f16 and bf16 rows

/// Sampling from `X` rows (`Sampler::sample`, `sample_rows`,
/// `distribution`, `top_k_probs`, `top_k_log_probs`) on `backend` gives
/// the tokens and bits of the f32 calls on the converted rows (`exact`),
/// errors included, under temperature, top-k, top-p and min-p (each path
/// of the sampler) and greedy.
pub fn same_sampling<X: Ty>(backend: Backend, input: &[X], exact: &[f32], row_len: usize) {
    use rand::SeedableRng;
    let settings = [
        (1.0, None, None, None),
        (0.8, None, None, None),
        (0.7, None, None, Some(0.1)),
        (0.8, Some(50), None, None),
        (0.8, None, Some(0.9), None),
        (1.0, None, Some(0.95), Some(0.05)),
        (1.0, Some(3), Some(0.5), None),
        (0.0, None, None, None),
    ];
    let bits = |d: Result<Vec<(usize, f32)>, Error>| {
        d.map(|v| v.iter().map(|&(i, p)| (i, p.to_bits())).collect::<Vec<_>>())
    };
    for (temperature, top_k, top_p, min_p) in settings {
        let s = SamplingSettings {
            temperature,
            top_k,
            top_p,
            min_p,
        };
        let sp = sampler(backend, &s);
        let what = || format!("{backend} {} row_len={row_len} {s:?}", X::NAME);
        for (r, (xr, er)) in input
            .chunks(row_len.max(1))
            .zip(exact.chunks(row_len.max(1)))
            .enumerate()
        {
            for seed in 0..3 {
                let mut a = rand::rngs::StdRng::seed_from_u64(seed);
                let mut b = rand::rngs::StdRng::seed_from_u64(seed);
                assert_eq!(
                    sp.sample(xr, &mut a),
                    sp.sample(er, &mut b),
                    "sample row {r} {}",
                    what()
                );
            }
            assert_eq!(
                bits(sp.distribution(xr)),
                bits(sp.distribution(er)),
                "distribution row {r} {}",
                what()
            );
        }
        let rows = input.len().checked_div(row_len).unwrap_or(0);
        let (mut got, mut want) = (vec![7; rows], vec![7; rows]);
        assert_eq!(
            sp.sample_rows(input, row_len, 11, &mut got),
            sp.sample_rows(exact, row_len, 11, &mut want),
            "sample_rows {}",
            what()
        );
        assert_eq!(got, want, "sample_rows {}", what());
    }
    for (xr, er) in input
        .chunks(row_len.max(1))
        .zip(exact.chunks(row_len.max(1)))
    {
        for k in [1, 7, 64] {
            let what = || format!("{} row_len={row_len} k={k}", X::NAME);
            assert_eq!(
                bits(simd_softmax::top_k_probs(xr, k)),
                bits(simd_softmax::top_k_probs(er, k)),
                "top_k_probs {}",
                what()
            );
            assert_eq!(
                bits(simd_softmax::top_k_log_probs(xr, k)),
                bits(simd_softmax::top_k_log_probs(er, k)),
                "top_k_log_probs {}",
                what()
            );
        }
    }
}

/// A test's view of an element type.
pub trait Ty: Element + Debug + PartialEq {
    const NAME: &'static str;
    /// Significand bits, the implicit one included.
    const DIGITS: i32;
    /// Exponent of the smallest normal value.
    const MIN_EXP: i32;
    /// The largest finite value.
    const MAX: f64;
    fn of(v: f32) -> Self;
    fn f32(self) -> f32;
}

impl Ty for f32 {
    const NAME: &'static str = "f32";
    const DIGITS: i32 = 24;
    const MIN_EXP: i32 = -126;
    const MAX: f64 = f32::MAX as f64;
    fn of(v: f32) -> f32 {
        v
    }
    fn f32(self) -> f32 {
        self
    }
}

impl Ty for f16 {
    const NAME: &'static str = "f16";
    const DIGITS: i32 = 11;
    const MIN_EXP: i32 = -14;
    const MAX: f64 = 65504.0;
    fn of(v: f32) -> f16 {
        f16::from_f32(v)
    }
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

impl Ty for bf16 {
    const NAME: &'static str = "bf16";
    const DIGITS: i32 = 8;
    const MIN_EXP: i32 = -126;
    const MAX: f64 = 3.3895313892515355e38;
    fn of(v: f32) -> bf16 {
        bf16::from_f32(v)
    }
    fn f32(self) -> f32 {
        self.to_f32()
    }
}

/// Half an ULP of `Y` at magnitude `v` (f32 results carry their own
/// rounding in the f32 bound: 0 there).
pub fn half_ulp<Y: Ty>(v: f64) -> f64 {
    if Y::DIGITS == 24 {
        return 0.0;
    }
    let e = if v > 0.0 {
        (v.log2().floor() as i32).max(Y::MIN_EXP)
    } else {
        Y::MIN_EXP
    };
    2f64.powi(e - (Y::DIGITS - 1)) / 2.0
}

/// The worst error of `got` (of element type `Y`) (softmax or log-softmax of `x`, already
/// converted to f32) as a share of its bound; panics beyond it.
pub fn check_typed<Y: Ty>(x: &[f32], got: &[Y], log: bool, what: &dyn Fn() -> String) -> f64 {
    assert_eq!(x.len(), got.len());
    let max = x
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    let want = if log {
        reference::log_softmax_f64(x)
    } else {
        reference::softmax_f64(x)
    };
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let g = g.f32();
        let ctx = || format!("{}: [{i}] x {:e} got {g:e} want {w:e}", what(), x[i]);
        if w.is_nan() {
            assert!(g.is_nan(), "{}", ctx());
            continue;
        }
        if w.is_infinite() || (g.is_infinite() && !w.is_finite()) {
            assert_eq!(f64::from(g), w, "{}", ctx());
            continue;
        }
        let f32_bound = if log {
            reference::log_tolerance(w)
        } else if max == f32::INFINITY {
            // +inf entries split the mass: 1/k (or 0) rounded once to f32.
            w * 2f64.powi(-24)
        } else {
            reference::tolerance(x[i], max, w)
        };
        let bound = f32_bound + half_ulp::<Y>(w.abs() + f32_bound);
        if g.is_infinite() {
            // Rounded beyond the output type's range (log-softmax of f16
            // rows whose values reach past 65504): only where the exact
            // value is within the bound of that range's end.
            assert!(g.is_sign_negative() && w <= -Y::MAX + bound, "{}", ctx());
            continue;
        }
        let err = (f64::from(g) - w).abs();
        assert!(err <= bound, "{} (error {err:e}, bound {bound:e})", ctx());
        worst = worst.max(err / bound);
    }
    worst
}

/// A batch of rows for `half_diff`: the values rounded to the input type,
/// softmax and log-softmax into the output type (`types` picks one of the
/// eight pairs other than f32 to f32; four of them are errors for now).
#[derive(Arbitrary, Clone, PartialEq)]
pub struct HalfCase {
    pub rows: SoftmaxCase,
    pub types: u8,
}

impl fmt::Debug for HalfCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = expand(&self.rows.items);
        write!(f, "check::check_half(")?;
        write_runs(f, &x)?;
        write!(
            f,
            ", {}, {});",
            self.rows.row_len.resolve(x.len()),
            self.types
        )
    }
}

impl HalfCase {
    pub fn check(&self) -> f64 {
        let x = expand(&self.rows.items);
        check_half(&x, self.rows.row_len.resolve(x.len()), self.types)
    }
}

/// The `half_diff` body: `x` rounded to the input type of pair `types`,
/// softmax and log-softmax rows into the output type on every backend and
/// algorithm, 1 and 2 threads (the same bits), against the reference on
/// the rounded inputs; a bad shape must be `Err` and write nothing. The
/// input type's logsumexp, entropy, argmax and cross-entropy rows on every
/// backend: the bits of the f32 calls on the rounded inputs.
pub fn check_half(x: &[f32], row_len: usize, types: u8) -> f64 {
    fn pair<X: Ty, Y: Ty>(x: &[f32], row_len: usize) -> f64 {
        let input: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
        let exact: Vec<f32> = input.iter().map(|v| v.f32()).collect();
        let ok = expected(x.len(), row_len).is_ok();
        let mut worst = 0.0f64;
        for b in backends() {
            if ok {
                same_reductions(&Softmax::new().backend(b), &input, &exact, row_len);
                same_sampling(b, &input, &exact, row_len);
            }
            for a in algorithms() {
                let sm = Softmax::new().backend(b).algorithm(a);
                for log in [false, true] {
                    let what = || {
                        format!(
                            "{b} {a:?} log={log} {}>{} row_len={row_len}",
                            X::NAME,
                            Y::NAME
                        )
                    };
                    let run = |threads: usize| {
                        let sentinel = Y::of(12345.0);
                        let mut out = vec![sentinel; x.len()];
                        let got = pool(threads).install(|| {
                            if log {
                                sm.run_log_rows(&input, &mut out, row_len)
                            } else {
                                sm.run_rows(&input, &mut out, row_len)
                            }
                        });
                        assert_eq!(got.is_ok(), ok, "{}: {got:?}", what());
                        if !ok {
                            assert!(
                                out.iter().all(|v| *v == sentinel),
                                "{}: wrote on error",
                                what()
                            );
                        }
                        out
                    };
                    let one = run(1);
                    let two = run(2);
                    let same = one
                        .iter()
                        .zip(&two)
                        .all(|(a, b)| a.f32().to_bits() == b.f32().to_bits());
                    assert!(same, "{}: 1 and 2 threads differ", what());
                    if ok && row_len > 0 {
                        for (r, (xr, yr)) in
                            exact.chunks(row_len).zip(one.chunks(row_len)).enumerate()
                        {
                            worst = worst
                                .max(check_typed(xr, yr, log, &|| format!("{} row {r}", what())));
                        }
                    }
                }
            }
        }
        worst
    }
    /// logsumexp, entropy, argmax and cross-entropy (with smoothing and
    /// gradient) of the `X` rows have the bits of the f32 calls on the
    /// converted rows (`exact`).
    fn same_reductions<X: Ty>(sm: &Softmax, input: &[X], exact: &[f32], row_len: usize) {
        let rows = input.len().checked_div(row_len).unwrap_or(0);
        let same = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()))
        };
        let what = || format!("{sm:?} {} row_len={row_len}", X::NAME);
        let (mut got, mut want) = (vec![0.0f32; rows], vec![0.0f32; rows]);
        sm.run_logsumexp_rows(input, row_len, &mut got).unwrap();
        sm.run_logsumexp_rows(exact, row_len, &mut want).unwrap();
        assert!(same(&got, &want), "logsumexp {}", what());
        sm.run_entropy_rows(input, row_len, &mut got).unwrap();
        sm.run_entropy_rows(exact, row_len, &mut want).unwrap();
        assert!(same(&got, &want), "entropy {}", what());
        let (mut got, mut want) = (vec![None; rows], vec![None; rows]);
        sm.run_argmax_rows(input, row_len, &mut got).unwrap();
        sm.run_argmax_rows(exact, row_len, &mut want).unwrap();
        assert_eq!(got, want, "argmax {}", what());
        if rows > 0 {
            let targets: Vec<usize> = (0..rows).map(|r| (r * 7) % row_len).collect();
            let (mut got_g, mut want_g) = (vec![0.0f32; input.len()], vec![0.0f32; input.len()]);
            let options = |grad| CrossEntropyOptions {
                label_smoothing: 0.1,
                grad,
                ..Default::default()
            };
            let got = sm
                .run_cross_entropy(input, row_len, &targets, options(Some(&mut got_g[..])))
                .unwrap();
            let want = sm
                .run_cross_entropy(exact, row_len, &targets, options(Some(&mut want_g[..])))
                .unwrap();
            assert!(
                same(&got.per_row, &want.per_row),
                "cross-entropy {}",
                what()
            );
            assert!(same(&[got.loss], &[want.loss]), "cross-entropy {}", what());
            assert!(same(&got_g, &want_g), "cross-entropy grad {}", what());
            // The gradient in the logits' type: the f32 bound plus half an
            // ULP of the type.
            let mut grad = vec![X::of(7.0); input.len()];
            let settings = (0.1, None, Reduction::Mean);
            let typed = sm
                .run_cross_entropy(
                    input,
                    row_len,
                    &targets,
                    CrossEntropyOptions {
                        label_smoothing: 0.1,
                        ..Default::default()
                    }
                    .with_grad(&mut grad),
                )
                .unwrap();
            check_cross_entropy_results(
                exact,
                row_len,
                &targets,
                settings,
                [&typed, &want],
                &grad,
                &format!("cross-entropy {} grad {}", X::NAME, what()),
            );
        }
    }
    /// A pair not taken yet: an error naming the types, nothing written.
    fn refused<X: Ty, Y: Ty>(x: &[f32], row_len: usize) -> f64 {
        let input: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
        let sentinel = Y::of(12345.0);
        let mut out = vec![sentinel; x.len()];
        let want = Err(Error::UnsupportedElements {
            input: X::TYPE,
            output: Y::TYPE,
        });
        for b in backends() {
            assert_eq!(
                Softmax::new()
                    .backend(b)
                    .run_rows(&input, &mut out, row_len),
                want
            );
            assert_eq!(
                Softmax::new()
                    .backend(b)
                    .run_log_rows(&input, &mut out, row_len),
                want
            );
        }
        assert!(out.iter().all(|v| *v == sentinel), "wrote on error");
        0.0
    }
    match types % 8 {
        0 => pair::<f16, f16>(x, row_len),
        1 => pair::<bf16, bf16>(x, row_len),
        2 => pair::<f16, f32>(x, row_len),
        3 => pair::<bf16, f32>(x, row_len),
        4 => refused::<f32, f16>(x, row_len),
        5 => refused::<f32, bf16>(x, row_len),
        6 => refused::<f16, bf16>(x, row_len),
        _ => refused::<bf16, f16>(x, row_len),
    }
}

// ------------------------------------------------------------ one configuration per fuzz input

/// A case whose rows [`OneConfig`] can cut.
pub trait HasRows: Clone {
    fn rows_mut(&mut self) -> &mut SoftmaxCase;
}

impl HasRows for SoftmaxCase {
    fn rows_mut(&mut self) -> &mut SoftmaxCase {
        self
    }
}

macro_rules! has_rows {
    ($($case:ty),*) => {
        $(impl HasRows for $case {
            fn rows_mut(&mut self) -> &mut SoftmaxCase {
                &mut self.rows
            }
        })*
    };
}
has_rows!(
    SettingsCase,
    CrossEntropyCase,
    BackwardCase,
    SampleCase,
    HalfCase,
    ShapesCase
);

impl SoftmaxCase {
    /// The same items cut to their first `max` values (an exact prefix, so
    /// its reproducer is the case that ran).
    pub fn truncated(&self, max: usize) -> SoftmaxCase {
        let mut items = Vec::new();
        let mut len = 0;
        for &item in &self.items {
            let (count, of) = match item {
                Item::One(s) => (1, s),
                Item::Run { count, of } => (usize::from(count), of),
                Item::LongRun { kibi, of } => (usize::from(kibi) * 1024, of),
            };
            if len + count <= max {
                items.push(item);
                len += count;
                continue;
            }
            let mut rest = max - len;
            if rest >= 1024 {
                items.push(Item::LongRun {
                    kibi: (rest / 1024) as u8,
                    of,
                });
                rest %= 1024;
            }
            while rest > 0 {
                let count = rest.min(255);
                items.push(Item::Run {
                    count: count as u8,
                    of,
                });
                rest -= count;
            }
            break;
        }
        SoftmaxCase {
            items,
            ..self.clone()
        }
    }
}

/// A fuzz target's input: a family's case cut to `CUT` values, run on the
/// one backend × algorithm that the input chooses, so that an execution
/// checks one configuration (1 and 2 threads, in place and out of place)
/// instead of every one. The fuzzer steers the choice like any other byte.
#[derive(Arbitrary, Clone, PartialEq)]
pub struct OneConfig<C, const CUT: usize> {
    pub backend: u8,
    pub algorithm: u8,
    pub case: C,
}

/// A companion (`*_short`) target's input: rows cut to 8192 values, which
/// is four blocks of the blocked algorithm and many rescale and fold steps;
/// it costs microseconds.
pub type Short<C> = OneConfig<C, 8192>;

/// A long (`*_diff`) target's input: rows up to [`MAX_LEN`], past chunks and
/// the split of one row across threads. Replaying a kept or found input
/// checks every configuration ([`OneConfig::case`]'s own check).
pub type Long<C> = OneConfig<C, MAX_LEN>;

impl<C: HasRows, const CUT: usize> OneConfig<C, CUT> {
    /// The longest rows this input keeps.
    pub const MAX_LEN: usize = CUT;

    /// The configuration and the cut case this input stands for.
    pub fn chosen(&self) -> (Backend, Algorithm, C) {
        let backends = all_backends();
        let backend = backends[usize::from(self.backend) % backends.len()];
        let algorithm = Algorithm::ALL[usize::from(self.algorithm) % Algorithm::ALL.len()];
        let mut case = self.case.clone();
        let cut = case.rows_mut().truncated(CUT);
        *case.rows_mut() = cut;
        (backend, algorithm, case)
    }

    /// Runs a family's check on the cut case, in the chosen configuration
    /// only.
    pub fn check<R>(&self, check: impl FnOnce(&C) -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                ONLY.set(None);
            }
        }
        let (backend, algorithm, case) = self.chosen();
        ONLY.set(Some((backend, algorithm)));
        let _reset = Reset;
        check(&case)
    }
}

impl<C: HasRows + fmt::Debug, const CUT: usize> fmt::Debug for OneConfig<C, CUT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (backend, algorithm, case) = self.chosen();
        writeln!(
            f,
            "Case on {backend} {algorithm:?}, rows cut to {CUT} (the reproducer checks every configuration):"
        )?;
        write!(f, "{case:?}")
    }
}

// ------------------------------------------------------------ encoding

/// The bytes a case decodes from: the inverse of `Arbitrary`'s decoding as
/// arbitrary 1.x derives it (integers little-endian, a `bool` one byte, an
/// `Option` a `bool` then the value, a `Vec` its elements each after a
/// `true` byte and then a `false`, an enum's variant the top of a `u32`,
/// then its fields). The kept inputs of fixed bugs are written with it from
/// readable cases (`tests/fuzz_cases.rs`), which also checks that each
/// decodes back to its case, so a change of format fails there.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

macro_rules! encode_le {
    ($($int:ty),*) => {
        $(impl Encode for $int {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        })*
    };
}
encode_le!(u8, u16, u32, u64, i8, i16);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.is_some().encode(out);
        if let Some(v) = self {
            v.encode(out);
        }
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in self {
            true.encode(out);
            v.encode(out);
        }
        false.encode(out);
    }
}

/// Variant `index` of `count`: the smallest `u32` that the derive's
/// `(u32 · count) >> 32` maps to it.
fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    let v = (u64::from(index) << 32).div_ceil(u64::from(count));
    (v as u32).encode(out);
}

macro_rules! encode_fields {
    ($($ty:ident { $($field:ident),* })*) => {
        $(impl Encode for $ty {
            fn encode(&self, out: &mut Vec<u8>) {
                $(self.$field.encode(out);)*
            }
        })*
    };
}
encode_fields! {
    SoftmaxCase { row_len, offset, items }
    ExpCase { inputs }
    MaskSeed { per_row, seed }
    SettingsCase { rows, temperature, scale, keep, add, causal }
    CrossEntropyCase { rows, targets, smoothing, ignore, reduction }
    BackwardCase { rows, grad }
    SampleCase { rows, temperature, top_k, top_p, min_p, seed }
}

impl<C: Encode, const CUT: usize> Encode for OneConfig<C, CUT> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.backend.encode(out);
        self.algorithm.encode(out);
        self.case.encode(out);
    }
}

impl Encode for Scalar {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Scalar::Bits(b) => {
                variant(out, 0, 4);
                b.encode(out);
            }
            Scalar::Logit(v) => {
                variant(out, 1, 4);
                v.encode(out);
            }
            Scalar::Special(i) => {
                variant(out, 2, 4);
                i.encode(out);
            }
            Scalar::Scaled(m, e) => {
                variant(out, 3, 4);
                m.encode(out);
                e.encode(out);
            }
        }
    }
}

impl Encode for Item {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Item::One(s) => {
                variant(out, 0, 3);
                s.encode(out);
            }
            Item::Run { count, of } => {
                variant(out, 1, 3);
                count.encode(out);
                of.encode(out);
            }
            Item::LongRun { kibi, of } => {
                variant(out, 2, 3);
                kibi.encode(out);
                of.encode(out);
            }
        }
    }
}

impl Encode for RowLen {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            RowLen::Whole => variant(out, 0, 3),
            RowLen::Divisor(k) => {
                variant(out, 1, 3);
                k.encode(out);
            }
            RowLen::Any(v) => {
                variant(out, 2, 3);
                v.encode(out);
            }
        }
    }
}

impl Encode for ExpInput {
    fn encode(&self, out: &mut Vec<u8>) {
        let (index, payload) = match *self {
            ExpInput::Bits(b) => (0, b.to_le_bytes().to_vec()),
            ExpInput::InDomain(u) => (1, u.to_le_bytes().to_vec()),
            ExpInput::NearCutoff(d) => (2, d.to_le_bytes().to_vec()),
            ExpInput::NearZero(d) => (3, d.to_le_bytes().to_vec()),
            ExpInput::NearTop(d) => (4, d.to_le_bytes().to_vec()),
        };
        variant(out, index, 5);
        out.extend_from_slice(&payload);
    }
}

impl Encode for TemperatureChoice {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            TemperatureChoice::One => variant(out, 0, 5),
            TemperatureChoice::Finite(k) => {
                variant(out, 1, 5);
                k.encode(out);
            }
            TemperatureChoice::Zero => variant(out, 2, 5),
            TemperatureChoice::Infinite => variant(out, 3, 5),
            TemperatureChoice::Bad(b) => {
                variant(out, 4, 5);
                b.encode(out);
            }
        }
    }
}

/// Attention batches for `shapes_diff`: the case's rows laid out
/// `[batch, heads, queries, keys]`, a keep or additive mask of one of the
/// broadcast shapes, causal (an offset, or aligned to the last key), ALiBi,
/// sinks (hostile values among them), a scale; in f32, f16, bf16 or bf16
/// into f32.
#[derive(Arbitrary, Clone, Debug, PartialEq)]
pub struct ShapesCase {
    pub rows: SoftmaxCase,
    /// 1 + heads % 8.
    pub heads: u8,
    /// 1 + queries % 6.
    pub queries: u8,
    /// None, one row, [q, k], [b, 1, q, k], every row (`% 5`).
    pub mask_shape: u8,
    /// The mask keeps (else it adds).
    pub keep: bool,
    pub mask_seed: u64,
    /// Some(i8::MIN): `causal_end`; else the offset.
    pub causal: Option<i8>,
    /// max_bias = k/16 (with an additive mask).
    pub alibi: Option<u8>,
    pub sinks: Option<u64>,
    /// (k + 1)/64.
    pub scale: Option<u8>,
    /// f32, f16, bf16, bf16 into f32 (`% 4`).
    pub types: u8,
}

impl ShapesCase {
    /// The `shapes_diff` body: every backend (and algorithm for f32)
    /// against `reference::softmax_row_with`, 1 and 2 threads and the parts
    /// of the batch bit-identical to the whole.
    pub fn check(&self) -> (f64, f64) {
        let Some((x, k)) = rows_of(&self.rows) else {
            return (0.0, 0.0);
        };
        let rows = x.len() / k;
        let (mut h, mut q) = (
            1 + usize::from(self.heads % 8),
            1 + usize::from(self.queries % 6),
        );
        if rows < h * q {
            (h, q) = (1, rows);
        }
        let b = rows / (h * q);
        let x = &x[..b * h * q * k];
        let shape = simd_softmax::Attention::new(b, h, q, k);
        let mask_len = match self.mask_shape % 5 {
            0 => 0,
            1 => k,
            2 => q * k,
            3 => b * q * k,
            _ => x.len(),
        };
        let keep: Option<Vec<bool>> = (self.keep && mask_len > 0).then(|| {
            (0..mask_len)
                .map(|i| !mix(self.mask_seed, i as u64).is_multiple_of(4))
                .collect()
        });
        let add: Option<Vec<f32>> = (!self.keep && mask_len > 0).then(|| {
            (0..mask_len)
                .map(|i| match mix(self.mask_seed, i as u64) {
                    h if h % 8 == 0 => f32::NEG_INFINITY,
                    h => -((h >> 40) as f32 / (1u64 << 24) as f32 * 20.0),
                })
                .collect()
        });
        let sinks: Option<Vec<f32>> = self.sinks.map(|seed| {
            (0..h)
                .map(|i| match mix(seed, i as u64) {
                    v if v % 16 == 0 => f32::NEG_INFINITY,
                    v if v % 16 == 1 => f32::INFINITY,
                    v if v % 32 == 2 => f32::NAN,
                    v if v % 16 == 3 => 1e30,
                    v => (v >> 40) as f32 / (1u64 << 24) as f32 * 20.0 - 10.0,
                })
                .collect()
        });
        let causal = match self.causal {
            Some(i8::MIN) => Some(k as isize - q as isize),
            c => c.map(isize::from),
        };
        let ls = LogitSettings {
            scale: self.scale.map_or(1.0, |s| (f32::from(s) + 1.0) / 64.0),
            keep_mask: keep.as_deref(),
            additive_mask: add.as_deref(),
            causal,
            attention: Some(shape),
            max_bias: self
                .alibi
                .filter(|_| add.is_some())
                .map(|m| f32::from(m) / 16.0),
            sinks: sinks.as_deref(),
            ..Default::default()
        };
        let parts = |sm: &Softmax<simd_softmax::LogitSettings<'_>>| {
            let mut y = vec![0.0f32; x.len()];
            for i in 0..3 {
                let part = simd_softmax::RowPart::new(i, 3).unwrap();
                let r = part.rows(rows.min(b * h * q));
                sm.run_rows_part(x, &mut y[r.start * k..r.end * k], k, part)
                    .unwrap();
            }
            bits(&y)
        };
        let mut worst = (0.0f64, 0.0f64);
        match self.types % 4 {
            0 => {
                for backend in backends() {
                    for algorithm in algorithms() {
                        let sm = Softmax::new().backend(backend).algorithm(algorithm);
                        let w = pool(1).install(|| check_with_settings(sm, &ls, x, k, "shapes"));
                        worst = (worst.0.max(w.0), worst.1.max(w.1));
                        let sm = with_settings(sm, &ls);
                        let run = |threads: usize| {
                            let mut y = vec![0.0f32; x.len()];
                            pool(threads).install(|| sm.run_rows(x, &mut y, k).unwrap());
                            bits(&y)
                        };
                        let one = run(1);
                        assert_eq!(one, run(2), "{sm:?}: 2 threads differ");
                        assert_eq!(one, parts(&sm), "{sm:?}: parts differ");
                    }
                    // An f16 additive mask is its f32 values.
                    if let Some(add) = &add {
                        let half: Vec<f16> = add.iter().map(|&v| f16::from_f32(v)).collect();
                        let exact: Vec<f32> = half.iter().map(|v| v.to_f32()).collect();
                        let ls16 = LogitSettings {
                            additive_mask: Some(&exact),
                            ..ls
                        };
                        let sm = with_settings(Softmax::new().backend(backend), &ls16);
                        let (mut a, mut b) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
                        sm.run_rows(x, &mut a, k).unwrap();
                        sm.additive_mask(&half).run_rows(x, &mut b, k).unwrap();
                        assert_eq!(bits(&a), bits(&b), "f16 mask {sm:?}");
                    }
                }
            }
            1 => worst = check_settings_typed::<f16, f16>(&ls, x, k),
            2 => worst = check_settings_typed::<bf16, bf16>(&ls, x, k),
            _ => worst = check_settings_typed::<bf16, f32>(&ls, x, k),
        }
        worst
    }
}

/// Softmax and log-softmax of `x` rounded to `X`, into `Y`, under `ls` on
/// every backend: each output within the reference's bound on the
/// converted values plus half an ULP of `Y`. The worst shares.
pub fn check_settings_typed<X: Ty, Y: Ty>(
    ls: &LogitSettings<'_>,
    x: &[f32],
    row_len: usize,
) -> (f64, f64) {
    let xs: Vec<X> = x.iter().map(|&v| X::of(v)).collect();
    let exact: Vec<f32> = xs.iter().map(|&v| v.f32()).collect();
    let mut worst = (0.0f64, 0.0f64);
    for backend in backends() {
        let sm = with_settings(Softmax::new().backend(backend), ls);
        for log in [false, true] {
            let mut y = vec![Y::of(7.0); x.len()];
            if log {
                sm.run_log_rows(&xs, &mut y, row_len).unwrap();
            } else {
                sm.run_rows(&xs, &mut y, row_len).unwrap();
            }
            let rows = exact.chunks(row_len).zip(y.chunks(row_len));
            for (r, (row, out)) in rows.enumerate() {
                let want = softmax_row_with(row, r, ls, log);
                for (i, (&got, e)) in out.iter().zip(&want).enumerate() {
                    let got = got.f32();
                    let at = || {
                        format!(
                            "{} -> {} {sm:?} log={log} row {r} [{i}] x={} got {got} want {}",
                            X::NAME,
                            Y::NAME,
                            row[i],
                            e.value
                        )
                    };
                    if e.value.is_nan() {
                        assert!(got.is_nan(), "{}", at());
                        continue;
                    }
                    let tol = if log {
                        e.log_tolerance()
                    } else {
                        e.tolerance()
                    };
                    let bound = tol + half_ulp::<Y>(e.value.abs() + tol);
                    if e.value == 0.0 || e.value.is_infinite() || got.is_infinite() {
                        // Masked, a special row, or beyond the type's range.
                        let beyond = e.value <= -Y::MAX + bound;
                        let exact = f64::from(got) == e.value;
                        assert!(exact || (got == f32::NEG_INFINITY && beyond), "{}", at());
                        continue;
                    }
                    let share = (f64::from(got) - e.value).abs() / bound;
                    assert!(share <= 1.0, "{} ({share:.2} of the bound)", at());
                    if log {
                        worst.1 = worst.1.max(share);
                    } else {
                        worst.0 = worst.0.max(share);
                    }
                }
            }
        }
    }
    worst
}
