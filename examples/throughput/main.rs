//! The throughput tool: softmax over LLM-vocabulary shapes, median of
//! repeated timings, as a table or as JSON lines.
//!
//! ```text
//! cargo run --release --example throughput
//! cargo run --release --example throughput -- --shapes 1x128256,64x1024 --threads 1,2 \
//!     --algorithms auto,three-pass,online,blocked --backend avx2 --json
//! cargo run --release --example throughput -- --sweep --plot docs/sweep.svg
//! ```
//!
//! `--sweep` measures the curve instead of a few shapes: every row length
//! from 32 to 2^21 (powers of two and the vocabularies 50257, 128256,
//! 151936, 256000), once as a batch of about `--elements` (default 4Mi)
//! elements per call and once as a single row. `--plot FILE.svg` draws
//! Gelem/s against row length for each thread count, with the copy and exp
//! limits of the batches and this CPU's cache sizes marked.
//!
//! `--dtype f32|f16|bf16` sets the element type of softmax and log-softmax
//! rows (`--out-dtype` the output's, by default the same) and of the
//! logsumexp, argmax, entropy, sample and top_k rows; the GB/s column counts the bytes
//! of input and output type. `--op softmax_convert` is the workaround the
//! 16-bit rows replace: the batch converted to f32 with `half`'s slice
//! conversion, our f32 softmax in place, converted back.
//!
//! Attention batches: `--layout BxHxQxK` runs one shape, `B·H·Q` rows of
//! `K`, under `Softmax::attention`; `--causal-end` is the causal mask
//! aligned to the last key (`--causal OFFSET` any other), `--alibi
//! MAX_BIAS` ALiBi over a `[Q, K]` additive mask of key distances (−(K −
//! 1 − j)), `--sinks` one sink logit per head (1.0); `--softcap C`
//! soft-caps the logits at ±C (any layout).

use std::time::{Duration, Instant};

#[path = "../../benches/common/logits.rs"]
mod logits;
mod plot;

use half::slice::HalfFloatSliceExt;
use simd_softmax::exp::exp_slice;
use simd_softmax::half::{bf16, f16};
use simd_softmax::{
    Algorithm, Backend, CrossEntropyOptions, ElementType, LogitSettings, Sampler, Softmax,
    top_k_probs,
};

/// The operations `--op` takes. Only softmax has algorithms to choose.
/// `cross_entropy` is the forward pass with its gradient (targets spread
/// over the row, mean reduction); the backward passes take the logits as
/// the incoming gradient and their softmax as the probabilities. `sample`
/// draws one token per row with the sampler settings (`--temperature`,
/// `--top-k`, `--top-p`, `--min-p`); `sort_sample` is the path it replaces:
/// our softmax, a full sort of the row, the filters, a draw; `top_k` is
/// `top_k_probs` with `--top-k` (default 20).
const OPS: [&str; 12] = [
    "softmax",
    "softmax_convert",
    "log_softmax",
    "logsumexp",
    "argmax",
    "entropy",
    "cross_entropy",
    "softmax_backward",
    "log_softmax_backward",
    "sample",
    "sort_sample",
    "top_k",
];

const DEFAULT_SHAPES: &str = "1x50257,1x128256,1x256000,64x50257,32x128256,16x256000,4096x1024";

/// The vocabularies `--sweep` adds to the powers of two.
const VOCABULARIES: [usize; 4] = [50257, 128256, 151936, 256000];

struct Args {
    op: String,
    shapes: Vec<(usize, usize)>,
    threads: Vec<usize>,
    algorithms: Vec<Algorithm>,
    backend: Backend,
    json: bool,
    /// Measure the copy and exp limits (off: `--no-limits`, for profiling).
    limits: bool,
    /// Logit settings for softmax and log_softmax.
    temperature: Option<f32>,
    scale: Option<f32>,
    causal: Option<isize>,
    causal_end: bool,
    /// Attention: the layout, ALiBi's max_bias, sinks.
    layout: Option<simd_softmax::Attention>,
    alibi: Option<f32>,
    sinks: bool,
    softcap: Option<f32>,
    /// Sampler settings.
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    /// Where `--plot` writes its SVG.
    plot: Option<String>,
    /// The elements per call of `--sweep`'s batches.
    elements: usize,
    /// Element types of softmax and log-softmax rows, in and out.
    dtype: ElementType,
    out_dtype: Option<ElementType>,
}

