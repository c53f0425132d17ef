//! Backends: which lanes run the kernels, detected once and cached.

use core::fmt;
use std::sync::OnceLock;

use crate::Error;
pub(crate) use crate::lanes::Job;
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

/// The active backend (see [`try_backend`]).
///
/// # Panics
/// If [`BACKEND_ENV`] names a backend this CPU lacks or no backend at all;
/// [`try_backend`] returns that as an error instead.
pub fn backend() -> Backend {
    try_backend().unwrap_or_else(|e| panic!("simd-softmax: {e}"))
}

/// Runs `job` on `backend`, which the caller has checked is available.
#[inline]
pub(crate) fn run<J: Job>(backend: Backend, job: J) -> J::Output {
    match backend {
        Backend::Scalar => Scalar.vectorize(job),
        Backend::Portable => Portable.vectorize(job),
        Backend::Avx2Fma => {
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = crate::arch::avx2::Avx2Fma::detect() {
                return avx2.vectorize(job);
            }
            unreachable!("the avx2 backend was checked before dispatch")
        }
        Backend::Avx512 => {
            #[cfg(target_arch = "x86_64")]
            if let Some(avx512) = crate::arch::avx512::Avx512::detect() {
                return avx512.vectorize(job);
            }
            unreachable!("the avx512 backend was checked before dispatch")
        }
    }
}
