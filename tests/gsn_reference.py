"""A NumPy float64 GSN (Bengio et al. 2014) fed walkback's own random numbers: the reference the
GSN kernels are tested against. The visited visible states can be frozen (they are constants in
walk-back training), which makes the loss a smooth function of the parameters for finite
differences."""

import numpy as np

import reference as ref

STREAM_HIDDEN = 16


def _seg_list(model):
    return list(zip(model.segments, model.offsets, strict=True))


def _corrupt(model, x, seed, t):
    b, d = x.shape
    u = ref.uniform(seed, t, b, d, "corrupt")
    n = ref.library_normal(seed, t, b, d, 4)  # GSN segments' own normal streams
    xt = x.copy()
    for s, off in _seg_list(model):
        sl = slice(off, off + s.size)
        kind = {0: "none", 1: "salt_and_pepper", 2: "masking", 3: "gaussian", 4: "bit_flip"}[
            s.corruption.code
        ]
        xt[:, sl] = ref.corrupt(kind, s.corruption.param, x[:, sl], u[:, sl], n[:, sl])
    return xt


def _hidden(model, params, layer, below, above, seed, t, rows):
    """act(below W_l + above D_{l+1} + b_l + pre noise) + post noise; returns (h, y). A None
    neighbour is a zero layer (before the first step)."""
    L = len(model.hidden)
    a = np.tile(params[f"b{layer}"].astype(np.float64), (rows, 1))
    if below is not None:
        a = a + below @ params[f"W{layer}"]
    if above is not None and layer < L:
        dec = params[f"U{layer + 1}"] if f"U{layer + 1}" in params else params[f"W{layer + 1}"].T
        a = a + above @ dec
    b, n = a.shape[0], a.shape[1]
    noisy = not (layer == 1 and model.noiseless_h1)
    pre, post = model.hidden_noise.pre, model.hidden_noise.post
    if noisy and pre > 0:
        a = a + pre * ref.library_normal(seed, t, b, n, STREAM_HIDDEN + 2 * (layer - 1))
    y = ref.activate(model.activation, a)
    h = y.copy()
    if noisy and post > 0:
        h = h + post * ref.library_normal(seed, t, b, n, STREAM_HIDDEN + 2 * (layer - 1) + 1)
    return h, y


def _nll(model, o, x):
    total = np.zeros(x.shape[0])
    for s, off in _seg_list(model):
        sl = slice(off, off + s.size)
        if s.categorical:
            lse = np.logaddexp.reduce(o[:, sl], axis=1)
            v = x[:, sl].sum(1) * lse - (x[:, sl] * o[:, sl]).sum(1)
        elif s.reconstruction.name == "bernoulli":
            v = (np.logaddexp(0, o[:, sl]) - x[:, sl] * o[:, sl]).sum(1)
        else:
            sg = s.reconstruction.sigma
            v = (
                0.5 * ((x[:, sl] - o[:, sl]) / sg) ** 2 + np.log(sg) + 0.5 * np.log(2 * np.pi)
            ).sum(1)
        total += s.weight * v
    return total


def _sample(model, o, x, clamp, seed, t):
    """(new state, means) from the visible pre-activation o."""
    b, d = x.shape
    u = ref.uniform(seed, t, b, d, "sample")
    n = ref.library_normal(seed, t, b, d, 5)
    new, mean = x.copy(), o.copy()
    for s, off in _seg_list(model):
        sl = slice(off, off + s.size)
        if s.categorical:
            p = np.exp(o[:, sl] - np.logaddexp.reduce(o[:, sl], axis=1, keepdims=True))
            c = np.cumsum(p, axis=1)
            k = np.minimum((u[:, off : off + 1] >= c).sum(1), s.size - 1)
            mean[:, sl] = p
            new[:, sl] = np.eye(s.size)[k]
        elif s.reconstruction.name == "bernoulli":
            mean[:, sl] = 1 / (1 + np.exp(-o[:, sl]))
            new[:, sl] = (u[:, sl] < mean[:, sl]).astype(float)
        else:
            mean[:, sl] = o[:, sl]
            new[:, sl] = o[:, sl] + s.reconstruction.sigma * n[:, sl]
    if clamp is not None:
        new = np.where(clamp, x, new)
        mean = np.where(clamp, x, mean)
    return new, mean


def chain(model, params, x, seed, steps, clamp=None, states=None, target=None, last_only=False):
    """Runs `steps` chain steps from x (hidden layers at zero). Returns (states visited before
    each step, final state, per-step means, loss) where loss is the walk-back loss against
    `target` (per-row mean). With `states` given, step t starts from states[t] instead of the
    sampled state (frozen walk)."""
    L = len(model.hidden)
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = {layer: None for layer in range(1, L + 2)}
    xs = x.astype(np.float64)
    visited, means, loss = [], [], 0.0
    for t in range(steps):
        if states is not None:
            xs = states[t]
        visited.append(xs.copy())
        xt = _corrupt(model, xs, seed, t)
        new, ys = dict(h), {}
        for layer in range(1, L + 1, 2):
            below = xt if layer == 1 else h[layer - 1]
            new[layer], ys[layer] = _hidden(
                model, params, layer, below, h[layer + 1], seed, t, len(x)
            )
        for layer in range(2, L + 1, 2):
            new[layer], ys[layer] = _hidden(
                model, params, layer, new[layer - 1], new[layer + 1], seed, t, len(x)
            )
        h = new
        dec = params["U1"] if "U1" in params else params["W1"].T
        o = h[1] @ dec + params["b0"]
        if target is not None and (not last_only or t + 1 == steps):
            loss += _nll(model, o, target).mean()
        xs, mean = _sample(model, o, xs, clamp, seed, t)
        means.append(mean)
    return visited, xs, means, loss
