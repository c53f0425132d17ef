//! Token sampling: temperature, top-k, top-p and min-p over a row of
//! logits, at about the cost of one read of the row.
//!
//! Filters apply in this order, each to the distribution the previous ones
//! left (renormalised over the tokens still kept): temperature, top-k,
//! top-p, min-p; the draw is from the final distribution renormalised.
//!
//! - With top-k (k smaller than the row) only the k largest logits matter:
//!   one compare-only read finds them (`kernels::select`), and everything
//!   after works on k values in f64. No exp over the row at all.
//! - Without top-k and top-p, one read computes each block's (max, sum);
//!   the draw picks a block by its share and then a token inside it,
//!   recomputing that block's exps the same way.
//! - top-p without top-k: one read for the max and one for the total
//!   weight (with estimates of the weight below a few logit levels); the
//!   total bounds the weight of everything below a logit floor, so the kept
//!   prefix lies among the few tokens above it, which two compare-only
//!   reads collect. A weighted selection finds the prefix without
//!   sorting, and the draw adds up the kept weights in index order
//!   (`kernels::nucleus`).

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use crate::dispatch::{self, Backend, WithLanes};
use crate::driver::{self, RowTask};
use crate::element::{Element, Pair, Slice, Storage};
use crate::error::{Parameter, SampleFailure};
use crate::kernels::argmax::argmax;
use crate::kernels::nucleus::{
    self, Candidates, Cut, LEVELS, SUM_ERROR, TOTAL_ERROR, WeightAbove, Weighted, at_least, cut,
    total_and_below,
};
use crate::kernels::select::{TopK, rank, scan, top_k_and_sum};
use crate::kernels::{ExpMinus, Factor, Io, Logits, Partial, Plain, RowClass, Scaled, max, sum_of};
use crate::lanes::{Job, Lanes};
use crate::{Error, shape, try_backend};

/// Elements per block of the temperature-only draw.
const BLOCK: usize = 2048;

/// Builds a [`Sampler`]; [`SamplerBuilder::build`] checks the settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct SamplerBuilder {
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    backend: Option<Backend>,
}

/// A checked sampling configuration.
///
/// Filters apply in this order, each to the distribution the previous ones
/// left (renormalised over the tokens still kept): temperature, top-k,
/// top-p, min-p; the draw is from the final distribution renormalised.
/// Temperature 0 is greedy (the lowest index of the largest logit).
///
/// Cost: with top-k, one compare-only read of the row finds the k largest
/// logits and the rest works on those k; with temperature (and min-p)
/// only, one exp pass computes block sums and the draw rescans one block;
/// top-p without top-k reads the row four times (max, total, and twice for
/// the candidates above a floor the total allows) and then works on those
/// candidates only, never sorting.
///
/// ```
/// use rand::SeedableRng;
/// use simd_softmax::Sampler;
/// let sampler = Sampler::builder().temperature(0.8).top_k(2).build()?;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
/// let token = sampler.sample(&[0.0, 5.0, 4.9, -3.0], &mut rng)?;
/// assert!(token == 1 || token == 2);
/// assert_eq!(Sampler::builder().temperature(0.0).build()?.sample(&[1.0, 3.0, 3.0], &mut rng)?, 1);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Sampler {
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    backend: Option<Backend>,
}

impl SamplerBuilder {
    /// Divide the logits by `t` (finite, `t ≥ 0`; default 1). `t = 0` is
    /// greedy: the lowest index of the largest logit, whatever the filters.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Keep the `k` most probable tokens (`k ≥ 1`; ties: lower index first;
    /// `k` at least the row length keeps all).
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k);
        self
    }

    /// Keep the smallest prefix of the tokens sorted by probability (ties:
    /// lower index first) whose cumulative probability reaches `p`
    /// (`0 < p ≤ 1`).
    pub fn top_p(mut self, p: f32) -> Self {
        self.top_p = Some(p);
        self
    }

    /// Keep the tokens whose probability is at least `p` times the largest
    /// (`0 ≤ p < 1`), decided in logit space: `x ≥ max + t·ln p` in f64.
    pub fn min_p(mut self, p: f32) -> Self {
        self.min_p = Some(p);
        self
    }

    /// Run on `backend` instead of the active one.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The sampler, or [`Error::InvalidParameter`] naming the first setting
    /// outside its domain.
    pub fn build(self) -> Result<Sampler, Error> {
        let bad = |name, value: f64| Err(Error::InvalidParameter { name, value });
        let t = self.temperature.unwrap_or(1.0);
        if !(t.is_finite() && t >= 0.0) {
            return bad(Parameter::SamplerTemperature, f64::from(t));
        }
        if self.top_k == Some(0) {
            return bad(Parameter::TopK, 0.0);
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return bad(Parameter::TopP, f64::from(p));
        }
        if let Some(p) = self.min_p
            && !(0.0..1.0).contains(&p)
        {
            return bad(Parameter::MinP, f64::from(p));
        }
        if let Some(b) = self.backend {
            b.check()?;
        }
        Ok(Sampler {
            temperature: t,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            backend: self.backend,
        })
    }
}

impl Sampler {
    /// A builder: temperature 1, no filters, the active backend.
    pub fn builder() -> SamplerBuilder {
        SamplerBuilder::default()
    }

    fn backend(&self) -> Result<Backend, Error> {
        match self.backend {
            Some(b) => Ok(b),
            None => try_backend(),
        }
    }

