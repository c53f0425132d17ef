//! Realistic logits for the benches and the throughput tool: normal, σ = 3,
//! from a fixed seed (xorshift64 + Box–Muller), so runs see the same data.

pub fn normal_logits(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos() * 3.0) as f32
        })
        .collect()
}
