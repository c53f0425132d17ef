//! Attention batches: layouts, broadcast masks, causal, ALiBi, sinks and
//! scale in every element type (see `ShapesCase::check`), on the one
//! backend × algorithm the input chooses (see `check::Long`).
#![no_main]

#[path = "../../tests/check/mod.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: check::Long<check::ShapesCase>| {
    case.check(check::ShapesCase::check);
});
