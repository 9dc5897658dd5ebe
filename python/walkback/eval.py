"""Evaluating generative models: Parzen-window log-likelihoods of samples (Breuleux et al. 2011,
the protocol of the GSN and GAN papers) and the conservative sampling-based log-likelihood
(CSL) of Bengio, Yao & Cho (2013). Exact evaluation of tiny models lives in walkback.exact.

Both estimators are weak measures (Theis, van den Oord & Bethge 2016): Parzen windows in 784
dimensions rate blurry or memorised samples highly; report them with their standard error and
beside the score of the data itself."""

from __future__ import annotations

import numpy as np

from . import _backend, _checks, ops
from ._progress import progress_bar


def _host(a, name):
    """A NumPy copy of a GPU array (CuPy, or CUDA tensors through DLPack); others pass."""
    return _backend.to_backend_array(a, name)[0].get() if _backend.is_gpu_array(a) else a


def _mean_sem(values) -> tuple:
    if not isinstance(values, np.ndarray):  # a CuPy array from the GPU kernel
        values = values.get()
    n = len(values)
    sem = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return float(np.mean(values)), sem


def parzen_log_likelihood(samples, x, sigma, batch_size=None, progress=False):
    """Mean log-likelihood of the rows of ``x`` under a Parzen window (isotropic Gaussian
    mixture) centred on ``samples``, and its standard error over the rows:

        log p(x) = logsumexp_i(-|x - s_i|^2 / (2 sigma^2)) - log N - (D / 2) log(2 pi sigma^2).

    Computed in C++: one GEMM per block for the cross terms, then a streaming, numerically
    stable log-sum-exp, so memory stays bounded: nothing of size N x M is formed (for
    10,000 x 10,000 x 784: centred copies of both sets, 63 MB in float32, and 8 MB of block per
    thread). float32 inputs run in float64 by themselves where the window is so narrow that
    float32 rounding would cost 1e-4 of the result.

    Args:
        samples: (N, D) centres (the model's samples).
        x: (M, D) points to score (the test set).
        sigma: the window's standard deviation (> 0).
        batch_size: rows of ``x`` per kernel call (None: all); with ``progress`` a bar counts
            the batches.
    Returns:
        (mean, standard error of the mean), in nats.
    """
    lp = ops.parzen_logpdf(samples, x, sigma, batch_size=batch_size, progress=progress)
    return _mean_sem(lp)


def select_parzen_sigma(samples, x_valid, sigmas=None, progress=False):
    """Scores each sigma on validation data and returns (best sigma, table), the table a list
    of (sigma, mean log-likelihood, standard error) rows. Default sigmas: logspace(-1, 0, 10),
    the reference Parzen script's grid (Goodfellow et al. 2014)."""
    if sigmas is None:
        sigmas = np.logspace(-1.0, 0.0, 10)
    try:
        sigmas = [float(s) for s in np.atleast_1d(np.asarray(sigmas, dtype=np.float64))]
    except (TypeError, ValueError) as e:
        raise TypeError(f"sigmas: expected real numbers, got {sigmas!r}") from e
    if not sigmas or not all(s > 0 and np.isfinite(s) for s in sigmas):
        raise ValueError(f"sigmas: expected positive finite values, got {sigmas}")
    table = []
    bar = progress_bar(len(sigmas), progress, "parzen sigma", "sigma")
    try:
        for s in sigmas:
            mean, sem = parzen_log_likelihood(samples, x_valid, s)
            table.append((s, mean, sem))
            bar.update(1)
    finally:
        bar.close()
    best = max(table, key=lambda r: r[1])[0]
    return best, table


def _bernoulli_visible(model) -> None:
    from .dae import DAE
    from .gsn import GSN

    if not isinstance(model, (DAE, GSN)):
        raise TypeError(f"csl: expected a walkback.DAE or GSN, got {type(model).__name__}")
    segs = getattr(model, "segments", None)
    names = [s.reconstruction.name for s in segs] if segs else [model.reconstruction.name]
    if any(n != "bernoulli" for n in names):
        raise ValueError("csl: the GEMM form needs a model whose visible units are all Bernoulli")


