//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use simd_softmax::{Algorithm, Softmax};

#[path = "../check/mod.rs"]
pub mod check;
#[allow(unused_imports)]
pub use check::{Errors, backends, check_row};

/// Every (backend, algorithm) configuration to test.
pub fn configs() -> Vec<Softmax> {
    let mut v = Vec::new();
    for b in backends() {
        for a in Algorithm::ALL {
            v.push(Softmax::new().backend(b).algorithm(a));
        }
    }
    v
}

/// One builder per backend (default algorithm).
pub fn builders() -> Vec<Softmax> {
    backends()
        .into_iter()
        .map(|b| Softmax::new().backend(b))
        .collect()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A standard normal sample (Box–Muller).
pub fn normal(rng: &mut StdRng) -> f32 {
    let u: f64 = rng.random::<f64>().max(1e-300);
    let v: f64 = rng.random();
    ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
}

pub fn normal_row(rng: &mut StdRng, n: usize, sigma: f32) -> Vec<f32> {
    (0..n).map(|_| normal(rng) * sigma).collect()
}
