"""walkback.exact against brute-force enumeration and against long runs of the library's chain."""

import itertools

import numpy as np
import pytest

import walkback as wb

CORRUPTIONS = [wb.SaltAndPepper(0.3), wb.Masking(0.25), wb.BitFlip(0.2), None]


def brute_force(model, clamp=None, values=None):
    """T by three nested loops over (s, x~, s'), every probability a product over units."""
    d = model.visible
    p = {k: v.astype(float) for k, v in model.get_params().items()}
    c = model.corruption
    kind, q = type(c).__name__, c.param

    def corrupt_prob(x, xt):
        out = 1.0
        for a, b in zip(x, xt, strict=True):
            if kind == "SaltAndPepper":
                out *= (1 - q / 2) if a == b else q / 2
            elif kind == "BitFlip":
                out *= (1 - q) if a == b else q
            elif kind == "Masking":
                out *= {(0, 0): 1.0, (0, 1): 0.0, (1, 0): q, (1, 1): 1 - q}[(a, b)]
            else:
                out *= 1.0 if a == b else 0.0
        return out

    act = {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh}[model.activation]
    all_states = list(itertools.product([0, 1], repeat=d))
    free = [i for i in range(d) if clamp is None or not clamp[i]]
    current = [
        s
        for s in all_states
        if clamp is None or all(s[i] == values[i] for i in range(d) if clamp[i])
    ]
    nxt = list(itertools.product([0, 1], repeat=len(free)))
    t = np.zeros((len(current), len(nxt)))
    for a, s in enumerate(current):
        for xt in all_states:
            w = corrupt_prob(s, xt)
            if w == 0:
                continue
            h = act(np.array(xt, float) @ p["W1"] + p["b1"])
            dec = p["U1"] if "U1" in p else p["W1"].T
            mu = 1 / (1 + np.exp(-(h @ dec + p["b0"])))
            for b, s2 in enumerate(nxt):
                t[a, b] += w * np.prod(
                    [mu[i] if v else 1 - mu[i] for i, v in zip(free, s2, strict=True)]
                )
    return t


def model(corruption, tied=True, activation="sigmoid", d=5, seed=0):
    m = wb.DAE(
        d, 4, activation=activation, corruption=corruption, tied=tied, seed=seed, dtype=np.float64
    )
    rng = np.random.default_rng(seed)
    m.set_params(**{k: 1.5 * rng.normal(size=v.shape) for k, v in m.get_params().items()})
    return m


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("tied,activation", [(True, "sigmoid"), (False, "tanh")])
def test_transition_matrix_matches_brute_force(corruption, tied, activation):
    m = model(corruption, tied, activation)
    t = wb.exact.transition_matrix(m)
    np.testing.assert_allclose(t, brute_force(m), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-12)


def test_clamped_transition_matrix_matches_brute_force():
    m = model(wb.SaltAndPepper(0.3))
    clamp = np.array([True, False, True, False, False])
    values = np.array([1, 0, 0, 0, 0])
    t = wb.exact.transition_matrix(m, clamp, values)
    assert t.shape == (8, 8)
    np.testing.assert_allclose(t, brute_force(m, clamp, values), rtol=1e-10, atol=1e-14)


def test_stationary_distribution_and_friends():
    m = model(wb.SaltAndPepper(0.3), d=6)
    t = wb.exact.transition_matrix(m)
    pi = wb.exact.stationary_distribution(m)
    np.testing.assert_allclose(pi @ t, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0) and np.all(pi >= 0)
    s = wb.exact.states(6)
    np.testing.assert_array_equal(wb.exact.state_index(s), np.arange(64))
    data = s[[3, 3, 10, 40]]
    assert wb.exact.log_likelihood(m, data) == pytest.approx(np.mean(np.log(pi[[3, 3, 10, 40]])))
    p = np.bincount([3, 3, 10, 40], minlength=64) / 4
    on = p > 0
    assert wb.exact.kl(data, m) == pytest.approx(np.sum(p[on] * np.log(p[on] / pi[on])))
    # A symmetric doubly stochastic operator is in detailed balance; a generic DAE is not.
    sym = np.array([[0.7, 0.3], [0.3, 0.7]])
    assert np.allclose(wb.exact.stationary_distribution(sym), [0.5, 0.5])
    gap = wb.exact.detailed_balance_gap(m)
    assert 0.0 < gap < 1.0


def test_stationary_distribution_matches_long_chain_runs():
    """The library's chain, run long from many starts, visits states as often as pi says
    (total variation), free and clamped."""
    m = model(wb.SaltAndPepper(0.3), d=6, seed=2)
    pi = wb.exact.stationary_distribution(m)
    rec = m.sample(n=500, steps=200, burn_in=50, every=2, seed=7).reshape(-1, 6)
    freq = np.bincount(wb.exact.state_index(rec), minlength=64) / len(rec)
    assert 0.5 * np.abs(freq - pi).sum() < 0.03
    clamp = np.array([True, True, False, False, False, False])
    values = np.array([0, 1, 0, 0, 0, 0])
    pic = wb.exact.stationary_distribution(m, clamp, values)
    x0 = np.tile(values, (500, 1)).astype(float)
    rec = m.sample(x0=x0, clamp=clamp, steps=200, burn_in=50, every=2, seed=8).reshape(-1, 6)
    freq = np.bincount(wb.exact.state_index(rec[:, 2:]), minlength=16) / len(rec)
    assert 0.5 * np.abs(freq - pic).sum() < 0.03


def test_exact_rejects_what_it_cannot_enumerate():
    with pytest.raises(TypeError, match="continuous"):
        wb.exact.transition_matrix(wb.GSN(4, [3]))
    with pytest.raises(ValueError, match="too large"):
        wb.exact.transition_operator(wb.DAE(17, 3))
    with pytest.raises(ValueError, match="transition_operator"):
        wb.exact.transition_matrix(wb.DAE(15, 3))
    with pytest.raises(ValueError, match="binary"):
        wb.exact.transition_matrix(wb.DAE(4, 3, corruption=wb.GaussianCorruption(0.2)))
    with pytest.raises(ValueError, match="Bernoulli"):
        wb.exact.transition_matrix(wb.DAE(4, 3, reconstruction="gaussian"))
    with pytest.raises(ValueError, match="values"):
        wb.exact.transition_matrix(wb.DAE(4, 3), clamp=np.ones(4, bool))
    with pytest.raises(ValueError, match="binary"):
        wb.exact.state_index(np.array([[0.5, 1.0]]))


def test_model_arguments_are_checked_first_and_integer_masks_pass():
    dae = wb.DAE(4, 3, seed=0)
    x = np.array([[0, 1, 0, 1]], np.float32)
    with pytest.raises(TypeError, match="expected a walkback.DAE"):
        wb.exact.kl(dae, x)  # arguments swapped
    with pytest.raises(TypeError, match="expected a walkback.DAE"):
        wb.exact.log_likelihood("m", x)
    values = np.array([1.0, 0, 0, 0])
    a = wb.exact.transition_matrix(dae, clamp=np.array([1, 0, 0, 0]), values=values)
    b = wb.exact.transition_matrix(dae, clamp=np.array([True, False, False, False]), values=values)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="clamp: expected a bool mask"):
        wb.exact.transition_matrix(dae, clamp=np.array([2, 0, 0, 0]), values=values)
