//! The f64 oracle: the same semantics as the fast kernels, computed in f64
//! from the same f32 inputs. Public so that users can differential-test
//! their own code against it.

/// Softmax in f64, rounded once to f32, with the crate's semantics (NaN
/// row, all −inf row, +inf split; see the crate docs).
///
/// # Panics
/// If `output.len() != input.len()`.
pub fn softmax(input: &[f32], output: &mut [f32]) {
    assert_eq!(
        input.len(),
        output.len(),
        "reference::softmax: lengths differ"
    );
    for (y, p) in output.iter_mut().zip(softmax_f64(input)) {
        *y = p as f32;
    }
}

/// The rows the special-value rules decide instead of arithmetic.
enum Special {
    /// Some entry is NaN.
    Nan,
    /// No NaN and this many entries of +inf.
    Infinities(f64),
    /// Nothing above −inf (and no NaN).
    AllNegInf,
}

/// Which special rule a row falls under, or its (finite) max.
fn classify(input: &[f32]) -> Result<f32, Special> {
    if input.iter().any(|v| v.is_nan()) {
        return Err(Special::Nan);
    }
    let max = input.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::INFINITY {
        Err(Special::Infinities(
            input.iter().filter(|&&v| v == f32::INFINITY).count() as f64,
        ))
    } else if max == f32::NEG_INFINITY {
        Err(Special::AllNegInf)
    } else {
        Ok(max)
    }
}

/// A compensated (Neumaier) sum of f64 terms: `hi` plus the carry `lo` of
/// what its roundings dropped. A plain f64 sum loses the tail of a row with
/// one dominant term: 8190 terms of 8.2e-19 each vanish beside 1.0, while
/// their total, 6.7e-15, is a log-probability f32 resolves.
#[derive(Clone, Copy)]
struct Sum {
    hi: f64,
    lo: f64,
}

impl Sum {
    const ZERO: Sum = Sum { hi: 0.0, lo: 0.0 };

    fn of(terms: impl IntoIterator<Item = f64>) -> Sum {
        let mut sum = Sum::ZERO;
        terms.into_iter().for_each(|v| sum.add(v));
        sum
    }

    fn add(&mut self, v: f64) {
        let t = self.hi + v;
        self.lo += if self.hi.abs() >= v.abs() {
            (self.hi - t) + v
        } else {
            (v - t) + self.hi
        };
        self.hi = t;
    }

    /// The sum; an infinite or NaN term makes the carry NaN, and the plain
    /// sum says it all then.
    fn value(self) -> f64 {
        if self.lo.is_finite() {
            self.hi + self.lo
        } else {
            self.hi
        }
    }

    /// `ln` of the sum, the carry taken to first order: `hi + lo` can round
    /// back to `hi` (1 + 1e-17) where `ln` is still `lo`.
    fn ln(self) -> f64 {
        if self.lo.is_finite() && self.hi > 0.0 {
            self.hi.ln() + self.lo / self.hi
        } else {
            self.hi.ln()
        }
    }
}

/// Softmax in f64, not rounded: the value the error bound is measured
/// against.
pub fn softmax_f64(input: &[f32]) -> Vec<f64> {
    let max = match classify(input) {
        Ok(max) => max,
        Err(Special::Nan) => return vec![f64::NAN; input.len()],
        Err(Special::AllNegInf) => return vec![0.0; input.len()],
        Err(Special::Infinities(k)) => {
            return input
                .iter()
                .map(|&v| if v == f32::INFINITY { 1.0 / k } else { 0.0 })
                .collect();
        }
    };
    let max = f64::from(max);
    let e: Vec<f64> = input.iter().map(|&v| (f64::from(v) - max).exp()).collect();
    let sum = Sum::of(e.iter().copied()).value();
    e.into_iter().map(|v| v / sum).collect()
}

/// The `(max, Σ exp(x − max))` of a row in f64, by the rules of
/// [`Partial`](crate::Partial): `(NaN, NaN)` with a NaN, `(+inf, k)` with
/// `k` values of +inf, `(−inf, 0)` with nothing above −inf.
pub fn partial_f64(input: &[f32]) -> (f32, f64) {
    match classify(input) {
        Ok(max) => {
            let m = f64::from(max);
            let sum = Sum::of(input.iter().map(|&v| (f64::from(v) - m).exp()));
            (max, sum.value())
        }
        Err(Special::Nan) => (f32::NAN, f64::NAN),
        Err(Special::Infinities(k)) => (f32::INFINITY, k),
        Err(Special::AllNegInf) => (f32::NEG_INFINITY, 0.0),
    }
}