fn usage() -> ! {
    eprintln!(
        "usage: throughput [--op {}] [--shapes RxC,...] [--threads T,...]\n\
         \x20                 [--algorithms auto,three-pass,online,blocked] [--backend avx512|avx2|portable|scalar] [--json]\n\
         \x20                 [--temperature T] [--scale S] [--causal OFFSET] (softmax, log_softmax) [--no-limits]\n\
         \x20                 [--temperature T] [--top-k K] [--top-p P] [--min-p P] (sample, sort_sample, top_k)\n\
         \x20                 [--sweep [--elements N]] (instead of --shapes) [--plot FILE.svg]\n\
         defaults: --shapes {DEFAULT_SHAPES} --threads 1,<all cores> --algorithms auto --elements 4194304",
        OPS.join("|")
    );
    std::process::exit(2)
}

fn parse_list<T>(s: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Vec<T> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            f(p.trim()).unwrap_or_else(|| {
                eprintln!("bad {what}: {p:?}");
                usage()
            })
        })
        .collect()
}

fn parse_one<T: std::str::FromStr>(s: &str, what: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("bad {what}: {s:?}");
        usage()
    })
}

fn parse_args() -> Args {
    let all_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = Args {
        op: "softmax".into(),
        shapes: Vec::new(),
        threads: if all_cores > 1 {
            vec![1, all_cores]
        } else {
            vec![1]
        },
        algorithms: vec![Algorithm::Auto],
        backend: simd_softmax::try_backend().unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        }),
        json: false,
        limits: true,
        temperature: None,
        scale: None,
        causal: None,
        causal_end: false,
        layout: None,
        alibi: None,
        sinks: false,
        softcap: None,
        top_k: None,
        top_p: None,
        min_p: None,
        plot: None,
        elements: 4 << 20,
        dtype: ElementType::F32,
        out_dtype: None,
    };
    let mut shapes = None;
    let mut sweep = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--op" => args.op = value(),
            "--shapes" => shapes = Some(value()),
            "--sweep" => sweep = true,
            "--elements" => args.elements = parse_one(&value(), "element count"),
            "--plot" => args.plot = Some(value()),
            "--threads" => args.threads = parse_list(&value(), "thread count", |t| t.parse().ok()),
            "--algorithms" => {
                args.algorithms = parse_list(&value(), "algorithm", Algorithm::from_name)
            }
            "--backend" => {
                let name = value();
                args.backend = Backend::from_name(&name).unwrap_or_else(|| {
                    eprintln!("bad backend {name:?}");
                    usage()
                });
            }
            "--json" => args.json = true,
            "--temperature" => args.temperature = Some(parse_one(&value(), "temperature")),
            "--scale" => args.scale = Some(parse_one(&value(), "scale")),
            "--causal" => args.causal = Some(parse_one(&value(), "causal offset")),
            "--causal-end" => args.causal_end = true,
            "--layout" => {
                let v = value();
                let dims: Vec<usize> =
                    parse_list(&v.replace('x', ","), "layout", |d| d.parse().ok());
                let [b, h, q, k] = dims[..] else {
                    eprintln!("bad layout {v:?}: BxHxQxK");
                    usage()
                };
                args.layout = Some(simd_softmax::Attention::new(b, h, q, k));
            }
            "--alibi" => args.alibi = Some(parse_one(&value(), "max_bias")),
            "--sinks" => args.sinks = true,
            "--softcap" => args.softcap = Some(parse_one(&value(), "softcap")),
            "--top-k" => args.top_k = Some(parse_one(&value(), "top-k")),
            "--top-p" => args.top_p = Some(parse_one(&value(), "top-p")),
            "--min-p" => args.min_p = Some(parse_one(&value(), "min-p")),
            "--no-limits" => args.limits = false,
            "--dtype" => args.dtype = parse_dtype(&value()),
            "--out-dtype" => args.out_dtype = Some(parse_dtype(&value())),
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("unknown flag {flag:?}");
                usage()
            }
        }
    }
    if let Some(a) = args.layout {
        if sweep || shapes.is_some() {
            eprintln!("--layout is the shape: give --layout, --shapes or --sweep");
            usage()
        }
        shapes = Some(format!("{}x{}", a.rows(), a.keys));
    }
    if sweep && shapes.is_some() {
        eprintln!("--sweep chooses its own shapes: give --shapes or --sweep, not both");
        usage()
    }
    if args.elements == 0 {
        eprintln!("bad element count 0");
        usage()
    }
    args.shapes = if sweep {
        sweep_shapes(args.elements)
    } else {
        let shapes = shapes.unwrap_or_else(|| DEFAULT_SHAPES.to_string());
        parse_list(&shapes, "shape", |s| {
            let (r, c) = s
                .to_lowercase()
                .split_once('x')
                .map(|(r, c)| (r.to_string(), c.to_string()))?;
            Some((r.parse().ok()?, c.parse().ok()?))
        })
    };
    if let Some((r, c)) = args.shapes.iter().find(|&&(r, c)| r == 0 || c == 0) {
        eprintln!("bad shape {r}x{c}: rows and columns must both be at least 1");
        usage()
    }
    if !OPS.contains(&args.op.as_str()) {
        eprintln!(
            "unknown op {:?} (this build has: {})",
            args.op,
            OPS.join(", ")
        );
        usage()
    }
    if !args.backend.is_available() {
        eprintln!("backend {} is not available on this CPU", args.backend);
        std::process::exit(2)
    }
    args
}

