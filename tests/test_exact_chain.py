"""The chain's samples against the exact stationary distribution of a tiny binary DAE."""

import itertools

import numpy as np
import pytest

import walkback as wb

D = 8
STATES = np.array(list(itertools.product([0.0, 1.0], repeat=D)))  # index = binary number


def corruption_matrix(p):
    # Salt-and-pepper factorises over units: keep w.p. 1 - p, else 0 or 1 with p / 2 each.
    per_unit = np.array([[1 - p / 2, p / 2], [p / 2, 1 - p / 2]])  # [x, x~]
    c = np.ones((len(STATES), len(STATES)))
    for i in range(D):
        c *= per_unit[STATES[:, i].astype(int)][:, STATES[:, i].astype(int)]
    return c


def transition_matrix(model, clamp=None, clamp_values=None):
    p = model.get_params()
    w = model.corruption.p
    h = 1 / (1 + np.exp(-(STATES @ p["W1"].astype(np.float64) + p["b1"])))
    mean = 1 / (1 + np.exp(-(h @ p["W1"].T.astype(np.float64) + p["b0"])))  # (x~, D)
    like = np.ones((len(STATES), len(STATES)))
    for i in range(D):
        xi = STATES[:, i][None, :]
        like *= np.where(xi == 1, mean[:, i][:, None], 1 - mean[:, i][:, None])
    t = corruption_matrix(w) @ like
    if clamp is None:
        return t, np.arange(len(STATES))
    # Clamped units are reset: keep only the states that agree with the clamped values and
    # sum over the clamped units' resampled values.
    ok = np.all(STATES[:, clamp] == clamp_values, axis=1)
    idx = np.flatnonzero(ok)
    key = STATES[:, ~clamp] @ (2 ** np.arange((~clamp).sum())[::-1])
    tc = np.zeros((len(idx), len(idx)))
    pos = {k: j for j, k in enumerate(key[idx].astype(int))}
    for a, s in enumerate(idx):
        for s2 in range(len(STATES)):
            tc[a, pos[int(key[s2])]] += t[s, s2]
    return tc, idx


def stationary(t):
    vals, vecs = np.linalg.eig(t.T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    return v / v.sum()


def state_index(x):
    return (x @ (2 ** np.arange(D)[::-1])).astype(int)


@pytest.fixture(scope="module")
def tiny():
    m = wb.DAE(D, 5, corruption=wb.SaltAndPepper(0.3), seed=3, dtype=np.float64)
    rng = np.random.default_rng(7)
    m.set_params(W1=rng.normal(0, 1.5, (D, 5)), b1=rng.normal(0, 1, 5), b0=rng.normal(0, 1, D))
    return m


def test_free_chain_matches_stationary_distribution(tiny):
    t, _ = transition_matrix(tiny)
    np.testing.assert_allclose(t.sum(1), 1, atol=1e-12)
    pi = stationary(t)
    rec = tiny.sample(2000, steps=60, burn_in=40, every=3, seed=1)  # 40,000 samples
    freq = np.bincount(state_index(rec.reshape(-1, D)), minlength=2**D) / (rec.size // D)
    tv = 0.5 * np.abs(freq - pi).sum()
    # An iid sample of the same size from pi lands near this; the chain must too.
    iid = np.random.default_rng(0).choice(2**D, size=rec.size // D, p=pi)
    tv_iid = 0.5 * np.abs(np.bincount(iid, minlength=2**D) / iid.size - pi).sum()
    assert tv < max(2.5 * tv_iid, 0.04), (tv, tv_iid)
    # and it is far from a wrong target (the uniform distribution over states)
    assert 0.5 * np.abs(freq - 1 / 2**D).sum() > 4 * tv


def test_one_long_chain_matches_stationary_distribution(tiny):
    # B = 1 takes its own pass over W (dae_chain_one.cpp): one chain of 40,000 steps, every
    # state recorded (neighbours correlate, hence the wider bound than for independent draws).
    pi = stationary(transition_matrix(tiny)[0])
    rec = tiny.sample(1, steps=40000, burn_in=100, every=1, seed=4)
    freq = np.bincount(state_index(rec.reshape(-1, D)), minlength=2**D) / (rec.size // D)
    tv = 0.5 * np.abs(freq - pi).sum()
    assert tv < 0.05, tv  # seeds 0-3 gave 0.021-0.024; W scaled by 1.3 gives 0.10
    assert 0.5 * np.abs(freq - 1 / 2**D).sum() > 4 * tv


def test_clamped_chain_matches_conditional_stationary_distribution(tiny):
    clamp = np.zeros(D, bool)
    clamp[[0, 3, 5]] = True
    values = np.array([1.0, 0.0, 1.0])
    t, idx = transition_matrix(tiny, clamp, values)
    pi = stationary(t)
    x0 = np.zeros((2000, D))
    x0[:, clamp] = values
    rec = tiny.sample(x0=x0, clamp=clamp, steps=60, burn_in=40, every=3, seed=2)
    flat = rec.reshape(-1, D)
    assert np.all(flat[:, clamp] == values)
    free_key = (flat[:, ~clamp] @ (2 ** np.arange(D - 3)[::-1])).astype(int)
    freq = np.bincount(free_key, minlength=len(idx)) / len(flat)
    tv = 0.5 * np.abs(freq - pi).sum()
    assert tv < 0.03, tv
