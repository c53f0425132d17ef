//! Entropy rows against the f64 reference (see `SoftmaxCase::check_entropy`),
//! on the one backend × algorithm the input chooses (see `check::Long`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::SoftmaxCase>| {
    case.check(check::SoftmaxCase::check_entropy);
});