fn parse_dtype(name: &str) -> ElementType {
    ElementType::from_name(name).unwrap_or_else(|| {
        eprintln!("bad element type {name:?}");
        usage()
    })
}

/// `--sweep`'s shapes, shortest rows first: for each row length a batch of
/// about `elements` elements (at least one row) and a single row.
fn sweep_shapes(elements: usize) -> Vec<(usize, usize)> {
    let mut lengths: Vec<usize> = (5..=21).map(|k| 1usize << k).chain(VOCABULARIES).collect();
    lengths.sort_unstable();
    let mut shapes = Vec::new();
    for cols in lengths {
        let rows = ((elements as f64 / cols as f64).round() as usize).max(1);
        shapes.push((rows, cols));
        if rows > 1 {
            shapes.push((1, cols));
        }
    }
    shapes
}

/// One measured line of the table, kept for `--plot`.
struct Measured {
    rows: usize,
    cols: usize,
    threads: usize,
    algorithm: String,
    gelem_s: f64,
    /// Seconds per call of the two limits (NaN with `--no-limits`).
    copy_s: f64,
    exp_s: f64,
}

/// Bytes past a 4 KiB boundary where the output starts (see [`Placed`]).
const Y_AT: usize = 2048;

/// A buffer at a fixed placement, so that runs and builds compare: `at`
/// bytes past a 4 KiB boundary. Where y sits against x matters: a load at
/// the same offset mod 4 KiB as a store still in flight waits for it (4K
/// aliasing). Log-softmax 4096x1024 at 1 thread ran 1.2-1.4x slower with y
/// 1040..1104 bytes past x than at 512..1024 or 2048, before and after the
/// row engine alike. So x at 0 and y half a page away ([`Y_AT`]), the
/// placement farthest from aliasing either way.
struct Placed<T = f32> {
    buf: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: Copy> Placed<T> {
    fn new(values: &[T], at: usize) -> Self {
        let size = size_of::<T>();
        let mut buf = vec![values[0]; values.len() + 8192 / size];
        let start = buf.as_ptr().align_offset(4096) + at / size;
        buf[start..start + values.len()].copy_from_slice(values);
        Placed {
            buf,
            start,
            len: values.len(),
        }
    }
}

impl<T> std::ops::Deref for Placed<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.start..self.start + self.len]
    }
}

impl<T> std::ops::DerefMut for Placed<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// Rows of one of the element types, placed.
enum Typed {
    F32(Placed<f32>),
    F16(Placed<f16>),
    Bf16(Placed<bf16>),
}

impl Typed {
    fn new(t: ElementType, values: &[f32], at: usize) -> Typed {
        match t {
            ElementType::F16 => {
                let v: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
                Typed::F16(Placed::new(&v, at))
            }
            ElementType::Bf16 => {
                let v: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
                Typed::Bf16(Placed::new(&v, at))
            }
            _ => Typed::F32(Placed::new(values, at)),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Typed::F32(_) => 4,
            _ => 2,
        }
    }
}

