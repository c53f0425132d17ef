//! The sampler and its filters against the f64 reference (see
//! `SampleCase::check`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::SampleCase| {
    case.check();
});