/// The bound on a [`Partial`](crate::Partial)'s sum, or on the sum
/// [`exp_shifted`](crate::exp_shifted) returns, beside the exact `sum`:
/// `2^-20·sum` (each exp within 2 ULP, then partial sums in f32 over at
/// most 16 vectors of at most 16 lanes, then f64).
pub fn partial_sum_tolerance(sum: f64) -> f64 {
    sum * 2f64.powi(-20)
}

/// The bound on one value `exp(x − m)` that
/// [`exp_shifted`](crate::exp_shifted) writes beside the exact `e`:
/// `2^-24·(4 + |x − m|)·e + 2^-126` (2 ULP for the exp, the rounding of
/// `x − m` in f32, results below the normal range flushed to 0).
pub fn exp_shifted_tolerance(x: f32, m: f32, e: f64) -> f64 {
    let spread = if x.is_finite() {
        (f64::from(x) - f64::from(m)).abs()
    } else {
        0.0
    };
    (4.0 + spread) * e * 2f64.powi(-24) + 2f64.powi(-126)
}

/// The accuracy contract for one output of a row with largest value `max`:
/// `|p − p_ref| ≤ 2^-24·(16 + |x − max|)·p_ref + 2^-126`.
///
/// `|x − max|` is the unavoidable rounding of `x − max` in f32; the 16
/// covers an exp within 2 ULP, the normalizing sum and the reciprocal; the
/// 2^-126 lets results below the smallest normal f32 flush to 0.
pub fn tolerance(x: f32, max: f32, p_ref: f64) -> f64 {
    // An entry of −inf has p_ref = 0 (and must come out as exactly 0).
    let spread = if x.is_finite() {
        (f64::from(x) - f64::from(max)).abs()
    } else {
        0.0
    };
    (16.0 + spread) * p_ref * 2f64.powi(-24) + 2f64.powi(-126)
}

