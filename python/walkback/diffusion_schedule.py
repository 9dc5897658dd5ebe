"""The forward schedules and the temporal basis of diffusion inversion (Sohl-Dickstein et al.
2015), in float64. Time runs t = 1..T; arrays hold step t at index t - 1."""

from __future__ import annotations

import math

import numpy as np


def gaussian_betas(steps: int, step1_beta: float = 1e-3, perturb=None) -> np.ndarray:
    """The original code's Gaussian schedule (``generate_beta_arr``):
    beta_t = floor_t + sigmoid(u_t + logit b_t) (1 - floor_t - 1e-5) with
    b = 1 / linspace(T, 2, T), floor_t = 1e-6 plus step1_beta at t = 1, and u the learned
    perturbation (``perturb``, (T,); default 0, the fixed schedule). Each step destroys about a
    constant fraction of the remaining signal; about 1/T of the variance is left."""
    return _gaussian_betas(steps, step1_beta, perturb)[0]


def _gaussian_betas(steps, step1_beta, perturb):
    """(betas, d betas / d perturb)."""
    base = 1.0 / np.linspace(steps, 2.0, steps)
    floor = np.full(steps, 1e-6)
    floor[0] += step1_beta
    u = np.log(base) - np.log1p(-base)
    if perturb is not None:
        u = u + np.asarray(perturb, dtype=np.float64)
    sig = 1.0 / (1.0 + np.exp(-u))
    span = 1.0 - floor - 1e-5
    return floor + sig * span, sig * (1.0 - sig) * span


def schedule_beta_grad(betas, visible, g_beta, g_abprev, t):
    """d (mean loss) / d beta (T,): from the rows' derivatives with respect to their beta_t
    and alphabar_{t-1} (t per row), plus the bound's entropy terms (0.5 D log beta_1 and
    -0.5 D log(1 - alphabar_T), once per mean), through alphabar_u = prod_{s<=u} (1 - beta_s)."""
    steps = len(betas)
    ab = alphabar(betas)
    g_b = np.zeros(steps)
    g_ab = np.zeros(steps)  # d loss / d alphabar_u at index u - 1
    np.add.at(g_b, np.asarray(t) - 1, g_beta)
    np.add.at(g_ab, np.asarray(t) - 2, g_abprev)
    g_b[0] += 0.5 * visible / betas[0]
    g_ab[-1] += 0.5 * visible / (1.0 - ab[-1])
    # d alphabar_u / d beta_s = -alphabar_u / (1 - beta_s) for s <= u
    suffix = np.cumsum((g_ab * ab)[::-1])[::-1]
    g_b -= suffix / (1.0 - betas)
    return g_b


def gaussian_betas_grad_to_coeffs(steps, step1_beta, basis, coeffs, g_betas):
    """Chains d loss / d beta (T,) to the perturbation's coefficients (J,)."""
    _, dbeta_du = _gaussian_betas(steps, step1_beta, basis @ coeffs)
    return basis.T @ (g_betas * dbeta_du)


def binomial_betas(steps: int) -> np.ndarray:
    """The paper's binomial schedule beta_t = 1 / (T - t + 1): alphabar_t = (T - t) / T, so the
    last step ends exactly at Bernoulli(0.5)."""
    t = np.arange(1, steps + 1, dtype=np.float64)
    return 1.0 / (steps - t + 1.0)


def alphabar(betas: np.ndarray) -> np.ndarray:
    """prod_{s <= t} (1 - beta_s), the fraction of x_0 left in x_t."""
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def temporal_basis(steps: int, n_basis: int) -> np.ndarray:
    """(T, J): J Gaussian bumps over t, centred evenly on [-1, 1] with width half their
    spacing, normalised to sum to 1 at every t (the original's ``generate_temporal_basis``).

    Weights below 1e-6 are set to 0 (then the rows renormalised; ours, not the original's):
    the kernels skip a basis function wherever its weight is 0, which leaves about 4.7 of 10
    per step and halves the readout's work, and far bumps (down to 1e-70) would otherwise be
    float32 denormals, on which a GEMM runs some 30 times slower on x86."""
    xx = np.linspace(-1.0, 1.0, steps)
    centres = np.linspace(-1.0, 1.0, n_basis)
    width = (centres[1] - centres[0]) / 2.0 if n_basis > 1 else 1.0
    g = np.exp(-((xx[:, None] - centres[None, :]) ** 2) / (2.0 * width**2))
    g /= g.sum(axis=1, keepdims=True)
    g[g < 1e-6] = 0.0
    return g / g.sum(axis=1, keepdims=True)


def gaussian_posterior(betas: np.ndarray, t: int) -> tuple[float, float, float]:
    """q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, var) for t >= 2, as (c0, ct, var): the
    product of q(x_{t-1} | x_0) = N(sqrt(ab_{t-1}) x_0, 1 - ab_{t-1}) and the step's
    likelihood N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) (the paper's eq. 54-57; lambda = 1/c1 +
    1/c2 with c1 = 1 - ab_{t-1}, c2 = beta_t / alpha_t)."""
    if not 2 <= t <= len(betas):
        raise ValueError(f"t: expected a step in [2, {len(betas)}], got {t}")
    ab = alphabar(betas)
    beta = float(betas[t - 1])
    alpha, ab_prev = 1.0 - beta, float(ab[t - 2])
    c1, c2 = 1.0 - ab_prev, beta / alpha
    lam = 1.0 / c1 + 1.0 / c2
    return math.sqrt(ab_prev) / c1 / lam, 1.0 / (math.sqrt(alpha) * c2) / lam, 1.0 / lam


def binomial_posterior(betas: np.ndarray, t: int, x0, xt) -> np.ndarray:
    """q(x_{t-1} = 1 | x_t, x_0) for binary x_0, x_t (arrays broadcast), t >= 2: the prior
    P(x_{t-1} = 1 | x_0) = ab_{t-1} x_0 + (1 - ab_{t-1}) / 2 times the step's flip channel."""
    if not 2 <= t <= len(betas):
        raise ValueError(f"t: expected a step in [2, {len(betas)}], got {t}")
    ab_prev = float(alphabar(betas)[t - 2])
    half = 0.5 * float(betas[t - 1])
    x0, xt = np.asarray(x0, dtype=np.float64), np.asarray(xt, dtype=np.float64)
    prior = ab_prev * x0 + (1.0 - ab_prev) / 2.0
    l1 = np.where(xt > 0.5, 1.0 - half, half)
    l0 = np.where(xt > 0.5, half, 1.0 - half)
    return prior * l1 / (prior * l1 + (1.0 - prior) * l0)
