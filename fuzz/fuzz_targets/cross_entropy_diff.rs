//! Cross-entropy with its gradient against the f64 reference (see `CrossEntropyCase::check`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::CrossEntropyCase| {
    case.check();
});
