"""A float64 NumPy reference of the diffusion model's bound estimate and of one reverse step,
written from the paper's formulas (Sohl-Dickstein et al. 2015, eq. 14 and appendix B) and fed
the library's random numbers (tests/reference.py reproduces the Philox stream)."""

import math

import numpy as np

from walkback import diffusion_schedule as ds

import reference as ref

HALF_LOG_2PI_E = 0.5 * (1 + math.log(2 * math.pi))


def gauss_kl(mq, vq, mp, vp):
    """KL(N(mq, vq) || N(mp, vp)), closed form."""
    return 0.5 * np.log(vp / vq) + (vq + (mq - mp) ** 2) / (2 * vp) - 0.5


def leaky(a):
    return np.where(a > 0, a, 0.05 * a)


def coefficients(model, params, xt, t):
    """(n, D, K) mixed readout coefficients at per-row steps t."""
    h = xt
    for i in range(1, len(model.hidden) + 1):
        h = leaky(h @ params[f"W{i}"] + params[f"b{i}"])
    z = h @ params["Wout"] + params["bout"]
    n, d, k, j = xt.shape[0], model.visible, model._k, model.basis
    g = model.temporal_basis[np.asarray(t) - 1]  # (n, J)
    return np.einsum("njdk,nj->ndk", z.reshape(n, j, d, k), g)


def betas_of(model, params):
    """The schedule, learned (from params["beta_coeffs"]) or fixed."""
    if "beta_coeffs" not in params:
        return model.betas
    u = model.temporal_basis @ np.asarray(params["beta_coeffs"], dtype=np.float64)
    return ds.gaussian_betas(model.steps, model.step1_beta, u)


def schedule(betas, t):
    ab_all = np.cumprod(1 - betas)
    beta = betas[t - 1]
    ab = ab_all[t - 1]
    ab_prev = np.where(t > 1, ab_all[np.maximum(t - 2, 0)], 1.0)
    return beta, ab, ab_prev


def bin_entropy(p):
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def row_loss(model, params, x0, t, seed, first_chain=0):
    """-K estimate per row (nats, model units) with the library's draws of x_t."""
    n, d = x0.shape
    T = model.steps
    t = np.asarray(t)
    betas = betas_of(model, params)
    beta, ab, ab_prev = (a[:, None] for a in schedule(betas, t))
    if model.kind == "gaussian":
        u = ref.uniform(seed, 0, n, d, "corrupt", first_chain)
        eps = ref.library_normal(seed, 0, n, d, "sample_normal", first_chain)
        x0 = x0 + (u - 0.5) * model.dequantize
        xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * eps
        c = coefficients(model, params, xt, t)
        alpha = 1 - beta
        # the posterior, as the product of two Gaussians in x_{t-1}
        prec = 1 / (1 - ab_prev) + alpha / beta
        var_q = 1 / prec
        mu_q = var_q * (np.sqrt(ab_prev) * x0 / (1 - ab_prev) + np.sqrt(alpha) * xt / beta)
        mu = xt * np.sqrt(alpha) + c[..., 0] * np.sqrt(beta)
        var = 1 / (1 + np.exp(-(c[..., 1] / np.sqrt(T) + np.log(beta / (1 - beta)))))
        kl = gauss_kl(mu_q, var_q, mu, var)
        const = d * (
            HALF_LOG_2PI_E + 0.5 * math.log(betas[0]) - 0.5 * math.log(1 - np.prod(1 - betas))
        )
    else:
        u = ref.uniform(seed, 0, n, d, "sample", first_chain)
        xt = (u < ab * x0 + (1 - ab) / 2).astype(np.float64)
        c = coefficients(model, params, xt, t)
        prior = ab_prev * x0 + (1 - ab_prev) / 2
        flip = beta / 2
        like1 = np.where(xt == 1, 1 - flip, flip)  # p(x_t | x_{t-1} = 1)
        like0 = np.where(xt == 1, flip, 1 - flip)
        q = prior * like1 / (prior * like1 + (1 - prior) * like0)
        fwd = xt * (1 - beta) + beta / 2
        p = 1 / (1 + np.exp(-(c[..., 0] + np.log(fwd / (1 - fwd)))))
        kl = q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))
        const = d * (bin_entropy(betas[0] / 2) + math.log(2) - math.log(2))
    return (T - 1) * kl.sum(axis=1) + const


def reverse_step(model, params, x, t, normals_or_uniforms, y=None, obs_var=0.0):
    """x_{t-1} from x_t for every row at one shared t, given the step's random numbers."""
    T = model.steps
    tt = np.full(x.shape[0], t)
    c = coefficients(model, params, x, tt)
    beta = model.betas[t - 1]
    if model.kind == "gaussian":
        mu = x * math.sqrt(1 - beta) + c[..., 0] * math.sqrt(beta)
        var = 1 / (1 + np.exp(-(c[..., 1] / math.sqrt(T) + math.log(beta / (1 - beta)))))
        if y is not None:
            v = 1 / (1 / var + 1 / obs_var)
            mu, var = v * (mu / var + y / obs_var), v
        return mu + np.sqrt(var) * normals_or_uniforms
    fwd = x * (1 - beta) + beta / 2
    p = 1 / (1 + np.exp(-(c[..., 0] + np.log(fwd / (1 - fwd)))))
    return (normals_or_uniforms < p).astype(np.float64)
