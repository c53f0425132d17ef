//! First fuzz target (the fuzzing issue grows it into the full differential
//! harness): arbitrary bytes as f32 rows, every algorithm on every backend,
//! against the f64 reference under the documented bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simd_softmax::{Algorithm, Backend, Softmax, reference};

fuzz_target!(|data: &[u8]| {
    let x: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let want = reference::softmax_f64(&x);
    let has_nan = x.iter().any(|v| v.is_nan());
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        for algorithm in Algorithm::ALL {
            let mut y = vec![0.0f32; x.len()];
            Softmax::new().backend(backend).algorithm(algorithm).run(&x, &mut y).unwrap();
            for (i, (&p, &r)) in y.iter().zip(&want).enumerate() {
                if has_nan {
                    assert!(p.is_nan(), "{backend} {algorithm:?} {x:?}: [{i}] = {p}, want NaN");
                } else if !max.is_finite() || x[i] == f32::NEG_INFINITY {
                    assert_eq!(f64::from(p), r, "{backend} {algorithm:?} {x:?}: [{i}]");
                } else {
                    let err = (f64::from(p) - r).abs();
                    let tol = reference::tolerance(x[i], max, r);
                    assert!(err <= tol, "{backend} {algorithm:?} {x:?}: [{i}] = {p:e}, want {r:e}");
                }
            }
        }
    }
});
