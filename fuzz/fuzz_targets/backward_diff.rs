//! The softmax and log-softmax backward passes (see `BackwardCase::check`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::BackwardCase| {
    case.check();
});
