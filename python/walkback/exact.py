"""Exact evaluation of tiny binary DAEs: the chain's transition operator over all 2^D visible
states, its stationary distribution, likelihoods and KL divergences under it, and how far it is
from detailed balance (Alain et al.: the transition operator of a GSN need not be reversible).

These make the book's claims testable: the stationary distribution of a trained chain
approaches the data distribution, and walk-back removes spurious modes (Bengio et al. 2013).

States are indexed as binary numbers with unit 0 the most significant bit: ``states(d)[i]``
is the state of index i, ``state_index(x)`` the inverse. A D-unit operator is a dense
2^D x 2^D float64 matrix, so D is limited to 12 (128 MB); above that it cannot be formed.
Only DAEs qualify: a GSN's hidden state is continuous (Gaussian hidden noise), so its chain has
no finite state space.
"""

from __future__ import annotations

import numpy as np

from . import _checks

MAX_VISIBLE = 12


def states(d: int) -> np.ndarray:
    """All 2^d binary states (float64), row i being the binary expansion of i."""
    d = _checks.check_int("d", d, 1, MAX_VISIBLE)
    i = np.arange(2**d)[:, None]
    return ((i >> np.arange(d - 1, -1, -1)[None, :]) & 1).astype(np.float64)


def state_index(x) -> np.ndarray:
    """The index of each binary row of x (unit 0 the most significant bit)."""
    x = np.asarray(x)
    if not np.all((x == 0) | (x == 1)):
        raise ValueError("state_index: expected binary rows (0 or 1)")
    d = x.shape[-1]
    return (x.astype(np.int64) @ (1 << np.arange(d - 1, -1, -1))).astype(np.int64)


def _activate(name, a):
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-a))
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "leaky_relu":
        return np.where(a > 0, a, 0.05 * a)
    return a


def _corruption_channel(model) -> np.ndarray:
    """The per-unit channel K[x, x~] of the model's corruption of binary units."""
    c = model.corruption
    name, p = type(c).__name__, c.param
    if name == "NoCorruption":
        return np.eye(2)
    if name == "SaltAndPepper":
        return np.array([[1 - p / 2, p / 2], [p / 2, 1 - p / 2]])
    if name == "BitFlip":
        return np.array([[1 - p, p], [p, 1 - p]])
    if name == "Masking":
        return np.array([[1.0, 0.0], [p, 1 - p]])
    raise ValueError(f"exact: the corruption {c!r} does not keep binary units binary")


def _check_model(model):
    from .dae import DAE

    if not isinstance(model, DAE):
        raise TypeError(
            f"exact: expected a walkback.DAE, got {type(model).__name__} (a GSN's hidden state "
            "is continuous, so its chain has no finite state space)"
        )
    if model.reconstruction.name != "bernoulli":
        raise ValueError("exact: the model needs Bernoulli (binary) visible units")
    if model.visible > MAX_VISIBLE:
        raise ValueError(
            f"exact: D = {model.visible} is too large; the operator is 2^D x 2^D, so D <= "
            f"{MAX_VISIBLE}"
        )


def _log_or_neg_inf(a):
    with np.errstate(divide="ignore"):
        return np.log(a)


