//! AVX2 + FMA lanes over `__m256`, chosen at run time on a default build.

use core::arch::x86_64::*;

use crate::lanes::{Job, Lanes};

/// Proof that the running CPU has AVX2, FMA, POPCNT and F16C: only
/// [`Avx2Fma::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2Fma(());

impl Avx2Fma {
    pub(crate) fn detect() -> Option<Self> {
        // POPCNT counts the lanes a compare selects, F16C converts f16
        // (every AVX2 CPU has both, unless a hypervisor masks them).
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("popcnt")
            && is_x86_feature_detected!("f16c")
        {
            Some(Avx2Fma(()))
        } else {
            None
        }
    }
}

/// Eight -1 then eight 0: a window of eight starting at `8 - n` selects the
/// first `n` lanes for the masked loads and stores.
static PARTIAL_MASK: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

#[cfg_attr(not(unoptimized), inline(always))]
fn partial_mask(n: usize) -> __m256i {
    assert!(n < 8);
    let window = &PARTIAL_MASK[8 - n..16 - n];
    // SAFETY: `window` holds 8 readable i32; AVX is implied by the token
    // held by every caller.
    unsafe { _mm256_loadu_si256(window.as_ptr().cast()) }
}

// SAFETY (for every `unsafe` block in this impl unless it says more): the
// intrinsics need AVX, AVX2 or FMA, and `self` is an `Avx2Fma`, which exists
// only when `detect` found all of them on this CPU.
/// A job's entry into code compiled for AVX2, FMA, POPCNT and F16C: a method of a
/// blanket impl, so that each job is compiled in its own module's
/// code-generation unit (see `lanes::Entry`).
pub(crate) trait Avx2FmaEntry: Job + Sized {
    /// # Safety
    /// The CPU must have AVX2, FMA, POPCNT and F16C.
    unsafe fn with_avx2(self, s: Avx2Fma) -> Self::Output;
}

impl<J: Job> Avx2FmaEntry for J {
    #[target_feature(enable = "avx2,fma,popcnt,f16c")]
    unsafe fn with_avx2(self, s: Avx2Fma) -> J::Output {
        self.run(s)
    }
}

impl Lanes for Avx2Fma {
    type V = __m256;
    type Wide = (__m256d, __m256d);
    const LANES: usize = 8;
    const FMA: bool = true;
    const HALF_IN_REGISTERS: bool = true;

