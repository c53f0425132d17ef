//! Rows of hostile values, every backend and algorithm, in place and out of
//! place, 1 and 2 threads, against the f64 reference (see `check_softmax`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::SoftmaxCase| {
    case.check();
});
