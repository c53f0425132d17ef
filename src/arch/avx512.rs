//! AVX-512F lanes over `__m512`: sixteen lanes, 32 registers, mask
//! registers for the partial vectors.

use core::arch::x86_64::*;

use crate::exp::MAGIC_BIAS;
use crate::lanes::{Job, Lanes};

/// Proof that the running CPU has AVX-512F, AVX2, FMA and POPCNT (the entry
/// enables all four): only [`Avx512::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    pub(crate) fn detect() -> Option<Self> {
        // Every AVX-512F CPU has AVX2, FMA and POPCNT, but a hypervisor can
        // mask them; the entry enables them, so check them too.
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("popcnt")
        {
            Some(Avx512(()))
        } else {
            None
        }
    }
}

/// The first `n` lanes.
#[cfg_attr(not(unoptimized), inline(always))]
fn first(n: usize) -> __mmask16 {
    assert!(n < 16);
    (1u16 << n) - 1
}

// SAFETY (for every `unsafe` block in this impl unless it says more): the
// intrinsics need AVX-512F, and `self` is an `Avx512`, which exists only
// when `detect` found it on this CPU.
/// A job's entry into code compiled for AVX-512F, AVX2, FMA and POPCNT: a
/// method of a blanket impl, so that each job is compiled in its own
/// module's code-generation unit (see `lanes::Entry`).
pub(crate) trait Avx512Entry: Job + Sized {
    /// # Safety
    /// The CPU must have AVX-512F, AVX2, FMA and POPCNT.
    unsafe fn with_avx512(self, s: Avx512) -> Self::Output;
}

impl<J: Job> Avx512Entry for J {
    #[target_feature(enable = "avx512f,avx2,fma,popcnt")]
    unsafe fn with_avx512(self, s: Avx512) -> J::Output {
        self.run(s)
    }
}

impl Lanes for Avx512 {
    type V = __m512;
    type Wide = (__m512d, __m512d);
    const LANES: usize = 16;
    const FMA: bool = true;
    const HALF_IN_REGISTERS: bool = true;