def csl_from_means(means, x, eps=1e-7):
    """Per-row CSL estimates log (1/S) sum_s p(x | mu_s) for Bernoulli means ``mu`` (S, D):
    log p(x | mu) = x . logit(mu) + sum log(1 - mu), so the S x M terms are one GEMM (in
    float64) and a streaming log-sum-exp. Means are clipped to [eps, 1 - eps]."""
    eps = float(eps)
    if not (0.0 < eps < 0.5):
        raise ValueError(f"eps: expected 0 < eps < 0.5, got {eps}")
    # A model on the GPU gives CuPy means: this estimate runs on the CPU.
    mu = np.asarray(_host(means, "means"), dtype=np.float64)
    x = _host(x, "x")
    if mu.ndim == 3:
        mu = mu.reshape(-1, mu.shape[-1])
    if mu.ndim != 2 or mu.shape[0] == 0:
        raise ValueError(f"means: expected shape (S, D) or (steps, chains, D), got {mu.shape}")
    if not np.all(np.isfinite(mu)):
        raise ValueError("means: contains NaN or infinite values")
    if mu.min() < 0 or mu.max() > 1:
        raise ValueError("means: Bernoulli means must lie in [0, 1]")
    xx = _checks.as_state("x", x, np.float64, mu.shape[1])
    # Bernoulli likelihoods: x must be binary (grey levels give a number, not a log-probability).
    _checks.check_binary("x", xx)
    mu = np.clip(mu, eps, 1.0 - eps)
    logit = np.ascontiguousarray(np.log(mu) - np.log1p(-mu))
    col = np.ascontiguousarray(np.log1p(-mu).sum(axis=1))
    row = np.full(len(xx), -np.log(len(mu)))
    out = np.empty(len(xx))
    _backend.cpu().gemm_logsumexp(xx, logit, 1.0, col, row, out)
    return out


def csl(model, x, n_samples=10_000, chains=10, burn_in=100, seed=None):
    """The conservative sampling-based log-likelihood (Bengio, Yao & Cho 2013) of the rows of
    ``x``: run ``chains`` chains of the model for ``burn_in`` steps, then record the mean of
    p(x | h) at each of the next ``n_samples // chains`` steps; log p(x) is estimated by
    log (1/S) sum_s p(x | h_s). An estimate that is biased low in expectation (hence
    "conservative"), for models with Bernoulli visible units (DAE or GSN).

    Returns:
        (mean, standard error of the mean) over the rows of x, in nats.
    """
    _bernoulli_visible(model)
    n_samples = _checks.check_int("n_samples", n_samples, 1)
    chains = _checks.check_int("chains", chains, 1, n_samples)
    burn_in = _checks.check_int("burn_in", burn_in, 0)
    steps = n_samples // chains
    means = model.sample(n=chains, steps=steps, burn_in=burn_in, every=1, means=True, seed=seed)
    return _mean_sem(csl_from_means(means, x))


def energy_distance(a, b, batch_size=2048):
    """The energy distance between two samples (Szekely & Rizzo 2013), a two-sample statistic:
    2 E|a - b| - E|a - a'| - E|b - b'|, with the within-sample means over distinct pairs. It is
    0 in expectation when both come from one distribution. Pairwise distances are taken in
    blocks of ``batch_size`` rows, so memory stays bounded. 1-D arrays are samples of
    scalars."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        raise ValueError("energy_distance: a and b must be samples, arrays of shape (n, d)")
    a = np.reshape(a, (-1, 1)) if np.ndim(a) == 1 else a
    b = np.reshape(b, (-1, 1)) if np.ndim(b) == 1 else b
    a = _checks.as_state("a", a, np.float64, np.shape(a)[-1])
    b = _checks.as_state("b", b, np.float64, a.shape[1])
    if len(a) < 2 or len(b) < 2:
        raise ValueError("energy_distance: each sample needs at least two rows")
    batch_size = _checks.check_int("batch_size", batch_size, 1)
    # Distances do not move with a shift, but |p|^2 + |q|^2 - 2 p.q loses digits far from 0:
    # centre both samples on their pooled mean first.
    centre = np.concatenate([a, b]).mean(axis=0)
    a, b = a - centre, b - centre

    def mean_dist(p, q, same):
        total = 0.0
        for i in range(0, len(p), batch_size):
            blk = p[i : i + batch_size]
            d2 = (blk**2).sum(1)[:, None] + (q**2).sum(1)[None, :] - 2 * blk @ q.T
            total += np.sqrt(np.maximum(d2, 0)).sum()
            if same:  # the diagonal is 0 up to rounding: remove it exactly
                idx = np.arange(len(blk))
                total -= np.sqrt(np.maximum(d2[idx, i + idx], 0)).sum()
        pairs = len(p) * (len(q) - 1) if same else len(p) * len(q)
        return total / pairs

    return 2 * mean_dist(a, b, False) - mean_dist(a, a, True) - mean_dist(b, b, True)
