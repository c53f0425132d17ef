//! Fused cross-entropy from logits, with its gradient in the same call.

use crate::dispatch::{self, WithLanes};
use crate::driver::{self, RowTask};
use crate::element::{Element, Slice, SliceMut, Storage};
use crate::error::{Argument, Parameter};
use crate::kernels::cross_entropy::{Target, loss, loss_and_grad};
#[cfg(feature = "rayon")]
use crate::kernels::exec::Parallel;
use crate::kernels::exec::Sequential;
use crate::lanes::Lanes;
use crate::{Error, Softmax, shape};

mod sharded;
pub use sharded::{CrossEntropyPartial, cross_entropy_partial, cross_entropy_shard};

/// How the per-row losses become the result's `loss`, and how the
/// gradient is weighted (as in PyTorch's `cross_entropy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over the rows that are not ignored (NaN if every row is);
    /// each row's gradient is weighted by 1/(that count).
    #[default]
    Mean,
    /// The sum over the rows; gradients unweighted.
    Sum,
    /// No reduction: the losses are in [`CrossEntropy::per_row`] (and
    /// `loss` holds their sum); gradients unweighted.
    None,
}

/// Settings of [`cross_entropy`]. `G` is the gradient's element type: f32
/// (the default), or the logits' type, set by
/// [`with_grad`](CrossEntropyOptions::with_grad).
#[derive(Debug)]
pub struct CrossEntropyOptions<'g, G = f32> {
    /// Label smoothing ε in [0, 1): the target distribution is
    /// `(1 − ε)·one_hot + ε/row_len`.
    pub label_smoothing: f32,
    /// Rows whose target is this index count neither in the sum nor in the
    /// mean's denominator, and get a zero gradient.
    pub ignore_index: Option<usize>,
    /// See [`Reduction`].
    pub reduction: Reduction,
    /// When given (as long as the logits), receives d(loss)/d(logits):
    /// `(softmax − target distribution)·weight` for each row.
    pub grad: Option<&'g mut [G]>,
}

impl Default for CrossEntropyOptions<'_> {
    /// ε 0, no ignore index, the mean, no gradient.
    fn default() -> Self {
        CrossEntropyOptions {
            label_smoothing: 0.0,
            ignore_index: None,
            reduction: Reduction::Mean,
            grad: None,
        }
    }
}

