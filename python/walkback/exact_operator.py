"""The transition operator of a tiny binary DAE's chain, applied without forming it.

A dense 2^D x 2^D operator stops at D = 14 (2 GiB in float64); at D = 16 it would take 32 GiB.
It never needs to be formed, because both of its factors have structure:

- the corruption C[s, x~] = prod_d K[s_d, x~_d] is a Kronecker product of 2 x 2 channels, so
  it splits into one matrix over the first half of the units and one over the second;
- the reconstruction R[x~, s'] = prod_d Bernoulli(s'_d; q_d(x~)) factorises over the units
  given x~, so it is the elementwise product of one table over the first half of the next
  state's units and one over the second, R[x~, (a, b)] = RA[x~, a] * RB[x~, b].

One step of a distribution, pi -> pi C R, is then four GEMMs whose sizes are about 2^D x 2^(D/2)
(0.1 s at D = 16 on two cores) instead of one with 2^(2D) entries. A clamped chain is the same
operator with the clamped units' rows of C fixed at their values and R over the free units.

States are indexed as in ``walkback.exact``: binary numbers with unit 0 the most significant.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from . import _checks
from ._checks import check_int
from ._progress import progress_bar

MAX_VISIBLE = 16  # 2^16 states: the operator's tables take 2 x 128 MiB at D = 16
MAX_DENSE = 14  # a dense 2^14 x 2^14 operator takes 2 GiB in float64


def binary_states(d: int) -> np.ndarray:
    """All 2^d binary states (float64), row i being the binary expansion of i (unit 0 first)."""
    i = np.arange(2**d)[:, None]
    return ((i >> np.arange(d - 1, -1, -1)[None, :]) & 1).astype(np.float64)


def _activate(name, a):
    if name == "sigmoid":  # in log space: saturated units give exact 0 and 1, no overflow
        return np.exp(-np.logaddexp(0.0, -a))
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "leaky_relu":
        return np.where(a > 0, a, 0.05 * a)
    return a


def corruption_channel(model) -> np.ndarray:
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


def _halves(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cut = (len(units) + 1) // 2
    return units[:cut], units[cut:]


def parse_clamp(d: int, clamp, values) -> tuple[np.ndarray, np.ndarray]:
    """The clamp mask (bool (d,)) and the clamped values (binary float64 (d,)), checked; no
    clamp is an all-False mask."""
    if clamp is None:
        if values is not None:
            raise ValueError("values: give it together with clamp")
        return np.zeros(d, dtype=bool), np.zeros(d)
    mask = _checks.as_bool_mask("clamp", clamp)  # as model.sample's
    if mask.shape != (d,):
        raise ValueError(f"clamp: expected a bool mask of shape ({d},), got {mask.shape}")
    if values is None:
        raise ValueError("values: clamped units need their values (binary, shape (D,))")
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (d,) or not np.all((v == 0) | (v == 1)):
        raise ValueError(f"values: expected binary values of shape ({d},)")
    return mask, v


class TransitionOperator:
    """T[s, s'] = P(x_{t+1} = s' | x_t = s) of a binary DAE's chain over its free units, kept
    as factors: ``step(pi)`` is pi T, ``columns(j0, j1)`` the dense columns T[:, j0:j1].

    ``clamp`` (bool mask (D,)) and ``values`` (binary (D,)) give the clamped chain: clamped units
    hold their values (and are still corrupted before encoding), the F free units move, and the
    operator is over the 2^F free states. The model is read once, at construction.
    """

    def __init__(self, model, clamp=None, values=None):
        d = model.visible
        k = corruption_channel(model)
        mask, v = parse_clamp(d, clamp, values)
        self.visible = d
        self.free = np.flatnonzero(~mask)
        self.n = 2 ** len(self.free)
        # Rows of C: a free unit keeps its 2 x 2 channel, a clamped one the row of its value.
        # Kronecker order is unit order, so a row index is the free state's binary number.
        factors = [k if not mask[u] else k[int(v[u])][None, :] for u in range(d)]
        first, second = _halves(np.arange(d))
        self._ga = reduce(np.kron, [factors[u] for u in first], np.ones((1, 1)))
        self._gb = reduce(np.kron, [factors[u] for u in second], np.ones((1, 1)))
        # Reconstruction tables over the free units, one per half of them, for every x~.
        p = {name: a.astype(np.float64) for name, a in model.get_params().items()}
        s = binary_states(d)
        h = _activate(model.activation, s @ p["W1"] + p["b1"])
        dec = p["U1"] if "U1" in p else p["W1"].T
        o = h @ dec[:, self.free] + p["b0"][self.free]
        log_on, log_off = -np.logaddexp(0.0, -o), -np.logaddexp(0.0, o)
        fa, fb = _halves(np.arange(len(self.free)))
        gain = log_on - log_off
        self._ra, self._rb = (
            np.exp(log_off[:, f].sum(1)[:, None] + gain[:, f] @ binary_states(len(f)).T)
            for f in (fa, fb)
        )

    def step(self, pi: np.ndarray) -> np.ndarray:
        """pi T for a distribution pi over the 2^F free states (any float64 vector)."""
        pi = np.asarray(pi, dtype=np.float64)
        if pi.shape != (self.n,):
            raise ValueError(f"pi: expected shape ({self.n},), got {pi.shape}")
        # (pi C)[x~a, x~b] = sum_{a, b} pi[a, b] GA[a, x~a] GB[b, x~b]
        mu = self._ga.T @ pi.reshape(self._ga.shape[0], self._gb.shape[0]) @ self._gb
        # (mu R)[a, b] = sum_x~ mu[x~] RA[x~, a] RB[x~, b]
        return (self._ra.T @ (mu.reshape(-1, 1) * self._rb)).reshape(-1)

    def columns(self, j0: int, j1: int) -> np.ndarray:
        """The dense columns T[:, j0:j1] (all 2^F rows)."""
        if not 0 <= j0 <= j1 <= self.n:
            raise ValueError(f"columns: expected 0 <= j0 <= j1 <= {self.n}, got ({j0}, {j1})")
        nb = self._rb.shape[1]
        j = np.arange(j0, j1)
        r = self._ra[:, j // nb] * self._rb[:, j % nb]  # R[:, j], (2^D, m)
        na, nxb = self._ga.shape[1], self._gb.shape[1]
        # C R[:, j] = (GA (x) GB) R[:, j]: GA along the first half of x~, GB along the second.
        t = (self._ga @ r.reshape(na, nxb * len(j))).reshape(-1, nxb, len(j))
        return (self._gb @ t).reshape(-1, len(j))

    def dense(self, block: int = 1024, progress: bool = False) -> np.ndarray:
        """The whole 2^F x 2^F operator (F <= 14: 2 GiB in float64), formed column block by
        column block (about 35 s at F = 14, D = 16; ``progress`` shows a bar)."""
        f = check_int("free units", len(self.free), 0, MAX_DENSE)
        n = 2**f
        out = np.empty((n, n))
        bar = progress_bar(n, progress, "transition matrix", "columns")
        for j0 in range(0, n, block):
            out[:, j0 : min(n, j0 + block)] = self.columns(j0, min(n, j0 + block))
            bar.update(min(n, j0 + block) - j0)
        bar.close()
        return out