/// logsumexp, argmax or entropy of typed rows (`--dtype` with a reduction).
fn reduce_typed(
    sm: &Softmax,
    op: &str,
    x: &Typed,
    cols: usize,
    per_row: &mut [f32],
    indices: &mut [Option<usize>],
) {
    macro_rules! go {
        ($x:expr) => {
            match op {
                "logsumexp" => sm.run_logsumexp_rows($x, cols, per_row),
                "argmax" => sm.run_argmax_rows($x, cols, indices),
                _ => sm.run_entropy_rows($x, cols, per_row),
            }
        };
    }
    match x {
        Typed::F32(x) => go!(x),
        Typed::F16(x) => go!(x),
        Typed::Bf16(x) => go!(x),
    }
    .unwrap()
}

/// `sample_rows` on typed rows (`--dtype` with `--op sample`).
fn sample_typed(sampler: &Sampler, x: &Typed, cols: usize, seed: u64, tokens: &mut [usize]) {
    match x {
        Typed::F32(x) => sampler.sample_rows(x, cols, seed, tokens),
        Typed::F16(x) => sampler.sample_rows(x, cols, seed, tokens),
        Typed::Bf16(x) => sampler.sample_rows(x, cols, seed, tokens),
    }
    .unwrap()
}

/// `top_k_probs` of each typed row, rows in parallel.
fn top_k_typed(x: &Typed, cols: usize, k: usize) {
    match x {
        Typed::F32(x) => top_k_rows(x, cols, k),
        Typed::F16(x) => top_k_rows(x, cols, k),
        Typed::Bf16(x) => top_k_rows(x, cols, k),
    }
}

/// `top_k_probs` of each row, rows in parallel.
fn top_k_rows<E: simd_softmax::Element>(x: &[E], cols: usize, k: usize) {
    use rayon::prelude::*;
    let tops: Vec<_> = x
        .par_chunks(cols)
        .map(|row| top_k_probs(row, k).unwrap())
        .collect();
    std::hint::black_box(tops);
}

/// Softmax or log-softmax of typed rows.
fn run_typed(sm: &Softmax<LogitSettings<'_>>, log: bool, x: &Typed, y: &mut Typed, cols: usize) {
    macro_rules! go {
        ($x:expr, $y:expr) => {
            if log {
                sm.run_log_rows($x, $y, cols)
            } else {
                sm.run_rows($x, $y, cols)
            }
        };
    }
    use Typed::*;
    match (x, y) {
        (F32(x), F32(y)) => go!(x, y),
        (F32(x), F16(y)) => go!(x, y),
        (F32(x), Bf16(y)) => go!(x, y),
        (F16(x), F32(y)) => go!(x, y),
        (F16(x), F16(y)) => go!(x, y),
        (F16(x), Bf16(y)) => go!(x, y),
        (Bf16(x), F32(y)) => go!(x, y),
        (Bf16(x), F16(y)) => go!(x, y),
        (Bf16(x), Bf16(y)) => go!(x, y),
    }
    .unwrap()
}

/// The workaround 16-bit rows replace: the batch to f32 with `half`'s
/// slice conversion, our f32 softmax in place, back to the input's type.
fn softmax_convert(
    sm: &Softmax<LogitSettings<'_>>,
    x: &Typed,
    y: &mut Typed,
    tmp: &mut [f32],
    cols: usize,
) {
    match x {
        Typed::F16(x) => x.convert_to_f32_slice(tmp),
        Typed::Bf16(x) => x.convert_to_f32_slice(tmp),
        Typed::F32(x) => tmp.copy_from_slice(x),
    }
    sm.run_rows_in_place(tmp, cols).unwrap();
    match y {
        Typed::F16(y) => y.convert_from_f32_slice(tmp),
        Typed::Bf16(y) => y.convert_from_f32_slice(tmp),
        Typed::F32(y) => y.copy_from_slice(tmp),
    }
}

