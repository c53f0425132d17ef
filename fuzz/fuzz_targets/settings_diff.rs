//! Softmax and log-softmax under temperature, scale, masks and causal (see
//! `SettingsCase::check`),
//! on the one backend × algorithm the input chooses (see `check::Long`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::SettingsCase>| {
    case.check(check::SettingsCase::check);
});