impl<'g, G: Element> CrossEntropyOptions<'g, G> {
    /// These settings with `grad` receiving the gradient, of any element
    /// type the call takes (f32, or the logits' type).
    ///
    /// ```
    /// use simd_softmax::half::bf16;
    /// use simd_softmax::{CrossEntropyOptions, cross_entropy};
    /// let logits: Vec<bf16> = [1.0f32, 2.0, 3.0].map(bf16::from_f32).to_vec();
    /// let mut grad = vec![bf16::ZERO; 3];
    /// let options = CrossEntropyOptions::default().with_grad(&mut grad);
    /// cross_entropy(&logits, 3, &[2], options)?;
    /// assert!(grad[2].to_f32() < 0.0 && grad[0].to_f32() > 0.0);
    /// # Ok::<(), simd_softmax::Error>(())
    /// ```
    pub fn with_grad<H: Element>(self, grad: &'g mut [H]) -> CrossEntropyOptions<'g, H> {
        settings(&self, Some(grad))
    }
}

/// The result of [`cross_entropy`].
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropy {
    /// The reduced loss: mean or sum of the per-row losses in f64, rounded
    /// once (for [`Reduction::None`], their sum).
    pub loss: f32,
    /// Each row's loss (0 for an ignored row).
    pub per_row: Vec<f32>,
    /// How many rows were not ignored.
    pub counted: usize,
}

/// Cross-entropy of each row of `row_len` logits against its target
/// index, fused with its gradient: per row one read of the logits without
/// `grad` (online max and sum), and with `grad` the blocked softmax's two
/// passes writing the gradient directly. Rows run in parallel on the
/// current rayon pool; the reduction adds the per-row losses in row order
/// in f64, so the result does not depend on the thread count.
///
/// The loss of a row is `−Σ q_i·ln p_i` with `p = softmax(x)` and `q` the
/// smoothed one-hot target, computed as
/// `(1 − ε)·(max − x_t) + ε·(max − mean x) + ln Σ exp(x − max)`: within
/// 2^-22·L + 2^-21 of the exact value. A target whose logit is −inf gives
/// +inf (not NaN); NaN in a row gives NaN; +inf logits follow the softmax
/// rule (the target at +inf among k of them costs ln k, any other +inf).
/// f16 and bf16 logits convert exactly in registers and give the bits of
/// the call on the logits in f32; their gradient is f32 or, with
/// [`CrossEntropyOptions::with_grad`], of their own type: then the f32
/// gradient rounded once to it (within the f32 gradient's bound plus half
/// an ULP of the type; its max and sum from the online pass, its values
/// written once in a second read).
///
/// Errors (nothing written): `targets` not one per row, `grad` not as long
/// as `logits`, a target out of range that is not `ignore_index`
/// ([`Error::TargetOutOfRange`] names the row), ε outside [0, 1), bad row
/// shapes, a gradient type other than f32 or the logits'
/// ([`Error::UnsupportedElements`]).
///
/// ```
/// use simd_softmax::{CrossEntropyOptions, Reduction, cross_entropy};
/// let logits = [0.0f32, 0.0, 0.0, 0.0, 10.0, 0.0];
/// let mut grad = [0.0f32; 6];
/// let ce = cross_entropy(&logits, 3, &[1, 1], CrossEntropyOptions {
///     reduction: Reduction::Sum,
///     grad: Some(&mut grad),
///     ..Default::default()
/// })?;
/// assert!((ce.per_row[0] - 3f32.ln()).abs() < 1e-6);
/// assert!(ce.per_row[1] < 1e-3);
/// assert!((grad[1] + 2.0 / 3.0).abs() < 1e-6); // p − 1 at the target
/// # Ok::<(), simd_softmax::Error>(())
/// ```
pub fn cross_entropy<E: Element, G: Element>(
    logits: &[E],
    row_len: usize,
    targets: &[usize],
    options: CrossEntropyOptions<'_, G>,
) -> Result<CrossEntropy, Error> {
    Softmax::new().run_cross_entropy(logits, row_len, targets, options)
}

/// [`cross_entropy`] on `sm`'s backend, logits of any element type (each
/// its own compiled rows, converted in registers).
pub(crate) fn run<G: Element>(
    sm: &Softmax,
    logits: Slice<'_>,
    row_len: usize,
    targets: &[usize],
    options: CrossEntropyOptions<'_, G>,
) -> Result<CrossEntropy, Error> {
    let untyped = settings(&options, None);
    let grad = options.grad.map(|g| G::slice_mut(g));
    run_untyped(sm, logits, row_len, targets, untyped, grad)
}

/// [`run`], not generic: each (logits, gradient) pair taken is compiled
/// here once.
fn run_untyped(
    sm: &Softmax,
    logits: Slice<'_>,
    row_len: usize,
    targets: &[usize],
    options: CrossEntropyOptions<'_>,
    grad: Option<SliceMut<'_>>,
) -> Result<CrossEntropy, Error> {
    match (logits, grad) {
        (Slice::F32(x), None) => {
            run_typed::<_, f32>(sm, x, row_len, targets, settings(&options, None))
        }
        (Slice::F16(x), None) => {
            run_typed::<_, f32>(sm, x, row_len, targets, settings(&options, None))
        }
        (Slice::Bf16(x), None) => {
            run_typed::<_, f32>(sm, x, row_len, targets, settings(&options, None))
        }
        (Slice::F32(x), Some(SliceMut::F32(g))) => {
            run_typed(sm, x, row_len, targets, settings(&options, Some(g)))
        }
        (Slice::F16(x), Some(SliceMut::F32(g))) => {
            run_typed(sm, x, row_len, targets, settings(&options, Some(g)))
        }
        (Slice::Bf16(x), Some(SliceMut::F32(g))) => {
            run_typed(sm, x, row_len, targets, settings(&options, Some(g)))
        }
        (Slice::F16(x), Some(SliceMut::F16(g))) => {
            run_typed(sm, x, row_len, targets, settings(&options, Some(g)))
        }
        (Slice::Bf16(x), Some(SliceMut::Bf16(g))) => {
            run_typed(sm, x, row_len, targets, settings(&options, Some(g)))
        }
        (logits, Some(grad)) => Err(Error::UnsupportedElements {
            input: logits.element_type(),
            output: grad.element_type(),
        }),
    }
}

/// `options`' settings with `grad`.
fn settings<'g, G, H>(
    options: &CrossEntropyOptions<'_, G>,
    grad: Option<&'g mut [H]>,
) -> CrossEntropyOptions<'g, H> {
    CrossEntropyOptions {
        label_smoothing: options.label_smoothing,
        ignore_index: options.ignore_index,
        reduction: options.reduction,
        grad,
    }
}

fn run_typed<X: Storage, G: Storage>(
    sm: &Softmax,
    logits: &[X],
    row_len: usize,
    targets: &[usize],
    options: CrossEntropyOptions<'_, G>,
) -> Result<CrossEntropy, Error> {
    let rows = shape::rows(logits.len(), row_len)?;
    shape::argument_length(Argument::Targets, targets.len(), rows)?;
    if let Some(grad) = &options.grad {
        shape::argument_length(Argument::Grad, grad.len(), logits.len())?;
    }
    let eps = options.label_smoothing;
    let ignored = |t: usize| options.ignore_index == Some(t);
    if let Some((row, &target)) = targets
        .iter()
        .enumerate()
        .find(|&(_, &t)| !ignored(t) && t >= row_len)
    {
        return Err(Error::TargetOutOfRange {
            row,
            target,
            row_len,
        });
    }
    let (counted, weight) = checked_weight(eps, targets, options.ignore_index, options.reduction)?;
    let backend = sm.resolved_backend()?;
    let spec = RowSpec {
        row_len,
        smoothing: f64::from(eps),
        ignore_index: options.ignore_index,
        weight,
    };
    let mut losses = vec![0.0f64; rows];
    if rows > 0 {
        let task = CrossEntropyRows {
            spec,
            logits,
            targets,
            grad: options.grad,
            losses: &mut losses,
        };
        dispatch::run(backend, task)?;
    }
    Ok(reduced(losses, counted, options.reduction))
}

