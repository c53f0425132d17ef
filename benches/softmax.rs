//! Criterion benches: softmax per algorithm on the throughput tool's shapes.
//! `cargo bench --bench softmax`; HTML reports land in target/criterion.

#[path = "common/logits.rs"]
mod logits;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_softmax::half::{bf16, f16};
use simd_softmax::{
    Algorithm, Attention, CrossEntropyOptions, CrossEntropyPartial, Sampler, Softmax,
    cross_entropy_partial, cross_entropy_shard, top_k_probs,
};

/// A buffer of `n` f32 starting on a 64-byte boundary, so runs compare at
/// the same alignment.
struct Aligned {
    buf: Vec<f32>,
    start: usize,
    n: usize,
}

impl Aligned {
    fn new(n: usize) -> Self {
        let buf = vec![0.0f32; n + 16];
        let start = buf.as_ptr().align_offset(64).min(15);
        Aligned { buf, start, n }
    }
    fn get(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.n]
    }
    fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.n]
    }
}

/// Normal logits (σ = 3, fixed seed) at a 64-byte boundary.
fn logits(n: usize) -> Aligned {
    let mut a = Aligned::new(n);
    a.get_mut()
        .copy_from_slice(&logits::normal_logits(n, 0x2545_F491_4F6C_DD1D));
    a
}

fn group(c: &mut Criterion, name: &str, shapes: &[(usize, usize)]) {
    let mut g = c.benchmark_group(name);
    for &(rows, cols) in shapes {
        let x = logits(rows * cols);
        let mut y = Aligned::new(rows * cols);
        g.throughput(Throughput::Elements((rows * cols) as u64));
        for algorithm in Algorithm::ALL {
            let sm = Softmax::new().algorithm(algorithm);
            let id = BenchmarkId::new(algorithm.name(), format!("{rows}x{cols}"));
            g.bench_with_input(id, &(), |b, _| {
                b.iter(|| sm.run_rows(x.get(), y.get_mut(), cols).unwrap());
            });
        }
    }
    g.finish();
}

