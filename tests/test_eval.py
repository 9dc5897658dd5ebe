"""Parzen windows and CSL against direct float64 NumPy/SciPy computations."""

import numpy as np
import pytest
from scipy.special import logsumexp

import walkback as wb


def parzen_reference(s, x, sigma):
    s, x = s.astype(np.float64), x.astype(np.float64)
    d2 = ((x[:, None, :] - s[None, :, :]) ** 2).sum(-1)
    d = s.shape[1]
    return (
        logsumexp(-d2 / (2 * sigma**2), axis=1)
        - np.log(len(s))
        - 0.5 * d * np.log(2 * np.pi * sigma**2)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sigma", [0.003, 0.05, 0.2, 1.0, 30.0])
def test_parzen_matches_scipy(dtype, sigma):
    """1,300 centres and 700 points cross the kernel's blocks of 1,024 columns and 512 rows;
    at sigma = 0.003 every exp(-d^2 / 2 sigma^2) underflows in float64 and the log-sum-exp has
    to stream with a running maximum."""
    rng = np.random.default_rng(0)
    s = rng.random((1300, 20)).astype(dtype)
    x = np.concatenate([rng.random((690, 20)), s[:10] + 0.001]).astype(dtype)
    got = wb.ops.parzen_logpdf(s, x, sigma)
    want = parzen_reference(s, x, sigma)
    if sigma == 0.003:
        assert np.all(
            np.exp(-((x[:-10, None, :].astype(float) - s[None]) ** 2).sum(-1) / (2 * sigma**2)) == 0
        )
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_parzen_log_likelihood_mean_sem_and_batches():
    rng = np.random.default_rng(1)
    s, x = rng.random((300, 8)), rng.random((90, 8))
    lp = parzen_reference(s, x, 0.3)
    mean, sem = wb.eval.parzen_log_likelihood(s, x, 0.3)
    assert mean == pytest.approx(lp.mean(), rel=1e-6)
    assert sem == pytest.approx(lp.std(ddof=1) / np.sqrt(90), rel=1e-5)
    assert wb.eval.parzen_log_likelihood(s, x, 0.3, batch_size=7) == pytest.approx(
        (mean, sem), rel=1e-12
    )


def test_select_parzen_sigma_takes_the_best_on_validation():
    rng = np.random.default_rng(2)
    s = rng.normal(0, 1, (400, 3))
    xv = rng.normal(0, 1, (200, 3))
    best, table = wb.eval.select_parzen_sigma(s, xv, sigmas=[0.01, 0.3, 5.0])
    assert [r[0] for r in table] == [0.01, 0.3, 5.0]
    assert best == 0.3 and table[1][1] == max(r[1] for r in table)
    best_default, table = wb.eval.select_parzen_sigma(s, xv)
    assert (
        len(table) == 10
        and table[0][0] == pytest.approx(0.1)
        and table[-1][0] == pytest.approx(1.0)
    )


def test_csl_from_means_matches_numpy():
    rng = np.random.default_rng(3)
    mu = rng.random((500, 12))
    x = (rng.random((40, 12)) < 0.5).astype(float)
    ll = x @ np.log(mu).T + (1 - x) @ np.log1p(-mu).T  # (40, 500): log p(x | mu_s)
    want = logsumexp(ll, axis=1) - np.log(500)
    np.testing.assert_allclose(wb.eval.csl_from_means(mu, x), want, rtol=1e-10)


def test_csl_of_a_model_uses_its_chain_means():
    m = wb.DAE(12, 8, seed=0)
    x = (np.random.default_rng(4).random((30, 12)) < 0.5).astype(np.float32)
    mean, sem = wb.eval.csl(m, x, n_samples=200, chains=4, burn_in=10, seed=5)
    mu = m.sample(n=4, steps=50, burn_in=10, every=1, means=True, seed=5)
    want = wb.eval.csl_from_means(mu, x)
    assert mean == pytest.approx(want.mean()) and sem == pytest.approx(
        want.std(ddof=1) / np.sqrt(30)
    )
    assert mean < 0
    g = wb.GSN(12, [8, 6], seed=0)
    assert np.isfinite(wb.eval.csl(g, x, n_samples=20, chains=2, burn_in=2, seed=1)[0])


def test_bad_input():
    s = np.zeros((5, 3))
    with pytest.raises(ValueError, match="sigma"):
        wb.eval.parzen_log_likelihood(s, s, 0.0)
    with pytest.raises(ValueError, match=r"\(N, D\) and x \(M, D\)"):
        wb.ops.parzen_logpdf(s, np.zeros((2, 4)), 1.0)
    with pytest.raises(ValueError, match="finite"):
        wb.ops.parzen_logpdf(s, np.full((2, 3), np.nan), 1.0)
    with pytest.raises(ValueError, match="sigma too small"):
        wb.ops.parzen_logpdf(s, s, 1e-200)
    with pytest.raises(ValueError, match="eps"):
        wb.eval.csl_from_means(np.full((2, 3), 0.5), np.zeros((1, 3)), eps=0.0)
    with pytest.raises(ValueError, match="sigmas"):
        wb.eval.select_parzen_sigma(s, s, sigmas=[-1.0])
    with pytest.raises(ValueError, match="Bernoulli"):
        wb.eval.csl(wb.GSN.hybrid(4, 3, hidden=[5]), np.zeros((2, 7)))
    with pytest.raises(ValueError, match="Bernoulli"):
        wb.eval.csl(wb.DAE(4, 3, reconstruction="gaussian"), np.zeros((2, 4)))


def test_energy_distance_is_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(800, 2)), rng.normal(size=(800, 2))
    same = wb.eval.energy_distance(a, b)
    shifted = wb.eval.energy_distance(a, b + [1.0, 0.0])
    assert abs(same) < 0.02 and shifted > 0.1
    # the closed form for two 1-D point masses: 2|x - y|
    assert wb.eval.energy_distance([[0.0], [0.0]], [[3.0], [3.0]]) == pytest.approx(6.0)
    # blocks do not change the value
    assert wb.eval.energy_distance(a, b, batch_size=7) == pytest.approx(same, rel=1e-9)
    with pytest.raises(ValueError, match="two rows"):
        wb.eval.energy_distance(a[:1], b)


def test_csl_refuses_means_outside_0_1_and_models_it_cannot_score():
    x = np.zeros((3, 4))
    for bad in (-1.0, 2.0):
        with pytest.raises(ValueError, match=r"means: Bernoulli means must lie in \[0, 1\]"):
            wb.eval.csl_from_means(np.full((3, 4), bad), x)
    d = wb.Diffusion(visible=4, steps=4, hidden=4, basis=2, seed=0)
    for model in (d, "m"):
        with pytest.raises(TypeError, match="csl: expected a walkback.DAE or GSN"):
            wb.eval.csl(model, x)
    with pytest.raises(TypeError, match="sigmas: expected real numbers"):
        wb.eval.select_parzen_sigma(np.zeros((4, 2)), np.zeros((3, 2)), ["a"])