    /// One token drawn from `logits` after the filters. A row that is
    /// empty, holds a NaN, or has nothing above −inf is an
    /// [`Error::CannotSample`]; +inf logits share the mass equally. Tokens
    /// whose probability is below 2^-126 of the largest (where the softmax
    /// flushes to 0) are never drawn.
    ///
    /// The draw inverts the cumulative distribution of the kept tokens, in
    /// rank order with top-k and in index order otherwise (one pass, no
    /// order to build): each token's chance is its probability either way.
    ///
    /// f16 and bf16 logits convert exactly in registers (no f32 copy of the
    /// row) and give the token of the call on the converted logits.
    pub fn sample<E: Element>(&self, logits: &[E], rng: &mut impl Rng) -> Result<usize, Error> {
        self.sample_at(E::slice(logits), rng.random())
    }

    /// [`sample`](Self::sample) at the uniform `u` in [0, 1). Not generic
    /// (the kernels are compiled in this crate once, not again in each
    /// caller's for its `Rng`).
    fn sample_at(&self, logits: Slice<'_>, u: f64) -> Result<usize, Error> {
        let backend = self.backend()?;
        let drawn = match logits {
            Slice::F32(x) => dispatch::run(backend, SampleOne { sp: self, x, u })?,
            Slice::F16(x) => dispatch::run(backend, SampleOne { sp: self, x, u })?,
            Slice::Bf16(x) => dispatch::run(backend, SampleOne { sp: self, x, u })?,
        };
        drawn.map_err(|reason| Error::CannotSample { row: 0, reason })
    }

    /// One token per row of `row_len` logits into `out`, rows in parallel.
    /// Row `r` draws from a generator seeded by `(seed, r)`, so the tokens
    /// do not depend on the thread count. Errors (nothing written): bad
    /// shapes, `out` not one per row, or any row that cannot be sampled
    /// (the first such row is named).
    pub fn sample_rows<E: Element>(
        &self,
        logits: &[E],
        row_len: usize,
        seed: u64,
        out: &mut [usize],
    ) -> Result<(), Error> {
        self.sample_rows_of(E::slice(logits), row_len, seed, out)
    }

    /// [`sample_rows`](Self::sample_rows), not generic (compiled here once).
    fn sample_rows_of(
        &self,
        logits: Slice<'_>,
        row_len: usize,
        seed: u64,
        out: &mut [usize],
    ) -> Result<(), Error> {
        let rows = shape::rows(logits.len(), row_len)?;
        shape::row_outputs(rows, out.len())?;
        let backend = self.backend()?;
        let mut results = vec![Err(SampleFailure::NoMass); rows];
        if rows > 0 {
            let sp = self;
            let out = &mut results;
            match logits {
                Slice::F32(x) => {
                    dispatch::run(backend, SampleRows::new(sp, x, row_len, seed, out))?
                }
                Slice::F16(x) => {
                    dispatch::run(backend, SampleRows::new(sp, x, row_len, seed, out))?
                }
                Slice::Bf16(x) => {
                    dispatch::run(backend, SampleRows::new(sp, x, row_len, seed, out))?
                }
            }
        }
        if let Some((row, Err(reason))) = results.iter().enumerate().find(|(_, r)| r.is_err()) {
            return Err(Error::CannotSample {
                row,
                reason: *reason,
            });
        }
        for (o, r) in out.iter_mut().zip(results) {
            *o = r.unwrap_or(0);
        }
        Ok(())
    }

    /// The distribution a draw comes from: the kept tokens, most probable
    /// first (ties: lower index first), with their probabilities after the
    /// filters and the renormalisation; tokens whose probability is 0 in
    /// f32 are left out. The same kernels as
    /// [`sample`](Self::sample) find the set; for the unfiltered path this lists (and
    /// sorts) the whole row.
    pub fn distribution<E: Element>(&self, logits: &[E]) -> Result<Vec<(usize, f32)>, Error> {
        self.distribution_of(E::slice(logits))
    }

    /// [`distribution`](Self::distribution), not generic.
    fn distribution_of(&self, logits: Slice<'_>) -> Result<Vec<(usize, f32)>, Error> {
        let backend = self.backend()?;
        let kept = match logits {
            Slice::F32(x) => dispatch::run(backend, Distribution { sp: self, x })?,
            Slice::F16(x) => dispatch::run(backend, Distribution { sp: self, x })?,
            Slice::Bf16(x) => dispatch::run(backend, Distribution { sp: self, x })?,
        }
        .map_err(|reason| Error::CannotSample { row: 0, reason })?;
        let total: f64 = kept.iter().map(|&(_, w)| w).sum();
        // A token whose probability rounds to 0 in f32 is not listed (its
        // f64 weight may still be positive: below 2^-126 the probabilities
        // flush, as everywhere in the contract).
        Ok(kept
            .into_iter()
            .map(|(i, w)| (i as usize, (w / total) as f32))
            .filter(|&(_, p)| p > 0.0)
            .collect())
    }
}

/// Row `r`'s generator for `sample_rows`.
fn row_generator(seed: u64, r: usize) -> StdRng {
    // splitmix64 of (seed, r): distinct, well-mixed seeds per row.
    let mut z = seed ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

const NAN_ROW: SampleFailure = SampleFailure::Nan;
const EMPTY_ROW: SampleFailure = SampleFailure::NoMass;
const TOO_LONG: SampleFailure = SampleFailure::TooLong;

/// One draw from one row.
struct SampleOne<'a, X> {
    sp: &'a Sampler,
    x: &'a [X],
    u: f64,
}