/// Checks ε; returns how many rows count and each counted row's gradient
/// weight under `reduction`.
fn checked_weight(
    eps: f32,
    targets: &[usize],
    ignore_index: Option<usize>,
    reduction: Reduction,
) -> Result<(usize, f64), Error> {
    if !(0.0..1.0).contains(&eps) {
        return Err(Error::InvalidParameter {
            name: Parameter::LabelSmoothing,
            value: f64::from(eps),
        });
    }
    let counted = targets.iter().filter(|&&t| ignore_index != Some(t)).count();
    let weight = match reduction {
        Reduction::Mean => 1.0 / counted as f64,
        Reduction::Sum | Reduction::None => 1.0,
    };
    Ok((counted, weight))
}

/// The result from the per-row losses (f64, 0 for ignored rows).
fn reduced(losses: Vec<f64>, counted: usize, reduction: Reduction) -> CrossEntropy {
    let total: f64 = losses.iter().sum();
    let loss = match reduction {
        Reduction::Mean => total / counted as f64,
        Reduction::Sum | Reduction::None => total,
    };
    CrossEntropy {
        loss: loss as f32,
        per_row: losses.iter().map(|&l| l as f32).collect(),
        counted,
    }
}

/// What every row shares.
#[derive(Clone, Copy)]
struct RowSpec {
    row_len: usize,
    smoothing: f64,
    ignore_index: Option<usize>,
    weight: f64,
}

impl RowSpec {
    fn target(&self, t: usize) -> Option<Target> {
        (self.ignore_index != Some(t)).then_some(Target {
            index: t,
            smoothing: self.smoothing,
        })
    }
}

/// Rows of a cross-entropy call: the losses, and the gradient when asked.
struct CrossEntropyRows<'a, X, G> {
    spec: RowSpec,
    logits: &'a [X],
    targets: &'a [usize],
    grad: Option<&'a mut [G]>,
    losses: &'a mut [f64],
}

impl<X: Storage, G: Storage> WithLanes for CrossEntropyRows<'_, X, G> {
    type Output = ();
    fn with<S: Lanes>(self, s: S) {
        let row_len = self.spec.row_len;
        driver::run(s, self, row_len);
    }
}

impl<X: Storage, G: Storage> RowTask for CrossEntropyRows<'_, X, G> {
    fn rows(&self) -> usize {
        self.targets.len()
    }

    fn split_at(self, n: usize) -> (Self, Self) {
        let at = n * self.spec.row_len;
        let (x0, x1) = self.logits.split_at(at);
        let (t0, t1) = self.targets.split_at(n);
        let (l0, l1) = self.losses.split_at_mut(n);
        let (g0, g1) = match self.grad {
            Some(g) => {
                let (g0, g1) = g.split_at_mut(at);
                (Some(g0), Some(g1))
            }
            None => (None, None),
        };
        let part = |logits, targets, grad, losses| CrossEntropyRows {
            spec: self.spec,
            logits,
            targets,
            grad,
            losses,
        };
        (part(x0, t0, g0, l0), part(x1, t1, g1, l1))
    }

    #[cfg_attr(not(unoptimized), inline(always))]
    fn run<S: Lanes>(self, s: S) {
        let row_len = self.spec.row_len;
        match self.grad {
            Some(grad) => {
                let rows = self
                    .logits
                    .chunks_exact(row_len)
                    .zip(grad.chunks_exact_mut(row_len))
                    .zip(self.targets)
                    .zip(self.losses.iter_mut());
                for (((x, g), &t), loss_out) in rows {
                    *loss_out = match self.spec.target(t) {
                        Some(t) => loss_and_grad(&Sequential(s), x, g, t, self.spec.weight),
                        None => {
                            g.fill(G::from_f32(0.0));
                            0.0
                        }
                    };
                }
            }
            None => {
                let rows = self
                    .logits
                    .chunks_exact(row_len)
                    .zip(self.targets)
                    .zip(self.losses.iter_mut());
                for ((x, &t), loss_out) in rows {
                    *loss_out = self.spec.target(t).map_or(0.0, |t| loss(s, x, t));
                }
            }
        }
    }

    /// One long row with a gradient: its blocks across the pool.
    fn splits(&self) -> bool {
        self.grad.is_some()
    }

    #[cfg(feature = "rayon")]
    fn run_split<S: Lanes>(self, s: S) {
        let Some(grad) = self.grad else {
            return;
        };
        self.losses[0] = match self.spec.target(self.targets[0]) {
            None => {
                grad.fill(G::from_f32(0.0));
                0.0
            }
            Some(t) => loss_and_grad(&Parallel(s), self.logits, grad, t, self.spec.weight),
        };
    }
}
