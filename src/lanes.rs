//! The lane trait: the few vector operations the kernels are written in.
//!
//! A `Lanes` value is a zero-sized token. Holding one proves that the CPU
//! can run its operations, which is what lets the AVX2 implementation
//! (in `arch::avx2`) expose safe methods over `unsafe` intrinsics. The
//! kernels are generic over `Lanes` and contain no `unsafe` at all.

use wide::{f32x8, i32x8};

/// The most lanes any backend has (AVX-512's 16): the size of the buffers
/// that convert a vector one value at a time.
pub(crate) const MAX_LANES: usize = 16;

/// Vector operations over `LANES` f32 values, plus the entry that compiles
/// a kernel for this instruction set.
pub(crate) trait Lanes: Copy + Send + Sync + 'static {
    /// One register of `LANES` f32 values.
    type V: Copy;
    /// `LANES` f64 accumulators (see [`Lanes::wide_add`]).
    type Wide: Copy;
    const LANES: usize;
    /// Whether `mul_add` is fused (one rounding).
    const FMA: bool;
    /// Whether f16 and bf16 convert in registers (whole vectors): the
    /// backends where 16-bit rows get their own plain-row kernels.
    const HALF_IN_REGISTERS: bool = false;

    /// Runs `job` inside a function compiled for this instruction set, so
    /// that the `#[inline(always)]` kernel and lane methods inline into code
    /// that may use the instructions. (Written
    /// `#[cfg_attr(not(unoptimized), inline(always))]`: an unoptimised build
    /// inlines nothing, for small stack frames; see `build.rs`.)
    fn vectorize<J: Job>(self, job: J) -> J::Output;

    fn splat(self, x: f32) -> Self::V;
    /// The first `LANES` values of `s` (panics if `s` is shorter).
    fn load(self, s: &[f32]) -> Self::V;
    /// Writes the first `LANES` values of `s` (panics if `s` is shorter).
    fn store(self, v: Self::V, s: &mut [f32]);
    /// Asks for the cache line holding address `at` to be fetched into
    /// L1: a hint that reads nothing and never faults, whatever `at` is.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn prefetch(self, _at: usize) {}
    /// Loads `s` (shorter than `LANES`) and sets the remaining lanes to `fill`.
    fn load_partial(self, s: &[f32], fill: f32) -> Self::V;
    /// Writes the first `s.len()` lanes (`s` shorter than `LANES`).
    fn store_partial(self, v: Self::V, s: &mut [f32]);
    /// The first `LANES` values of `s`, IEEE binary16 (f16) bit patterns,
    /// as f32: exact (panics if `s` is shorter). Here one value at a time,
    /// out of line (see [`halves_to_f32`]); the x86 backends convert in
    /// registers.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_f16(self, s: &[u16]) -> Self::V {
        let mut wide = [0.0f32; MAX_LANES];
        halves_to_f32::<false>(&s[..Self::LANES], &mut wide[..Self::LANES]);
        self.load(&wide[..Self::LANES])
    }
    /// Writes the first `LANES` values of `s` as f16 bit patterns, each
    /// rounded to nearest, ties to even (beyond the range: ±inf; NaN: a
    /// quiet NaN).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_f16(self, v: Self::V, s: &mut [u16]) {
        let mut wide = [0.0f32; MAX_LANES];
        self.store(v, &mut wide[..Self::LANES]);
        f32_to_halves::<false>(&wide[..Self::LANES], &mut s[..Self::LANES]);
    }
    /// [`Lanes::load_f16`] for bfloat16 bit patterns (the top half of an f32).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_bf16(self, s: &[u16]) -> Self::V {
        let mut wide = [0.0f32; MAX_LANES];
        halves_to_f32::<true>(&s[..Self::LANES], &mut wide[..Self::LANES]);
        self.load(&wide[..Self::LANES])
    }
    /// [`Lanes::store_f16`] for bfloat16.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_bf16(self, v: Self::V, s: &mut [u16]) {
        let mut wide = [0.0f32; MAX_LANES];
        self.store(v, &mut wide[..Self::LANES]);
        f32_to_halves::<true>(&wide[..Self::LANES], &mut s[..Self::LANES]);
    }

    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`, correctly rounded.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `tanh` of every lane (`crate::tanh::tanh`), compiled once per
    /// backend, out of line: inlined into every masked kernel, where the
    /// soft cap reads it, it doubled the library's build time.
    fn tanh(self, v: Self::V) -> Self::V;
    /// `a * b + c`, fused where the instruction set has FMA.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// [`Lanes::mul_add`] for finite `b`, giving what FMA gives where an
    /// unfused one is not a rounding away from it: a finite `a` whose
    /// product overflows, plus an infinite `c`, is `c` (unfused: inf − inf,
    /// NaN). The masked logit `x·c + a` (`kernels::logits`).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul_add_exact_inf(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        self.mul_add(a, b, c)
    }
    /// Lane-wise maximum. With a NaN operand either operand may come back:
    /// the kernels find NaN through the exponentials, not through the max.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    fn reduce_max(self, v: Self::V) -> f32;
    /// Lane-wise minimum, NaN as in [`Lanes::max`].
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    fn reduce_min(self, v: Self::V) -> f32;
    /// Sum of the lanes in f64, in a fixed order.
    fn reduce_sum_f64(self, v: Self::V) -> f64;

    /// Reinterprets each lane's bits as an integer, shifts it left by 23 and
    /// reinterprets the result as f32: turns `n + 127` held in the low
    /// mantissa bits into the float `2^n`.
    fn shift_into_exponent(self, v: Self::V) -> Self::V;
    /// `2^n·(1 + t·p)` with one rounding after the product (`n + MAGIC_BIAS`
    /// given as `biased`, `−126 ≤ n ≤ 127`): the exp's reconstruction.
    /// Here `2^n` comes from the exponent bits and `(t·2^n)·p + 2^n` is one
    /// multiply-add; AVX-512 computes `1 + t·p` and scales it with
    /// `vscalefps` (same bits wherever the result is normal).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn pow2_one_plus(self, biased: Self::V, t: Self::V, p: Self::V) -> Self::V {
        let scale = self.shift_into_exponent(biased);
        self.mul_add(self.mul(t, scale), p, scale)
    }
    /// Whether the lanes give [`Lanes::pow2_sixteenths`] (a 16-entry table
    /// in one register): the exp then uses it (`exp::exp_above_cutoff`).
    const POW2_SIXTEENTHS: bool = false;
    /// `2^(n/16)` for the integer `n` (−2016 ≤ n ≤ 2040) held in the low
    /// mantissa bits of `biased = n + 1.5·2^23`: the table entry `2^(j/16)`,
    /// `j = n mod 16`, with `⌊n/16⌋` added to its exponent bits. Only
    /// called where [`Lanes::POW2_SIXTEENTHS`] says so (the default returns
    /// `biased` unchanged).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn pow2_sixteenths(self, biased: Self::V) -> Self::V {
        biased
    }
    /// `v` where `x >= limit` or `x` is NaN, `0.0` where `x < limit`.
    fn zero_where_below(self, x: Self::V, limit: f32, v: Self::V) -> Self::V;
    /// `acc + v` in the lanes where `x < limit`, `acc` where `x >= limit`
    /// (NaN `x`: either).
    fn add_where_below(self, acc: Self::V, x: Self::V, limit: f32, v: Self::V) -> Self::V;
    /// Where `x > acc`: `(x, x_tag)`, else `(acc, acc_tag)` (NaN never wins).
    fn track_max(
        self,
        x: Self::V,
        acc: Self::V,
        x_tag: Self::V,
        acc_tag: Self::V,
    ) -> (Self::V, Self::V);
    /// `flags` with every bit set in the lanes where `x` is NaN.
    fn or_nan(self, flags: Self::V, x: Self::V) -> Self::V;
    /// Whether any lane of `flags` has a bit set.
    fn any_flag(self, flags: Self::V) -> bool;
    /// Whether any lane has `a > b` or `a` NaN (`!(a <= b)`: one compare).
    fn any_greater_or_nan(self, a: Self::V, b: Self::V) -> bool;
    /// Bit `j` set where lane `j` has `a > b` (NaN: clear).
    fn greater_mask(self, a: Self::V, b: Self::V) -> u32;
    /// Writes to `word` bit `j` set where `x[j] > b` (NaN: clear), for the
    /// first 64 values of `x` (panics if shorter).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_bits64(self, x: &[f32], b: Self::V, word: &mut u64) {
        let x = &x[..64];
        let mut w = 0u64;
        // `LANES` divides 64 on every backend.
        for j in (0..64).step_by(Self::LANES) {
            w |= u64::from(self.greater_mask(self.load(&x[j..]), b)) << j;
        }
        *word = w;
    }
    /// Writes the lanes of `v` whose bit is set in `mask`, in lane order,
    /// to the front of `out`, and returns how many. `out` must hold
    /// `LANES` values (all of them may be written; panics if shorter).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn compress(self, v: Self::V, mask: u32, out: &mut [f32]) -> usize {
        let mut lanes = [0.0f32; 16];
        self.store(v, &mut lanes[..Self::LANES]);
        compress_bits(&lanes[..Self::LANES], mask, out)
    }
    /// [`Lanes::compress`] for the `LANES` values `src[..LANES]` of a u32
    /// array read alongside the vectors.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn compress_u32(self, src: &[u32], mask: u32, out: &mut [u32]) -> usize {
        compress_bits(&src[..Self::LANES], mask, out)
    }
    /// [`Lanes::compress`] for the lane numbers `first + j`.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn compress_index(self, first: u32, mask: u32, out: &mut [u32]) -> usize {
        let index: [u32; 16] = core::array::from_fn(|j| first + j as u32);
        compress_bits(&index[..Self::LANES], mask, out)
    }
    /// An f64 accumulator per lane: [`Lanes::wide_add`] converts each lane
    /// exactly and adds it in f64, [`Lanes::wide_sum`] adds up the lanes in a
    /// fixed order. Sums of f32 without the f32 rounding, at vector speed.
    fn wide_zero(self) -> Self::Wide;
    fn wide_add(self, acc: Self::Wide, v: Self::V) -> Self::Wide;
    fn wide_sum(self, acc: Self::Wide) -> f64;
    /// `(hi, lo)` with `hi = a·b` rounded and `hi + lo = a·b` exactly
    /// (while nothing overflows or underflows). Dekker's product through
    /// Veltkamp splitting; backends with FMA override it with `fma(a, b, −hi)`.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn two_prod(self, a: Self::V, b: Self::V) -> (Self::V, Self::V) {
        let split = |v: Self::V| {
            // 2^12 + 1: splits 24 bits into two halves of 12.
            let c = self.mul(v, self.splat(4097.0));
            let high = self.sub(c, self.sub(c, v));
            (high, self.sub(v, high))
        };
        let hi = self.mul(a, b);
        let ((ah, al), (bh, bl)) = (split(a), split(b));
        let err = self.sub(self.mul(ah, bh), hi);
        let err = self.add(err, self.mul(ah, bl));
        let err = self.add(err, self.mul(al, bh));
        (hi, self.add(err, self.mul(al, bl)))
    }
    /// `x` in the lanes where `keep` is true, −inf in the others (the first
    /// `LANES` entries of `keep`; panics if it is shorter).
    fn keep_where(self, keep: &[bool], x: Self::V) -> Self::V;
    /// [`Lanes::keep_where`] for `keep` shorter than `LANES`: the lanes past
    /// its end are −inf.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn keep_where_partial(self, keep: &[bool], x: Self::V) -> Self::V {
        let mut all = [false; 16];
        all[..keep.len()].copy_from_slice(keep);
        self.keep_where(&all, x)
    }
}

/// The entries of `lanes` whose bit is set in `mask`, in order, to the
/// front of `out` (as long as `lanes`); how many. The scalar form of the
/// compress methods.
#[cfg_attr(not(unoptimized), inline(always))]
fn compress_bits<T: Copy>(lanes: &[T], mask: u32, out: &mut [T]) -> usize {
    let out = &mut out[..lanes.len()];
    let mut n = 0;
    // Only the bits of lanes that exist.
    let mut bits = mask & (u32::MAX >> (32 - lanes.len()));
    while bits != 0 {
        out[n] = lanes[bits.trailing_zeros() as usize];
        n += 1;
        bits &= bits - 1;
    }
    n
}

/// f16 (or, with `BF16`, bfloat16) bit patterns to f32, one value at a
/// time through `half`. Out of line on purpose: inlined into every
/// unrolled loop of every kernel, the branchy conversions (and the vector
/// code LLVM then tried to make of them) made the library's build run for
/// half an hour in 12 GB; the scalar and portable backends pay a call per
/// vector instead.
#[inline(never)]
pub(crate) fn halves_to_f32<const BF16: bool>(bits: &[u16], out: &mut [f32]) {
    for (w, &b) in out.iter_mut().zip(bits) {
        *w = if BF16 {
            half::bf16::from_bits(b).to_f32()
        } else {
            half::f16::from_bits(b).to_f32()
        };
    }
}

/// f32 to f16 (or bfloat16) bit patterns, rounded to nearest, ties to
/// even, one value at a time through `half` (out of line, as
/// [`halves_to_f32`]).
#[inline(never)]
pub(crate) fn f32_to_halves<const BF16: bool>(v: &[f32], out: &mut [u16]) {
    for (b, &w) in out.iter_mut().zip(v) {
        *b = if BF16 {
            half::bf16::from_f32(w).to_bits()
        } else {
            half::f16::from_f32(w).to_bits()
        };
    }
}

/// A kernel call, generic over the lanes. Its `run` must be
/// `#[inline(always)]`: [`Lanes::vectorize`] relies on that to compile the
/// kernel for the instruction set (a closure would not be inlined there).
pub(crate) trait Job {
    type Output;
    fn run<S: Lanes>(self, s: S) -> Self::Output;
}