/// Median seconds per call: warm up, pick a repeat count that makes each
/// sample about 3 ms, take 21 samples.
fn median_seconds(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed() < Duration::from_millis(50) {
        f();
        calls += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / f64::from(calls);
    let repeat = ((0.003 / per_call) as u32).max(1);
    let mut samples: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..repeat {
                f();
            }
            t.elapsed().as_secs_f64() / f64::from(repeat)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let args = parse_args();
    let mut measured = Vec::new();
    if !args.json {
        println!(
            "{:<12} {:<16} {:<18} {:>7} {:>12} {:>9} {:>8} {:>7} {:>7}",
            "shape",
            "backend",
            "algorithm",
            "threads",
            "median µs",
            "Gelem/s",
            "GB/s",
            "%copy",
            "%exp"
        );
    }
    for &(rows, cols) in &args.shapes {
        let x = Placed::new(
            &logits::normal_logits(rows * cols, 0x9E37_79B9_7F4A_7C15),
            0,
        );
        let mut y = Placed::new(&vec![0.0f32; rows * cols], Y_AT);
        // The typed rows of softmax and log-softmax (`--dtype`).
        let out_dtype = args.out_dtype.unwrap_or(args.dtype);
        let typed = args.dtype != ElementType::F32 || out_dtype != ElementType::F32;
        let (xt, mut yt, mut tmp) = if typed || args.op == "softmax_convert" {
            (
                Typed::new(args.dtype, &x, 0),
                Typed::new(out_dtype, &vec![0.0f32; rows * cols], Y_AT),
                vec![0.0f32; rows * cols],
            )
        } else {
            (
                Typed::F32(Placed::new(&[0.0], 0)),
                Typed::F32(Placed::new(&[0.0], 0)),
                Vec::new(),
            )
        };
        let bytes_per_element = if typed || args.op == "softmax_convert" {
            (xt.bytes() + yt.bytes()) as f64
        } else {
            8.0
        };
        for &threads in &args.threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // The two limits, on the same bytes and threads: a plain copy x -> y
            // (memory), and our exp x -> y on the same backend (memory + compute).
            let task = (rows * cols).div_ceil(threads).max(1);
            let (copy_s, exp_s) = if args.limits {
                use rayon::prelude::*;
                let copy = pool.install(|| {
                    median_seconds(|| {
                        let pairs = y.par_chunks_mut(task).zip(x.par_chunks(task));
                        pairs.for_each(|(y, x)| y.copy_from_slice(x));
                    })
                });
                let exp = pool.install(|| {
                    median_seconds(|| {
                        let pairs = y.par_chunks_mut(task).zip(x.par_chunks(task));
                        pairs.for_each(|(y, x)| exp_slice(args.backend, x, y).unwrap());
                    })
                });
                (copy, exp)
            } else {
                (f64::NAN, f64::NAN)
            };
            let algorithms = if args.op == "softmax" {
                &args.algorithms[..]
            } else {
                &[Algorithm::Auto]
            };
            let mut per_row = vec![0.0f32; rows];
            let mut indices = vec![None; rows];
            let targets: Vec<usize> = (0..rows).map(|r| (r * 7919 + 13) % cols).collect();
            let mut probs = vec![0.0f32; rows * cols];
            match args.op.as_str() {
                "softmax_backward" => simd_softmax::softmax_rows(&x, &mut probs, cols).unwrap(),
                "log_softmax_backward" => {
                    simd_softmax::log_softmax_rows(&x, &mut probs, cols).unwrap()
                }
                _ => {}
            }
            let mut sampler = Sampler::builder().backend(args.backend);
            if let Some(t) = args.temperature {
                sampler = sampler.temperature(t);
            }
            if let Some(k) = args.top_k {
                sampler = sampler.top_k(k);
            }
            if let Some(p) = args.top_p {
                sampler = sampler.top_p(p);
            }
            if let Some(p) = args.min_p {
                sampler = sampler.min_p(p);
            }
            let sampler = sampler.build().unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(2)
            });
            // ALiBi's mask: key distances, [Q, K] (one row without a layout).
            let queries = args.layout.map_or(1, |a| a.queries);
            let alibi_mask: Vec<f32> = (0..queries * cols)
                .map(|i| -((cols - 1 - i % cols) as f32))
                .collect();
            let sinks = vec![1.0f32; args.layout.map_or(1, |a| a.heads)];
            let mut tokens = vec![0usize; rows];
            let mut seed = 0u64;
            for &algorithm in algorithms {
                // The logit settings apply to softmax and log-softmax only.
                let plain = Softmax::new().backend(args.backend).algorithm(algorithm);
                let mut sm = plain.settings(Default::default());
                if let Some(t) = args.temperature.filter(|_| args.op.ends_with("softmax")) {
                    sm = sm.temperature(t);
                }
                if let Some(s) = args.scale {
                    sm = sm.scale(s);
                }
                if let Some(offset) = args.causal {
                    sm = sm.causal(offset);
                }
                if args.causal_end {
                    sm = sm.causal_end();
                }
                if let Some(a) = args.layout {
                    sm = sm.attention(a);
                }
                if let Some(b) = args.alibi {
                    sm = sm.additive_mask(&alibi_mask).alibi(b);
                }
                if args.sinks {
                    sm = sm.sinks(&sinks);
                }
                if let Some(c) = args.softcap {
                    sm = sm.softcap(c);
                }
                eprint!(
                    "\r{rows}x{cols} {} {threads} thread(s)...   ",
                    algorithm.name()
                );
                let seconds = pool.install(|| {
                    median_seconds(|| match args.op.as_str() {
                        "log_softmax" if typed => run_typed(&sm, true, &xt, &mut yt, cols),
                        "softmax" if typed => run_typed(&sm, false, &xt, &mut yt, cols),
                        "softmax_convert" => softmax_convert(&sm, &xt, &mut yt, &mut tmp, cols),
                        "logsumexp" | "argmax" | "entropy" if typed => {
                            reduce_typed(&plain, &args.op, &xt, cols, &mut per_row, &mut indices)
                        }
                        "log_softmax" => sm.run_log_rows(&x, &mut y, cols).unwrap(),
                        "logsumexp" => plain.run_logsumexp_rows(&x, cols, &mut per_row).unwrap(),
                        "argmax" => plain.run_argmax_rows(&x, cols, &mut indices).unwrap(),
                        "entropy" => plain.run_entropy_rows(&x, cols, &mut per_row).unwrap(),
                        "cross_entropy" => {
                            let options = CrossEntropyOptions {
                                grad: Some(&mut y),
                                ..Default::default()
                            };
                            plain
                                .run_cross_entropy(&x, cols, &targets, options)
                                .unwrap();
                        }
                        "softmax_backward" => {
                            plain.run_backward_rows(&probs, &x, &mut y, cols).unwrap()
                        }
                        "log_softmax_backward" => plain
                            .run_log_backward_rows(&probs, &x, &mut y, cols)
                            .unwrap(),
                        "sample" if typed => {
                            seed += 1;
                            sample_typed(&sampler, &xt, cols, seed, &mut tokens);
                        }
                        "sample" => {
                            seed += 1;
                            sampler.sample_rows(&x, cols, seed, &mut tokens).unwrap();
                        }
                        "sort_sample" => {
                            seed += 1;
                            sort_sample(&args, &x, &mut y, cols, seed, &mut tokens);
                        }
                        "top_k" if typed => top_k_typed(&xt, cols, args.top_k.unwrap_or(20)),
                        "top_k" => top_k_rows(&x, cols, args.top_k.unwrap_or(20)),
                        _ => sm.run_rows(&x, &mut y, cols).unwrap(),
                    })
                });
                eprint!("\r{:60}\r", "");
                let elems = (rows * cols) as f64;
                let (us, gelem) = (seconds * 1e6, elems / seconds / 1e9);
                measured.push(Measured {
                    rows,
                    cols,
                    threads,
                    algorithm: algorithm.name().to_string(),
                    gelem_s: gelem,
                    copy_s,
                    exp_s,
                });
                let resolved = match args.op.as_str() {
                    // Rows of one 16-bit type in and out: three-pass (exps
                    // in an f32 scratch row); into f32: the f32 kernels.
                    "softmax" | "log_softmax" if typed && out_dtype != ElementType::F32 => {
                        "three-pass"
                    }
                    "softmax" | "softmax_convert" => algorithm.resolve_name(rows * cols, cols),
                    "argmax" => "one-pass",
                    "log_softmax" => Algorithm::Auto.resolve_name(rows * cols, cols),
                    "cross_entropy" => "blocked",
                    "entropy" => "one-pass",
                    "softmax_backward" | "log_softmax_backward" => "two-pass",
                    "sample" => "fused",
                    "sort_sample" => "softmax+sort",
                    "top_k" => "one-pass",
                    _ => "online",
                };
                let name = match algorithm {
                    Algorithm::Auto => format!("auto({resolved})"),
                    a => a.name().to_string(),
                };
                let name = if typed || args.op == "softmax_convert" {
                    format!("{}>{} {name}", args.dtype, out_dtype)
                } else {
                    name
                };
                // Limits not measured (`--no-limits`): JSON null, `-` in the table.
                let json_us = |s: f64| {
                    if s.is_nan() {
                        "null".to_string()
                    } else {
                        format!("{:.3}", s * 1e6)
                    }
                };
                let share = |s: f64| {
                    if s.is_nan() {
                        "-".to_string()
                    } else {
                        format!("{:.0}%", 100.0 * s / seconds)
                    }
                };
                if args.json {
                    println!(
                        "{{\"op\":\"{}\",\"rows\":{rows},\"cols\":{cols},\"threads\":{threads},\"backend\":\"{}\",\"dtype\":\"{}\",\"out_dtype\":\"{}\",\"algorithm\":\"{}\",\"resolved\":\"{}\",\"median_us\":{us:.3},\"gelem_s\":{gelem:.4},\"gb_s\":{:.3},\"copy_us\":{},\"exp_us\":{}}}",
                        args.op,
                        args.backend,
                        args.dtype,
                        out_dtype,
                        algorithm.name(),
                        resolved,
                        gelem * bytes_per_element,
                        json_us(copy_s),
                        json_us(exp_s)
                    );
                } else {
                    println!(
                        "{:<12} {:<16} {:<18} {:>7} {:>12.1} {:>9.3} {:>8.2} {:>7} {:>7}",
                        format!("{rows}x{cols}"),
                        args.backend.to_string(),
                        name,
                        threads,
                        us,
                        gelem,
                        gelem * bytes_per_element,
                        share(copy_s),
                        share(exp_s)
                    );
                }
            }
        }
    }

    if let Some(path) = &args.plot
        && let Err(e) = plot::write(path, &args.op, args.backend, args.elements, &measured)
    {
        eprintln!("cannot write {path}: {e}");
        std::process::exit(1)
    }
}