impl<X: Storage> WithLanes for SampleOne<'_, X> {
    type Output = Result<usize, SampleFailure>;
    fn with<S: Lanes>(self, s: S) -> Self::Output {
        sample_row(s, self.sp, self.x, self.u)
    }
}

/// The kept tokens of one row.
struct Distribution<'a, X> {
    sp: &'a Sampler,
    x: &'a [X],
}

impl<X: Storage> WithLanes for Distribution<'_, X> {
    type Output = Result<Vec<(u32, f64)>, SampleFailure>;
    fn with<S: Lanes>(self, s: S) -> Self::Output {
        kept_tokens(s, self.sp, self.x)
    }
}

/// Rows `first_row..` of a `sample_rows` call, each drawn with its own
/// generator.
struct SampleRows<'a, X> {
    sp: &'a Sampler,
    logits: &'a [X],
    row_len: usize,
    seed: u64,
    first_row: usize,
    out: &'a mut [Result<usize, SampleFailure>],
}

impl<'a, X: Storage> SampleRows<'a, X> {
    fn new(
        sp: &'a Sampler,
        logits: &'a [X],
        row_len: usize,
        seed: u64,
        out: &'a mut [Result<usize, SampleFailure>],
    ) -> Self {
        SampleRows {
            sp,
            logits,
            row_len,
            seed,
            first_row: 0,
            out,
        }
    }
}

impl<X: Storage> WithLanes for SampleRows<'_, X> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        let row_len = self.row_len;
        driver::run(s, self, row_len);
    }
}

impl<X: Storage> RowTask for SampleRows<'_, X> {
    fn rows(&self) -> usize {
        self.out.len()
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let (x0, x1) = self.logits.split_at(n * self.row_len);
        let (o0, o1) = self.out.split_at_mut(n);
        let first = SampleRows {
            logits: x0,
            out: o0,
            ..self
        };
        let rest = SampleRows {
            logits: x1,
            out: o1,
            first_row: self.first_row + n,
            ..self
        };
        (first, rest)
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) {
        let rows = self.logits.chunks_exact(self.row_len).zip(self.out);
        for (k, (row, out)) in rows.enumerate() {
            let u: f64 = row_generator(self.seed, self.first_row + k).random();
            *out = sample_row(s, self.sp, row, u);
        }
    }
}

/// The token for uniform `u ∈ [0, 1)`.
fn sample_row<S: Lanes, X: Storage>(
    s: S,
    sp: &Sampler,
    x: &[X],
    u: f64,
) -> Result<usize, SampleFailure> {
    if x.is_empty() {
        return Err(EMPTY_ROW);
    }
    if sp.temperature == 0.0 {
        return greedy(s, x);
    }
    let no_top_k = sp.top_k.is_none_or(|k| k >= x.len());
    if let Some(p) = sp.top_p
        && no_top_k
    {
        let prefix = nucleus_of(s, sp, x, p)?;
        return Ok(s.vectorize(DrawNucleus {
            prefix,
            min_p: sp.min_p,
            u,
        }));
    }
    if no_top_k {
        return s.vectorize(BlockDraw {
            x,
            c: 1.0 / f64::from(sp.temperature),
            min_p: sp.min_p,
            u,
        });
    }
    let kept = kept_tokens(s, sp, x)?;
    Ok(draw(&kept, u))
}

fn greedy<S: Lanes, X: Storage>(s: S, x: &[X]) -> Result<usize, SampleFailure> {
    match s.vectorize(ArgMaxJob(x)) {
        None => Err(NAN_ROW),
        Some(i) if x[i].to_f32() == f32::NEG_INFINITY => Err(EMPTY_ROW),
        Some(i) => Ok(i),
    }
}

/// The kept tokens with their (unnormalised) weights, best first.
fn kept_tokens<S: Lanes, X: Storage>(
    s: S,
    sp: &Sampler,
    x: &[X],
) -> Result<Vec<(u32, f64)>, SampleFailure> {
    if x.is_empty() {
        return Err(EMPTY_ROW);
    }
    if x.len() > u32::MAX as usize {
        return Err(TOO_LONG);
    }
    if sp.temperature == 0.0 {
        return greedy(s, x).map(|i| vec![(i as u32, 1.0)]);
    }
    let c = 1.0 / f64::from(sp.temperature);
    let candidates = match (sp.top_k, sp.top_p) {
        (Some(k), _) if k < x.len() => {
            let (top, nan) = s.vectorize(TopKJob { x, k });
            if nan {
                return Err(NAN_ROW);
            }
            let w = weigh(&top, c)?;
            let total = w.iter().map(|&(_, w)| w).sum();
            (w, total)
        }
        (_, Some(p)) => {
            let mut kept = s.vectorize(KeptPrefix(nucleus_of(s, sp, x, p)?)).items();
            kept.sort_unstable_by(nucleus::rank);
            let kept = kept.into_iter().map(|t| (t.i, f64::from(t.w))).collect();
            // top-p is done; `filter`'s total only serves top-p.
            return Ok(filter(kept, 0.0, None, sp.min_p));
        }
        _ => s.vectorize(AllWeights { x, c })?,
    };
    Ok(filter(candidates.0, candidates.1, sp.top_p, sp.min_p))
}

/// The top-p prefix of a row (top-k off, temperature not 0).
fn nucleus_of<S: Lanes, X: Storage>(
    s: S,
    sp: &Sampler,
    x: &[X],
    top_p: f32,
) -> Result<Prefix, SampleFailure> {
    if x.len() > u32::MAX as usize {
        return Err(TOO_LONG);
    }
    s.vectorize(Nucleus {
        x,
        c: 1.0 / f64::from(sp.temperature),
        top_p,
    })
}