def transition_matrix(model, clamp=None, values=None) -> np.ndarray:
    """T[s, s'] = P(x_{t+1} = s' | x_t = s) of a binary DAE's chain, in float64:
    sum over corrupted x~ of C(x~ | s) prod_d Bernoulli(s'_d; p(x_d = 1 | x~)).

    With ``clamp`` (bool mask (D,)) and ``values`` (binary (D,)), the chain of the clamped
    sampler: clamped units hold ``values`` (and are still corrupted before encoding), only the
    free units move; T is then over the 2^F states of the F free units, indexed over them.
    """
    _check_model(model)
    d = model.visible
    s = states(d)
    k = _corruption_channel(model)
    lk = _log_or_neg_inf(k)
    # log C[s, x~] = sum over units of log K[s_d, x~_d]: four GEMMs of counts.
    n = {(a, b): (s if a else 1 - s) @ (s if b else 1 - s).T for a in (0, 1) for b in (0, 1)}
    with np.errstate(invalid="ignore"):
        logc = sum(np.where(n[a, b] > 0, n[a, b] * lk[a, b], 0.0) for a in (0, 1) for b in (0, 1))
    corrupt = np.exp(logc)
    p = {name: v.astype(np.float64) for name, v in model.get_params().items()}
    h = _activate(model.activation, s @ p["W1"] + p["b1"])
    dec = p["U1"] if "U1" in p else p["W1"].T
    o = h @ dec + p["b0"]  # pre-activation of p(x | x~) for each corrupted state x~
    log_on, log_off = -np.logaddexp(0.0, -o), -np.logaddexp(0.0, o)
    if clamp is None:
        if values is not None:
            raise ValueError("values: give it together with clamp")
        like = np.exp(log_off.sum(1)[:, None] + (log_on - log_off) @ s.T)  # [x~, s']
        return corrupt @ like
    mask = np.asarray(clamp, dtype=bool)
    if mask.shape != (d,):
        raise ValueError(f"clamp: expected a bool mask of shape ({d},), got {mask.shape}")
    if values is None:
        raise ValueError("values: clamped units need their values (binary, shape (D,))")
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (d,) or not np.all((v == 0) | (v == 1)):
        raise ValueError(f"values: expected binary values of shape ({d},)")
    free = ~mask
    f = int(free.sum())
    if f == 0:
        return np.ones((1, 1))
    sf = states(f)
    rows = np.flatnonzero(np.all(s[:, mask] == v[mask], axis=1))  # current states
    order = state_index(s[rows][:, free])
    rows = rows[np.argsort(order)]  # row a: the state whose free units have index a
    lf_on, lf_off = log_on[:, free], log_off[:, free]
    like = np.exp(lf_off.sum(1)[:, None] + (lf_on - lf_off) @ sf.T)  # [x~, s'_free]
    return corrupt[rows] @ like


def stationary_distribution(model_or_t, clamp=None, values=None) -> np.ndarray:
    """The stationary distribution pi (pi T = pi, sum 1) of a DAE's chain or of a given
    transition matrix, from a direct linear solve in float64."""
    t = (
        np.asarray(model_or_t, dtype=np.float64)
        if isinstance(model_or_t, np.ndarray)
        else transition_matrix(model_or_t, clamp, values)
    )
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"stationary_distribution: expected a square matrix, got {t.shape}")
    n = len(t)
    a = t.T - np.eye(n)
    a[-1] = 1.0  # replace one (redundant) balance equation by sum(pi) = 1
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    pi = np.linalg.solve(a, rhs)
    return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


def _data_distribution(x, d) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"x: expected binary rows of shape (n, {d}), got {x.shape}")
    counts = np.bincount(state_index(x), minlength=2**d).astype(np.float64)
    return counts / counts.sum()


def log_likelihood(model, x) -> float:
    """Mean log pi(x) over the binary rows of x under the chain's stationary distribution."""
    pi = stationary_distribution(model)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != model.visible:
        raise ValueError(f"x: expected binary rows of shape (n, {model.visible}), got {x.shape}")
    with np.errstate(divide="ignore"):
        return float(np.mean(np.log(pi[state_index(x)])))


def kl(data, model) -> float:
    """KL(p_data || pi) in nats, p_data the empirical distribution of the binary rows of
    ``data`` and pi the chain's stationary distribution: 0 when the chain's equilibrium is the
    data distribution; large when the chain puts little mass on the data (spurious modes)."""
    pi = stationary_distribution(model)
    p = _data_distribution(data, model.visible)
    on = p > 0
    with np.errstate(divide="ignore"):
        return float(np.sum(p[on] * (np.log(p[on]) - np.log(pi[on]))))


def detailed_balance_gap(model) -> float:
    """0.5 sum_{s, s'} |pi_s T_ss' - pi_s' T_s's|: the probability flux that a reversible chain
    would balance (0 for a chain in detailed balance, at most 1)."""
    t = transition_matrix(model)
    pi = stationary_distribution(t)
    flux = pi[:, None] * t
    return float(0.5 * np.abs(flux - flux.T).sum())
