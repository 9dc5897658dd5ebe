"""Central finite differences of a model's scalar loss with respect to its named parameters
(perturbed through set_params), for the gradient tests."""

import numpy as np


def finite_differences(model, loss, names, eps=1e-6):
    """{name: d loss / d parameter}, loss() re-evaluated with each entry moved by +-eps."""
    params = model.get_params()
    out = {}
    for name in names:
        p = params[name]
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            up, down = p.copy(), p.copy()
            up[i] += eps
            down[i] -= eps
            model.set_params(**{name: up})
            lu = loss()
            model.set_params(**{name: down})
            fd[i] = (lu - loss()) / (2 * eps)
        model.set_params(**{name: p})
        out[name] = fd
    return out
