//! f16 and bf16 rows up to 2^17: softmax and log-softmax with the eight
//! element-type pairs other than f32 to f32, 1 and 2 threads, against the
//! f64 reference on the rounded inputs (see `check_half`), on the one
//! backend × algorithm the input chooses (see `check::Long`); and the
//! input type's logsumexp, entropy and argmax rows against the f32 calls'
//! bits.
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::HalfCase>| {
    case.check(check::HalfCase::check);
});