/// Log-softmax in f64, not rounded, with the crate's semantics: NaN row →
/// NaN; k entries of +inf → −ln k there and −inf elsewhere; all −inf → −inf.
pub fn log_softmax_f64(input: &[f32]) -> Vec<f64> {
    let max = match classify(input) {
        Ok(max) => max,
        Err(Special::Nan) => return vec![f64::NAN; input.len()],
        Err(Special::AllNegInf) => return vec![f64::NEG_INFINITY; input.len()],
        Err(Special::Infinities(k)) => {
            let share = -k.ln();
            return input
                .iter()
                .map(|&v| {
                    if v == f32::INFINITY {
                        share
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
        }
    };
    // (x − max) − ln S, not x − (max + ln S): the latter absorbs ln S into
    // a huge max.
    let max = f64::from(max);
    let log_sum = Sum::of(input.iter().map(|&v| (f64::from(v) - max).exp())).ln();
    input
        .iter()
        .map(|&v| (f64::from(v) - max) - log_sum)
        .collect()
}

/// Log-softmax in f64, rounded once to f32.
///
/// # Panics
/// If `output.len() != input.len()`.
pub fn log_softmax(input: &[f32], output: &mut [f32]) {
    assert_eq!(
        input.len(),
        output.len(),
        "reference::log_softmax: lengths differ"
    );
    for (y, v) in output.iter_mut().zip(log_softmax_f64(input)) {
        *y = v as f32;
    }
}

/// `ln Σ exp(x)` in f64: NaN if any NaN, +inf if any +inf, −inf if all
/// −inf or empty.
pub fn logsumexp_f64(input: &[f32]) -> f64 {
    let max = match classify(input) {
        Ok(max) => f64::from(max),
        Err(Special::Nan) => return f64::NAN,
        Err(Special::Infinities(_)) => return f64::INFINITY,
        Err(Special::AllNegInf) => return f64::NEG_INFINITY,
    };
    max + Sum::of(input.iter().map(|&v| (f64::from(v) - max).exp())).ln()
}

/// The accuracy contract for log-softmax and logsumexp outputs:
/// `|y − y_ref| ≤ 2^-22·|y_ref| + 2^-21`.
pub fn log_tolerance(y_ref: f64) -> f64 {
    y_ref.abs() * 2f64.powi(-22) + 2f64.powi(-21)
}

/// The lowest index of the largest value; `None` for an empty row or one
/// holding NaN (a plain scalar scan).
pub fn argmax(input: &[f32]) -> Option<usize> {
    if input.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut best: Option<(f32, usize)> = None;
    for (i, &v) in input.iter().enumerate() {
        if best.is_none_or(|(b, _)| v > b) {
            best = Some((v, i));
        }
    }
    best.map(|(_, i)| i)
}

/// The builder's logit settings ([`crate::Softmax::temperature`],
/// [`scale`](crate::Softmax::scale), the masks and
/// [`causal`](crate::Softmax::causal)) for the reference.
#[derive(Clone, Copy, Debug)]
pub struct LogitSettings<'a> {
    /// Multiplies the logits (1 for none).
    pub scale: f32,
    /// Divides the logits (1 for none; 0 and +inf are the limits).
    pub temperature: f32,
    /// One row or one flag per element.
    pub keep_mask: Option<&'a [bool]>,
    /// One row or one value per element.
    pub additive_mask: Option<&'a [f32]>,
    /// Row `r` keeps columns `j ≤ r + offset` (`r` the query index under
    /// an attention layout).
    pub causal: Option<isize>,
    /// The rows' attention layout ([`crate::Attention`]): which row of a
    /// broadcast mask each row reads, its query index and its head.
    pub attention: Option<crate::Attention>,
    /// ALiBi's `max_bias`: the additive mask times the head's
    /// [`crate::alibi_slope`].
    pub max_bias: Option<f32>,
    /// One sink logit per head (or one for all rows): in each row's
    /// denominator, with no output entry ([`crate::Softmax::sinks`]).
    pub sinks: Option<&'a [f32]>,
    /// The soft cap `c` ([`crate::Softmax::softcap`]): the input becomes
    /// `c·tanh(x/c)` (−inf stays −inf), here in f64 rounded to f32.
    pub softcap: Option<f32>,
}

impl Default for LogitSettings<'_> {
    fn default() -> Self {
        LogitSettings {
            scale: 1.0,
            temperature: 1.0,
            keep_mask: None,
            additive_mask: None,
            causal: None,
            attention: None,
            max_bias: None,
            sinks: None,
            softcap: None,
        }
    }
}

/// One reference output under [`LogitSettings`], with what its error bound
/// depends on.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// The exact (f64) softmax or log-softmax value.
    pub value: f64,
    /// `|e|`, the exponent `(x − max)·s/t` (or `w − max` with an additive
    /// mask) whose f32 rounding the bound allows for.
    pub exponent: f64,
    /// With an additive mask, `2·|x·s/t| + |w|` for this entry plus the
    /// same for the largest logit `w_m` (the largest such term among the
    /// logits within their own rounding of the max): each logit
    /// `w = x·s/t + a` is computed in f32 (`s/t` rounded, the product
    /// rounded unless fused, the sum rounded), and the max is the largest
    /// of them. 0 without one.
    pub logit_size: f64,
}

impl Expected {
    /// The softmax bound: `(exp(ε) − 1)·p + 2^-126` with
    /// `ε = 2^-24·(16 + |e| + logit_size)`; to first order `ε·p`, as the
    /// README states it. The exponential form matters only where `ε` is not
    /// small: under an additive mask on logits so large that their f32
    /// rounding exceeds 1 (then the mask's values are below their
    /// resolution, and `p` may be anything in [0, 1]).
    pub fn tolerance(&self) -> f64 {
        let eps = (16.0 + self.exponent + self.logit_size) * 2f64.powi(-24);
        eps.exp_m1() * self.value + 2f64.powi(-126)
    }

    /// The log-softmax bound: `2^-22·|y| + 2^-21 + 2^-24·logit_size`.
    pub fn log_tolerance(&self) -> f64 {
        log_tolerance(self.value) + self.logit_size * 2f64.powi(-24)
    }
}

