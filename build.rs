//! Sets `cfg(unoptimized)` when the crate is compiled without optimisation
//! (`opt-level = 0`, as `cargo build` and `cargo test` build dependencies by
//! default). The kernels are written to be inlined whole into each
//! backend's entry (`#[inline(always)]`); unoptimised, every inlined value
//! keeps its own stack slot, and an entry's frame grew to 19 MB, which
//! overflowed 2 MB test threads and even an 8 MB main thread. With the cfg
//! set, nothing is forced inline and each function keeps a small frame.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(unoptimized)");
    println!("cargo::rerun-if-env-changed=OPT_LEVEL");
    if std::env::var("OPT_LEVEL").is_ok_and(|level| level == "0") {
        println!("cargo::rustc-cfg=unoptimized");
    }
}
