"""Exact transition operators of tiny binary DAEs (D up to ~10), for tests."""

import itertools

import numpy as np


def states(d):
    return np.array(list(itertools.product([0.0, 1.0], repeat=d)))


def salt_and_pepper_matrix(s, p):
    # Factorises over units: keep w.p. 1 - p, else 0 or 1 with p / 2 each.
    per_unit = np.array([[1 - p / 2, p / 2], [p / 2, 1 - p / 2]])  # [x, x~]
    c = np.ones((len(s), len(s)))
    for i in range(s.shape[1]):
        col = s[:, i].astype(int)
        c *= per_unit[col][:, col]
    return c


def dae_transition(model):
    """T[x, x'] of a tied sigmoid/Bernoulli DAE with salt-and-pepper corruption."""
    p = {k: v.astype(np.float64) for k, v in model.get_params().items()}
    s = states(model.visible)
    h = 1 / (1 + np.exp(-(s @ p["W1"] + p["b1"])))
    dec = p["U1"] if "U1" in p else p["W1"].T
    mean = 1 / (1 + np.exp(-(h @ dec + p["b0"])))
    like = np.ones((len(s), len(s)))
    for i in range(model.visible):
        xi = s[:, i][None, :]
        like *= np.where(xi == 1, mean[:, i][:, None], 1 - mean[:, i][:, None])
    return salt_and_pepper_matrix(s, model.corruption.p) @ like


def stationary(t):
    vals, vecs = np.linalg.eig(t.T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    return v / v.sum()


def state_index(x):
    d = x.shape[-1]
    return (x @ (2 ** np.arange(d)[::-1])).astype(int)