/// Softmax (or, with `log`, log-softmax) of row `r` of a call under
/// `settings`, exact in f64, with the crate's semantics: entries the keep
/// mask or the causal mask drop get 0 (−inf); NaN in any other entry
/// makes the row NaN; +inf logits split the mass; nothing above −inf gives
/// zeros (−inf). Temperature 0 and +inf are the limits described at
/// [`crate::Softmax::temperature`].
pub fn softmax_row_with(
    row: &[f32],
    r: usize,
    settings: &LogitSettings<'_>,
    log: bool,
) -> Vec<Expected> {
    let n = row.len();
    // The soft cap first; its f32 rounding here and the kernel's error
    // (8·2^-24·|v|, the tanh's 3 ULP, the division and the product) go
    // into the bound below as 9·2^-24·|v|.
    let capped: Vec<f32>;
    let row = match settings.softcap {
        None => row,
        Some(cap) => {
            let cap64 = f64::from(cap);
            capped = row
                .iter()
                .map(|&x| {
                    if x == f32::NEG_INFINITY {
                        x
                    } else {
                        (cap64 * (f64::from(x) / cap64).tanh()) as f32
                    }
                })
                .collect();
            &capped
        }
    };
    // Row r of [batch, heads, queries, keys] is (b, h, i).
    let (b, h, i_query) = match settings.attention {
        Some(a) => (
            r / (a.heads * a.queries),
            r / a.queries % a.heads,
            r % a.queries,
        ),
        None => (0, 0, r),
    };
    let mask_row = |len: usize| match settings.attention {
        _ if len == n => 0,
        Some(a) if len == a.queries * n => i_query,
        Some(a) if len == a.batch * a.queries * n => b * a.queries + i_query,
        _ => r,
    };
    let row_of = |len: usize| mask_row(len) * n..(mask_row(len) + 1) * n;
    let keep = settings.keep_mask.map(|k| &k[row_of(k.len())]);
    let add = settings.additive_mask.map(|a| &a[row_of(a.len())]);
    let causal_end = settings
        .causal
        .map_or(n as i128, |o| i_query as i128 + o as i128 + 1);
    let kept = |i: usize| (i as i128) < causal_end && keep.is_none_or(|k| k[i]);
    let heads = settings.attention.map_or(1, |a| a.heads);
    let slope = settings
        .max_bias
        .map_or(1.0, |bias| f64::from(crate::alibi_slope(bias, heads, h)));
    let a = |i: usize| add.map_or(0.0, |a| slope * f64::from(a[i]));
    let (s, t) = (f64::from(settings.scale), f64::from(settings.temperature));
    let c = s / t;
    let plain = |value: f64| Expected {
        value,
        exponent: 0.0,
        logit_size: 0.0,
    };
    // The masks' entries stay exact in a NaN row; every other entry is NaN.
    let nan_row = || {
        let empty = if log { f64::NEG_INFINITY } else { 0.0 };
        (0..n)
            .map(|i| plain(if kept(i) { f64::NAN } else { empty }))
            .collect::<Vec<_>>()
    };
    let sink = settings.sinks.map_or(f64::NEG_INFINITY, |s| {
        f64::from(s[if s.len() == 1 { 0 } else { h }])
    });
    if sink.is_nan() || (0..n).any(|i| kept(i) && (row[i].is_nan() || a(i).is_nan())) {
        return nan_row();
    }

    // The limits: mass on the members, split as the softmax of `a`.
    let greedy = (c as f32).is_infinite();
    if t == f64::INFINITY || greedy {
        let candidate = |i: usize| kept(i) && a(i) != f64::NEG_INFINITY;
        let top = (0..n)
            .filter(|&i| candidate(i))
            .map(|i| row[i])
            .fold(f32::NEG_INFINITY, f32::max);
        let member =
            |i: usize| candidate(i) && row[i] != f32::NEG_INFINITY && (!greedy || row[i] == top);
        let logits: Vec<f64> = (0..n)
            .map(|i| if member(i) { a(i) } else { f64::NEG_INFINITY })
            .collect();
        return special_or_exact(&logits, log)
            .unwrap_or_else(|m| {
                let e: Vec<f64> = logits.iter().map(|&w| w - m).collect();
                exact(&e, log)
            })
            .into_iter()
            .map(plain)
            .collect();
    }

    // w = x·c + a with an additive mask (exponent w − max w), else x
    // (exponent (x − max)·c).
    let w: Vec<f64> = (0..n)
        .map(|i| {
            if !kept(i) {
                f64::NEG_INFINITY
            } else if add.is_some() {
                // The logit is an f32 (`x·c + a` fused, with `c` rounded to
                // f32): beyond f32::MAX it is ±inf.
                let w = f64::from(row[i]) * c + a(i);
                let w32 = (f64::from(row[i]) * f64::from(c as f32) + a(i)) as f32;
                if w32.is_infinite() { f64::from(w32) } else { w }
            } else {
                f64::from(row[i])
            }
        })
        .collect();
    // The logit itself can be NaN: −inf + inf under an additive mask.
    if w.iter().any(|v| v.is_nan()) {
        return nan_row();
    }
    // Nothing above −inf: no mass, whatever the sink. Else a +inf sink is
    // one more +inf logit.
    let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let with_sink: Vec<f64> = w.iter().copied().chain([sink]).collect();
    let special = if m == f64::NEG_INFINITY {
        special_or_exact(&w, log)
    } else {
        special_or_exact(&with_sink, log).map(|mut values| {
            values.pop();
            values
        })
    };
    if let Ok(values) = special {
        return values.into_iter().map(plain).collect();
    }
    // The exponents count from the largest of the row's own logits; a
    // sink above it only adds to the denominator.
    let factor = if add.is_some() { 1.0 } else { c };
    let e: Vec<f64> = w.iter().map(|&w| (w - m) * factor).collect();
    // The sink's exponent beside the row's: its logit less the largest
    // logit (`m·c` without an additive mask, where `w` is x).
    let sink_e = sink - m * factor;
    // With an additive mask: the rounding of each f32 logit, `c` rounded,
    // the product and the sum: `2·|x·c| + |w|` (times 2^-24). The max the
    // kernel subtracts is the largest rounded logit, off by the rounding
    // of the largest logit or of one within its own rounding of it.
    // ALiBi's product `slope·a` is rounded to f32 first: `|slope·a|` more.
    let alibi = |i: usize| if slope == 1.0 { 0.0 } else { a(i).abs() };
    let rounding = |i: usize| 2.0 * (f64::from(row[i]) * c).abs() + w[i].abs() + alibi(i);
    let max_rounding = (0..n)
        .filter(|&i| w[i].is_finite() && w[i] + rounding(i) * 2f64.powi(-24) >= m)
        .map(rounding)
        .fold(0.0, f64::max);
    // The soft cap's error on this entry's logit and on the largest.
    let largest = (0..n)
        .filter(|&j| kept(j) && row[j].is_finite())
        .map(|j| f64::from(row[j]).abs())
        .fold(0.0, f64::max);
    let cap_error = |i: usize| match settings.softcap {
        None => 0.0,
        Some(_) => 9.0 * c * (f64::from(row[i]).abs() + largest),
    };
    exact_with(&e, sink_e, log)
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let finite = w[i].is_finite();
            let masked_logit = if finite && add.is_some() {
                rounding(i) + max_rounding
            } else {
                0.0
            };
            Expected {
                value,
                exponent: if finite { e[i].abs() } else { 0.0 },
                logit_size: masked_logit + if finite { cap_error(i) } else { 0.0 },
            }
        })
        .collect()
}

