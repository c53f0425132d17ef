//! Rows of hostile values up to 2^17, in place and out of place, 1 and 2
//! threads, against the f64 reference (see `check_softmax`),
//! on the one backend × algorithm the input chooses (see `check::Long`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::SoftmaxCase>| {
    case.check(check::SoftmaxCase::check);
});