/// The prefix taken out of its candidates, unordered.
struct KeptPrefix(Prefix);

impl Job for KeptPrefix {
    type Output = Candidates;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> Candidates {
        self.0.kept(s)
    }
}

/// min-p over a top-p prefix, then the draw at `u`: the token where the
/// kept weight, added up in index order, passes `u` of the total
/// ([`Candidates::draw`]).
struct DrawNucleus {
    prefix: Prefix,
    min_p: Option<f32>,
    u: f64,
}

impl Job for DrawNucleus {
    type Output = usize;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> usize {
        let Some(p) = self.min_p else {
            // The kept set is the prefix: the draw reads the candidates
            // and adds up those ranking at or before its last member.
            let Prefix { candidates, cut } = self.prefix;
            let weight = cut.map_or_else(|| candidates.weight(s), |c| c.through);
            let drawn = candidates.draw(s, cut.map(|c| c.last), self.u * weight);
            return drawn.map_or(0, |i| i as usize);
        };
        let mut kept = self.prefix.kept(s);
        // Relative to the best-ranked token, as `filter` has it.
        let top = best_ranked(&kept).map_or(0.0, |t| t.w);
        let bar = f64::from(p) * f64::from(top);
        // `w ≥ bar` is `w ≥ r`, r the least f32 not below bar.
        let r = bar as f32;
        let r = if f64::from(r) < bar { r.next_up() } else { r };
        kept.retain(s, &mut WeightAbove(s.splat(r.next_down())));
        let total = kept.weight(s);
        kept.draw(s, None, self.u * total).map_or(0, |i| i as usize)
    }
}

/// The candidate that ranks first.
fn best_ranked(c: &Candidates) -> Option<Weighted> {
    (0..c.len()).map(|k| c.get(k)).min_by(nucleus::rank)
}

/// Weights `exp((x − max)·c)` in f64 of candidates sorted best first; +inf
/// logits share the mass (weight 1 each, the rest 0).
fn weigh(top: &[(f32, u32)], c: f64) -> Result<Vec<(u32, f64)>, SampleFailure> {
    let max = top.first().map_or(f32::NEG_INFINITY, |t| t.0);
    if max == f32::NEG_INFINITY {
        return Err(EMPTY_ROW);
    }
    Ok(top
        .iter()
        .map(|&(v, i)| {
            let w = if max == f32::INFINITY {
                if v == f32::INFINITY { 1.0 } else { 0.0 }
            } else {
                ((f64::from(v) - f64::from(max)) * c).exp()
            };
            (i, w)
        })
        .collect())
}

/// top-p then min-p over candidates sorted best first (weights need not be
/// normalised; `total` is the weight of the whole distribution, of which
/// `kept` may be only the best part); tokens of weight 0 are dropped.
fn filter(
    mut kept: Vec<(u32, f64)>,
    total: f64,
    top_p: Option<f32>,
    min_p: Option<f32>,
) -> Vec<(u32, f64)> {
    kept.retain(|&(_, w)| w > 0.0);
    if let Some(p) = top_p {
        let goal = f64::from(p) * total;
        let mut cum = 0.0;
        let mut end = kept.len();
        for (j, &(_, w)) in kept.iter().enumerate() {
            cum += w;
            if cum >= goal {
                end = j + 1;
                break;
            }
        }
        kept.truncate(end);
    }
    if let Some(p) = min_p
        && let Some(&(_, top)) = kept.first()
    {
        let bar = f64::from(p) * top;
        kept.retain(|&(_, w)| w >= bar);
    }
    kept
}

/// The token at cumulative weight `u·Σw` (never one of weight 0).
fn draw(kept: &[(u32, f64)], u: f64) -> usize {
    let total: f64 = kept.iter().map(|&(_, w)| w).sum();
    let goal = u * total;
    let mut cum = 0.0;
    for &(i, w) in kept {
        cum += w;
        if cum > goal {
            return i as usize;
        }
    }
    // Rounding left `goal` at the very end: the last token of weight > 0.
    kept.iter()
        .rev()
        .find(|&&(_, w)| w > 0.0)
        .map_or(0, |&(i, _)| i as usize)
}

/// The lowest index of a row's largest value.
struct ArgMaxJob<'a, X>(&'a [X]);

impl<X: Storage> Job for ArgMaxJob<'_, X> {
    type Output = Option<usize>;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> Option<usize> {
        argmax(s, self.0)
    }
}

/// The top k of a row and whether it holds NaN.
struct TopKJob<'a, X> {
    x: &'a [X],
    k: usize,
}

impl<X: Storage> Job for TopKJob<'_, X> {
    type Output = (Vec<(f32, u32)>, bool);
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> Self::Output {
        let mut top = TopK::new(self.k);
        let nan = scan(s, self.x, 0, &mut top);
        (top.into_sorted(), nan)
    }
}

/// Every token's weight `exp((x − max)·c)`, best first (for
/// [`Sampler::distribution`] without top-k or top-p, which lists the whole
/// row), and the total. Ordered by logit, not by the f32 weight, which can
/// tie where the logits do not.
struct AllWeights<'a, X> {
    x: &'a [X],
    c: f64,
}