/// The special rows of logits `w` (no NaN left): +inf entries split the
/// mass, nothing above −inf gives zeros. Otherwise `Err(max)`, finite.
fn special_or_exact(w: &[f64], log: bool) -> Result<Vec<f64>, f64> {
    let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (hit, miss) = if log {
        (0.0, f64::NEG_INFINITY)
    } else {
        (1.0, 0.0)
    };
    if m == f64::NEG_INFINITY {
        return Ok(vec![miss; w.len()]);
    }
    if m == f64::INFINITY {
        let k = w.iter().filter(|&&v| v == f64::INFINITY).count() as f64;
        let share = if log { hit - k.ln() } else { hit / k };
        return Ok(w
            .iter()
            .map(|&v| if v == f64::INFINITY { share } else { miss })
            .collect());
    }
    Err(m)
}

/// `exp(e)/Σ exp(e)`, or `e − ln Σ exp(e)` with `log`.
fn exact(e: &[f64], log: bool) -> Vec<f64> {
    exact_with(e, f64::NEG_INFINITY, log)
}

/// [`exact`] with one more term, `exp(extra)`, in the denominator.
fn exact_with(e: &[f64], extra: f64, log: bool) -> Vec<f64> {
    let sum = Sum::of(e.iter().map(|v| v.exp()).chain([extra.exp()]));
    if log {
        let log_sum = sum.ln();
        e.iter().map(|v| v - log_sum).collect()
    } else {
        let sum = sum.value();
        e.iter().map(|v| v.exp() / sum).collect()
    }
}

