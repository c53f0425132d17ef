//! The element types: the public, sealed [`Element`] (f32, `half::f16`,
//! `half::bf16`), and the seam the kernels read and write rows through,
//! [`Storage`]: how rows of a type are read into f32 lanes and written
//! back. The kernels do their math in f32 lanes and touch rows only
//! through [`Storage`] (in `kernels::Io` and its streams); a new element
//! type is an impl here, with its conversions in registers
//! (`Lanes::load_f16` and kin), not a change to each kernel.

use core::marker::PhantomData;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::lanes::{Lanes, MAX_LANES, f32_to_halves, halves_to_f32};

/// An element type of logits or results: `f32`, [`half::f16`] or
/// [`half::bf16`] (sealed: the kernels convert each in registers).
///
/// Inputs convert to f32 exactly and the math is f32's (with the sums
/// carried in f64), so every bound of the crate holds on the converted
/// values; a 16-bit output is the f32 result rounded once to its type, to
/// nearest, ties to even.
pub trait Element: Copy + Send + Sync + 'static + sealed::Sealed {
    /// Which type this is.
    const TYPE: ElementType;
    #[doc(hidden)]
    fn slice(x: &[Self]) -> Slice<'_>;
    #[doc(hidden)]
    fn slice_mut(x: &mut [Self]) -> SliceMut<'_>;
}

/// The element types, as values (for errors and tools).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16 ([`half::f16`]).
    F16,
    /// bfloat16 ([`half::bf16`]): f32's exponent, 8 bits of precision.
    Bf16,
}

impl ElementType {
    /// Every element type.
    pub const ALL: [ElementType; 3] = [ElementType::F32, ElementType::F16, ElementType::Bf16];

    /// The short name: `f32`, `f16`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::F16 => "f16",
            ElementType::Bf16 => "bf16",
        }
    }

    /// Parses a short name.
    pub fn from_name(name: &str) -> Option<ElementType> {
        ElementType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl core::fmt::Display for ElementType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// A row of some element type (how the generic public calls hand their
/// data to the crate's compiled code).
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Slice<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
}

/// [`Slice`], writable.
#[doc(hidden)]
#[derive(Debug)]
pub enum SliceMut<'a> {
    F32(&'a mut [f32]),
    F16(&'a mut [f16]),
    Bf16(&'a mut [bf16]),
}

impl Slice<'_> {
    pub(crate) fn element_type(&self) -> ElementType {
        match self {
            Slice::F32(_) => ElementType::F32,
            Slice::F16(_) => ElementType::F16,
            Slice::Bf16(_) => ElementType::Bf16,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            Slice::F32(x) => x.len(),
            Slice::F16(x) => x.len(),
            Slice::Bf16(x) => x.len(),
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values as f32 (exactly).
    pub(crate) fn to_f32_vec(self) -> Vec<f32> {
        match self {
            Slice::F32(x) => x.to_vec(),
            Slice::F16(x) => x.iter().map(|v| v.to_f32()).collect(),
            Slice::Bf16(x) => x.iter().map(|v| v.to_f32()).collect(),
        }
    }
}

impl<'a> Slice<'a> {
    /// The values in `range`.
    pub(crate) fn range(self, range: core::ops::Range<usize>) -> Slice<'a> {
        match self {
            Slice::F32(x) => Slice::F32(&x[range]),
            Slice::F16(x) => Slice::F16(&x[range]),
            Slice::Bf16(x) => Slice::Bf16(&x[range]),
        }
    }
}

impl<'a> SliceMut<'a> {
    /// The first `len` values.
    pub(crate) fn prefix(self, len: usize) -> SliceMut<'a> {
        match self {
            SliceMut::F32(x) => SliceMut::F32(&mut x[..len]),
            SliceMut::F16(x) => SliceMut::F16(&mut x[..len]),
            SliceMut::Bf16(x) => SliceMut::Bf16(&mut x[..len]),
        }
    }
}

impl SliceMut<'_> {
    pub(crate) fn element_type(&self) -> ElementType {
        match self {
            SliceMut::F32(_) => ElementType::F32,
            SliceMut::F16(_) => ElementType::F16,
            SliceMut::Bf16(_) => ElementType::Bf16,
        }
    }
    pub(crate) fn len(&self) -> usize {
        match self {
            SliceMut::F32(x) => x.len(),
            SliceMut::F16(x) => x.len(),
            SliceMut::Bf16(x) => x.len(),
        }
    }
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const TYPE: ElementType = ElementType::$variant;
            fn slice(x: &[$t]) -> Slice<'_> {
                Slice::$variant(x)
            }
            fn slice_mut(x: &mut [$t]) -> SliceMut<'_> {
                SliceMut::$variant(x)
            }
        }
    };
}