impl<X: Storage> Job for AllWeights<'_, X> {
    type Output = Result<(Vec<(u32, f64)>, f64), SampleFailure>;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> Self::Output {
        let x = self.x;
        let m = drawable_max(s, x)?;
        if m == f32::INFINITY {
            let inf: Vec<(f32, u32)> = x
                .iter()
                .enumerate()
                .filter(|&(_, v)| v.to_f32() == f32::INFINITY)
                .map(|(i, _)| (f32::INFINITY, i as u32))
                .collect();
            let w = weigh(&inf, self.c)?;
            let total = w.len() as f64;
            return Ok((w, total));
        }
        let t = Scaled(Factor::new(self.c));
        let mut w = vec![0.0f32; x.len()];
        Io::<_, Pair<X, f32>>::of(Some(x), &mut w).map_store(s, ExpMinus::new(s, m, t));
        let total: f64 = w.iter().map(|&v| f64::from(v)).sum();
        // A NaN logit made its weight, and so the total, NaN.
        if total.is_nan() {
            return Err(NAN_ROW);
        }
        let mut order: Vec<(f32, u32)> = x
            .iter()
            .zip(&w)
            .enumerate()
            .filter(|&(_, (_, &w))| w > 0.0)
            .map(|(i, (v, _))| (v.to_f32(), i as u32))
            .collect();
        order.sort_unstable_by(rank);
        let best = order
            .into_iter()
            .map(|(_, i)| (i, f64::from(w[i as usize])))
            .collect();
        Ok((best, total))
    }
}

/// The row's max, or why nothing can be drawn from it (NaN, nothing
/// above −inf).
#[cfg_attr(not(unoptimized), inline(always))]
fn drawable_max<S: Lanes, X: Storage>(s: S, x: &[X]) -> Result<f32, SampleFailure> {
    let m = max(s, x, Plain);
    if !m.is_finite() {
        match RowClass::scan(x.iter().map(|v| v.to_f32())) {
            RowClass::Nan => return Err(NAN_ROW),
            RowClass::NoMass => return Err(EMPTY_ROW),
            _ => {}
        }
    }
    Ok(m)
}

/// The top-p prefix of a row (see `kernels::nucleus`): the max; the total
/// weight, with estimates of the weight below a few levels, in one read;
/// the candidates at or above a floor (the highest level the estimates
/// allow, checked: their weight must reach the goal), their weights (the
/// same exps as every other pass), and where the prefix ends among them.
struct Nucleus<'a, X> {
    x: &'a [X],
    c: f64,
    top_p: f32,
}

/// The candidates of a row and where its top-p prefix ends among them
/// (`None`: every candidate is in it, the goal being beyond them all by
/// rounding). The prefix is not taken out: a draw selects inside it
/// without that.
struct Prefix {
    candidates: Candidates,
    cut: Option<Cut>,
}

impl Prefix {
    /// The prefix itself, unordered.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn kept<S: Lanes>(self, s: S) -> Candidates {
        let mut c = self.candidates;
        if let Some(cut) = self.cut {
            cut.keep_prefix(s, &mut c);
        }
        c
    }
}

/// How a floor fared in [`Nucleus::cut_at`].
enum Tried {
    Found(Prefix),
    /// The candidates do not weigh the goal: the floor was too high.
    TooHigh,
    /// A total within its error could cut elsewhere (the candidates come
    /// back for another try).
    Unsure(Candidates),
}

impl<X: Storage> Job for Nucleus<'_, X> {
    type Output = Result<Prefix, SampleFailure>;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> Self::Output {
        // At temperature 1 the plain exp (as `BlockDraw`); else the
        // exact-product one.
        if self.c == 1.0 {
            self.prefix(s, Plain)
        } else {
            self.prefix(s, Scaled(Factor::new(self.c)))
        }
    }
}

impl<X: Storage> Nucleus<'_, X> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn prefix<S: Lanes, T: Logits>(&self, s: S, t: T) -> Result<Prefix, SampleFailure> {
        let x = self.x;
        let m = drawable_max(s, x)?;
        if m == f32::INFINITY {
            // The +inf entries share the mass, weight 1 each; all tied, they
            // rank by index (their logit is held as 0: the candidates'
            // selection wants finite ones).
            let id: Vec<u32> = (0..x.len())
                .filter(|&i| x[i].to_f32() == f32::INFINITY)
                .map(|i| i as u32)
                .collect();
            let inf = Candidates {
                x: vec![0.0; id.len()],
                w: vec![1.0; id.len()],
                id,
            };
            let goal = f64::from(self.top_p) * inf.len() as f64;
            let cut = cut(s, &inf, goal);
            return Ok(Prefix {
                candidates: inf,
                cut,
            });
        }
        let levels = self.levels(s, m, t);
        let row = total_and_below(s, x, ExpMinus::new(s, m, t), levels);
        let total = row.total;
        // A NaN logit made its weight, and so the total, NaN.
        if total.is_nan() {
            return Err(NAN_ROW);
        }
        let goal = f64::from(self.top_p) * total;
        // Floors, highest first: the highest level the estimates put the
        // goal above with room to spare and the level below it (checked:
        // the candidates must weigh the goal), then the floor the total
        // allows whatever the row.
        let level = (0..LEVELS).find(|&k| total - row.below[k] > goal + LEVEL_ROOM * total);
        let floors = [
            level.map(|k| levels[k]),
            level.and_then(|k| levels.get(k + 1).copied()),
            Some(self.floor(m, total, TOTAL_ERROR)),
        ];
        for floor in floors.into_iter().flatten() {
            let items = self.candidates(s, m, t, floor);
            match self.cut_at(s, items, total, TOTAL_ERROR * total) {
                Tried::Found(p) => return Ok(p),
                Tried::TooHigh => {}
                Tried::Unsure(items) => {
                    // The total's error is of the whole row: add up the
                    // weight below the floor on its own (one more read),
                    // good to `SUM_ERROR` of that weight alone, and the
                    // candidates' in f64.
                    let below = ExpBelow(ExpMinus::new(s, m, t), floor);
                    let rest = sum_of(s, x, Plain, below);
                    let total = items.weight(s) + rest;
                    return Ok(match self.cut_at(s, items, total, SUM_ERROR * rest) {
                        Tried::Found(p) => p,
                        _ => self.everything(s, m, t),
                    });
                }
            }
        }
        Ok(self.everything(s, m, t))
    }
}

