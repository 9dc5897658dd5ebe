"""Central finite differences of a model's scalar loss with respect to its named parameters
(perturbed through set_params), for the gradient tests."""

import numpy as np


def _central(model, loss, name, p, i, eps):
    """(loss with p[i] + eps - loss with p[i] - eps) / (2 eps); the caller restores p."""
    up, down = p.copy(), p.copy()
    up[i] += eps
    down[i] -= eps
    model.set_params(**{name: up})
    lu = loss()
    model.set_params(**{name: down})
    return (lu - loss()) / (2 * eps)


def finite_differences(model, loss, names, eps=1e-6):
    """{name: d loss / d parameter}, loss() re-evaluated with each entry moved by +-eps."""
    params = model.get_params()
    out = {}
    for name in names:
        p = params[name]
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            fd[i] = _central(model, loss, name, p, i, eps)
        model.set_params(**{name: p})
        out[name] = fd
    return out


def sampled_finite_differences(model, loss, grads, per_array=5, eps=1e-6, seed=0):
    """{name: [(analytic, finite difference)]} at a few random entries of each array: for
    models too wide to difference every entry."""
    rng, params, out = np.random.default_rng(seed), model.get_params(), {}
    for name, g in grads.items():
        p = params[name]
        entries = [tuple(int(rng.integers(0, n)) for n in p.shape) for _ in range(per_array)]
        out[name] = [(g[i], _central(model, loss, name, p, i, eps)) for i in entries]
        model.set_params(**{name: p})
    return out