/// The entry of a backend that needs no target features. Not inlined, so
/// that a job is compiled once however many places enter it (the driver
/// has four): inlined, the scalar and portable kernels were compiled into
/// each of them, a fifth of the crate's machine code.
///
/// A method of a blanket impl, not a free function, as are the AVX2 and
/// AVX-512 entries: rustc compiles an instance of a generic method in the
/// code-generation unit of its self type's module, so each job is compiled
/// beside its own type, and the jobs spread over the units (and the
/// cores). As free functions, every job of a backend shared one unit: the
/// portable and scalar entries made one of 5.5 MB of the crate's 10.2 MB,
/// which one core optimised while the other sat idle.
pub(crate) trait Entry: Job + Sized {
    fn run_once_compiled<S: Lanes>(self, s: S) -> Self::Output;
}

impl<J: Job> Entry for J {
    #[inline(never)]
    fn run_once_compiled<S: Lanes>(self, s: S) -> J::Output {
        self.run(s)
    }
}

/// One lane, plain f32 arithmetic: the reference point for the SIMD backends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar;

impl Lanes for Scalar {
    type V = f32;
    type Wide = f64;
    const LANES: usize = 1;
    const FMA: bool = false;

    #[cfg_attr(not(unoptimized), inline(always))]
    fn vectorize<J: Job>(self, job: J) -> J::Output {
        job.run_once_compiled(self)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load(self, s: &[f32]) -> f32 {
        s[0]
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store(self, v: f32, s: &mut [f32]) {
        s[0] = v;
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_partial(self, _s: &[f32], fill: f32) -> f32 {
        // A partial vector of one lane is empty.
        fill
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_partial(self, _v: f32, _s: &mut [f32]) {}
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn tanh(self, v: f32) -> f32 {
        crate::tanh::tanh_out_of_line(self, v)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        // Not `f32::mul_add`: without FMA in the target that is a libm call.
        a * b + c
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul_add_exact_inf(self, a: f32, b: f32, c: f32) -> f32 {
        if c.is_infinite() && a.is_finite() {
            c
        } else {
            a * b + c
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn max(self, a: f32, b: f32) -> f32 {
        if a > b { a } else { b }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_max(self, v: f32) -> f32 {
        v
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn min(self, a: f32, b: f32) -> f32 {
        if a < b { a } else { b }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_min(self, v: f32) -> f32 {
        v
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_sum_f64(self, v: f32) -> f64 {
        f64::from(v)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift_into_exponent(self, v: f32) -> f32 {
        f32::from_bits(v.to_bits() << 23)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn zero_where_below(self, x: f32, limit: f32, v: f32) -> f32 {
        if x < limit { 0.0 } else { v }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add_where_below(self, acc: f32, x: f32, limit: f32, v: f32) -> f32 {
        if x < limit { acc + v } else { acc }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn track_max(self, x: f32, acc: f32, x_tag: f32, acc_tag: f32) -> (f32, f32) {
        if x > acc { (x, x_tag) } else { (acc, acc_tag) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn or_nan(self, flags: f32, x: f32) -> f32 {
        if x.is_nan() {
            f32::from_bits(u32::MAX)
        } else {
            flags
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_flag(self, flags: f32) -> bool {
        flags.to_bits() != 0
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_greater_or_nan(self, a: f32, b: f32) -> bool {
        a > b || a.is_nan()
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_mask(self, a: f32, b: f32) -> u32 {
        u32::from(a > b)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_zero(self) -> f64 {
        0.0
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_add(self, acc: f64, v: f32) -> f64 {
        acc + f64::from(v)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_sum(self, acc: f64) -> f64 {
        acc
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn keep_where(self, keep: &[bool], x: f32) -> f32 {
        if keep[0] { x } else { f32::NEG_INFINITY }
    }
}

/// Eight lanes through the `wide` crate: SSE2 pairs on a default x86_64
/// build, NEON on aarch64, simd128 on wasm; whatever the build targets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable;

impl Lanes for Portable {
    type V = f32x8;
    type Wide = [f64; 8];
    const LANES: usize = 8;
    // `wide` fuses only when the build targets FMA.
    const FMA: bool = cfg!(target_feature = "fma");

    #[cfg_attr(not(unoptimized), inline(always))]
    fn vectorize<J: Job>(self, job: J) -> J::Output {
        job.run_once_compiled(self)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn splat(self, x: f32) -> f32x8 {
        f32x8::splat(x)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load(self, s: &[f32]) -> f32x8 {
        let a: [f32; 8] = s[..8].try_into().unwrap();
        f32x8::new(a)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store(self, v: f32x8, s: &mut [f32]) {
        s[..8].copy_from_slice(v.as_array());
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_partial(self, s: &[f32], fill: f32) -> f32x8 {
        let mut a = [fill; 8];
        a[..s.len()].copy_from_slice(s);
        f32x8::new(a)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_partial(self, v: f32x8, s: &mut [f32]) {
        let n = s.len();
        s.copy_from_slice(&v.as_array()[..n]);
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add(self, a: f32x8, b: f32x8) -> f32x8 {
        a + b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn sub(self, a: f32x8, b: f32x8) -> f32x8 {
        a - b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul(self, a: f32x8, b: f32x8) -> f32x8 {
        a * b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn div(self, a: f32x8, b: f32x8) -> f32x8 {
        a / b
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn tanh(self, v: f32x8) -> f32x8 {
        crate::tanh::tanh_out_of_line(self, v)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul_add(self, a: f32x8, b: f32x8, c: f32x8) -> f32x8 {
        a.mul_add(b, c)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul_add_exact_inf(self, a: f32x8, b: f32x8, c: f32x8) -> f32x8 {
        let w = a.mul_add(b, c);
        if Self::FMA {
            w
        } else {
            (c.is_inf() & a.is_finite()).select(c, w)
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn max(self, a: f32x8, b: f32x8) -> f32x8 {
        a.fast_max(b)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_max(self, v: f32x8) -> f32 {
        let a = v.to_array();
        let m = |x: f32, y: f32| if x > y { x } else { y };
        m(
            m(m(a[0], a[4]), m(a[2], a[6])),
            m(m(a[1], a[5]), m(a[3], a[7])),
        )
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn min(self, a: f32x8, b: f32x8) -> f32x8 {
        a.fast_min(b)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_min(self, v: f32x8) -> f32 {
        let a = v.to_array();
        let m = |x: f32, y: f32| if x < y { x } else { y };
        m(
            m(m(a[0], a[4]), m(a[2], a[6])),
            m(m(a[1], a[5]), m(a[3], a[7])),
        )
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_sum_f64(self, v: f32x8) -> f64 {
        let a = v.to_array().map(f64::from);
        ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift_into_exponent(self, v: f32x8) -> f32x8 {
        let bits: i32x8 = wide::bytemuck::cast(v);
        wide::bytemuck::cast(bits << 23u32)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn zero_where_below(self, x: f32x8, limit: f32, v: f32x8) -> f32x8 {
        x.simd_lt(f32x8::splat(limit)).select(f32x8::ZERO, v)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add_where_below(self, acc: f32x8, x: f32x8, limit: f32, v: f32x8) -> f32x8 {
        acc + (x.simd_lt(f32x8::splat(limit)) & v)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn track_max(self, x: f32x8, acc: f32x8, x_tag: f32x8, acc_tag: f32x8) -> (f32x8, f32x8) {
        let greater = x.simd_gt(acc);
        (greater.select(x, acc), greater.select(x_tag, acc_tag))
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn or_nan(self, flags: f32x8, x: f32x8) -> f32x8 {
        flags | x.is_nan()
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_flag(self, flags: f32x8) -> bool {
        let bits: [u32; 8] = wide::bytemuck::cast(flags);
        bits.iter().any(|&b| b != 0)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_greater_or_nan(self, a: f32x8, b: f32x8) -> bool {
        !a.simd_le(b).all()
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_mask(self, a: f32x8, b: f32x8) -> u32 {
        a.simd_gt(b).to_bitmask()
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_zero(self) -> [f64; 8] {
        [0.0; 8]
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_add(self, acc: [f64; 8], v: f32x8) -> [f64; 8] {
        let v = v.to_array();
        core::array::from_fn(|j| acc[j] + f64::from(v[j]))
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_sum(self, acc: [f64; 8]) -> f64 {
        ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn keep_where(self, keep: &[bool], x: f32x8) -> f32x8 {
        let keep: [bool; 8] = keep[..8].try_into().unwrap();
        let lanes = keep.map(|k| if k { -1i32 } else { 0 });
        let mask: f32x8 = wide::bytemuck::cast(i32x8::new(lanes));
        mask.select(x, f32x8::splat(f32::NEG_INFINITY))
    }
}

/// Runs `job` on every backend, each in its vectorized entry (a backend
/// this CPU lacks is reported and skipped): for the kernels' tests.
#[cfg(test)]
pub(crate) fn on_every_backend<J: Job<Output = ()> + Clone>(job: J) {
    Scalar.vectorize(job.clone());
    Portable.vectorize(job.clone());
    #[cfg(target_arch = "x86_64")]
    {
        match crate::arch::avx2::Avx2Fma::detect() {
            Some(avx2) => avx2.vectorize(job.clone()),
            None => eprintln!("SKIPPED avx2: not available on this CPU"),
        }
        match crate::arch::avx512::Avx512::detect() {
            Some(avx512) => avx512.vectorize(job),
            None => eprintln!("SKIPPED avx512: not available on this CPU"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_vec<S: Lanes>(s: S, v: S::V) -> Vec<f32> {
        let mut out = vec![0.0; S::LANES];
        s.store(v, &mut out);
        out
    }

    /// Every lane operation against plain f32 on each backend.
    fn check<S: Lanes>(s: S) {
        let l = S::LANES;
        let data: Vec<f32> = (0..l).map(|i| i as f32 * 1.5 - 3.0).collect();
        let v = s.load(&data);
        assert_eq!(to_vec(s, v), data);
        for n in 0..l {
            let w = s.load_partial(&data[..n], -7.0);
            let mut want = data[..n].to_vec();
            want.resize(l, -7.0);
            assert_eq!(to_vec(s, w), want, "load_partial({n})");
            let mut out = vec![9.0f32; n + 4];
            s.store_partial(v, &mut out[..n]);
            assert_eq!(&out[..n], &data[..n], "store_partial({n})");
            assert!(
                out[n..].iter().all(|&x| x == 9.0),
                "store_partial({n}) wrote past the end"
            );
        }
        let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(s.reduce_max(v), max);
        let min = data.iter().copied().fold(f32::INFINITY, f32::min);
        assert_eq!(s.reduce_min(v), min);
        let flipped: Vec<f32> = data.iter().map(|x| 1.0 - x).collect();
        let w = s.load(&flipped);
        let want: Vec<f32> = data.iter().zip(&flipped).map(|(a, b)| a.min(*b)).collect();
        assert_eq!(to_vec(s, s.min(v, w)), want);
        // On x86, `min(x, acc)` keeps `acc` when `x` is NaN, as `max(x, acc)`
        // does (the kernels' max and min rely on it there).
        #[cfg(target_arch = "x86_64")]
        {
            let nan = s.splat(f32::NAN);
            assert_eq!(to_vec(s, s.min(nan, v)), data, "min(NaN, acc)");
            assert_eq!(to_vec(s, s.max(nan, v)), data, "max(NaN, acc)");
        }
        let sum: f64 = data.iter().map(|&x| f64::from(x)).sum();
        assert_eq!(s.reduce_sum_f64(v), sum);
        assert_eq!(
            to_vec(s, s.mul_add(v, s.splat(2.0), s.splat(1.0))),
            data.iter().map(|x| x * 2.0 + 1.0).collect::<Vec<_>>()
        );
        // n + 127 in the low bits becomes 2^n.
        let biased = s.splat(f32::from_bits(0x4b40_007f + 3));
        assert_eq!(to_vec(s, s.shift_into_exponent(biased)), vec![8.0; l]);
        let z = s.zero_where_below(v, 0.0, s.splat(5.0));
        let want: Vec<f32> = data
            .iter()
            .map(|&x| if x < 0.0 { 0.0 } else { 5.0 })
            .collect();
        assert_eq!(to_vec(s, z), want);
        let nan = s.zero_where_below(s.splat(f32::NAN), 0.0, s.splat(5.0));
        assert_eq!(to_vec(s, nan), vec![5.0; l], "NaN is not below the limit");
        // add_where_below: strictly below adds, at the limit and above not.
        let acc = s.splat(0.25);
        let added = s.add_where_below(acc, v, data[l / 2], s.splat(5.0));
        let want: Vec<f32> = data
            .iter()
            .map(|&x| if x < data[l / 2] { 5.25 } else { 0.25 })
            .collect();
        assert_eq!(to_vec(s, added), want);
        let everything = s.add_where_below(acc, v, f32::INFINITY, s.splat(5.0));
        assert_eq!(to_vec(s, everything), vec![5.25; l], "below +inf");
        // compress: the chosen lanes in order, and how many; the index and
        // u32 forms alike.
        let ids: Vec<u32> = (0..l as u32).map(|j| 100 + 3 * j).collect();
        for mask in [0u32, 1, 0b1010_0110, (1 << l) - 1, 1 << (l - 1)] {
            let mask = mask & ((1u64 << l) - 1) as u32;
            let chosen: Vec<usize> = (0..l).filter(|&j| mask >> j & 1 == 1).collect();
            let mut out = vec![-1.0f32; l];
            assert_eq!(s.compress(v, mask, &mut out), chosen.len(), "{mask:b}");
            let want: Vec<f32> = chosen.iter().map(|&j| data[j]).collect();
            assert_eq!(&out[..chosen.len()], &want[..], "compress {mask:b}");
            let mut out = vec![0u32; l];
            assert_eq!(s.compress_u32(&ids, mask, &mut out), chosen.len());
            let want: Vec<u32> = chosen.iter().map(|&j| ids[j]).collect();
            assert_eq!(&out[..chosen.len()], &want[..], "compress_u32 {mask:b}");
            assert_eq!(s.compress_index(7, mask, &mut out), chosen.len());
            let want: Vec<u32> = chosen.iter().map(|&j| 7 + j as u32).collect();
            assert_eq!(&out[..chosen.len()], &want[..], "compress_index {mask:b}");
        }
        // wide sums: no f32 rounding (1 + 2^-30 is not an f32 sum).
        let tiny = s.splat(2f32.powi(-30));
        let mut acc = s.wide_add(s.wide_zero(), s.splat(1.0));
        for _ in 0..4 {
            acc = s.wide_add(acc, tiny);
        }
        let want = l as f64 * (1.0 + 4.0 * 2f64.powi(-30));
        assert_eq!(s.wide_sum(acc), want);
        assert_eq!(s.wide_sum(s.wide_add(s.wide_zero(), v)), sum);
        // track_max: strictly greater moves value and tag; NaN never does.
        let mut probe = data.clone();
        probe[0] = f32::NAN;
        let probe = s.load(&probe);
        let (m, t) = s.track_max(probe, s.splat(0.0), s.splat(1.0), s.splat(2.0));
        let want_m: Vec<f32> = (0..l)
            .map(|i| if i > 0 && data[i] > 0.0 { data[i] } else { 0.0 })
            .collect();
        let want_t: Vec<f32> = (0..l)
            .map(|i| if i > 0 && data[i] > 0.0 { 1.0 } else { 2.0 })
            .collect();
        assert_eq!((to_vec(s, m), to_vec(s, t)), (want_m, want_t));
        // greater_mask: bit j for lane j, NaN clear.
        let mut probe = data.clone();
        probe[l / 2] = f32::NAN;
        let want: u32 = (0..l).filter(|&j| probe[j] > 0.0).map(|j| 1u32 << j).sum();
        assert_eq!(s.greater_mask(s.load(&probe), s.splat(0.0)), want);
        let none = s.or_nan(s.splat(0.0), v);
        assert!(!s.any_flag(none), "no NaN in {data:?}");
        for k in 0..l {
            let mut with_nan = data.clone();
            with_nan[k] = f32::NAN;
            assert!(
                s.any_flag(s.or_nan(s.splat(0.0), s.load(&with_nan))),
                "NaN in lane {k}"
            );
        }
    }

    /// `any_greater_or_nan` in each lane alone.
    fn check_any_greater<S: Lanes>(s: S) {
        let l = S::LANES;
        for k in 0..l {
            for (a, b, want) in [
                (2.0, 1.0, true),
                (1.0, 1.0, false),
                (0.5, 1.0, false),
                (f32::NAN, 1.0, true),
            ] {
                let mut x = vec![0.0f32; l];
                let mut y = vec![5.0f32; l];
                x[k] = a;
                y[k] = b;
                assert_eq!(
                    s.any_greater_or_nan(s.load(&x), s.load(&y)),
                    want,
                    "lane {k}: {a} > {b}"
                );
            }
        }
    }

    /// `keep_where` and its partial form against a plain select.
    fn check_keep<S: Lanes>(s: S) {
        let l = S::LANES;
        let data: Vec<f32> = (0..l).map(|i| i as f32 - 2.0).collect();
        let v = s.load(&data);
        for pattern in 0u32..64 {
            let keep: Vec<bool> = (0..l).map(|i| (pattern >> (i % 6)) & 1 == 1).collect();
            let want: Vec<f32> = (0..l)
                .map(|i| if keep[i] { data[i] } else { f32::NEG_INFINITY })
                .collect();
            assert_eq!(to_vec(s, s.keep_where(&keep, v)), want, "{keep:?}");
            for n in 0..l {
                let mut want = want.clone();
                want[n..].fill(f32::NEG_INFINITY);
                assert_eq!(to_vec(s, s.keep_where_partial(&keep[..n], v)), want);
            }
        }
    }

    /// `two_prod` is exact: hi + lo equals the f64 product.
    fn check_two_prod<S: Lanes>(s: S) {
        let l = S::LANES;
        let a: Vec<f32> = (0..l)
            .map(|i| 1.0 / (3.0 + i as f32) - 17.25 * i as f32)
            .collect();
        let b: Vec<f32> = (0..l).map(|i| 0.1f32 * (i as f32 + 0.7) + 1e-3).collect();
        let (hi, lo) = s.two_prod(s.load(&a), s.load(&b));
        let (hi, lo) = (to_vec(s, hi), to_vec(s, lo));
        for i in 0..l {
            let exact = f64::from(a[i]) * f64::from(b[i]);
            assert_eq!(hi[i], a[i] * b[i], "lane {i}");
            assert_eq!(f64::from(hi[i]) + f64::from(lo[i]), exact, "lane {i}");
        }
    }

    #[test]
    fn lanes_match_plain_f32() {
        check_two_prod(Scalar);
        check_two_prod(Portable);
        check_any_greater(Scalar);
        check_any_greater(Portable);
        check_keep(Scalar);
        check_keep(Portable);
        check(Scalar);
        check(Portable);
        #[cfg(target_arch = "x86_64")]
        match crate::arch::avx2::Avx2Fma::detect() {
            Some(avx2) => {
                check(avx2);
                check_keep(avx2);
                check_two_prod(avx2);
                check_any_greater(avx2);
            }
            None => eprintln!("SKIPPED avx2 lanes: not available on this CPU"),
        }
        #[cfg(target_arch = "x86_64")]
        match crate::arch::avx512::Avx512::detect() {
            Some(avx512) => {
                check(avx512);
                check_keep(avx512);
                check_two_prod(avx512);
                check_any_greater(avx512);
            }
            None => eprintln!("SKIPPED avx512 lanes: not available on this CPU"),
        }
    }
}
