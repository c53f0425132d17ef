//! Our lane exp on every backend against f64 exp (see `check_exp`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::ExpCase| {
    case.check();
});
