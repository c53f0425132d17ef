//! Vocabulary-parallel cross-entropy (Megatron-LM's
//! `VocabParallelCrossEntropy`): each worker holds a slice of every row's
//! vocabulary, computes its [`CrossEntropyPartial`]s, the partials are
//! merged across workers, and each worker finishes the loss and writes its
//! slice of the gradient with [`cross_entropy_shard`].

use super::{CrossEntropy, CrossEntropyOptions, checked_weight, reduced};
use crate::dispatch::{self, WithLanes};
use crate::driver::{self, RowTask};
use crate::element::{Element, Slice, Storage};
use crate::error::{Argument, Parameter};
use crate::kernels::cross_entropy::{grad_from_total, loss_from, totals};
use crate::kernels::exec::Sequential;
use crate::lanes::Lanes;
use crate::{Error, Partial, Softmax, shape};

/// One row's share of a vocabulary-sharded cross-entropy: the shard's
/// [`Partial`], the target's logit if the shard holds it, the shard's `Σx`
/// (with label smoothing) and how many logits it covers. Partials of a
/// row's shards [`merge`](CrossEntropyPartial::merge) in any order into
/// the row's, from which [`cross_entropy_shard`] gives the loss of the
/// unsharded row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyPartial {
    total: Partial,
    target_logit: Option<f32>,
    sum_x: Option<f64>,
    len: usize,
}

impl CrossEntropyPartial {
    /// The partial of no logits: merging it changes nothing.
    pub const EMPTY: CrossEntropyPartial = CrossEntropyPartial {
        total: Partial::EMPTY,
        target_logit: None,
        sum_x: Some(0.0),
        len: 0,
    };

    /// The partial of both shards (which must not overlap). Commutative;
    /// associative up to the rounding of the rescaled sums.
    pub fn merge(self, other: CrossEntropyPartial) -> CrossEntropyPartial {
        CrossEntropyPartial {
            total: self.total.merge(other.total),
            target_logit: self.target_logit.or(other.target_logit),
            sum_x: self.sum_x.zip(other.sum_x).map(|(a, b)| a + b),
            len: self.len + other.len,
        }
    }

    /// The (max, sum) of the logits covered.
    pub fn partial(self) -> Partial {
        self.total
    }

    /// The target's logit, if a shard merged in holds it.
    pub fn target_logit(self) -> Option<f32> {
        self.target_logit
    }

    /// `Σx` of the logits covered in f64, if computed (label smoothing).
    pub fn sum_logits(self) -> Option<f64> {
        self.sum_x
    }

    /// How many logits of the row are covered.
    pub fn len(self) -> usize {
        self.len
    }

