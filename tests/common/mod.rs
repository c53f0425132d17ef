//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use simd_softmax::{Algorithm, BACKEND_ENV, Backend, Softmax, reference};

/// The backends to test: the one `SIMD_SOFTMAX_BACKEND` forces (CI runs the
/// suite once per backend), else every backend this CPU has. A backend the
/// CPU lacks is reported, never silently passed.
pub fn backends() -> Vec<Backend> {
    if let Ok(name) = std::env::var(BACKEND_ENV) {
        let b = Backend::from_name(&name).unwrap_or_else(|| panic!("{BACKEND_ENV}={name}?"));
        assert!(
            b.is_available(),
            "{BACKEND_ENV}={name} but this CPU lacks it"
        );
        return vec![b];
    }
    for b in Backend::ALL.iter().filter(|b| !b.is_available()) {
        eprintln!("SKIPPED backend {b}: not available on this CPU");
    }
    Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect()
}

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

/// The worst ratio |p − p_ref| / tolerance over a row (≤ 1 is within the
/// contract), and the worst relative error over outputs with p_ref > 2^-100.
#[derive(Clone, Copy, Debug, Default)]
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

/// Checks `output` against the f64 reference under the crate's contract
/// and panics with `context` on the first violation.
pub fn check_row(input: &[f32], output: &[f32], context: &dyn Fn() -> String) -> Errors {
    let want = reference::softmax_f64(input);
    let has_nan = input.iter().any(|v| v.is_nan());
    let max = input.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut e = Errors::default();
    for (i, ((&x, &p), &r)) in input.iter().zip(output).zip(&want).enumerate() {
        if has_nan {
            assert!(p.is_nan(), "{}: NaN row but output[{i}] = {p}", context());
            continue;
        }
        assert!(
            !p.is_nan(),
            "{}: output[{i}] is NaN (x = {x}, want {r})",
            context()
        );
        if !max.is_finite() || x == f32::NEG_INFINITY {
            // +inf split, all −inf rows and −inf entries are exact.
            assert_eq!(
                p as f64,
                r,
                "{}: output[{i}] (x = {x}) must be exact",
                context()
            );
            continue;
        }
        let err = (f64::from(p) - r).abs();
        let tol = reference::tolerance(x, max, r);
        assert!(
            err <= tol,
            "{}: output[{i}] = {p:e}, want {r:e} (x = {x}, max = {max}): error {err:e} > bound {tol:e}",
            context()
        );
        e.bound_ratio = e.bound_ratio.max(err / tol);
        if r > 2f64.powi(-100) {
            e.relative = e.relative.max(err / r);
        }
    }
    e
}
