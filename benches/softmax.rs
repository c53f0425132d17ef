//! Criterion benches: softmax per algorithm on the throughput tool's shapes.
//! `cargo bench --bench softmax`; HTML reports land in target/criterion.

#[path = "common/logits.rs"]
mod logits;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_softmax::{Algorithm, CrossEntropyOptions, Sampler, Softmax, top_k_probs};

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
}

criterion_group! {
    name = softmax;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(softmax);