    /// Whether no logit is covered.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// The [`CrossEntropyPartial`] of each row of a vocabulary shard: rows of
/// `shard_len` logits that are columns `shard_offset..shard_offset +
/// shard_len` of rows whose targets are `targets` (indices into the whole
/// row; one per row). One read of the shard per row, two with
/// `label_smoothing > 0` (the shard's `Σx`, which the smoothed loss needs).
/// Rows in parallel on the current rayon pool.
///
/// The recipe, which `tests/cross_entropy.rs` checks against the unsharded
/// [`cross_entropy`](crate::cross_entropy) for 1, 2, 3 and 8 shards: each
/// worker calls this on its shard; the partials of each row are merged
/// across workers (any order); each worker calls [`cross_entropy_shard`]
/// with the merged partials for the loss (the same on every worker) and
/// its shard's gradient. The loss is within the bound of `cross_entropy`
/// (one shard: its bits without gradient), the gradient within its
/// gradient's bound.
///
/// Errors (nothing computed): a ragged shard, `targets` not one per row,
/// ε outside [0, 1).
///
/// ```
/// use simd_softmax::{CrossEntropyOptions, cross_entropy_partial, cross_entropy_shard};
/// // Two rows of 6 logits, held as two shards of 3 columns.
/// let left = [1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
/// let right = [4.0f32, 5.0, 6.0, 0.0, 0.0, 9.0];
/// let targets = [4, 0];
/// let a = cross_entropy_partial(&left, 3, &targets, 0, 0.0)?;
/// let b = cross_entropy_partial(&right, 3, &targets, 3, 0.0)?;
/// let merged: Vec<_> = a.iter().zip(&b).map(|(a, b)| a.merge(*b)).collect();
/// let mut grad = [0.0f32; 6];
/// let ce = cross_entropy_shard(&right, 3, &targets, 3, &merged, CrossEntropyOptions {
///     grad: Some(&mut grad),
///     ..Default::default()
/// })?;
/// let whole = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0];
/// let want = simd_softmax::cross_entropy(&whole, 6, &targets, Default::default())?;
/// assert!((ce.loss - want.loss).abs() <= 1e-6 * want.loss);
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn cross_entropy_partial<E: Element>(
    shard_logits: &[E],
    shard_len: usize,
    targets: &[usize],
    shard_offset: usize,
    label_smoothing: f32,
) -> Result<Vec<CrossEntropyPartial>, Error> {
    Softmax::new().run_cross_entropy_partial(
        shard_logits,
        shard_len,
        targets,
        shard_offset,
        label_smoothing,
    )
}

/// The loss of every row from its merged [`CrossEntropyPartial`]s
/// (`totals`, one per row), with `options` as in
/// [`cross_entropy`](crate::cross_entropy) (the same ε as the partials';
/// the same result on every shard), and, when `options.grad` is given (as
/// long as the shard), this shard's part of the gradient:
/// `(softmax − q)·weight` at columns `shard_offset..` of each row. See
/// [`cross_entropy_partial`] for the recipe and the bounds.
///
/// Errors (nothing written): the shapes as in `cross_entropy_partial`,
/// `totals` not one per row, a target not below the merged length that is
/// not `ignore_index` ([`Error::TargetOutOfRange`]), a counted row whose
/// merged partials hold no target logit ([`Error::MissingTarget`]: a shard
/// left out), ε > 0 with partials computed without smoothing
/// ([`Error::InvalidParameter`] on `LabelSmoothing`).
pub fn cross_entropy_shard<E: Element>(
    shard_logits: &[E],
    shard_len: usize,
    targets: &[usize],
    shard_offset: usize,
    totals: &[CrossEntropyPartial],
    options: CrossEntropyOptions<'_>,
) -> Result<CrossEntropy, Error> {
    Softmax::new().run_cross_entropy_shard(
        shard_logits,
        shard_len,
        targets,
        shard_offset,
        totals,
        options,
    )
}

impl Softmax {
    /// [`cross_entropy_partial`] on this builder's backend.
    pub fn run_cross_entropy_partial<E: Element>(
        &self,
        shard_logits: &[E],
        shard_len: usize,
        targets: &[usize],
        shard_offset: usize,
        label_smoothing: f32,
    ) -> Result<Vec<CrossEntropyPartial>, Error> {
        let rows = shard_rows(shard_logits.len(), shard_len, targets)?;
        if !(0.0..1.0).contains(&label_smoothing) {
            return Err(Error::InvalidParameter {
                name: Parameter::LabelSmoothing,
                value: f64::from(label_smoothing),
            });
        }
        let backend = self.resolved_backend()?;
        let mut out = vec![CrossEntropyPartial::EMPTY; rows];
        if rows > 0 && shard_len > 0 {
            let shard = Shard {
                len: shard_len,
                offset: shard_offset,
                with_sum_x: label_smoothing > 0.0,
            };
            match E::slice(shard_logits) {
                Slice::F32(x) => {
                    dispatch::run(backend, PartialRows::new(shard, x, targets, &mut out))?
                }
                Slice::F16(x) => {
                    dispatch::run(backend, PartialRows::new(shard, x, targets, &mut out))?
                }
                Slice::Bf16(x) => {
                    dispatch::run(backend, PartialRows::new(shard, x, targets, &mut out))?
                }
            }
        } else if label_smoothing == 0.0 {
            out.iter_mut().for_each(|p| p.sum_x = None);
        }
        Ok(out)
    }

    /// [`cross_entropy_shard`] on this builder's backend.
    pub fn run_cross_entropy_shard<E: Element>(
        &self,
        shard_logits: &[E],
        shard_len: usize,
        targets: &[usize],
        shard_offset: usize,
        totals: &[CrossEntropyPartial],
        options: CrossEntropyOptions<'_>,
    ) -> Result<CrossEntropy, Error> {
        let rows = shard_rows(shard_logits.len(), shard_len, targets)?;
        shape::argument_length(Argument::Totals, totals.len(), rows)?;
        if let Some(grad) = &options.grad {
            shape::argument_length(Argument::Grad, grad.len(), shard_logits.len())?;
        }
        let eps = options.label_smoothing;
        let ignored = |t: usize| options.ignore_index == Some(t);
        for (row, (&target, total)) in targets.iter().zip(totals).enumerate() {
            if ignored(target) {
                continue;
            }
            if target >= total.len {
                return Err(Error::TargetOutOfRange {
                    row,
                    target,
                    row_len: total.len,
                });
            }
            if total.target_logit.is_none() {
                return Err(Error::MissingTarget { row, target });
            }
        }
        let (counted, weight) =
            checked_weight(eps, targets, options.ignore_index, options.reduction)?;
        if eps > 0.0 && totals.iter().any(|t| t.sum_x.is_none()) {
            return Err(Error::InvalidParameter {
                name: Parameter::LabelSmoothing,
                value: f64::from(eps),
            });
        }
        let backend = self.resolved_backend()?;
        let eps = f64::from(eps);
        let losses: Vec<f64> = targets
            .iter()
            .zip(totals)
            .map(|(&t, total)| match (ignored(t), total.target_logit) {
                (false, Some(x_t)) => {
                    loss_from(total.total, x_t, total.sum_x.unwrap_or(0.0), total.len, eps)
                }
                _ => 0.0,
            })
            .collect();
        if let Some(grad) = options.grad
            && rows > 0
            && shard_len > 0
        {
            let spec = GradSpec {
                len: shard_len,
                offset: shard_offset,
                smoothing: eps,
                ignore_index: options.ignore_index,
                weight,
            };
            match E::slice(shard_logits) {
                Slice::F32(x) => {
                    dispatch::run(backend, GradRows::new(spec, x, totals, targets, grad))?
                }
                Slice::F16(x) => {
                    dispatch::run(backend, GradRows::new(spec, x, totals, targets, grad))?
                }
                Slice::Bf16(x) => {
                    dispatch::run(backend, GradRows::new(spec, x, totals, targets, grad))?
                }
            }
        }
        Ok(reduced(losses, counted, options.reduction))
    }
}

/// The number of rows of a shard, checked against its targets.
fn shard_rows(len: usize, shard_len: usize, targets: &[usize]) -> Result<usize, Error> {
    let rows = if len == 0 && shard_len == 0 {
        targets.len()
    } else {
        shape::rows(len, shard_len)?
    };
    shape::argument_length(Argument::Targets, targets.len(), rows)?;
    Ok(rows)
}

/// Where a shard sits in its rows.
#[derive(Clone, Copy)]
struct Shard {
    len: usize,
    offset: usize,
    with_sum_x: bool,
}

/// The partials of a shard's rows.
struct PartialRows<'a, X> {
    shard: Shard,
    x: &'a [X],
    targets: &'a [usize],
    out: &'a mut [CrossEntropyPartial],
}

