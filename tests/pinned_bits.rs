//! Output bits pinned first before the row-engine redesign (commit 2aee63e):
//! the redesign changed how calls reach the kernels, not one result bit.
//! Each line hashes (FNV-1a over the f32 bits) one operation's outputs on
//! one backend, algorithm and thread count; `print_pinned_bits` (ignored)
//! prints the table from the current code.

use rayon::ThreadPoolBuilder;
use simd_softmax::{Algorithm, Backend, CrossEntropyOptions, Sampler, Softmax};

/// Deterministic logits: a xorshift stream mapped to about ±8, with a few
/// −inf.
fn logits(n: usize, seed: u64) -> Vec<f32> {
    let mut z = seed | 1;
    (0..n)
        .map(|i| {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            if i % 97 == 13 {
                f32::NEG_INFINITY
            } else {
                ((z >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 16.0
            }
        })
        .collect()
}

fn fnv(bits: impl IntoIterator<Item = u32>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in bits {
        for byte in b.to_le_bytes() {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn hash(v: &[f32]) -> u64 {
    fnv(v.iter().map(|x| x.to_bits()))
}

/// `(name, hash)` of every pinned output on `b`.
fn outputs(b: Backend) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (rows, cols) in [(3usize, 1000usize), (1, 70_000), (40, 1024)] {
        let x = logits(rows * cols, (rows * 31 + cols) as u64);
        let g = logits(rows * cols, 99);
        for threads in [1, 2] {
            let pool = ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let tag = |op: &str| format!("{} {rows}x{cols} t{threads} {op}", b.name());
                for a in Algorithm::ALL {
                    let mut y = vec![0.0f32; x.len()];
                    let sm = Softmax::new().backend(b).algorithm(a);
                    sm.run_rows(&x, &mut y, cols).unwrap();
                    out.push((tag(&format!("softmax {}", a.name())), hash(&y)));
                }
                let sm = Softmax::new().backend(b);
                let mut y = vec![0.0f32; x.len()];
                sm.run_log_rows(&x, &mut y, cols).unwrap();
                out.push((tag("log_softmax"), hash(&y)));
                let mut per_row = vec![0.0f32; rows];
                sm.run_logsumexp_rows(&x, cols, &mut per_row).unwrap();
                out.push((tag("logsumexp"), hash(&per_row)));
                sm.run_entropy_rows(&x, cols, &mut per_row).unwrap();
                out.push((tag("entropy"), hash(&per_row)));
                let mut p = vec![0.0f32; x.len()];
                sm.run_rows(&x, &mut p, cols).unwrap();
                sm.run_backward_rows(&p, &g, &mut y, cols).unwrap();
                out.push((tag("softmax_backward"), hash(&y)));
                let targets: Vec<usize> = (0..rows).map(|r| (r * 7 + 1) % cols).collect();
                let mut grad = vec![0.0f32; x.len()];
                let ce = sm
                    .run_cross_entropy(
                        &x,
                        cols,
                        &targets,
                        CrossEntropyOptions {
                            label_smoothing: 0.1,
                            grad: Some(&mut grad),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                out.push((tag("cross_entropy grad"), hash(&grad)));
                out.push((tag("cross_entropy loss"), hash(&ce.per_row)));
                let sampler = Sampler::builder()
                    .backend(b)
                    .temperature(0.7)
                    .top_p(0.95)
                    .build()
                    .unwrap();
                let mut tokens = vec![0usize; rows];
                sampler.sample_rows(&x, cols, 5, &mut tokens).unwrap();
                out.push((tag("sample"), fnv(tokens.iter().map(|&t| t as u32))));
            });
        }
    }
    out
}

/// Printed by `print_pinned_bits` at commit 2aee63e, on this project's
/// machine (every backend available); the `softmax_backward` lines are from
/// the commit after, whose p·(g − d) evaluation (issue 10, item 9)
/// changed those bits on purpose; the `sample` lines are from the commit
/// whose top-p draw adds the kept weight up in index order instead of rank
/// order (issue 11, item 5: the same distribution, other tokens per seed);
/// the `avx512` and `avx2` lines are from the commit whose exp has the
/// degree-4 `p` with FMA (issue 11, item 1: other bits within the same
/// bounds), and every backend's sums from the commit whose `map_sum` adds
/// blocks of 16 vectors as a tree into f64 lanes (the same bound, other
/// roundings); the 1x70000 `softmax blocked`, `softmax auto` and
/// `cross_entropy grad` lines are from the commit whose blocked softmax
/// stores against a running max over blocks of 1024 (issue 11, item 2:
/// the same bound, other references) and whose `Auto` picks it from rows of
/// 2048; the `avx512` lines are from the commit whose AVX-512 exp reads
/// `2^(j/16)` from a table (issue 11, item 1: 1.48 ULP instead of 1.98,
/// other bits within the same bounds); the `portable 40x1024` log-softmax
/// lines are from the commit whose log-softmax stores `x − running max`
/// in blocks of 1024 (issue 11, item 3: the portable lanes summed blocks of
/// 512 before, so one row's sum rounds otherwise). The table guards every
/// change meant to keep bits; a change meant to alter them re-pins it
/// (`print_pinned_bits`) and says so here.
const PINNED: &[(&str, u64)] = &[
    ("avx512 3x1000 t1 softmax auto", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t1 softmax three-pass", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t1 softmax online", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t1 softmax blocked", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t1 log_softmax", 0x70af365e72ef941f),
    ("avx512 3x1000 t1 logsumexp", 0x94b7a24af556154d),
    ("avx512 3x1000 t1 entropy", 0x1441690ebe5fe43b),
    ("avx512 3x1000 t1 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("avx512 3x1000 t1 cross_entropy grad", 0x4d00f5337b3523f0),
    ("avx512 3x1000 t1 cross_entropy loss", 0x3dc90ef3f8756208),
    ("avx512 3x1000 t1 sample", 0xb5cbb74bf48cb705),
    ("avx512 3x1000 t2 softmax auto", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t2 softmax three-pass", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t2 softmax online", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t2 softmax blocked", 0x23c917cb27fb1a2b),
    ("avx512 3x1000 t2 log_softmax", 0x70af365e72ef941f),
    ("avx512 3x1000 t2 logsumexp", 0x94b7a24af556154d),
    ("avx512 3x1000 t2 entropy", 0x1441690ebe5fe43b),
    ("avx512 3x1000 t2 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("avx512 3x1000 t2 cross_entropy grad", 0x4d00f5337b3523f0),
    ("avx512 3x1000 t2 cross_entropy loss", 0x3dc90ef3f8756208),
    ("avx512 3x1000 t2 sample", 0xb5cbb74bf48cb705),
    ("avx512 1x70000 t1 softmax auto", 0xa1042555002b5c1f),
    ("avx512 1x70000 t1 softmax three-pass", 0xd8671884f857bc5b),
    ("avx512 1x70000 t1 softmax online", 0xd8671884f857bc5b),
    ("avx512 1x70000 t1 softmax blocked", 0xa1042555002b5c1f),
    ("avx512 1x70000 t1 log_softmax", 0xb955c8e0d816331c),
    ("avx512 1x70000 t1 logsumexp", 0x845cf67fefe61d98),
    ("avx512 1x70000 t1 entropy", 0x3f7a6d28b4ef00ab),
    ("avx512 1x70000 t1 softmax_backward", 0x87364dbfa709c8a5),
    ("avx512 1x70000 t1 cross_entropy grad", 0xab9570df3b5b19c2),
    ("avx512 1x70000 t1 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("avx512 1x70000 t1 sample", 0x262c3d91286bcfe0),
    ("avx512 1x70000 t2 softmax auto", 0xa1042555002b5c1f),
    ("avx512 1x70000 t2 softmax three-pass", 0xd8671884f857bc5b),
    ("avx512 1x70000 t2 softmax online", 0xd8671884f857bc5b),
    ("avx512 1x70000 t2 softmax blocked", 0xa1042555002b5c1f),
    ("avx512 1x70000 t2 log_softmax", 0xb955c8e0d816331c),
    ("avx512 1x70000 t2 logsumexp", 0x845cf67fefe61d98),
    ("avx512 1x70000 t2 entropy", 0x3f7a6d28b4ef00ab),
    ("avx512 1x70000 t2 softmax_backward", 0x87364dbfa709c8a5),
    ("avx512 1x70000 t2 cross_entropy grad", 0xab9570df3b5b19c2),
    ("avx512 1x70000 t2 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("avx512 1x70000 t2 sample", 0x262c3d91286bcfe0),
    ("avx512 40x1024 t1 softmax auto", 0xac674b3c9519cc05),
    ("avx512 40x1024 t1 softmax three-pass", 0xac674b3c9519cc05),
    ("avx512 40x1024 t1 softmax online", 0xac674b3c9519cc05),
    ("avx512 40x1024 t1 softmax blocked", 0xac674b3c9519cc05),
    ("avx512 40x1024 t1 log_softmax", 0xe72fc8bd8f175659),
    ("avx512 40x1024 t1 logsumexp", 0x233b5e7ee6d7ba2e),
    ("avx512 40x1024 t1 entropy", 0x487ae7fae3479ca2),
    ("avx512 40x1024 t1 softmax_backward", 0xc1af4bb0795b2325),
    ("avx512 40x1024 t1 cross_entropy grad", 0x7753fd34d4f5415c),
    ("avx512 40x1024 t1 cross_entropy loss", 0x7cf2653fae966165),
    ("avx512 40x1024 t1 sample", 0xd47dc2a6376fd0e9),
    ("avx512 40x1024 t2 softmax auto", 0xac674b3c9519cc05),
    ("avx512 40x1024 t2 softmax three-pass", 0xac674b3c9519cc05),
    ("avx512 40x1024 t2 softmax online", 0xac674b3c9519cc05),
    ("avx512 40x1024 t2 softmax blocked", 0xac674b3c9519cc05),
    ("avx512 40x1024 t2 log_softmax", 0xe72fc8bd8f175659),
    ("avx512 40x1024 t2 logsumexp", 0x233b5e7ee6d7ba2e),
    ("avx512 40x1024 t2 entropy", 0x487ae7fae3479ca2),
    ("avx512 40x1024 t2 softmax_backward", 0xc1af4bb0795b2325),
    ("avx512 40x1024 t2 cross_entropy grad", 0x7753fd34d4f5415c),
    ("avx512 40x1024 t2 cross_entropy loss", 0x7cf2653fae966165),
    ("avx512 40x1024 t2 sample", 0xd47dc2a6376fd0e9),
    ("avx2 3x1000 t1 softmax auto", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t1 softmax three-pass", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t1 softmax online", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t1 softmax blocked", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t1 log_softmax", 0x70af365e72ef941f),
    ("avx2 3x1000 t1 logsumexp", 0x94b7a24af556154d),
    ("avx2 3x1000 t1 entropy", 0x1441690ebe5fe43b),
    ("avx2 3x1000 t1 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("avx2 3x1000 t1 cross_entropy grad", 0x4849f445189c5ac3),
    ("avx2 3x1000 t1 cross_entropy loss", 0x3dc90ef3f8756208),
    ("avx2 3x1000 t1 sample", 0xb5cbb74bf48cb705),
    ("avx2 3x1000 t2 softmax auto", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t2 softmax three-pass", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t2 softmax online", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t2 softmax blocked", 0x4e0d7a2486e82137),
    ("avx2 3x1000 t2 log_softmax", 0x70af365e72ef941f),
    ("avx2 3x1000 t2 logsumexp", 0x94b7a24af556154d),
    ("avx2 3x1000 t2 entropy", 0x1441690ebe5fe43b),
    ("avx2 3x1000 t2 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("avx2 3x1000 t2 cross_entropy grad", 0x4849f445189c5ac3),
    ("avx2 3x1000 t2 cross_entropy loss", 0x3dc90ef3f8756208),
    ("avx2 3x1000 t2 sample", 0xb5cbb74bf48cb705),
    ("avx2 1x70000 t1 softmax auto", 0xa00125c3d293ac63),
    ("avx2 1x70000 t1 softmax three-pass", 0x12431b34eb4c3fce),
    ("avx2 1x70000 t1 softmax online", 0x12431b34eb4c3fce),
    ("avx2 1x70000 t1 softmax blocked", 0xa00125c3d293ac63),
    ("avx2 1x70000 t1 log_softmax", 0xb955c8e0d816331c),
    ("avx2 1x70000 t1 logsumexp", 0x845cf67fefe61d98),
    ("avx2 1x70000 t1 entropy", 0x3f7a6d28b4ef00ab),
    ("avx2 1x70000 t1 softmax_backward", 0x87364dbfa709c8a5),
    ("avx2 1x70000 t1 cross_entropy grad", 0xd43c43d2bfde6046),
    ("avx2 1x70000 t1 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("avx2 1x70000 t1 sample", 0x262c3d91286bcfe0),
    ("avx2 1x70000 t2 softmax auto", 0xa00125c3d293ac63),
    ("avx2 1x70000 t2 softmax three-pass", 0x12431b34eb4c3fce),
    ("avx2 1x70000 t2 softmax online", 0x12431b34eb4c3fce),
    ("avx2 1x70000 t2 softmax blocked", 0xa00125c3d293ac63),
    ("avx2 1x70000 t2 log_softmax", 0xb955c8e0d816331c),
    ("avx2 1x70000 t2 logsumexp", 0x845cf67fefe61d98),
    ("avx2 1x70000 t2 entropy", 0x3f7a6d28b4ef00ab),
    ("avx2 1x70000 t2 softmax_backward", 0x87364dbfa709c8a5),
    ("avx2 1x70000 t2 cross_entropy grad", 0xd43c43d2bfde6046),
    ("avx2 1x70000 t2 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("avx2 1x70000 t2 sample", 0x262c3d91286bcfe0),
    ("avx2 40x1024 t1 softmax auto", 0x922dc5bfd010936f),
    ("avx2 40x1024 t1 softmax three-pass", 0x922dc5bfd010936f),
    ("avx2 40x1024 t1 softmax online", 0xba82f915a8285657),
    ("avx2 40x1024 t1 softmax blocked", 0x922dc5bfd010936f),
    ("avx2 40x1024 t1 log_softmax", 0x251736250a75749e),
    ("avx2 40x1024 t1 logsumexp", 0x5366af0b15b75687),
    ("avx2 40x1024 t1 entropy", 0x1afb1a10853c1919),
    ("avx2 40x1024 t1 softmax_backward", 0xc1af4bb0795b2325),
    ("avx2 40x1024 t1 cross_entropy grad", 0x775ceadcd9942a9f),
    ("avx2 40x1024 t1 cross_entropy loss", 0x7cf2653fae966165),
    ("avx2 40x1024 t1 sample", 0xd47dc2a6376fd0e9),
    ("avx2 40x1024 t2 softmax auto", 0x922dc5bfd010936f),
    ("avx2 40x1024 t2 softmax three-pass", 0x922dc5bfd010936f),
    ("avx2 40x1024 t2 softmax online", 0xba82f915a8285657),
    ("avx2 40x1024 t2 softmax blocked", 0x922dc5bfd010936f),
    ("avx2 40x1024 t2 log_softmax", 0x251736250a75749e),
    ("avx2 40x1024 t2 logsumexp", 0x5366af0b15b75687),
    ("avx2 40x1024 t2 entropy", 0x1afb1a10853c1919),
    ("avx2 40x1024 t2 softmax_backward", 0xc1af4bb0795b2325),
    ("avx2 40x1024 t2 cross_entropy grad", 0x775ceadcd9942a9f),
    ("avx2 40x1024 t2 cross_entropy loss", 0x7cf2653fae966165),
    ("avx2 40x1024 t2 sample", 0xd47dc2a6376fd0e9),
    ("portable 3x1000 t1 softmax auto", 0x49dee2a8c7283544),
    ("portable 3x1000 t1 softmax three-pass", 0x49dee2a8c7283544),
    ("portable 3x1000 t1 softmax online", 0x49dee2a8c7283544),
    ("portable 3x1000 t1 softmax blocked", 0x49dee2a8c7283544),
    ("portable 3x1000 t1 log_softmax", 0x70af365e72ef941f),
    ("portable 3x1000 t1 logsumexp", 0x94b7a24af556154d),
    ("portable 3x1000 t1 entropy", 0x1441690ebe5fe43b),
    ("portable 3x1000 t1 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("portable 3x1000 t1 cross_entropy grad", 0xf257d904801a3ac8),
    ("portable 3x1000 t1 cross_entropy loss", 0x3dc90ef3f8756208),
    ("portable 3x1000 t1 sample", 0xb5cbb74bf48cb705),
    ("portable 3x1000 t2 softmax auto", 0x49dee2a8c7283544),
    ("portable 3x1000 t2 softmax three-pass", 0x49dee2a8c7283544),
    ("portable 3x1000 t2 softmax online", 0x49dee2a8c7283544),
    ("portable 3x1000 t2 softmax blocked", 0x49dee2a8c7283544),
    ("portable 3x1000 t2 log_softmax", 0x70af365e72ef941f),
    ("portable 3x1000 t2 logsumexp", 0x94b7a24af556154d),
    ("portable 3x1000 t2 entropy", 0x1441690ebe5fe43b),
    ("portable 3x1000 t2 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("portable 3x1000 t2 cross_entropy grad", 0xf257d904801a3ac8),
    ("portable 3x1000 t2 cross_entropy loss", 0x3dc90ef3f8756208),
    ("portable 3x1000 t2 sample", 0xb5cbb74bf48cb705),
    ("portable 1x70000 t1 softmax auto", 0x90b13a7d0de1e465),
    ("portable 1x70000 t1 softmax three-pass", 0x027a439040775f5e),
    ("portable 1x70000 t1 softmax online", 0x027a439040775f5e),
    ("portable 1x70000 t1 softmax blocked", 0x90b13a7d0de1e465),
    ("portable 1x70000 t1 log_softmax", 0xb955c8e0d816331c),
    ("portable 1x70000 t1 logsumexp", 0x845cf67fefe61d98),
    ("portable 1x70000 t1 entropy", 0x3f7a6d28b4ef00ab),
    ("portable 1x70000 t1 softmax_backward", 0x87364dbfa709c8a5),
    ("portable 1x70000 t1 cross_entropy grad", 0x1ee9b70ce7795892),
    ("portable 1x70000 t1 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("portable 1x70000 t1 sample", 0x262c3d91286bcfe0),
    ("portable 1x70000 t2 softmax auto", 0x90b13a7d0de1e465),
    ("portable 1x70000 t2 softmax three-pass", 0x027a439040775f5e),
    ("portable 1x70000 t2 softmax online", 0x027a439040775f5e),
    ("portable 1x70000 t2 softmax blocked", 0x90b13a7d0de1e465),
    ("portable 1x70000 t2 log_softmax", 0xb955c8e0d816331c),
    ("portable 1x70000 t2 logsumexp", 0x845cf67fefe61d98),
    ("portable 1x70000 t2 entropy", 0x3f7a6d28b4ef00ab),
    ("portable 1x70000 t2 softmax_backward", 0x87364dbfa709c8a5),
    ("portable 1x70000 t2 cross_entropy grad", 0x1ee9b70ce7795892),
    ("portable 1x70000 t2 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("portable 1x70000 t2 sample", 0x262c3d91286bcfe0),
    ("portable 40x1024 t1 softmax auto", 0x62a4188d2968e131),
    ("portable 40x1024 t1 softmax three-pass", 0x62a4188d2968e131),
    ("portable 40x1024 t1 softmax online", 0x410a171482a6f624),
    ("portable 40x1024 t1 softmax blocked", 0x62a4188d2968e131),
    ("portable 40x1024 t1 log_softmax", 0x6db59835ffe8d542),
    ("portable 40x1024 t1 logsumexp", 0x233b5e7ee6d7ba2e),
    ("portable 40x1024 t1 entropy", 0xdfd5eca6757fde25),
    ("portable 40x1024 t1 softmax_backward", 0xc1af4bb0795b2325),
    ("portable 40x1024 t1 cross_entropy grad", 0x382358ef32d8d07a),
    ("portable 40x1024 t1 cross_entropy loss", 0x7cf2653fae966165),
    ("portable 40x1024 t1 sample", 0xd47dc2a6376fd0e9),
    ("portable 40x1024 t2 softmax auto", 0x62a4188d2968e131),
    ("portable 40x1024 t2 softmax three-pass", 0x62a4188d2968e131),
    ("portable 40x1024 t2 softmax online", 0x410a171482a6f624),
    ("portable 40x1024 t2 softmax blocked", 0x62a4188d2968e131),
    ("portable 40x1024 t2 log_softmax", 0x6db59835ffe8d542),
    ("portable 40x1024 t2 logsumexp", 0x233b5e7ee6d7ba2e),
    ("portable 40x1024 t2 entropy", 0xdfd5eca6757fde25),
    ("portable 40x1024 t2 softmax_backward", 0xc1af4bb0795b2325),
    ("portable 40x1024 t2 cross_entropy grad", 0x382358ef32d8d07a),
    ("portable 40x1024 t2 cross_entropy loss", 0x7cf2653fae966165),
    ("portable 40x1024 t2 sample", 0xd47dc2a6376fd0e9),
    ("scalar 3x1000 t1 softmax auto", 0x49dee2a8c7283544),
    ("scalar 3x1000 t1 softmax three-pass", 0x49dee2a8c7283544),
    ("scalar 3x1000 t1 softmax online", 0x49dee2a8c7283544),
    ("scalar 3x1000 t1 softmax blocked", 0x49dee2a8c7283544),
    ("scalar 3x1000 t1 log_softmax", 0x70af365e72ef941f),
    ("scalar 3x1000 t1 logsumexp", 0x94b7a24af556154d),
    ("scalar 3x1000 t1 entropy", 0x1441690ebe5fe43b),
    ("scalar 3x1000 t1 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("scalar 3x1000 t1 cross_entropy grad", 0xf257d904801a3ac8),
    ("scalar 3x1000 t1 cross_entropy loss", 0x3dc90ef3f8756208),
    ("scalar 3x1000 t1 sample", 0xb5cbb74bf48cb705),
    ("scalar 3x1000 t2 softmax auto", 0x49dee2a8c7283544),
    ("scalar 3x1000 t2 softmax three-pass", 0x49dee2a8c7283544),
    ("scalar 3x1000 t2 softmax online", 0x49dee2a8c7283544),
    ("scalar 3x1000 t2 softmax blocked", 0x49dee2a8c7283544),
    ("scalar 3x1000 t2 log_softmax", 0x70af365e72ef941f),
    ("scalar 3x1000 t2 logsumexp", 0x94b7a24af556154d),
    ("scalar 3x1000 t2 entropy", 0x1441690ebe5fe43b),
    ("scalar 3x1000 t2 softmax_backward", 0x6bc0a82f23b0e7e5),
    ("scalar 3x1000 t2 cross_entropy grad", 0xf257d904801a3ac8),
    ("scalar 3x1000 t2 cross_entropy loss", 0x3dc90ef3f8756208),
    ("scalar 3x1000 t2 sample", 0xb5cbb74bf48cb705),
    ("scalar 1x70000 t1 softmax auto", 0x90b13a7d0de1e465),
    ("scalar 1x70000 t1 softmax three-pass", 0x027a439040775f5e),
    ("scalar 1x70000 t1 softmax online", 0x027a439040775f5e),
    ("scalar 1x70000 t1 softmax blocked", 0x90b13a7d0de1e465),
    ("scalar 1x70000 t1 log_softmax", 0xb955c8e0d816331c),
    ("scalar 1x70000 t1 logsumexp", 0x845cf67fefe61d98),
    ("scalar 1x70000 t1 entropy", 0x3f7a6d28b4ef00ab),
    ("scalar 1x70000 t1 softmax_backward", 0x87364dbfa709c8a5),
    ("scalar 1x70000 t1 cross_entropy grad", 0x1ee9b70ce7795892),
    ("scalar 1x70000 t1 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("scalar 1x70000 t1 sample", 0x262c3d91286bcfe0),
    ("scalar 1x70000 t2 softmax auto", 0x90b13a7d0de1e465),
    ("scalar 1x70000 t2 softmax three-pass", 0x027a439040775f5e),
    ("scalar 1x70000 t2 softmax online", 0x027a439040775f5e),
    ("scalar 1x70000 t2 softmax blocked", 0x90b13a7d0de1e465),
    ("scalar 1x70000 t2 log_softmax", 0xb955c8e0d816331c),
    ("scalar 1x70000 t2 logsumexp", 0x845cf67fefe61d98),
    ("scalar 1x70000 t2 entropy", 0x3f7a6d28b4ef00ab),
    ("scalar 1x70000 t2 softmax_backward", 0x87364dbfa709c8a5),
    ("scalar 1x70000 t2 cross_entropy grad", 0x1ee9b70ce7795892),
    ("scalar 1x70000 t2 cross_entropy loss", 0x4b72877f9c5c9c58),
    ("scalar 1x70000 t2 sample", 0x262c3d91286bcfe0),
    ("scalar 40x1024 t1 softmax auto", 0x59b33c2f7a53b3e5),
    ("scalar 40x1024 t1 softmax three-pass", 0x59b33c2f7a53b3e5),
    ("scalar 40x1024 t1 softmax online", 0xd6eeca14f30390fe),
    ("scalar 40x1024 t1 softmax blocked", 0x59b33c2f7a53b3e5),
    ("scalar 40x1024 t1 log_softmax", 0x6db59835ffe8d542),
    ("scalar 40x1024 t1 logsumexp", 0x233b5e7ee6d7ba2e),
    ("scalar 40x1024 t1 entropy", 0x8bdc904da61c810f),
    ("scalar 40x1024 t1 softmax_backward", 0xc1af4bb0795b2325),
    ("scalar 40x1024 t1 cross_entropy grad", 0xff7955116fbbe875),
    ("scalar 40x1024 t1 cross_entropy loss", 0x7cf2653fae966165),
    ("scalar 40x1024 t1 sample", 0xd47dc2a6376fd0e9),
    ("scalar 40x1024 t2 softmax auto", 0x59b33c2f7a53b3e5),
    ("scalar 40x1024 t2 softmax three-pass", 0x59b33c2f7a53b3e5),
    ("scalar 40x1024 t2 softmax online", 0xd6eeca14f30390fe),
    ("scalar 40x1024 t2 softmax blocked", 0x59b33c2f7a53b3e5),
    ("scalar 40x1024 t2 log_softmax", 0x6db59835ffe8d542),
    ("scalar 40x1024 t2 logsumexp", 0x233b5e7ee6d7ba2e),
    ("scalar 40x1024 t2 entropy", 0x8bdc904da61c810f),
    ("scalar 40x1024 t2 softmax_backward", 0xc1af4bb0795b2325),
    ("scalar 40x1024 t2 cross_entropy grad", 0xff7955116fbbe875),
    ("scalar 40x1024 t2 cross_entropy loss", 0x7cf2653fae966165),
    ("scalar 40x1024 t2 sample", 0xd47dc2a6376fd0e9),
];

#[test]
fn outputs_match_the_bits_pinned_before_the_redesign() {
    let mut checked = 0;
    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        for (name, h) in outputs(b) {
            let Some(&(_, want)) = PINNED.iter().find(|(n, _)| *n == name) else {
                panic!("{name} is not pinned");
            };
            assert_eq!(h, want, "{name}: bits differ from the pinned ones");
            checked += 1;
        }
    }
    println!("{checked} pinned outputs match");
}

#[test]
#[ignore = "prints the table PINNED holds"]
fn print_pinned_bits() {
    for b in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        for (name, h) in outputs(b) {
            println!("    (\"{name}\", 0x{h:016x}),");
        }
    }
}