/// `f(x)` where `x` is below a floor, else 0.
struct ExpBelow<M>(M, f32);

impl<S: Lanes, M: crate::kernels::Map<S>> crate::kernels::Map<S> for ExpBelow<M> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, x: S::V) -> S::V {
        s.add_where_below(s.splat(0.0), x, self.1, self.0.apply(s, x))
    }
}

/// The head of the row that [`Nucleus::levels`] estimates the total from.
const ESTIMATE_BLOCK: usize = 4096;

/// Where the levels sit, as fractions of the estimated floor's distance
/// below the max, highest first: closest where the prefix of normal logits
/// ends (0.59–0.73 of it for σ 3, t 0.8–1, p 0.9–0.95), where the
/// candidates between the level and the end of the prefix cost most.
const LEVEL_FRACTIONS: [f64; LEVELS] = [0.3, 0.45, 0.55, 0.6, 0.65, 0.7, 0.75, 0.85];

/// The room, as a fraction of the total, by which a level's estimated
/// weight above it must pass the goal to be tried. The estimates come from
/// one vector in eight: on the throughput tool's row of 128256 (t 1, p
/// 0.95) the weight above the level chosen was estimated at 19.3710 of a
/// total of 20.17, against 19.3708 exactly. A room of 1% skipped the level
/// just below the prefix on its row of 256000 (estimated 0.7% above the
/// goal), which doubled the candidates; a level that fails its check falls
/// back to the next one down.
const LEVEL_ROOM: f64 = 0.0025;

impl<X: Storage> Nucleus<'_, X> {
    /// Levels for [`total_and_below`]: the floor the row's total would
    /// allow ([`Nucleus::floor`]), estimated from the row's first block, at
    /// fractions of its distance below the max, highest first. Only speed
    /// depends on them.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn levels<S: Lanes, T: Logits>(&self, s: S, m: f32, t: T) -> [f32; LEVELS] {
        let x = self.x;
        let head = &x[..x.len().min(ESTIMATE_BLOCK)];
        let estimate =
            sum_of(s, head, Plain, ExpMinus::new(s, m, t)) * (x.len() as f64 / head.len() as f64);
        let spare = (1.0 - f64::from(self.top_p)) * estimate / x.len() as f64;
        // Scaled distance below the max (positive where the estimate
        // allows a floor at all).
        let depth = 1.0 - spare.ln();
        let mut levels = [f32::INFINITY; LEVELS];
        if depth.is_finite() && depth > 0.0 {
            for (level, fraction) in levels.iter_mut().zip(LEVEL_FRACTIONS) {
                *level = (f64::from(m) - fraction * depth / self.c) as f32;
            }
        }
        levels
    }

    /// The logit floor below which every token weighs less than
    /// `(total − goal)/n`: together less than `total − goal`, so the prefix
    /// lies above it, whatever the row. For a total known to `error`
    /// (relative).
    fn floor(&self, m: f32, total: f64, error: f64) -> f32 {
        let goal = f64::from(self.top_p) * total;
        let spare = (total * (1.0 - error) - goal) / self.x.len() as f64;
        if spare > 0.0 {
            weight_floor(m, spare, self.c)
        } else {
            f32::NEG_INFINITY
        }
    }

    /// The tokens at or above `floor` and their weights (above 0).
    #[cfg_attr(not(unoptimized), inline(always))]
    fn candidates<S: Lanes, T: Logits>(&self, s: S, m: f32, t: T, floor: f32) -> Candidates {
        let mut items = at_least(s, self.x, floor);
        Io::new(Some(&items.x), &mut items.w).map_store(s, ExpMinus::new(s, m, t));
        // Weights that flush to 0 (rare) are no candidates.
        if !items.all_weigh(s) {
            items.retain(s, &mut WeightAbove(s.splat(0.0)));
        }
        items
    }

    /// The prefix among `items`, for the row total `total` known to
    /// `slack`.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn cut_at<S: Lanes>(&self, s: S, items: Candidates, total: f64, slack: f64) -> Tried {
        let goal = f64::from(self.top_p) * total;
        match cut(s, &items, goal) {
            // A goal anywhere in goal ± slack must cut here.
            Some(cut) if cut.before >= goal - slack || cut.through < goal + slack => {
                Tried::Unsure(items)
            }
            Some(cut) => Tried::Found(Prefix {
                candidates: items,
                cut: Some(cut),
            }),
            None => Tried::TooHigh,
        }
    }

    /// The prefix among every token, the total added up from them in f64
    /// (after a close call, rare). A goal beyond them all (rounding) keeps
    /// them all.
    #[cfg_attr(not(unoptimized), inline(always))]
    fn everything<S: Lanes, T: Logits>(&self, s: S, m: f32, t: T) -> Prefix {
        let items = self.candidates(s, m, t, f32::NEG_INFINITY);
        let total = items.weight(s);
        match self.cut_at(s, items, total, 0.0) {
            Tried::Found(p) => p,
            Tried::TooHigh | Tried::Unsure(_) => {
                let candidates = self.candidates(s, m, t, f32::NEG_INFINITY);
                Prefix {
                    candidates,
                    cut: None,
                }
            }
        }
    }
}