/// The family next to softmax on the same rows: what each costs relative
/// to it (issue targets: logsumexp and argmax faster, log-softmax on par).
fn family(c: &mut Criterion, shapes: &[(usize, usize)]) {
    let mut g = c.benchmark_group("family");
    let sm = Softmax::new();
    for &(rows, cols) in shapes {
        let x = logits(rows * cols);
        let mut y = Aligned::new(rows * cols);
        let mut per_row = vec![0.0f32; rows];
        let mut indices = vec![None; rows];
        let shape = format!("{rows}x{cols}");
        g.throughput(Throughput::Elements((rows * cols) as u64));
        g.bench_function(BenchmarkId::new("softmax", &shape), |b| {
            b.iter(|| sm.run_rows(x.get(), y.get_mut(), cols).unwrap())
        });
        g.bench_function(BenchmarkId::new("log_softmax", &shape), |b| {
            b.iter(|| sm.run_log_rows(x.get(), y.get_mut(), cols).unwrap())
        });
        g.bench_function(BenchmarkId::new("logsumexp", &shape), |b| {
            b.iter(|| sm.run_logsumexp_rows(x.get(), cols, &mut per_row).unwrap())
        });
        g.bench_function(BenchmarkId::new("argmax", &shape), |b| {
            b.iter(|| sm.run_argmax_rows(x.get(), cols, &mut indices).unwrap())
        });
        g.bench_function(BenchmarkId::new("entropy", &shape), |b| {
            b.iter(|| sm.run_entropy_rows(x.get(), cols, &mut per_row).unwrap())
        });
        // Forward and gradient together (issue target: ≤ 1.25× softmax).
        let targets: Vec<usize> = (0..rows).map(|r| (r * 7919 + 13) % cols).collect();
        g.bench_function(BenchmarkId::new("cross_entropy", &shape), |b| {
            b.iter(|| {
                let options = CrossEntropyOptions {
                    grad: Some(y.get_mut()),
                    ..Default::default()
                };
                sm.run_cross_entropy(x.get(), cols, &targets, options)
                    .unwrap()
            })
        });
        // The backward passes, with the logits standing in for the gradient.
        let mut p = Aligned::new(rows * cols);
        sm.run_rows(x.get(), p.get_mut(), cols).unwrap();
        g.bench_function(BenchmarkId::new("softmax_backward", &shape), |b| {
            b.iter(|| {
                sm.run_backward_rows(p.get(), x.get(), y.get_mut(), cols)
                    .unwrap()
            })
        });
        sm.run_log_rows(x.get(), p.get_mut(), cols).unwrap();
        g.bench_function(BenchmarkId::new("log_softmax_backward", &shape), |b| {
            b.iter(|| {
                sm.run_log_backward_rows(p.get(), x.get(), y.get_mut(), cols)
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// Temperature, scale and masks on attention-like rows, next to the plain
/// softmax of the same rows: what the settings cost inside the kernel.
fn settings(c: &mut Criterion, shapes: &[(usize, usize)]) {
    let mut g = c.benchmark_group("settings");
    for &(rows, cols) in shapes {
        let x = logits(rows * cols);
        let mut y = Aligned::new(rows * cols);
        let keep: Vec<bool> = (0..cols).map(|i| i % 7 != 3).collect();
        let bias: Vec<f32> = (0..cols).map(|i| -((i % 5) as f32)).collect();
        let shape = format!("{rows}x{cols}");
        g.throughput(Throughput::Elements((rows * cols) as u64));
        let plain = Softmax::new().settings(Default::default());
        let configs = [
            ("plain", plain),
            ("scale", plain.scale(0.125)),
            ("temperature", plain.temperature(0.8)),
            ("causal", plain.causal(0)),
            ("keep_mask", plain.keep_mask(&keep)),
            ("additive_mask", plain.additive_mask(&bias)),
        ];
        for (name, sm) in configs {
            g.bench_function(BenchmarkId::new(name, &shape), |b| {
                b.iter(|| sm.run_rows(x.get(), y.get_mut(), cols).unwrap())
            });
        }
    }
    g.finish();
}

/// Sampling next to softmax and logsumexp on the same rows (issue targets:
/// temperature + top-k 50 + top-p 0.9 within 1.2× softmax; temperature
/// alone within softmax; top_k_probs(20) within logsumexp + 20%).
fn sampling(c: &mut Criterion, shapes: &[(usize, usize)]) {
    let mut g = c.benchmark_group("sampling");
    for &(rows, cols) in shapes {
        let x = logits(rows * cols);
        let mut y = Aligned::new(rows * cols);
        let mut per_row = vec![0.0f32; rows];
        let mut tokens = vec![0usize; rows];
        let shape = format!("{rows}x{cols}");
        g.throughput(Throughput::Elements((rows * cols) as u64));
        let sm = Softmax::new();
        g.bench_function(BenchmarkId::new("softmax", &shape), |b| {
            b.iter(|| sm.run_rows(x.get(), y.get_mut(), cols).unwrap())
        });
        g.bench_function(BenchmarkId::new("logsumexp", &shape), |b| {
            b.iter(|| sm.run_logsumexp_rows(x.get(), cols, &mut per_row).unwrap())
        });
        let filtered = Sampler::builder()
            .temperature(0.8)
            .top_k(50)
            .top_p(0.9)
            .build()
            .unwrap();
        let plain = Sampler::builder().temperature(0.8).build().unwrap();
        for (name, sp) in [("sample_t0.8_k50_p0.9", filtered), ("sample_t0.8", plain)] {
            let mut seed = 0;
            g.bench_function(BenchmarkId::new(name, &shape), |b| {
                b.iter(|| {
                    seed += 1;
                    sp.sample_rows(x.get(), cols, seed, &mut tokens).unwrap()
                })
            });
        }
        g.bench_function(BenchmarkId::new("top_k_probs_20", &shape), |b| {
            b.iter(|| {
                for row in x.get().chunks(cols) {
                    std::hint::black_box(top_k_probs(row, 20).unwrap());
                }
            })
        });
    }
    g.finish();
}

/// f16 and bf16 rows next to f32 on the same values (issue 12 targets:
/// bf16 single rows within 10% of the f32 element rate, batches faster;
/// bf16 sampling within 10% of f32; the convert-then-f32 workaround 1.4×
/// slower).
fn element_types(c: &mut Criterion, shapes: &[(usize, usize)]) {
    let mut g = c.benchmark_group("element_types");
    for &(rows, cols) in shapes {
        let x = logits(rows * cols);
        let xb: Vec<bf16> = x.get().iter().map(|&v| bf16::from_f32(v)).collect();
        let xh: Vec<f16> = x.get().iter().map(|&v| f16::from_f32(v)).collect();
        let mut y = Aligned::new(rows * cols);
        let mut yb = vec![bf16::ZERO; rows * cols];
        let mut yh = vec![f16::ZERO; rows * cols];
        let mut tmp = vec![0.0f32; rows * cols];
        let mut tokens = vec![0usize; rows];
        let shape = format!("{rows}x{cols}");
        g.throughput(Throughput::Elements((rows * cols) as u64));
        let sm = Softmax::new();
        g.bench_function(BenchmarkId::new("f32", &shape), |b| {
            b.iter(|| sm.run_rows(x.get(), y.get_mut(), cols).unwrap())
        });
        g.bench_function(BenchmarkId::new("bf16", &shape), |b| {
            b.iter(|| sm.run_rows(&xb, &mut yb, cols).unwrap())
        });
        g.bench_function(BenchmarkId::new("f16", &shape), |b| {
            b.iter(|| sm.run_rows(&xh, &mut yh, cols).unwrap())
        });
        g.bench_function(BenchmarkId::new("bf16_to_f32", &shape), |b| {
            b.iter(|| sm.run_rows(&xb, y.get_mut(), cols).unwrap())
        });
        g.bench_function(BenchmarkId::new("bf16_convert_workaround", &shape), |b| {
            b.iter(|| {
                tmp.iter_mut().zip(&xb).for_each(|(t, v)| *t = v.to_f32());
                sm.run_rows_in_place(&mut tmp, cols).unwrap();
                yb.iter_mut()
                    .zip(&tmp)
                    .for_each(|(o, &v)| *o = bf16::from_f32(v));
            })
        });
        let sp = Sampler::builder()
            .temperature(0.8)
            .top_k(50)
            .top_p(0.9)
            .build()
            .unwrap();
        let mut seed = 0;
        g.bench_function(BenchmarkId::new("sample_f32", &shape), |b| {
            b.iter(|| {
                seed += 1;
                sp.sample_rows(x.get(), cols, seed, &mut tokens).unwrap()
            })
        });
        g.bench_function(BenchmarkId::new("sample_bf16", &shape), |b| {
            b.iter(|| {
                seed += 1;
                sp.sample_rows(&xb, cols, seed, &mut tokens).unwrap()
            })
        });
    }
    g.finish();
}

/// Attention layouts: plain, causal, causal + ALiBi, causal + sinks (issue
/// 12 target: each within 15% of plain over the same elements).
fn attention_layouts(c: &mut Criterion, shapes: &[Attention]) {
    let mut g = c.benchmark_group("attention_layouts");
    for &shape in shapes {
        let k = shape.keys;
        let n = shape.rows() * k;
        let x = logits(n);
        let mut y = Aligned::new(n);
        let distances: Vec<f32> = (0..shape.queries * k)
            .map(|i| -((k - 1 - i % k) as f32))
            .collect();
        let sinks = vec![1.0f32; shape.heads];
        let id = format!(
            "{}x{}x{}x{}",
            shape.batch, shape.heads, shape.queries, shape.keys
        );
        g.throughput(Throughput::Elements(n as u64));
        let base = Softmax::new().attention(shape);
        let configs = [
            ("plain", base),
            ("causal", base.causal_end()),
            (
                "causal_alibi",
                base.causal_end().additive_mask(&distances).alibi(8.0),
            ),
            ("causal_sinks", base.causal_end().sinks(&sinks)),
        ];
        for (name, sm) in configs {
            g.bench_function(BenchmarkId::new(name, &id), |b| {
                b.iter(|| sm.run_rows(x.get(), y.get_mut(), k).unwrap())
            });
        }
    }
    g.finish();
}

/// Vocabulary-parallel cross-entropy: 4 shards' partials, their merge and
/// each shard's loss and gradient, next to the unsharded call.
fn vocab_parallel(c: &mut Criterion, rows: usize, cols: usize) {
    let mut g = c.benchmark_group("vocab_parallel");
    let shards = 4;
    let width = cols / shards;
    let x = logits(rows * cols);
    let parts: Vec<Vec<f32>> = (0..shards)
        .map(|s| {
            x.get()
                .chunks(cols)
                .flat_map(|row| row[s * width..(s + 1) * width].to_vec())
                .collect()
        })
        .collect();
    let targets: Vec<usize> = (0..rows).map(|r| (r * 7919) % cols).collect();
    let mut grad = vec![0.0f32; rows * cols];
    let shape = format!("{rows}x{cols}");
    g.throughput(Throughput::Elements((rows * cols) as u64));
    g.bench_function(BenchmarkId::new("unsharded", &shape), |b| {
        b.iter(|| {
            let options = CrossEntropyOptions::default().with_grad(&mut grad);
            simd_softmax::cross_entropy(x.get(), cols, &targets, options).unwrap()
        })
    });
    g.bench_function(BenchmarkId::new("4_shards", &shape), |b| {
        b.iter(|| {
            let partials: Vec<Vec<CrossEntropyPartial>> = parts
                .iter()
                .enumerate()
                .map(|(s, p)| cross_entropy_partial(p, width, &targets, s * width, 0.0).unwrap())
                .collect();
            let merged: Vec<CrossEntropyPartial> = (0..rows)
                .map(|r| {
                    partials
                        .iter()
                        .fold(CrossEntropyPartial::EMPTY, |m, p| m.merge(p[r]))
                })
                .collect();
            for (s, (p, g)) in parts.iter().zip(grad.chunks_mut(rows * width)).enumerate() {
                let options = CrossEntropyOptions::default().with_grad(g);
                cross_entropy_shard(p, width, &targets, s * width, &merged, options).unwrap();
            }
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    group(
        c,
        "single_row",
        &[(1, 50257), (1, 128256), (1, 151936), (1, 256000)],
    );
    group(c, "batch", &[(64, 50257), (32, 128256), (16, 256000)]);
    group(c, "attention", &[(4096, 1024), (16384, 128)]);
    family(c, &[(1, 128256), (32, 128256)]);
    settings(c, &[(1, 128256), (4096, 1024)]);
    sampling(c, &[(1, 128256), (1, 256000)]);
    element_types(c, &[(1, 50257), (1, 128256), (32, 128256)]);
    attention_layouts(
        c,
        &[
            Attention::new(1, 32, 1, 4096),
            Attention::new(1, 8, 512, 512),
        ],
    );
    vocab_parallel(c, 8, 128256);
}

criterion_group! {
    name = softmax;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(softmax);