element!(f32, F32);
element!(f16, F16);
element!(bf16, Bf16);

/// How the kernels read and write rows of an element type.
pub(crate) trait Storage: Copy + Send + Sync + 'static {
    /// Whether this is f32 (whose rows get every kernel and transform
    /// compiled; the 16-bit types get fewer, see `ops::SoftmaxCall`).
    const IS_F32: bool = false;
    /// The first `LANES` values of `x` as f32 lanes (panics if shorter).
    fn load<S: Lanes>(s: S, x: &[Self]) -> S::V;
    /// `x` (shorter than `LANES`) as f32 lanes, the rest `fill`.
    fn load_partial<S: Lanes>(s: S, x: &[Self], fill: f32) -> S::V;
    /// Writes the first `LANES` values of `y`, rounded to the type.
    fn store<S: Lanes>(s: S, v: S::V, y: &mut [Self]);
    /// Writes the first `y.len()` lanes (`y` shorter than `LANES`).
    fn store_partial<S: Lanes>(s: S, v: S::V, y: &mut [Self]);
    /// The value as f32 (exact for every storage type we take).
    fn to_f32(self) -> f32;
    /// `v` rounded to the type (to nearest, ties to even).
    fn from_f32(v: f32) -> Self;
    /// [`Lanes::greater_bits64`] on values of this type.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_bits64<S: Lanes>(s: S, x: &[Self], b: S::V, word: &mut u64) {
        let x = &x[..64];
        let mut w = 0u64;
        // `LANES` divides 64 on every backend.
        for j in (0..64).step_by(S::LANES) {
            w |= u64::from(s.greater_mask(Self::load(s, &x[j..]), b)) << j;
        }
        *word = w;
    }
}