/// The softmax backward pass in f64: `p ⊙ (g − ⟨g, p⟩)`, IEEE arithmetic
/// (NaN or an infinity in the inputs propagates as it would).
pub fn softmax_backward_f64(probs: &[f32], grad_out: &[f32]) -> Vec<f64> {
    // Compensated: each product is exact in f64, and the sum is within a
    // few units of 2^-53·|dot|, so `g − dot` is right where it cancels (a
    // dominant probability, a constant gradient).
    let dot = Sum::of(
        probs
            .iter()
            .zip(grad_out)
            .map(|(&p, &g)| f64::from(p) * f64::from(g)),
    )
    .value();
    probs
        .iter()
        .zip(grad_out)
        .map(|(&p, &g)| f64::from(p) * (f64::from(g) - dot))
        .collect()
}

/// The log-softmax backward pass in f64: `g − exp(y)·Σg`.
pub fn log_softmax_backward_f64(log_probs: &[f32], grad_out: &[f32]) -> Vec<f64> {
    let total = Sum::of(grad_out.iter().map(|&g| f64::from(g))).value();
    log_probs
        .iter()
        .zip(grad_out)
        .map(|(&y, &g)| f64::from(g) - f64::from(y).exp() * total)
        .collect()
}

/// The accuracy contract of the softmax backward pass, per element `i`:
/// `|grad_in_i − ref_i| ≤ 2^-20·max|ref| + 2^-42·p_i·Σ_j |p_j·g_j| + 2^-126`.
/// The first term is relative to the row's largest exact `|grad_in|` (not
/// to `grad_out`, which can be far larger where `g − ⟨g, p⟩` cancels: a
/// confident prediction); the second is the conditioning of the dot
/// product `⟨g, p⟩` (the kernel's worst case is about 2^-44·Σ|p·g|, its
/// products' low parts summed in f32 over 16 vectors), which matters only where the
/// whole row cancels (e.g. a constant gradient, whose exact `grad_in` is
/// `p·g·(1 − Σp)`); the 2^-126 as in [`backward_tolerance`].
pub fn softmax_backward_tolerance(
    probs: &[f32],
    grad_out: &[f32],
    grad_in_ref: &[f64],
) -> Vec<f64> {
    let r = grad_in_ref.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let dot_abs: f64 = probs
        .iter()
        .zip(grad_out)
        .map(|(&p, &g)| (f64::from(p) * f64::from(g)).abs())
        .sum();
    probs
        .iter()
        .map(|&p| r * 2f64.powi(-20) + 2f64.powi(-42) * f64::from(p) * dot_abs + 2f64.powi(-126))
        .collect()
}

/// The accuracy contract of the backward passes, for every element of a
/// row: `|grad_in − ref| ≤ 2^-20·G + 2^-126`, where `G` is the largest
/// magnitude in the row among `grad_out` and the reference `grad_in` (the
/// log-softmax backward pass; the softmax one meets the tighter
/// [`softmax_backward_tolerance`]). The
/// 2^-126 is the softmax contract's allowance below the smallest normal
/// f32: with subnormal gradients `G` itself is below f32's resolution
/// there (a result of 4.7e-48 can only come out as ±0).
pub fn backward_tolerance(grad_out: &[f32], grad_in_ref: &[f64]) -> f64 {
    let g = grad_out
        .iter()
        .map(|v| f64::from(v.abs()))
        .fold(0.0, f64::max);
    let r = grad_in_ref.iter().map(|v| v.abs()).fold(0.0, f64::max);
    g.max(r) * 2f64.powi(-20) + 2f64.powi(-126)
}

/// Cross-entropy of one row against `target` with label smoothing `eps`,
/// in f64: `−Σ q_i·ln p_i` with `q = (1 − ε)·one_hot + ε/n`, `ln p` from
/// [`log_softmax_f64`] (its special-value rules), and `0·(−inf)` taken as
/// 0 where `q_i = 0`.
pub fn cross_entropy_f64(row: &[f32], target: usize, eps: f64) -> f64 {
    let n = row.len() as f64;
    Sum::of(log_softmax_f64(row).iter().enumerate().map(|(i, &lp)| {
        let q = eps / n + if i == target { 1.0 - eps } else { 0.0 };
        if q == 0.0 { 0.0 } else { -q * lp }
    }))
    .value()
}

