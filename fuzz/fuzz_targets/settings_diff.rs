//! Softmax and log-softmax under temperature, scale, masks and causal (see `SettingsCase::check`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::SettingsCase| {
    case.check();
});
