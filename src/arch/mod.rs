//! Instruction-set specific lanes, detected at run time. This layer (the
//! AVX2 and AVX-512 lanes in it) is the only place with `unsafe` code.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