/// The gradient of [`cross_entropy_f64`] times `weight`:
/// `(softmax(row) − q)·weight`.
pub fn cross_entropy_grad_f64(row: &[f32], target: usize, eps: f64, weight: f64) -> Vec<f64> {
    let n = row.len() as f64;
    softmax_f64(row)
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let q = eps / n + if i == target { 1.0 - eps } else { 0.0 };
            (p - q) * weight
        })
        .collect()
}

/// The entropy (nats) of `softmax(row)` in f64, with the crate's rules:
/// NaN → NaN; k entries of +inf → ln k; nothing above −inf (or empty) → 0.
pub fn entropy_f64(row: &[f32]) -> f64 {
    let p = softmax_f64(row);
    if p.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    Sum::of(p.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.ln())).value()
}

/// The accuracy contract of [`crate::entropy`]: `|H − H_ref| ≤
/// 2^-24·(16·H_ref + Σ p_i·(x_i − max)²) + 2^-21`. The second moment is
/// the exponents' rounding: each `x_i − max` is rounded (relative 2^-24),
/// which moves `p_i` by `|x_i − max|·2^-24` relative and its term of `H`,
/// `p_i·|x_i − max|`, by as much again.
pub fn entropy_tolerance(row: &[f32]) -> f64 {
    let p = softmax_f64(row);
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let moment: f64 = if max.is_finite() {
        row.iter()
            .zip(&p)
            .filter(|&(_, &p)| p > 0.0)
            .map(|(&x, &p)| p * (f64::from(x) - f64::from(max)).powi(2))
            .sum()
    } else {
        0.0
    };
    2f64.powi(-24) * (16.0 * entropy_f64(row).abs() + moment) + 2f64.powi(-21)
}

/// The sampler's settings, for [`sample_distribution`].
#[derive(Clone, Copy, Debug)]
pub struct SamplingSettings {
    /// 0 is greedy.
    pub temperature: f32,
    /// Keep the k most probable.
    pub top_k: Option<usize>,
    /// Keep the smallest most-probable prefix reaching this mass.
    pub top_p: Option<f32>,
    /// Keep tokens with at least this share of the largest probability.
    pub min_p: Option<f32>,
}

/// The distribution [`crate::Sampler`] draws from, the slow and obvious
/// way: the full softmax of `x/t` in f64, the whole row sorted by
/// probability (by logit, which is the same order without f64's ties;
/// ties: lower index first), then top-k, top-p and min-p,
/// each on the distribution renormalised over what the previous kept, and
/// a final renormalisation. Tokens of probability 0 are never kept.
/// `None` when nothing can be sampled (NaN, empty, nothing above −inf).
pub fn sample_distribution(x: &[f32], settings: &SamplingSettings) -> Option<Vec<(usize, f64)>> {
    if x.is_empty() || x.iter().any(|v| v.is_nan()) {
        return None;
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    if settings.temperature == 0.0 {
        return argmax(x).map(|i| vec![(i, 1.0)]);
    }
    let t = f64::from(settings.temperature);
    let mut kept: Vec<(usize, f64)> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let w = if max == f32::INFINITY {
                if v == f32::INFINITY { 1.0 } else { 0.0 }
            } else {
                ((f64::from(v) - f64::from(max)) / t).exp()
            };
            (i, w)
        })
        .collect();
    // By logit, which orders the probabilities exactly: their f64 values
    // can tie where the logits (and the true probabilities) do not.
    kept.sort_by(|a, b| {
        x[b.0]
            .partial_cmp(&x[a.0])
            .unwrap_or(core::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });
    if let Some(k) = settings.top_k {
        kept.truncate(k);
    }
    kept.retain(|&(_, w)| w > 0.0);
    if let Some(p) = settings.top_p {
        // Compensated: 256 tied weights of 1 beside 95 of 1e-14 sum to
        // 256 + 1e-12, and then one weight of 1 is less than p = 1/256.
        let total = Sum::of(kept.iter().map(|k| k.1)).value();
        let mut cum = Sum::ZERO;
        let mut end = kept.len();
        for (j, &(_, w)) in kept.iter().enumerate() {
            cum.add(w);
            if cum.value() / total >= f64::from(p) {
                end = j + 1;
                break;
            }
        }
        kept.truncate(end);
    }
    if let Some(p) = settings.min_p {
        let top = kept[0].1;
        kept.retain(|&(_, w)| w >= f64::from(p) * top);
    }
    let total = Sum::of(kept.iter().map(|k| k.1)).value();
    Some(kept.into_iter().map(|(i, w)| (i, w / total)).collect())
}