/// The path `sample` replaces, for comparison: our softmax of `x/t`, then
/// per row a full sort by probability, top-k, top-p (renormalised), min-p
/// and a draw (a fixed-seed uniform per row).
fn sort_sample(args: &Args, x: &[f32], y: &mut [f32], cols: usize, seed: u64, out: &mut [usize]) {
    use rayon::prelude::*;
    let mut sm = Softmax::new()
        .backend(args.backend)
        .settings(Default::default());
    if let Some(t) = args.temperature.filter(|&t| t > 0.0) {
        sm = sm.temperature(t);
    }
    sm.run_rows(x, y, cols).unwrap();
    y.par_chunks(cols)
        .zip(out.par_iter_mut())
        .enumerate()
        .for_each(|(r, (p, out))| {
            let mut order: Vec<u32> = (0..cols as u32).collect();
            order
                .sort_unstable_by(|&a, &b| p[b as usize].total_cmp(&p[a as usize]).then(a.cmp(&b)));
            order.truncate(args.top_k.unwrap_or(cols));
            let total: f64 = order.iter().map(|&i| f64::from(p[i as usize])).sum();
            if let Some(top_p) = args.top_p {
                let mut cum = 0.0;
                let end = order
                    .iter()
                    .position(|&i| {
                        cum += f64::from(p[i as usize]) / total;
                        cum >= f64::from(top_p)
                    })
                    .map_or(order.len(), |j| j + 1);
                order.truncate(end);
            }
            if let Some(min_p) = args.min_p {
                let bar = min_p * p[order[0] as usize];
                order.retain(|&i| p[i as usize] >= bar);
            }
            let total: f64 = order.iter().map(|&i| f64::from(p[i as usize])).sum();
            let u = ((seed ^ r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                / (1u64 << 53) as f64;
            let mut cum = 0.0;
            *out = order
                .iter()
                .find(|&&i| {
                    cum += f64::from(p[i as usize]);
                    cum > u * total
                })
                .map_or(order[0] as usize, |&i| i as usize);
        });
}
