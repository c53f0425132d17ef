//! Backends: which lanes run the kernels, detected once and cached.

use core::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::Error;
use crate::lanes::{Lanes, Portable, Scalar};

/// The instruction set the kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// One f32 lane, plain arithmetic.
    Scalar,
    /// Eight lanes through the `wide` crate, compiled for the build's target
    /// features (SSE2 on a default x86_64 build, NEON on aarch64).
    Portable,
    /// AVX2 + FMA on x86_64, chosen at run time.
    Avx2Fma,
    /// AVX-512F on x86_64, chosen at run time.
    Avx512,
}

/// The environment variable that forces a backend: `scalar`, `portable`,
/// `avx2` or `avx512`.
pub const BACKEND_ENV: &str = "SIMD_SOFTMAX_BACKEND";

impl Backend {
    /// Every backend, fastest first.
    pub const ALL: [Backend; 4] = [
        Backend::Avx512,
        Backend::Avx2Fma,
        Backend::Portable,
        Backend::Scalar,
    ];

    /// The short name used by [`BACKEND_ENV`] and the throughput tool.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Portable => "portable",
            Backend::Avx2Fma => "avx2",
            Backend::Avx512 => "avx512",
        }
    }

    /// Parses a short name (as [`Backend::name`] gives it).
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar | Backend::Portable => true,
            Backend::Avx2Fma => {
                #[cfg(target_arch = "x86_64")]
                return crate::arch::avx2::Avx2Fma::detect().is_some();
                #[cfg(not(target_arch = "x86_64"))]
                return false;
            }
            Backend::Avx512 => {
                #[cfg(target_arch = "x86_64")]
                return crate::arch::avx512::Avx512::detect().is_some();
                #[cfg(not(target_arch = "x86_64"))]
                return false;
            }
        }
    }

    /// The fastest backend this CPU has.
    pub fn detect() -> Backend {
        Backend::ALL
            .into_iter()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Scalar)
    }

    pub(crate) fn check(self) -> Result<Backend, Error> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(Error::BackendUnavailable(self))
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Scalar => f.write_str("scalar"),
            Backend::Avx2Fma => f.write_str("avx2+fma"),
            Backend::Avx512 => f.write_str("avx512f"),
            Backend::Portable => write!(f, "portable({})", portable_isa()),
        }
    }
}

/// What `wide` compiled its eight lanes to.
fn portable_isa() -> &'static str {
    if cfg!(target_feature = "avx") {
        "avx"
    } else if cfg!(target_feature = "sse2") {
        "sse2"
    } else if cfg!(target_feature = "neon") {
        "neon"
    } else if cfg!(target_feature = "simd128") {
        "simd128"
    } else {
        "scalar"
    }
}

/// The backend every call without an explicit one uses: the one named by
/// [`BACKEND_ENV`] if set, else the fastest this CPU has. Read once.
pub fn try_backend() -> Result<Backend, Error> {
    static ACTIVE: OnceLock<Result<Backend, Error>> = OnceLock::new();
    ACTIVE
        .get_or_init(|| match std::env::var(BACKEND_ENV) {
            Err(_) => Ok(Backend::detect()),
            Ok(name) => match Backend::from_name(name.trim()) {
                Some(b) => b.check(),
                None => Err(Error::UnknownBackend(name)),
            },
        })
        .clone()
}

/// The backend calls without an explicit one run on (see [`try_backend`]):
/// the one [`BACKEND_ENV`] names, else the fastest this CPU has. Never
/// panics: when the variable names a backend this CPU lacks, that backend
/// is what the calls would run, and they return
/// [`Error::BackendUnavailable`]; when it names no backend, the calls
/// return [`Error::UnknownBackend`] and this reports the detected one.
pub fn backend() -> Backend {
    match try_backend() {
        Ok(b) => b,
        Err(Error::BackendUnavailable(b)) => b,
        Err(_) => Backend::detect(),
    }
}

/// Something to run with a backend's lane token: the public entry hands a
/// call to [`run`], which resolves the backend once, and everything below
/// is generic over the lanes.
pub(crate) trait WithLanes {
    type Output;
    fn with<S: Lanes>(self, s: S) -> Self::Output;
}

/// Runs `call` with `backend`'s lane token, or says why the CPU has none.
/// Only the public entry layer calls this.
#[inline]
pub(crate) fn run<W: WithLanes>(backend: Backend, call: W) -> Result<W::Output, Error> {
    // Read first: a write per call from every thread would bounce the line.
    let bit = 1 << backend as u8;
    if RAN.load(Ordering::Relaxed) & bit == 0 {
        RAN.fetch_or(bit, Ordering::Relaxed);
    }
    match backend {
        Backend::Scalar => Ok(call.with(Scalar)),
        Backend::Portable => Ok(call.with(Portable)),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2Fma => match crate::arch::avx2::Avx2Fma::detect() {
            Some(avx2) => Ok(call.with(avx2)),
            None => Err(Error::BackendUnavailable(backend)),
        },
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => match crate::arch::avx512::Avx512::detect() {
            Some(avx512) => Ok(call.with(avx512)),
            None => Err(Error::BackendUnavailable(backend)),
        },
        #[cfg(not(target_arch = "x86_64"))]
        Backend::Avx2Fma | Backend::Avx512 => Err(Error::BackendUnavailable(backend)),
    }
}

/// One bit per backend that [`run`] was asked for.
static RAN: AtomicU8 = AtomicU8::new(0);

/// The backends kernels were run on so far in this process (asked for and
/// available), for the test that proves a forced backend really ran
/// (`SIMD_SOFTMAX_ENSURE_BACKEND`, as matrixmultiply's
/// `MMTEST_ENSUREFEATURE`). Not part of the stable API.
#[doc(hidden)]
pub fn backends_that_ran() -> Vec<Backend> {
    let ran = RAN.load(Ordering::Relaxed);
    Backend::ALL
        .into_iter()
        .filter(|&b| ran & (1 << b as u8) != 0 && b.is_available())
        .collect()
}
