//! The backend switch: the forced backend is really the one used, and a
//! bad one is an error, never a silent fallback.

use std::process::Command;

use simd_softmax::{BACKEND_ENV, Backend, Error, Softmax, backend, try_backend};

#[test]
fn active_backend_is_the_forced_or_the_fastest() {
    match std::env::var(BACKEND_ENV) {
        Ok(name) => {
            assert_eq!(
                backend().name(),
                name,
                "{BACKEND_ENV}={name} was not the backend used"
            );
            println!("forced backend: {}", backend());
        }
        Err(_) => {
            assert_eq!(backend(), Backend::detect());
            // A default build must pick the runtime-detected SIMD backend.
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512f") {
                assert_eq!(
                    backend(),
                    Backend::Avx512,
                    "a default build must use AVX-512 here"
                );
            } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            {
                assert_eq!(
                    backend(),
                    Backend::Avx2Fma,
                    "a default build must use AVX2 here"
                );
            }
        }
    }
    assert!(Backend::Scalar.is_available() && Backend::Portable.is_available());
}

/// With `SIMD_SOFTMAX_ENSURE_BACKEND` set (CI sets it with every forced
/// backend), the forced backend must be set, available, and really run the
/// kernels: a backend silently skipped fails the run.
#[test]
fn forced_backend_really_ran() {
    if std::env::var_os("SIMD_SOFTMAX_ENSURE_BACKEND").is_none() {
        println!("SIMD_SOFTMAX_ENSURE_BACKEND not set: not checked");
        return;
    }
    let name =
        std::env::var(BACKEND_ENV).expect("SIMD_SOFTMAX_ENSURE_BACKEND without a forced backend");
    let forced = Backend::from_name(&name).expect("the forced backend is no backend");
    assert!(
        forced.is_available(),
        "{name} is forced but this CPU lacks it"
    );
    let mut y = [0.0f32; 40];
    simd_softmax::softmax(&[0.5; 40], &mut y).unwrap();
    assert!(
        simd_softmax::backends_that_ran().contains(&forced),
        "{name} was forced but did not run: {:?}",
        simd_softmax::backends_that_ran()
    );
}

#[test]
fn names_round_trip() {
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(b.name()), Some(b));
    }
    assert_eq!(Backend::Avx2Fma.to_string(), "avx2+fma");
    assert_eq!(Backend::Avx512.to_string(), "avx512f");
    assert!(Backend::Portable.to_string().starts_with("portable("));
    assert_eq!(Backend::Scalar.to_string(), "scalar");
}

#[test]
fn unavailable_backend_is_an_error() {
    for b in Backend::ALL.into_iter().filter(|b| !b.is_available()) {
        let mut y = [0.0f32; 2];
        let e = Softmax::new()
            .backend(b)
            .run(&[1.0, 2.0], &mut y)
            .unwrap_err();
        assert_eq!(e, Error::BackendUnavailable(b));
        assert_eq!(y, [0.0; 2]);
    }
}

/// Runs this test binary again with `SIMD_SOFTMAX_BACKEND=value`, on the
/// ignored test `child_reports_bad_backend`.
fn child(value: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_reports_bad_backend",
            "--nocapture",
        ])
        .env(BACKEND_ENV, value)
        .output()
        .unwrap()
}

#[test]
fn bad_backend_names_fail_clearly() {
    let out = child("avx9000");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}"
    );
}

#[test]
#[ignore = "run by bad_backend_names_fail_clearly with SIMD_SOFTMAX_BACKEND set"]
fn child_reports_bad_backend() {
    let name = std::env::var(BACKEND_ENV).unwrap();
    let e = try_backend().unwrap_err();
    assert_eq!(e, Error::UnknownBackend(name.clone()));
    assert!(
        e.to_string().contains(&name) && e.to_string().contains("avx2"),
        "{e}"
    );
    let mut y = [0.0f32; 2];
    assert_eq!(simd_softmax::softmax(&[1.0, 2.0], &mut y), Err(e.clone()));
    assert_eq!(y, [0.0; 2]);
    // Every call that runs a kernel returns the error, none panics.
    let mut z = [1.0f32, 2.0];
    assert_eq!(simd_softmax::softmax_in_place(&mut z), Err(e.clone()));
    assert_eq!(simd_softmax::log_softmax_in_place(&mut z), Err(e.clone()));
    assert_eq!(z, [1.0, 2.0]);
    assert_eq!(simd_softmax::logsumexp(&z), Err(e.clone()));
    assert_eq!(simd_softmax::argmax(&z), Err(e.clone()));
    assert_eq!(simd_softmax::entropy(&z), Err(e.clone()));
    assert_eq!(simd_softmax::top_k_probs(&z, 1), Err(e.clone()));
    assert_eq!(simd_softmax::top_k_log_probs(&z, 1), Err(e.clone()));
    // Empty rows too: the variable is checked before the shortcut.
    assert_eq!(simd_softmax::logsumexp::<f32>(&[]), Err(e.clone()));
    assert_eq!(simd_softmax::argmax::<f32>(&[]), Err(e.clone()));
    // `backend()` reports what the calls would run on, and does not panic.
    assert_eq!(simd_softmax::backend(), Backend::detect());
    // An explicit backend does not depend on the variable.
    Softmax::new()
        .backend(Backend::Scalar)
        .run(&[1.0, 2.0], &mut y)
        .unwrap();
    assert_eq!(y[0] + y[1], 1.0);
}
