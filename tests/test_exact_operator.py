"""The factored transition operator (walkback.exact_operator) against the dense one and brute
force, the Arnoldi stationary solve against the direct one, and D = 16 against the chain."""

import numpy as np
import pytest
from test_exact import CORRUPTIONS, brute_force, model

import walkback as wb


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_operator_step_and_columns_match_brute_force(corruption):
    m = model(corruption, tied=False, activation="tanh", d=5, seed=4)
    t = brute_force(m)
    op = wb.exact.transition_operator(m)
    pi = np.random.default_rng(0).random(32)
    np.testing.assert_allclose(op.step(pi), pi @ t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(op.columns(3, 17), t[:, 3:17], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(op.dense(block=5), t, rtol=1e-12, atol=1e-15)


def test_clamped_operator_matches_brute_force():
    m = model(wb.BitFlip(0.2), d=6, seed=5)
    clamp = np.array([False, True, False, False, True, False])
    values = np.array([0, 1, 0, 0, 0, 0])
    t = brute_force(m, clamp, values)
    op = wb.exact.transition_operator(m, clamp, values)
    assert op.n == 16
    pi = np.random.default_rng(1).random(16)
    np.testing.assert_allclose(op.step(pi), pi @ t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(op.dense(block=3), t, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="shape"):
        op.step(np.ones(32))


@pytest.mark.parametrize("noise", [0.3, 0.03])
def test_arnoldi_solve_matches_direct_solve(noise):
    """Above 512 states the stationary distribution comes from ARPACK on the factored
    operator; it must agree with a direct solve of the dense matrix, also for a chain that
    mixes slowly (low corruption, large weights)."""
    m = model(wb.SaltAndPepper(noise), d=10, seed=6)
    pi = wb.exact.stationary_distribution(m)
    t = wb.exact.transition_matrix(m)
    direct = wb.exact.stationary_distribution(t)
    np.testing.assert_allclose(pi, direct, rtol=1e-7, atol=1e-13)
    np.testing.assert_allclose(pi @ t, pi, atol=1e-13)


def identity_chain(d):
    """No corruption and saturated weights: each state reconstructs to itself with
    probability 1 in float64, so every distribution is stationary."""
    m = wb.DAE(d, d, corruption=None, seed=0, dtype=np.float64)
    m.set_params(W1=1e4 * np.eye(d), b1=np.full(d, -5e3), b0=np.full(d, -5e3))
    return m


@pytest.mark.parametrize("d", [4, 10])
def test_chain_without_unique_stationary_distribution_is_an_error(d):
    t = wb.exact.transition_operator(identity_chain(d)).columns(0, 2**d)
    np.testing.assert_array_equal(t, np.eye(2**d))
    with pytest.raises(RuntimeError, match="more than one stationary"):
        wb.exact.stationary_distribution(identity_chain(d))


def test_sixteen_units_against_long_chain_runs():
    """At D = 16 (65,536 states, a dense T would take 32 GiB) the exact stationary
    distribution's unit means and pairwise moments match the library's chain run long."""
    d = 16
    m = wb.DAE(d, 12, corruption=wb.SaltAndPepper(0.3), seed=2, dtype=np.float64)
    rng = np.random.default_rng(3)
    m.set_params(W1=rng.normal(0, 1.2, (d, 12)), b1=rng.normal(0, 1, 12), b0=rng.normal(0, 1, d))
    pi = wb.exact.stationary_distribution(m)
    assert pi.shape == (2**d,) and pi.sum() == pytest.approx(1.0)
    s = wb.exact.states(d)
    mean, second = pi @ s, s.T @ (pi[:, None] * s)
    rec = m.sample(n=2000, steps=60, burn_in=40, every=2, seed=4).reshape(-1, d)
    assert np.abs(rec.mean(0) - mean).max() < 0.01
    assert np.abs(rec.T @ rec / len(rec) - second).max() < 0.01
    # and the moments are far from those of a wrong target (independent fair coins)
    assert np.abs(mean - 0.5).max() > 0.1


def test_detailed_balance_gap_in_blocks_matches_the_whole_matrix():
    m = model(wb.SaltAndPepper(0.2), tied=False, activation="tanh", d=10, seed=7)
    t = wb.exact.transition_matrix(m)
    pi = wb.exact.stationary_distribution(t)
    flux = pi[:, None] * t
    want = 0.5 * np.abs(flux - flux.T).sum()
    assert wb.exact.detailed_balance_gap(m) == pytest.approx(want, rel=1e-9)
    assert 0.0 < want < 1.0


def test_local_maxima_are_the_states_above_all_their_neighbours():
    m = model(wb.SaltAndPepper(0.2), d=8, seed=9)
    pi = wb.exact.stationary_distribution(m)
    s = wb.exact.states(8)
    want = [
        i
        for i in range(256)
        if all(pi[i] > pi[wb.exact.state_index(np.abs(s[i] - np.eye(8)[k]))] for k in range(8))
    ]
    got = wb.exact.local_maxima(m)
    assert sorted(got.tolist()) == want and len(want) >= 1
    assert np.all(np.diff(pi[got]) <= 0)  # most probable first
    np.testing.assert_array_equal(wb.exact.local_maxima(pi), got)
    with pytest.raises(ValueError, match="2\\^D"):
        wb.exact.local_maxima(np.ones(6) / 6)


def two_attractor_chain(d, p, gain):
    """One hidden unit that is on when more than half the inputs are: the chain sits at all
    zeros or all ones and, at small corruption p, almost never crosses between them."""
    m = wb.DAE(d, 1, corruption=wb.SaltAndPepper(p), seed=0, dtype=np.float64)
    m.set_params(
        W1=np.full((d, 1), float(gain)), b1=np.array([-gain * d / 2]), b0=np.full(d, -gain / 2)
    )
    return m


@pytest.mark.parametrize("d", [8, 10])  # a direct solve, then ARPACK
def test_a_chain_too_slow_for_float64_is_refused_not_guessed(d):
    """Two nearly closed modes (1 - lambda_2 = 7e-12 at D = 8, 1e-14 at D = 10): any mixture
    of them has a residual at rounding level, so a residual check alone would accept a wrong
    pi; the second eigenvalue refuses it."""
    with pytest.raises(RuntimeError, match="mixes so slowly"):
        wb.exact.stationary_distribution(two_attractor_chain(d, 1e-5, 15.0))
    # the same chain with enough corruption to cross is solved, symmetric between the modes
    pi = wb.exact.stationary_distribution(two_attractor_chain(d, 0.3, 3.0))
    assert pi[0] == pytest.approx(pi[-1], rel=1e-9)


def test_given_matrices_are_checked():
    t = wb.exact.transition_matrix(model(wb.SaltAndPepper(0.3), d=6))
    pi = wb.exact.stationary_distribution(t)
    # float32 rounding leaves rows off by about 1e-8: still solved, to that precision
    pi32 = wb.exact.stationary_distribution(t.astype(np.float32))
    np.testing.assert_allclose(pi32, pi, atol=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        wb.exact.stationary_distribution(t * 1.01)
    with pytest.raises(ValueError, match="nonnegative"):
        wb.exact.stationary_distribution(-t)
    blocks = np.zeros((4, 4))
    blocks[:2, :2] = blocks[2:, 2:] = [[0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(RuntimeError, match="more than one"):
        wb.exact.stationary_distribution(blocks)


def test_operator_columns_are_bounds_checked():
    op = wb.exact.transition_operator(model(wb.SaltAndPepper(0.3), d=5))
    with pytest.raises(ValueError, match="j0"):
        op.columns(-1, 1)
    with pytest.raises(ValueError, match="j0"):
        op.columns(30, 40)


def test_forming_the_matrix_can_show_a_progress_bar(capsys):
    m = model(wb.SaltAndPepper(0.3), d=6)
    t = wb.exact.transition_matrix(m, progress=True)
    assert "transition matrix" in capsys.readouterr().err
    np.testing.assert_array_equal(t, wb.exact.transition_matrix(m))
    assert capsys.readouterr().err == ""
