//! Criterion benches: softmax per algorithm on the throughput tool's shapes.
//! `cargo bench --bench softmax`; HTML reports land in target/criterion.

#[path = "common/logits.rs"]
mod logits;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_softmax::{Algorithm, Softmax};

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

fn benches(c: &mut Criterion) {
    group(
        c,
        "single_row",
        &[(1, 50257), (1, 128256), (1, 151936), (1, 256000)],
    );
    group(c, "batch", &[(64, 50257), (32, 128256), (16, 256000)]);
    group(c, "attention", &[(4096, 1024), (16384, 128)]);
}

criterion_group! {
    name = softmax;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(softmax);