/// A logit floor below which every weight `exp((x − m)·c)` is less than
/// `w`: `m + (ln w − 1)/c` rounded down (the 1 covers the rounding of
/// `x − m` and of the exp many times over).
fn weight_floor(m: f32, w: f64, c: f64) -> f32 {
    let bar = f64::from(m) + (w.ln() - 1.0) / c;
    let v = bar as f32;
    if f64::from(v) > bar { v.next_down() } else { v }
}

/// The temperature (and min-p) draw without a candidate list: block
/// (max, sum) partials in one read, then the token inside the block the
/// draw lands in, from the same exps recomputed.
struct BlockDraw<'a, X> {
    x: &'a [X],
    c: f64,
    min_p: Option<f32>,
    u: f64,
}

impl<X: Storage> Job for BlockDraw<'_, X> {
    type Output = Result<usize, SampleFailure>;
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> Self::Output {
        // At temperature 1 the plain exp; else the exact-product one.
        if self.c == 1.0 {
            self.draw(s, Plain)
        } else {
            self.draw(s, Scaled(Factor::new(self.c)))
        }
    }
}

impl<X: Storage> BlockDraw<'_, X> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn draw<S: Lanes, T: Logits>(&self, s: S, t: T) -> Result<usize, SampleFailure> {
        let x = self.x;
        // min-p needs the row max before the sums; plain temperature finds
        // it block by block.
        let floor = match self.min_p {
            Some(p) if p > 0.0 => {
                let m = max(s, x, Plain);
                if !m.is_finite() {
                    return special(x, self.u);
                }
                Some(logit_floor(m, f64::from(p), self.c))
            }
            _ => None,
        };
        // A loop, not `map`: a closure is not inlined into the backend
        // entry, and its lane calls would not be either (40× slower).
        let mut parts = Vec::with_capacity(x.len().div_ceil(BLOCK));
        for block in x.chunks(BLOCK) {
            parts.push(block_part(s, block, t, floor));
        }
        let m = parts
            .iter()
            .fold(f32::NEG_INFINITY, |m, p| if p.max > m { p.max } else { m });
        if parts.iter().any(|p| p.sum.is_nan()) {
            return Err(NAN_ROW);
        }
        if !m.is_finite() {
            return special(x, self.u);
        }
        let shares: Vec<f64> = parts.iter().map(|p| p.sum_at(m, self.c)).collect();
        let goal = self.u * shares.iter().sum::<f64>();
        let mut cum = 0.0;
        let mut last = None;
        for (b, &share) in shares.iter().enumerate() {
            if share > 0.0 {
                last = Some(b);
            }
            if cum + share > goal && share > 0.0 {
                return Ok(b * BLOCK
                    + in_block(
                        s,
                        &x[b * BLOCK..],
                        &parts[b],
                        t,
                        floor,
                        goal - cum,
                        self.c,
                        m,
                    ));
            }
            cum += share;
        }
        // Rounding: the last token of the last block with mass.
        let b = last.ok_or(EMPTY_ROW)?;
        Ok(b * BLOCK
            + in_block(
                s,
                &x[b * BLOCK..],
                &parts[b],
                t,
                floor,
                f64::INFINITY,
                self.c,
                m,
            ))
    }
}

/// The smallest f32 `v` with `v ≥ m + ln(p)/c` (so that `x ≥ v` is exactly
/// the f64 test on any f32 `x`).
fn logit_floor(m: f32, p: f64, c: f64) -> f32 {
    let bar = f64::from(m) + p.ln() / c;
    let v = bar as f32;
    if f64::from(v) < bar { v.next_up() } else { v }
}

/// `(max, Σ w)` of a block, `w = exp((x − max)·c)`, zero below `floor`.
#[cfg_attr(not(unoptimized), inline(always))]
fn block_part<S: Lanes, X: Storage, T: Logits>(
    s: S,
    block: &[X],
    t: T,
    floor: Option<f32>,
) -> Partial {
    let m = max(s, block, Plain);
    if !m.is_finite() {
        let nan = block.iter().any(|v| v.to_f32().is_nan());
        return Partial {
            max: m,
            sum: if nan { f64::NAN } else { 0.0 },
        };
    }
    let sum = match floor {
        None => sum_of(s, block, t, ExpMinus::new(s, m, t)),
        Some(f) => sum_of(s, block, t, Floored(ExpMinus::new(s, m, t), f)),
    };
    Partial { max: m, sum }
}

/// `f(x)`, zero where `x` is below the floor.
struct Floored<M>(M, f32);

impl<S: Lanes, M: crate::kernels::Map<S>> crate::kernels::Map<S> for Floored<M> {
    #[cfg_attr(not(unoptimized), inline(always))]
    fn apply(&self, s: S, x: S::V) -> S::V {
        s.zero_where_below(x, self.1, self.0.apply(s, x))
    }
}

