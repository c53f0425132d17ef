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
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
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
    let log_sum = input
        .iter()
        .map(|&v| (f64::from(v) - max).exp())
        .sum::<f64>()
        .ln();
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
    max + input
        .iter()
        .map(|&v| (f64::from(v) - max).exp())
        .sum::<f64>()
        .ln()
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
