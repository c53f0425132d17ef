//! log-softmax and logsumexp rows against the f64 references (see
//! `check_log_softmax`),
//! on the one backend × algorithm the input chooses (see `check::Long`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::SoftmaxCase>| {
    case.check(check::SoftmaxCase::check_log);
});