/// The index inside `x[..BLOCK]` where the block's cumulative weight
/// (rescaled to the row max) passes `goal`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(unoptimized), inline(always))]
fn in_block<S: Lanes, X: Storage, T: Logits>(
    s: S,
    x: &[X],
    part: &Partial,
    t: T,
    floor: Option<f32>,
    goal: f64,
    c: f64,
    m: f32,
) -> usize {
    let x = &x[..x.len().min(BLOCK)];
    let mut w = [0.0f32; BLOCK];
    let w = &mut w[..x.len()];
    let f = ExpMinus::new(s, part.max, t);
    match floor {
        None => Io::<_, Pair<X, f32>>::of(Some(x), w).map_store(s, f),
        Some(fl) => Io::<_, Pair<X, f32>>::of(Some(x), w).map_store(s, Floored(f, fl)),
    }
    let r = ((f64::from(part.max) - f64::from(m)) * c).exp();
    let mut cum = 0.0;
    let mut last = 0;
    for (j, &wj) in w.iter().enumerate() {
        if wj > 0.0 {
            cum += f64::from(wj) * r;
            last = j;
            if cum > goal {
                return j;
            }
        }
    }
    last
}

/// Rows whose max is ±inf: the +inf entries share the mass equally (the
/// draw picks the `⌊u·k⌋`-th of the k); nothing above −inf is an error.
fn special<X: Storage>(x: &[X], u: f64) -> Result<usize, SampleFailure> {
    match RowClass::scan(x.iter().map(|v| v.to_f32())) {
        RowClass::Nan => return Err(NAN_ROW),
        RowClass::NoMass => return Err(EMPTY_ROW),
        _ => {}
    }
    let inf: Vec<usize> = (0..x.len())
        .filter(|&i| x[i].to_f32() == f32::INFINITY)
        .collect();
    let pick = ((u * inf.len() as f64) as usize).min(inf.len() - 1);
    Ok(inf[pick])
}

/// The `k` most probable tokens of `softmax(logits)` with their exact
/// probabilities, most probable first (ties: lower index first), from one
/// read that keeps the online (max, sum) and a top-k selection together:
/// the probability vector is never written and the row never sorted.
/// Fewer than `k` entries for a shorter row, none for `k = 0`; rows of
/// at most 2^32 − 1 entries (a longer one is [`Error::RowTooLong`]). Special
/// rows follow the softmax rules: NaN in the row makes every probability
/// NaN (the entries are still the top k of the other values), k entries of
/// +inf share the mass, a row of only −inf has probabilities 0.
///
/// ```
/// let top = simd_softmax::top_k_probs(&[1.0, 3.0, 2.0, 3.0], 2)?;
/// assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 3]);
/// assert!((top[0].1 - 0.3994863).abs() < 1e-6); // 1 / (2 + e^-1 + e^-2)
/// # Ok::<(), simd_softmax::Error>(())
/// ```
///
/// Errors if `SIMD_SOFTMAX_BACKEND` forces a backend this CPU lacks.
pub fn top_k_probs<E: Element>(logits: &[E], k: usize) -> Result<Vec<(usize, f32)>, Error> {
    top_k_values(E::slice(logits), k, false)
}

/// [`top_k_probs`] with log-probabilities `(x − max) − ln Σ exp(x − max)`.
pub fn top_k_log_probs<E: Element>(logits: &[E], k: usize) -> Result<Vec<(usize, f32)>, Error> {
    top_k_values(E::slice(logits), k, true)
}

fn top_k_values(x: Slice<'_>, k: usize, log: bool) -> Result<Vec<(usize, f32)>, Error> {
    if x.len() > u32::MAX as usize {
        return Err(Error::RowTooLong {
            len: x.len(),
            max: u32::MAX as usize,
        });
    }
    let backend = try_backend()?;
    if k == 0 || x.is_empty() {
        return Ok(Vec::new());
    }
    // More than the row is the whole row (and keeps the buffer finite).
    let k = k.min(x.len());
    let (top, total, class) = match x {
        Slice::F32(x) => dispatch::run(backend, TopKSum { x, k })?,
        Slice::F16(x) => dispatch::run(backend, TopKSum { x, k })?,
        Slice::Bf16(x) => dispatch::run(backend, TopKSum { x, k })?,
    };
    let m = f64::from(total.max);
    let log_sum = total.sum.ln();
    let values = top.into_iter().map(|(v, i)| {
        let value = match class {
            RowClass::Nan => f64::NAN,
            RowClass::Finite => {
                let y = (f64::from(v) - m) - log_sum;
                if log { y } else { y.exp() }
            }
            // The +inf entries split the mass, the rest get 0.
            RowClass::PosInf(_) | RowClass::NoMass => {
                let p = match class {
                    RowClass::PosInf(k) if v == f32::INFINITY => 1.0 / k as f64,
                    _ => 0.0,
                };
                if log { p.ln() } else { p }
            }
        };
        (i as usize, value as f32)
    });
    Ok(values.collect())
}

/// The top k and the (max, sum) of a row in one read.
struct TopKSum<'a, X> {
    x: &'a [X],
    k: usize,
}

impl<X: Storage> WithLanes for TopKSum<'_, X> {
    type Output = (Vec<(f32, u32)>, Partial, RowClass);
    fn with<S: Lanes>(self, s: S) -> Self::Output {
        s.vectorize(self)
    }
}

impl<X: Storage> Job for TopKSum<'_, X> {
    type Output = (Vec<(f32, u32)>, Partial, RowClass);
    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) -> Self::Output {
        top_k_and_sum(s, self.x, self.k)
    }
}