    #[cfg_attr(not(unoptimized), inline(always))]
    fn vectorize<J: Job>(self, job: J) -> J::Output {
        // SAFETY: the token proves the CPU has AVX2, FMA and POPCNT.
        unsafe { job.with_avx2(self) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_set1_ps(x) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load(self, s: &[f32]) -> __m256 {
        let s = &s[..8];
        // SAFETY: `s` holds 8 readable f32 (checked above); see the impl.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store(self, v: __m256, s: &mut [f32]) {
        let s = &mut s[..8];
        // SAFETY: `s` holds 8 writable f32 (checked above); see the impl.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_partial(self, s: &[f32], fill: f32) -> __m256 {
        let mask = partial_mask(s.len());
        // SAFETY: the mask enables exactly the first `s.len()` lanes, and a
        // masked load touches no memory of the disabled lanes; see the impl.
        unsafe {
            let v = _mm256_maskload_ps(s.as_ptr(), mask);
            _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(mask))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_partial(self, v: __m256, s: &mut [f32]) {
        let mask = partial_mask(s.len());
        // SAFETY: as in `load_partial`, only the first `s.len()` lanes are
        // written; see the impl.
        unsafe { _mm256_maskstore_ps(s.as_mut_ptr(), mask, v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_f16(self, s: &[u16]) -> __m256 {
        let s = &s[..8];
        // SAFETY: `s` holds 8 readable u16 (checked above); F16C is in the
        // token; see the impl.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast())) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_f16(self, v: __m256, s: &mut [u16]) {
        let s = &mut s[..8];
        // SAFETY: `s` holds 8 writable u16 (checked above); F16C is in the
        // token; see the impl.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(s.as_mut_ptr().cast(), h);
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_bf16(self, s: &[u16]) -> __m256 {
        let s = &s[..8];
        // SAFETY: `s` holds 8 readable u16 (checked above); see the impl.
        unsafe {
            let b = _mm256_cvtepu16_epi32(_mm_loadu_si128(s.as_ptr().cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(b))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_bf16(self, v: __m256, s: &mut [u16]) {
        let s = &mut s[..8];
        // SAFETY: `s` holds 8 writable u16 (checked above); see the impl.
        unsafe {
            // As the AVX-512 lanes: to nearest, ties to even; NaN quiet.
            let bits = _mm256_castps_si256(v);
            let top = _mm256_srli_epi32::<16>(bits);
            let odd = _mm256_and_si256(top, _mm256_set1_epi32(1));
            let bias = _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff));
            let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(bits, bias));
            let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            let quiet = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
            let r = _mm256_blendv_epi8(rounded, quiet, nan);
            // Every lane fits 16 bits: the unsigned pack is exact. It packs
            // within each 128-bit half; the permute joins the halves.
            let packed = _mm256_packus_epi32(r, r);
            let joined = _mm256_permute4x64_epi64::<0b1000>(packed);
            _mm_storeu_si128(s.as_mut_ptr().cast(), _mm256_castsi256_si128(joined));
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn tanh(self, v: __m256) -> __m256 {
        // SAFETY: see the impl: `tanh_avx2` needs the same features.
        unsafe { tanh_avx2(self, v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_max(self, v: __m256) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_movehdup_ps(m));
            _mm_cvtss_f32(m)
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_min(self, v: __m256) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let m = _mm_min_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_min_ss(m, _mm_movehdup_ps(m));
            _mm_cvtss_f32(m)
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn reduce_sum_f64(self, v: __m256) -> f64 {
        // Same order as the portable lanes: (a0+a4)+(a2+a6) + (a1+a5)+(a3+a7).
        // SAFETY: see the impl.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            let s = _mm256_add_pd(lo, hi);
            let s = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
            _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn shift_into_exponent(self, v: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(v), 23)) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn zero_where_below(self, x: __m256, limit: f32, v: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(limit), _CMP_LT_OQ), v) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn add_where_below(self, acc: __m256, x: __m256, limit: f32, v: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe {
            let below = _mm256_cmp_ps(x, _mm256_set1_ps(limit), _CMP_LT_OQ);
            _mm256_add_ps(acc, _mm256_and_ps(below, v))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn track_max(self, x: __m256, acc: __m256, x_tag: __m256, acc_tag: __m256) -> (__m256, __m256) {
        // SAFETY: see the impl.
        unsafe {
            let greater = _mm256_cmp_ps(x, acc, _CMP_GT_OQ);
            (
                _mm256_blendv_ps(acc, x, greater),
                _mm256_blendv_ps(acc_tag, x_tag, greater),
            )
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn or_nan(self, flags: __m256, x: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_or_ps(flags, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_flag(self, flags: __m256) -> bool {
        // SAFETY: see the impl.
        unsafe { _mm256_testz_si256(_mm256_castps_si256(flags), _mm256_castps_si256(flags)) == 0 }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn any_greater_or_nan(self, a: __m256, b: __m256) -> bool {
        // SAFETY: see the impl.
        unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NLE_UQ>(a, b)) != 0 }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_mask(self, a: __m256, b: __m256) -> u32 {
        // SAFETY: see the impl.
        unsafe { _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(a, b)) as u32 }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_zero(self) -> (__m256d, __m256d) {
        // SAFETY: see the impl.
        unsafe { (_mm256_setzero_pd(), _mm256_setzero_pd()) }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_add(self, acc: (__m256d, __m256d), v: __m256) -> (__m256d, __m256d) {
        // SAFETY: see the impl.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
            (_mm256_add_pd(acc.0, lo), _mm256_add_pd(acc.1, hi))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn wide_sum(self, acc: (__m256d, __m256d)) -> f64 {
        // SAFETY: see the impl.
        unsafe {
            let v = _mm256_add_pd(acc.0, acc.1);
            let pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
            _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn two_prod(self, a: __m256, b: __m256) -> (__m256, __m256) {
        // SAFETY: see the impl.
        unsafe {
            let hi = _mm256_mul_ps(a, b);
            (hi, _mm256_fmsub_ps(a, b, hi))
        }
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn keep_where(self, keep: &[bool], x: __m256) -> __m256 {
        let keep = &keep[..8];
        // SAFETY: `keep` holds 8 readable bytes (checked above), each 0 or 1
        // (a `bool`); see the impl.
        unsafe {
            let bytes = _mm_loadl_epi64(keep.as_ptr().cast());
            let kept = _mm256_cmpgt_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_setzero_si256());
            _mm256_blendv_ps(
                _mm256_set1_ps(f32::NEG_INFINITY),
                x,
                _mm256_castsi256_ps(kept),
            )
        }
    }
}

/// `crate::tanh::tanh` compiled once for this instruction set and called,
/// not inlined (see `Lanes::tanh`).
///
/// # Safety
/// The CPU must have AVX2 and FMA (`s` proves it).
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn tanh_avx2(s: Avx2Fma, v: __m256) -> __m256 {
    crate::tanh::tanh(s, v)
}