    #[cfg_attr(not(unoptimized), inline(always))]
    fn vectorize<J: Job>(self, job: J) -> J::Output {
        // SAFETY: the token proves the CPU has AVX-512F, AVX2, FMA and POPCNT.
        unsafe { job.with_avx512(self) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_set1_ps(x) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load(self, s: &[f32]) -> __m512 {
        let s = &s[..16];
        // SAFETY: `s` holds 16 readable f32 (checked above); see the impl.
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store(self, v: __m512, s: &mut [f32]) {
        let s = &mut s[..16];
        // SAFETY: `s` holds 16 writable f32 (checked above); see the impl.
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_partial(self, s: &[f32], fill: f32) -> __m512 {
        let mask = first(s.len());
        // SAFETY: the mask enables exactly the first `s.len()` lanes, and a
        // masked load touches no memory of the disabled lanes; see the impl.
        unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask, s.as_ptr()) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn prefetch(self, at: usize) {
        // SAFETY: a prefetch dereferences nothing and cannot fault, for
        // any address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at as *const i8) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_partial(self, v: __m512, s: &mut [f32]) {
        let mask = first(s.len());
        // SAFETY: as in `load_partial`, only the first `s.len()` lanes are
        // written; see the impl.
        unsafe { _mm512_mask_storeu_ps(s.as_mut_ptr(), mask, v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_f16(self, s: &[u16]) -> __m512 {
        let s = &s[..16];
        // SAFETY: `s` holds 16 readable u16 (checked above); see the impl.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().cast())) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_f16(self, v: __m512, s: &mut [u16]) {
        let s = &mut s[..16];
        // SAFETY: `s` holds 16 writable u16 (checked above); see the impl.
        unsafe {
            let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
            _mm256_storeu_si256(s.as_mut_ptr().cast(), h);
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_bf16(self, s: &[u16]) -> __m512 {
        let s = &s[..16];
        // SAFETY: `s` holds 16 readable u16 (checked above); see the impl.
        unsafe {
            let b = _mm512_cvtepu16_epi32(_mm256_loadu_si256(s.as_ptr().cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(b))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_bf16(self, v: __m512, s: &mut [u16]) {
        let s = &mut s[..16];
        // SAFETY: `s` holds 16 writable u16 (checked above); see the impl.
        unsafe {
            // To nearest, ties to even: add 0x7fff plus the kept part's
            // lowest bit, keep the top half. NaN keeps its top half, made
            // quiet (the rounding could carry it into infinity).
            let bits = _mm512_castps_si512(v);
            let top = _mm512_srli_epi32::<16>(bits);
            let odd = _mm512_and_si512(top, _mm512_set1_epi32(1));
            let bias = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
            let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(bits, bias));
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            let quiet = _mm512_or_si512(top, _mm512_set1_epi32(0x40));
            let r = _mm512_mask_mov_epi32(rounded, nan, quiet);
            _mm256_storeu_si256(s.as_mut_ptr().cast(), _mm512_cvtepi32_epi16(r));
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn tanh(self, v: __m512) -> __m512 {
        // SAFETY: see the impl: `tanh_avx512` needs the same features.
        unsafe { tanh_avx512(self, v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_max(self, v: __m512) -> f32 {
        // SAFETY: see the impl.
        unsafe { _mm512_reduce_max_ps(v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_min(self, v: __m512) -> f32 {
        // SAFETY: see the impl.
        unsafe { _mm512_reduce_min_ps(v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_sum_f64(self, v: __m512) -> f64 {
        // SAFETY: see the impl.
        unsafe {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
            let hi = _mm512_cvtps_pd(_mm256_castpd_ps(hi));
            _mm512_reduce_add_pd(_mm512_add_pd(lo, hi))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift_into_exponent(self, v: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(v))) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn pow2_one_plus(self, biased: __m512, t: __m512, p: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let n = _mm512_sub_ps(biased, _mm512_set1_ps(MAGIC_BIAS));
            let one_plus = _mm512_fmadd_ps(t, p, _mm512_set1_ps(1.0));
            _mm512_scalef_ps(one_plus, n)
        }
    }
    const POW2_SIXTEENTHS: bool = true;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn pow2_sixteenths(self, biased: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            // `bits << 19` is `j << 19` plus `⌊n/16⌋` in the exponent field
            // (the magic's bits shift out): each entry is `2^(j/16)` less
            // `j << 19`, so one integer add leaves `2^(j/16)·2^⌊n/16⌋` (a
            // shift and a mask fewer than isolating the two parts).
            let pow2 = _mm512_set_epi32(
                0x3ff5257d, 0x3feac0c7, 0x3fe0ccdf, 0x3fd744fd, 0x3fce248c, 0x3fc5672a, 0x3fbd08a4,
                0x3fb504f3, 0x3fad583f, 0x3fa5fed7, 0x3f9ef532, 0x3f9837f0, 0x3f91c3d3, 0x3f8b95c2,
                0x3f85aac3, 0x3f800000,
            );
            let j = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
            let table = _mm512_sub_epi32(pow2, _mm512_slli_epi32::<19>(j));
            let bits = _mm512_castps_si512(biased);
            let fraction = _mm512_permutexvar_epi32(bits, table);
            let shifted = _mm512_slli_epi32::<19>(bits);
            _mm512_castsi512_ps(_mm512_add_epi32(fraction, shifted))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn zero_where_below(self, x: __m512, limit: f32, v: __m512) -> __m512 {
        // SAFETY: see the impl.
        // "Not less than" (true for NaN) gives the kept lanes in one
        // compare; `!below` costs a `knotw` per vector in the exp loop.
        unsafe {
            let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(limit));
            _mm512_maskz_mov_ps(keep, v)
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add_where_below(self, acc: __m512, x: __m512, limit: f32, v: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(limit));
            _mm512_mask_add_ps(acc, below, acc, v)
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn track_max(self, x: __m512, acc: __m512, x_tag: __m512, acc_tag: __m512) -> (__m512, __m512) {
        // SAFETY: see the impl.
        unsafe {
            let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, acc);
            (
                _mm512_mask_blend_ps(greater, acc, x),
                _mm512_mask_blend_ps(greater, acc_tag, x_tag),
            )
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn or_nan(self, flags: __m512, x: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe {
            let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
            _mm512_castsi512_ps(_mm512_mask_set1_epi32(_mm512_castps_si512(flags), nan, -1))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_flag(self, flags: __m512) -> bool {
        // SAFETY: see the impl.
        unsafe {
            let bits = _mm512_castps_si512(flags);
            _mm512_test_epi32_mask(bits, bits) != 0
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_greater_or_nan(self, a: __m512, b: __m512) -> bool {
        // SAFETY: see the impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(a, b) != 0 }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_mask(self, a: __m512, b: __m512) -> u32 {
        // SAFETY: see the impl.
        unsafe { u32::from(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b)) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_bits64(self, x: &[f32], b: __m512, word: &mut u64) {
        let x = &x[..64];
        // Each compare's 16 bits stored straight from the mask register
        // (`kmovw` to memory) into its quarter of the word: the shifts and
        // ORs that build the word in a general register cost half again
        // the read's time (7.5k against 5.2k cycles over 128256 values).
        let quarters = (word as *mut u64).cast::<__mmask16>();
        for k in 0..4 {
            // SAFETY: `x` holds 64 readable f32 (checked above) and `word`
            // is 8 writable bytes, aligned for u16, of which quarter `k` is
            // bits 16k..16k+16 on this little-endian target; see the impl.
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr().add(16 * k));
                quarters
                    .add(k)
                    .write(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, b));
            }
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn compress(self, v: __m512, mask: u32, out: &mut [f32]) -> usize {
        let out = &mut out[..16];
        // The register form and a full store: a compressing store to memory
        // is microcoded and slow on Zen 4.
        // SAFETY: `out` holds 16 writable f32 (checked above); see the impl.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), _mm512_maskz_compress_ps(mask as u16, v)) }
        (mask & 0xffff).count_ones() as usize
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn compress_u32(self, src: &[u32], mask: u32, out: &mut [u32]) -> usize {
        let (src, out) = (&src[..16], &mut out[..16]);
        // SAFETY: `src` holds 16 readable and `out` 16 writable u32 (checked
        // above); see the impl.
        unsafe {
            let v = _mm512_loadu_si512(src.as_ptr().cast());
            let packed = _mm512_maskz_compress_epi32(mask as u16, v);
            _mm512_storeu_si512(out.as_mut_ptr().cast(), packed);
        }
        (mask & 0xffff).count_ones() as usize
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn compress_index(self, first: u32, mask: u32, out: &mut [u32]) -> usize {
        let out = &mut out[..16];
        // SAFETY: `out` holds 16 writable u32 (checked above); see the impl.
        unsafe {
            let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
            let index = _mm512_add_epi32(lanes, _mm512_set1_epi32(first as i32));
            let packed = _mm512_maskz_compress_epi32(mask as u16, index);
            _mm512_storeu_si512(out.as_mut_ptr().cast(), packed);
        }
        (mask & 0xffff).count_ones() as usize
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_zero(self) -> (__m512d, __m512d) {
        // SAFETY: see the impl.
        unsafe { (_mm512_setzero_pd(), _mm512_setzero_pd()) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_add(self, acc: (__m512d, __m512d), v: __m512) -> (__m512d, __m512d) {
        // SAFETY: see the impl.
        unsafe {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
            let hi = _mm512_cvtps_pd(_mm256_castpd_ps(hi));
            (_mm512_add_pd(acc.0, lo), _mm512_add_pd(acc.1, hi))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_sum(self, acc: (__m512d, __m512d)) -> f64 {
        // SAFETY: see the impl.
        unsafe { _mm512_reduce_add_pd(_mm512_add_pd(acc.0, acc.1)) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn two_prod(self, a: __m512, b: __m512) -> (__m512, __m512) {
        // SAFETY: see the impl.
        unsafe {
            let hi = _mm512_mul_ps(a, b);
            (hi, _mm512_fmsub_ps(a, b, hi))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn keep_where(self, keep: &[bool], x: __m512) -> __m512 {
        let keep = &keep[..16];
        // SAFETY: `keep` holds 16 readable bytes (checked above), each 0 or 1
        // (a `bool`); see the impl.
        unsafe {
            let lanes = _mm512_cvtepu8_epi32(_mm_loadu_si128(keep.as_ptr().cast()));
            let kept = _mm512_test_epi32_mask(lanes, lanes);
            _mm512_mask_blend_ps(kept, _mm512_set1_ps(f32::NEG_INFINITY), x)
        }
    }
}

/// `crate::tanh::tanh` compiled once for this instruction set and called,
/// not inlined (see `Lanes::tanh`).
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA (`s` proves it).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline(never)]
unsafe fn tanh_avx512(s: Avx512, v: __m512) -> __m512 {
    crate::tanh::tanh(s, v)
}
