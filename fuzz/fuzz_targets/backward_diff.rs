//! The softmax and log-softmax backward passes (see `BackwardCase::check`),
//! on the one backend × algorithm the input chooses (see `check::Long`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::BackwardCase>| {
    case.check(check::BackwardCase::check);
});
