//! The element-type seam: how rows of a storage type are read into f32
//! lanes and written back. The kernels read and write rows only through
//! [`Element`] (in `kernels::Io` and its streams), and do their math in
//! f32 lanes; a new storage type (f16, bf16: issue 12) is an impl here,
//! with its conversions in registers, not a change to each kernel.

use core::marker::PhantomData;

use crate::lanes::Lanes;

/// A storage type of logits or results.
pub(crate) trait Element: Copy + Send + Sync + 'static {
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
}

impl Element for f32 {
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
}

/// The input and output element types of a row operation (in place, the
/// data is of the output type).
pub(crate) trait Elements: Copy + Send + Sync + 'static {
    type In: Element;
    type Out: Element;
}

/// Input of type `X`, output of type `Y`.
pub(crate) struct Pair<X, Y>(PhantomData<(X, Y)>);

impl<X, Y> Clone for Pair<X, Y> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<X, Y> Copy for Pair<X, Y> {}

impl<X: Element, Y: Element> Elements for Pair<X, Y> {
    type In = X;
    type Out = Y;
}

/// f32 in, f32 out: every operation today.
pub(crate) type F32 = Pair<f32, f32>;
