//! Cross-entropy with its gradient against the f64 reference (see
//! `CrossEntropyCase::check`),
//! on the one backend × algorithm the input chooses (see `check::Long`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::CrossEntropyCase>| {
    case.check(check::CrossEntropyCase::check);
});