impl Storage for f32 {
    const IS_F32: bool = true;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load<S: Lanes>(s: S, x: &[f32]) -> S::V {
        s.load(x)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn load_partial<S: Lanes>(s: S, x: &[f32], fill: f32) -> S::V {
        s.load_partial(x, fill)
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store<S: Lanes>(s: S, v: S::V, y: &mut [f32]) {
        s.store(v, y);
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn store_partial<S: Lanes>(s: S, v: S::V, y: &mut [f32]) {
        s.store_partial(v, y);
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn from_f32(v: f32) -> f32 {
        v
    }
    #[cfg_attr(not(unoptimized), inline(always))]
    fn greater_bits64<S: Lanes>(s: S, x: &[f32], b: S::V, word: &mut u64) {
        s.greater_bits64(x, b, word);
    }
}

/// The 16-bit types: their lanes convert whole vectors in registers; the
/// partial last vector of a row goes one value at a time through a buffer.
macro_rules! half_element {
    ($t:ty, $bf16:literal, $load:ident, $store:ident) => {
        impl Storage for $t {
            #[cfg_attr(not(unoptimized), inline(always))]
            fn load<S: Lanes>(s: S, x: &[$t]) -> S::V {
                s.$load(x.reinterpret_cast())
            }
            #[cfg_attr(not(unoptimized), inline(always))]
            fn load_partial<S: Lanes>(s: S, x: &[$t], fill: f32) -> S::V {
                let mut wide = [fill; MAX_LANES];
                halves_to_f32::<$bf16>(x.reinterpret_cast(), &mut wide[..x.len()]);
                s.load(&wide[..S::LANES])
            }
            #[cfg_attr(not(unoptimized), inline(always))]
            fn store<S: Lanes>(s: S, v: S::V, y: &mut [$t]) {
                s.$store(v, y.reinterpret_cast_mut());
            }
            #[cfg_attr(not(unoptimized), inline(always))]
            fn store_partial<S: Lanes>(s: S, v: S::V, y: &mut [$t]) {
                let mut wide = [0.0f32; MAX_LANES];
                s.store(v, &mut wide[..S::LANES]);
                let n = y.len();
                f32_to_halves::<$bf16>(&wide[..n], y.reinterpret_cast_mut());
            }
            #[cfg_attr(not(unoptimized), inline(always))]
            fn to_f32(self) -> f32 {
                <$t>::to_f32(self)
            }
            #[cfg_attr(not(unoptimized), inline(always))]
            fn from_f32(v: f32) -> $t {
                <$t>::from_f32(v)
            }
        }
    };
}

half_element!(f16, false, load_f16, store_f16);
half_element!(bf16, true, load_bf16, store_bf16);

/// The input and output element types of a row operation (in place, the
/// data is of the output type).
pub(crate) trait Elements: Copy + Send + Sync + 'static {
    type In: Storage;
    type Out: Storage;
    /// f32 in and out.
    const F32: bool = Self::In::IS_F32 && Self::Out::IS_F32;
}

/// Input of type `X`, output of type `Y`.
pub(crate) struct Pair<X, Y>(PhantomData<(X, Y)>);

impl<X, Y> Clone for Pair<X, Y> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<X, Y> Copy for Pair<X, Y> {}

impl<X: Storage, Y: Storage> Elements for Pair<X, Y> {
    type In = X;
    type Out = Y;
}

/// f32 in, f32 out: every operation today.
pub(crate) type F32 = Pair<f32, f32>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::{Job, on_every_backend};

    /// Loads every bit pattern of `X` (16 bits) through the lanes and
    /// stores f32 values spread over every exponent, the halfway points
    /// between neighbours of `X` among them, back to `X`: the same bits as
    /// `half`'s one-at-a-time conversions (to nearest, ties to even), and
    /// NaN for NaN. Whole vectors and partial ones.
    #[derive(Clone)]
    struct Check<X>(PhantomData<X>);

    fn inputs<X: Storage + FromBits16>() -> Vec<f32> {
        let mut v: Vec<f32> = (0..=u16::MAX)
            .flat_map(|b| {
                // Each pattern, its neighbours' halfway points and a little
                // off them, as an X would place them.
                let x = X::from_bits16(b).to_f32();
                let up = X::from_bits16(b.wrapping_add(1)).to_f32();
                let mid = (f64::from(x) + f64::from(up)) / 2.0;
                [
                    x,
                    mid as f32,
                    (mid as f32).next_up(),
                    (mid as f32).next_down(),
                ]
            })
            .collect();
        v.extend((0..1u32 << 20).map(|i| f32::from_bits(i.wrapping_mul(4099))));
        v.extend([
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
        ]);
        v.extend([f32::from_bits(0x7f80_0001), f32::from_bits(0xffbf_ffff)]);
        v
    }

    impl<X: Storage + FromBits16 + PartialEq + core::fmt::Debug> Job for Check<X> {
        type Output = ();
        fn run<S: Lanes>(self, s: S) {
            let l = S::LANES;
            let all: Vec<X> = (0..=u16::MAX).map(X::from_bits16).collect();
            let mut lanes = vec![0.0f32; l];
            for (k, chunk) in all.chunks(l).enumerate() {
                let n = chunk.len() - k % l.min(chunk.len());
                let v = if n == l {
                    X::load(s, chunk)
                } else {
                    X::load_partial(s, &chunk[..n], 7.0)
                };
                s.store(v, &mut lanes);
                for (j, (&got, x)) in lanes.iter().zip(chunk).enumerate() {
                    let want = if j < n { x.to_f32() } else { 7.0 };
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "load {x:?}: {got} vs {want}"
                    );
                }
            }
            let values = inputs::<X>();
            let mut out = vec![X::from_f32(0.0); l];
            for (k, chunk) in values.chunks(l).enumerate() {
                let n = chunk.len() - k % l.min(chunk.len());
                let mut padded = chunk.to_vec();
                padded.resize(l, 0.0);
                let v = s.load(&padded);
                if n == l {
                    X::store(s, v, &mut out);
                } else {
                    X::store_partial(s, v, &mut out[..n]);
                }
                for (&got, &x) in out.iter().zip(chunk).take(n) {
                    let want = X::from_f32(x);
                    let (g, w) = (got.to_f32(), want.to_f32());
                    assert!(
                        got == want || (g.is_nan() && w.is_nan()),
                        "store {x:e} ({:#010x}): {got:?} vs {want:?}",
                        x.to_bits()
                    );
                }
            }
        }
    }

    /// A 16-bit type from its bit pattern (the tests' view).
    trait FromBits16 {
        fn from_bits16(b: u16) -> Self;
    }
    impl FromBits16 for f16 {
        fn from_bits16(b: u16) -> f16 {
            f16::from_bits(b)
        }
    }
    impl FromBits16 for bf16 {
        fn from_bits16(b: u16) -> bf16 {
            bf16::from_bits(b)
        }
    }

    #[test]
    fn f16_converts_as_half_does_on_every_backend() {
        on_every_backend(Check::<f16>(PhantomData));
    }

    #[test]
    fn bf16_converts_as_half_does_on_every_backend() {
        on_every_backend(Check::<bf16>(PhantomData));
    }
}
