//! Attention batches: scores laid out `[batch, heads, queries, keys]`, one
//! softmax row of `keys` values per (batch, head, query), masks broadcast
//! over batch and heads, the causal mask per (batch, head) block and
//! ALiBi's per-head slopes, as ggml's `ggml_soft_max_ext` applies them.

/// The layout of a batch of attention scores `[batch, heads, queries,
/// keys]`: rows of `keys` values, row `((b·heads) + h)·queries + i` for
/// batch `b`, head `h` and query `i` (the builder's row stride applies
/// between rows). Set with [`Softmax::attention`](crate::Softmax::attention).
///
/// Under it, a mask (keep or additive) holds one of: one row (`keys`
/// values, every row), `[queries, keys]` (broadcast over batch and heads),
/// `[batch, 1, queries, keys]` (broadcast over heads), or every row's.
/// The causal mask counts query `i` within its block: it keeps keys
/// `j ≤ i + offset`; [`Softmax::causal_end`](crate::Softmax::causal_end)
/// takes `offset = keys − queries` (the last query sees every key:
/// decoding with a KV cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attention {
    /// Sequences in the batch.
    pub batch: usize,
    /// Attention heads per sequence.
    pub heads: usize,
    /// Query positions: rows per (batch, head).
    pub queries: usize,
    /// Key positions: the row length.
    pub keys: usize,
}

impl Attention {
    /// `[batch, heads, queries, keys]`.
    pub fn new(batch: usize, heads: usize, queries: usize, keys: usize) -> Self {
        Attention {
            batch,
            heads,
            queries,
            keys,
        }
    }

    /// The number of rows, `batch·heads·queries` (saturating).
    pub fn rows(self) -> usize {
        self.batch
            .saturating_mul(self.heads)
            .saturating_mul(self.queries)
    }

    /// The query index and head of row `r` (`r` counted over the batch).
    pub(crate) fn query_and_head(self, r: usize) -> (usize, usize) {
        let q = self.queries.max(1);
        (r % q, (r / q) % self.heads.max(1))
    }

    /// The row of a mask of `mask_len` values that row `r` reads (one of
    /// the shapes the type's docs list; checked before).
    pub(crate) fn mask_row(self, r: usize, mask_len: usize) -> usize {
        let (q, k) = (self.queries.max(1), self.keys);
        let (i, _) = self.query_and_head(r);
        if mask_len == k {
            0
        } else if mask_len == q.saturating_mul(k) {
            i
        } else if mask_len == self.batch.saturating_mul(q).saturating_mul(k) {
            r / q.saturating_mul(self.heads.max(1)) * q + i
        } else {
            r
        }
    }

    /// Whether a mask of `mask_len` values has one of the shapes.
    pub(crate) fn takes_mask(self, mask_len: usize) -> bool {
        let (b, q, k) = (self.batch, self.queries, self.keys);
        [
            k,
            q.saturating_mul(k),
            b.saturating_mul(q).saturating_mul(k),
        ]
        .contains(&mask_len)
            || mask_len == self.rows().saturating_mul(k)
    }
}

/// ALiBi's slope for head `head` of `heads` with `max_bias` (ggml's
/// `ggml_soft_max_ext`): with `n = 2^⌊log2 heads⌋`, `m0 = 2^(−max_bias/n)`
/// and `m1 = 2^(−max_bias/2/n)`, head `h < n` gets `m0^(h+1)` and the
/// others `m1^(2(h−n)+1)`, in f64 and rounded to f32. A `max_bias` of 0
/// gives 1 for every head.
pub fn alibi_slope(max_bias: f32, heads: usize, head: usize) -> f32 {
    Alibi::new(max_bias, heads).slope(head)
}

/// ALiBi's per-head slopes for one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Alibi {
    n: usize,
    m0: f64,
    m1: f64,
}

impl Alibi {
    pub(crate) fn new(max_bias: f32, heads: usize) -> Alibi {
        let n = 1usize << heads.max(1).ilog2();
        let bias = f64::from(max_bias.max(0.0));
        Alibi {
            n,
            m0: 2f64.powf(-bias / n as f64),
            m1: 2f64.powf(-bias / 2.0 / n as f64),
        }
    }

    pub(crate) fn slope(self, head: usize) -> f32 {
        let power = |m: f64, k: usize| m.powi(i32::try_from(k).unwrap_or(i32::MAX));
        let slope = if head < self.n {
            power(self.m0, head + 1)
        } else {
            power(self.m1, 2 * (head - self.n) + 1)
        };
        slope as f32
    }
}
