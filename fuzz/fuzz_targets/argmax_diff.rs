//! argmax rows on every backend against the scalar reference (see
//! `check_argmax`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::SoftmaxCase| {
    case.check_argmax();
});
