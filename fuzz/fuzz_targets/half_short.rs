//! The companion of `half_diff`: short rows, one backend × algorithm
//! chosen by the input (see `check::Short`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Short<check::HalfCase>| {
    case.check(check::HalfCase::check);
});