impl<'a, X: Storage> PartialRows<'a, X> {
    fn new(
        shard: Shard,
        x: &'a [X],
        targets: &'a [usize],
        out: &'a mut [CrossEntropyPartial],
    ) -> Self {
        PartialRows {
            shard,
            x,
            targets,
            out,
        }
    }
}

impl<X: Storage> WithLanes for PartialRows<'_, X> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        let len = self.shard.len;
        driver::run(s, self, len);
    }
}

impl<X: Storage> RowTask for PartialRows<'_, X> {
    fn rows(&self) -> usize {
        self.targets.len()
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let (x0, x1) = self.x.split_at(n * self.shard.len);
        let (t0, t1) = self.targets.split_at(n);
        let (o0, o1) = self.out.split_at_mut(n);
        (
            PartialRows::new(self.shard, x0, t0, o0),
            PartialRows::new(self.shard, x1, t1, o1),
        )
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) {
        let shard = self.shard;
        let rows = self.x.chunks_exact(shard.len).zip(self.targets);
        for ((x, &t), out) in rows.zip(self.out) {
            let (total, sum_x) = totals(s, x, shard.with_sum_x);
            *out = CrossEntropyPartial {
                total: Partial::of_row(total, x.iter().map(|v| v.to_f32())),
                target_logit: t
                    .checked_sub(shard.offset)
                    .and_then(|i| x.get(i))
                    .map(|v| v.to_f32()),
                sum_x: shard.with_sum_x.then_some(sum_x),
                len: shard.len,
            };
        }
    }
}

/// What the gradient of every row of a shard shares.
#[derive(Clone, Copy)]
struct GradSpec {
    len: usize,
    offset: usize,
    smoothing: f64,
    ignore_index: Option<usize>,
    weight: f64,
}

/// A shard's gradient rows.
struct GradRows<'a, X> {
    spec: GradSpec,
    x: &'a [X],
    totals: &'a [CrossEntropyPartial],
    targets: &'a [usize],
    grad: &'a mut [f32],
}

impl<'a, X: Storage> GradRows<'a, X> {
    fn new(
        spec: GradSpec,
        x: &'a [X],
        totals: &'a [CrossEntropyPartial],
        targets: &'a [usize],
        grad: &'a mut [f32],
    ) -> Self {
        GradRows {
            spec,
            x,
            totals,
            targets,
            grad,
        }
    }
}

impl<X: Storage> WithLanes for GradRows<'_, X> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        let len = self.spec.len;
        driver::run(s, self, len);
    }
}

impl<X: Storage> RowTask for GradRows<'_, X> {
    fn rows(&self) -> usize {
        self.targets.len()
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let at = n * self.spec.len;
        let (x0, x1) = self.x.split_at(at);
        let (g0, g1) = self.grad.split_at_mut(at);
        let (t0, t1) = self.targets.split_at(n);
        let (p0, p1) = self.totals.split_at(n);
        (
            GradRows::new(self.spec, x0, p0, t0, g0),
            GradRows::new(self.spec, x1, p1, t1, g1),
        )
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) {
        let spec = self.spec;
        let rows = self
            .x
            .chunks_exact(spec.len)
            .zip(self.grad.chunks_exact_mut(spec.len))
            .zip(self.targets.iter().zip(self.totals));
        for ((x, g), (&t, total)) in rows {
            if spec.ignore_index == Some(t) {
                g.fill(0.0);
                continue;
            }
            let target = t.checked_sub(spec.offset).filter(|&i| i < spec.len);
            let row = (spec.smoothing, spec.weight, total.len);
            grad_from_total(&Sequential(s), x, g, total.total, target, row);
        }
    }
}
