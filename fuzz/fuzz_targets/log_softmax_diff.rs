//! log-softmax and logsumexp rows on every backend against the f64
//! references (see `check_log_softmax`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::SoftmaxCase| {
    case.check_log();
});
