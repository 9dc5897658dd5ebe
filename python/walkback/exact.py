"""Exact evaluation of tiny binary DAEs: the chain's transition operator over all 2^D visible
states, its stationary distribution, likelihoods and KL divergences under it, and how far it is
from detailed balance (Alain et al.: the transition operator of a GSN need not be reversible).

These make the book's claims testable: the stationary distribution of a trained chain
approaches the data distribution, and walk-back removes spurious modes (Bengio et al. 2013).

States are indexed as binary numbers with unit 0 the most significant bit: ``states(d)[i]``
is the state of index i, ``state_index(x)`` the inverse. Models of up to 16 visible units
qualify. The operator is kept as factors (``walkback.exact_operator``), so the stationary
distribution, likelihoods and KL divergences never form the 2^D x 2^D matrix; the functions that
return or need every entry of it (``transition_matrix``, ``detailed_balance_gap``) stop at 14
free units, where it takes 2 GiB in float64.
Only DAEs qualify: a GSN's hidden state is continuous (Gaussian hidden noise), so its chain has
no finite state space.
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .exact_operator import (
    MAX_DENSE,
    MAX_VISIBLE,
    TransitionOperator,
    binary_states,
    parse_clamp,
)

# Below this many states the stationary distribution comes from a direct solve; above, from
# ARPACK's Arnoldi iteration on pi -> pi T (2^16 states: 8-11 s measured).
_DIRECT_SOLVE_STATES = 512
# The largest L1 residual |pi T - pi| a returned stationary distribution may have.
_RESIDUAL_TOL = 1e-9
# The smallest 1 - lambda_2 for which pi counts as determined (errors grow like residual / gap).
_MIN_GAP = 1e-10
# Given matrices up to this size also get the second-eigenvalue check (a dense eigvals).
_EIGVALS_STATES = 2048
# ARPACK restarts of 20 vectors each: bounds the time before a slowly mixing chain is refused.
_MAX_RESTARTS = 200


def states(d: int) -> np.ndarray:
    """All 2^d binary states (float64), row i being the binary expansion of i."""
    return binary_states(_checks.check_int("d", d, 1, MAX_VISIBLE))


def state_index(x) -> np.ndarray:
    """The index of each binary row of x (unit 0 the most significant bit)."""
    x = np.asarray(x)
    if not np.all((x == 0) | (x == 1)):
        raise ValueError("state_index: expected binary rows (0 or 1)")
    d = x.shape[-1]
    if d > 62:
        raise ValueError(f"state_index: a row of {d} units has no int64 index (at most 62)")
    return (x.astype(np.int64) @ (1 << np.arange(d - 1, -1, -1))).astype(np.int64)


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
            f"exact: D = {model.visible} is too large; the chain has 2^D states, so D <= "
            f"{MAX_VISIBLE}"
        )


def transition_operator(model, clamp=None, values=None) -> TransitionOperator:
    """The chain's transition operator kept as factors, for D <= 16: ``op.step(pi)`` is pi T
    and ``op.columns(j0, j1)`` the dense columns T[:, j0:j1]. ``clamp`` and ``values`` as in
    :func:`transition_matrix`."""
    _check_model(model)
    return TransitionOperator(model, clamp, values)


def transition_matrix(model, clamp=None, values=None, progress=False) -> np.ndarray:
    """T[s, s'] = P(x_{t+1} = s' | x_t = s) of a binary DAE's chain, in float64:
    sum over corrupted x~ of C(x~ | s) prod_d Bernoulli(s'_d; p(x_d = 1 | x~)).

    With ``clamp`` (bool mask (D,)) and ``values`` (binary (D,)), the chain of the clamped
    sampler: clamped units hold ``values`` (and are still corrupted before encoding), only the
    free units move; T is then over the 2^F states of the F free units, indexed over them.
    F is at most 14 (T takes 2 GiB); above that use :func:`transition_operator`.
    ``progress`` shows a bar while T is formed (about 35 s at F = 14 on two cores).
    """
    _check_model(model)
    f = int(np.sum(~parse_clamp(model.visible, clamp, values)[0]))  # before the tables are built
    if f > MAX_DENSE:
        raise ValueError(
            f"transition_matrix: the chain has {f} free units, and a dense operator over 2^{f} "
            f"states takes {4**f * 8 / 2**30:.0f} GiB, so at most {MAX_DENSE}; "
            "transition_operator(model) applies it without forming it"
        )
    return transition_operator(model, clamp, values).dense(progress=progress)


def _second_eigenvalue_check(gap: float) -> None:
    # 1 - lambda_2 this small: float64 cannot pin pi down (any mixture of the nearly closed
    # classes has a residual at rounding level), or the chain has several closed classes.
    if gap < _MIN_GAP:
        raise RuntimeError(
            f"stationary_distribution: 1 - lambda_2 = {gap:.1e}: the chain has more than one "
            "stationary distribution, or mixes so slowly between its modes that float64 cannot "
            "tell which mixture of them is stationary"
        )


def _solve_direct(t: np.ndarray) -> np.ndarray:
    n = len(t)
    if 1 < n <= _EIGVALS_STATES:  # the second eigenvalue, as the Arnoldi path checks it
        vals = np.sort(np.linalg.eigvals(t).real)[::-1]
        _second_eigenvalue_check(float(1.0 - vals[1]))
    a = t.T - np.eye(n)
    a[-1] = 1.0  # replace one (redundant) balance equation by sum(pi) = 1
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    try:
        return np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError as e:
        raise RuntimeError(
            "stationary_distribution: the balance equations are singular: the chain has more "
            "than one stationary distribution"
        ) from e


def _solve_arnoldi(op: TransitionOperator) -> np.ndarray:
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs

    n = op.n
    # pi T = pi: the left eigenvector of eigenvalue 1, the largest real part any eigenvalue of
    # a stochastic matrix has ("LR" also keeps ARPACK off an eigenvalue near -1). The second
    # eigenvalue is always found too: a positive T makes pi unique, but not determinable in
    # float64 when 1 - lambda_2 is near rounding (two nearly closed modes: any mixture of them
    # passes the residual check). Trained chains at corruption 0.02 measured 1 - 5.7e-7.
    step = LinearOperator((n, n), matvec=op.step, dtype=np.float64)
    try:
        vals, vecs = eigs(
            step, k=2, which="LR", v0=np.full(n, 1.0 / n), tol=1e-13, ncv=20, maxiter=_MAX_RESTARTS
        )
    except ArpackNoConvergence as e:
        raise RuntimeError(
            f"stationary_distribution: ARPACK did not converge in {_MAX_RESTARTS} restarts; the "
            "chain mixes too slowly to find its stationary distribution this way"
        ) from e
    order = np.argsort(-vals.real)
    vals, vecs = vals[order], vecs[:, order]
    if abs(vals[0] - 1.0) > 1e-8:
        raise RuntimeError(
            f"stationary_distribution: ARPACK found eigenvalue {vals[0]:.12g}, not 1; the "
            "operator is not a stochastic matrix"
        )
    _second_eigenvalue_check(float(1.0 - vals[1].real))
    return np.real(vecs[:, 0])


def _finish(pi: np.ndarray, step, tolerance: float) -> np.ndarray:
    total = pi.sum()
    if not np.isfinite(total) or total == 0.0:
        raise RuntimeError("stationary_distribution: the solve gave no distribution")
    pi = pi / total
    if pi.min() < -1e-9:
        raise RuntimeError(
            f"stationary_distribution: the solve gave negative mass ({pi.min():.3g}); the "
            "stationary distribution is not determined to float64 precision"
        )
    pi = np.clip(pi, 0.0, None)
    pi /= pi.sum()
    residual = float(np.abs(step(pi) - pi).sum())
    if residual > tolerance:
        raise RuntimeError(
            f"stationary_distribution: |pi T - pi|_1 = {residual:.3g} after the solve (at most "
            f"{tolerance:.3g} allowed); the stationary distribution is not determined to "
            "float64 precision"
        )
    return pi


def _stationary_of_operator(op: TransitionOperator) -> np.ndarray:
    if op.n <= _DIRECT_SOLVE_STATES:
        return _finish(_solve_direct(op.dense()), op.step, _RESIDUAL_TOL)
    return _finish(_solve_arnoldi(op), op.step, _RESIDUAL_TOL)


def stationary_distribution(model_or_t, clamp=None, values=None) -> np.ndarray:
    """The stationary distribution pi (pi T = pi, sum 1) of a DAE's chain, or of a given
    transition matrix, in float64.

    Small chains (up to 512 states) and given matrices are solved directly; larger chains by
    Arnoldi iteration (ARPACK) on the factored operator, never forming T. The result is
    checked, else a RuntimeError says why: the second eigenvalue must be at least 1e-10 below 1
    (else the chain has several stationary distributions, or mixes so slowly that float64
    cannot fix pi; given matrices over 2,048 states skip this check), and |pi T - pi|_1 must be
    at most 1e-9 (or 10x how far a given matrix's rows are from summing to 1).
    """
    if isinstance(model_or_t, (list, tuple)):  # a matrix as nested lists
        model_or_t = np.asarray(model_or_t, dtype=np.float64)
    if not isinstance(model_or_t, np.ndarray):
        return _stationary_of_operator(transition_operator(model_or_t, clamp, values))
    t = np.asarray(model_or_t, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] == 0:
        raise ValueError(
            f"stationary_distribution: expected a nonempty square matrix, got {t.shape}"
        )
    if not np.all(np.isfinite(t)) or t.min() < 0:
        raise ValueError("stationary_distribution: expected finite, nonnegative entries")
    row_error = float(np.abs(t.sum(1) - 1.0).max())
    if row_error > 1e-6:
        raise ValueError(
            f"stationary_distribution: the rows must sum to 1 (off by up to {row_error:.3g})"
        )
    return _finish(_solve_direct(t), lambda v: v @ t, max(_RESIDUAL_TOL, 10 * row_error))


def _data_distribution(x, d) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] == 0:
        raise ValueError(f"x: expected binary rows of shape (n, {d}), n >= 1, got {x.shape}")
    counts = np.bincount(state_index(x), minlength=2**d).astype(np.float64)
    return counts / counts.sum()


def log_likelihood(model, x) -> float:
    """Mean log pi(x) over the binary rows of x under the chain's stationary distribution."""
    _check_model(model)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != model.visible or x.shape[0] == 0:
        raise ValueError(
            f"x: expected binary rows of shape (n, {model.visible}), n >= 1, got {x.shape}"
        )
    index = state_index(x)
    pi = stationary_distribution(model)
    with np.errstate(divide="ignore"):
        return float(np.mean(np.log(pi[index])))


def kl(data, model) -> float:
    """KL(p_data || pi) in nats, p_data the empirical distribution of the binary rows of
    ``data`` and pi the chain's stationary distribution: 0 when the chain's equilibrium is the
    data distribution; large when the chain puts little mass on the data (spurious modes)."""
    _check_model(model)
    p = _data_distribution(data, model.visible)
    pi = stationary_distribution(model)
    on = p > 0
    with np.errstate(divide="ignore"):
        return float(np.sum(p[on] * (np.log(p[on]) - np.log(pi[on]))))


def local_maxima(model_or_pi) -> np.ndarray:
    """The states whose stationary probability is above that of each of their D one-bit
    neighbours (the chain's modes), most probable first, as indices (see :func:`states`).
    Takes a DAE or a stationary distribution over 2^D states. Modes away from every data
    state are the spurious modes that walk-back training is meant to remove."""
    if isinstance(model_or_pi, (np.ndarray, list, tuple)):
        pi = np.asarray(model_or_pi, dtype=np.float64)
        d = int(np.log2(len(pi))) if pi.ndim == 1 and len(pi) > 1 else -1
        if d < 1 or len(pi) != 2**d:
            raise ValueError(
                f"local_maxima: expected a distribution over 2^D states, got {pi.shape}"
            )
    else:
        pi = stationary_distribution(model_or_pi)
        d = model_or_pi.visible
    index = np.arange(len(pi))
    mode = np.ones(len(pi), dtype=bool)
    for k in range(d):
        mode &= pi > pi[index ^ (1 << k)]
    found = np.flatnonzero(mode)
    return found[np.argsort(-pi[found], kind="stable")]


def detailed_balance_gap(model, progress=False) -> float:
    """0.5 sum_{s, s'} |pi_s T_ss' - pi_s' T_s's|: the probability flux that a reversible chain
    would balance (0 for a chain in detailed balance, at most 1). Needs every entry of T, so
    D <= 14; ``progress`` shows a bar while T is formed."""
    t = transition_matrix(model, progress=progress)
    pi = _stationary_of_operator(transition_operator(model))  # not a dense solve: O(8^D)
    gap, block = 0.0, 1024
    for i0 in range(0, len(t), block):
        i = slice(i0, i0 + block)
        gap += np.abs(pi[i, None] * t[i] - (pi[:, None] * t[:, i]).T).sum()
    return float(0.5 * gap)
