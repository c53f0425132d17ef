//! Entropy rows against the f64 reference (see `SoftmaxCase::check_entropy`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::SoftmaxCase| {
    case.check_entropy();
});
