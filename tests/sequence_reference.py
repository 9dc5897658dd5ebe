"""A float64 NumPy reference of the sequence GSN's walk-back loss (csrc/walkback/sequence_gsn.h)
with the hidden noise and the label corruption off, fed the library's sampling uniforms."""

import numpy as np

import walkback as wb


def conv(x, W, lens):
    """y[n, l] = sum_k x[n, l + k - w//2] @ W_k for l < lens[n] (zero padding)."""
    n, length, c = x.shape
    width = W.shape[0] // c
    y = np.zeros((n, length, W.shape[1]))
    for i in range(n):
        for pos in range(lens[i]):
            for k in range(width):
                src = pos + k - width // 2
                if 0 <= src < lens[i]:
                    y[i, pos] += x[i, src] @ W[k * c : (k + 1) * c]
    return y


def conv_t(h, W, c, lens):
    """The adjoint of conv: out[n, l + k - w//2] += h[n, l] @ W_k^T."""
    n, length, _ = h.shape
    width = W.shape[0] // c
    out = np.zeros((n, length, c))
    for i in range(n):
        for pos in range(lens[i]):
            for k in range(width):
                dst = pos + k - width // 2
                if 0 <= dst < lens[i]:
                    out[i, dst] += W[k * c : (k + 1) * c] @ h[i, pos]
    return out


def walkback_loss(m, x, y, lens, steps, seed):
    """The model m (noise 0, corruption 0) run `steps` steps from the true labels."""
    p = {k: v.astype(np.float64) for k, v in m.get_params().items()}
    n, length, cin = x.shape
    K, pool = m.classes, m.pool
    c1 = m.channels[0]
    width = m.width
    lens2 = (lens + pool - 1) // pool
    L2 = (length + pool - 1) // pool
    valid = np.arange(length)[None, :] < lens[:, None]
    Y = np.zeros((n, length, K))
    for i in range(n):
        Y[i, np.arange(lens[i]), y[i, : lens[i]]] = 1
    cx = cin + K
    rows = np.array([k * cx + cin + j for k in range(width) for j in range(K)])
    W1y = p["W1"][rows]
    h2 = None
    total = 0.0
    for s in range(steps):
        inp = np.concatenate([x.astype(np.float64), Y], axis=2) * valid[:, :, None]
        a1 = conv(inp, p["W1"], lens) + p["b1"] * valid[:, :, None]
        if h2 is not None:
            td = conv_t(h2, p["W2"], c1, lens2)
            for i in range(n):
                for pos in range(lens[i]):
                    a1[i, pos] += td[i, pos // pool] / pool
        h1 = np.tanh(a1) * valid[:, :, None]
        pooled = np.zeros((n, L2, c1))
        for i in range(n):
            for pos in range(lens[i]):
                pooled[i, pos // pool] += h1[i, pos] / pool
        valid2 = np.arange(L2)[None, :] < lens2[:, None]
        h2 = np.tanh(conv(pooled, p["W2"], lens2) + p["b2"] * valid2[:, :, None])
        h2 = h2 * valid2[:, :, None]
        logits = conv_t(h1, W1y, K, lens) + p["c"]
        logits -= logits.max(axis=2, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
        for i in range(n):
            total -= logp[i, np.arange(lens[i]), y[i, : lens[i]]].sum()
        u = wb.ops.uniform(n, length, seed=seed, step=s, stream="sample")
        probs = np.exp(logp)
        Y = np.zeros_like(Y)
        for i in range(n):
            for pos in range(lens[i]):
                cdf = np.cumsum(probs[i, pos])
                pick = int(np.searchsorted(cdf, u[i, pos], side="right"))
                Y[i, pos, min(pick, K - 1)] = 1
    return total / lens.sum()
