"""The GSN chain against the NumPy reference fed the library's random numbers, its reduction
to the DAE, clamping, thread-count independence and predict_proba."""

import gsn_reference as gref
import numpy as np
import pytest
from test_gsn_grad import make

import walkback as wb


@pytest.mark.parametrize(
    "segments,hidden,tied",
    [("mixed", [6, 5, 4], True), ("mixed", [5, 4], False), ("bernoulli", [6, 5], True)],
)
def test_chain_matches_reference(segments, hidden, tied):
    m, x = make(segments, hidden, tied)
    steps = 6
    rec = m.sample(x0=x, steps=steps, every=1, seed=21)
    means = m.sample(x0=x, steps=steps, every=1, seed=21, means=True)
    visited, final, ref_means, _ = gref.chain(m, m.get_params(), x, 21, steps)
    want = np.stack(visited[1:] + [final])
    np.testing.assert_allclose(rec, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(means, np.stack(ref_means), rtol=1e-10, atol=1e-12)


def test_clamped_segment_stays_and_reference_agrees():
    m, x = make("mixed", [6, 5], True)
    out = m.sample(x0=x, steps=5, clamp="y", every=1, seed=4)
    ysl = slice(8, 12)
    assert np.all(out[:, :, ysl] == x[None, :, ysl])
    mask = np.zeros(m.visible, bool)
    mask[ysl] = True
    visited, final, _, _ = gref.chain(m, m.get_params(), x, 4, 5, clamp=mask)
    np.testing.assert_allclose(out[-1], final, rtol=1e-12, atol=1e-12)


def test_one_layer_without_noise_is_the_dae_chain():
    """A GSN with one hidden layer, no hidden noise and one segment is the DAE: same numbers."""
    dae = wb.DAE(30, 20, activation="tanh", corruption=wb.SaltAndPepper(0.3), seed=3)
    gsn = wb.GSN(
        30, [20], activation="tanh", input_noise=wb.SaltAndPepper(0.3), hidden_noise=None, seed=3
    )
    gsn.set_params(**dae.get_params())
    x = (np.random.default_rng(0).random((8, 30)) < 0.5).astype(np.float32)
    a = dae.sample(x0=x, steps=7, every=1, seed=5)
    b = gsn.sample(x0=x, steps=7, every=1, seed=5)
    np.testing.assert_array_equal(a, b)
    assert gsn.walkback_loss(x, walkbacks=3, seed=2) == pytest.approx(
        dae.walkback_loss(x, walkbacks=3, seed=2), rel=1e-6
    )
    _, ga = dae.loss_and_grad(x, walkbacks=3, seed=2)
    _, gb = gsn.loss_and_grad(x, walkbacks=3, seed=2)
    for k in ga:
        np.testing.assert_allclose(gb[k], ga[k], rtol=1e-4, atol=1e-6)


def test_same_result_with_one_and_two_threads_and_in_chunks():
    m = wb.GSN(40, [48, 32, 24], seed=1)
    x = (np.random.default_rng(1).random((9, 40)) < 0.5).astype(np.float32)
    before = wb.get_num_threads()
    try:
        wb.set_num_threads(1)
        one = m.sample(x0=x, steps=300, seed=8)
        l1, g1 = m.loss_and_grad(x, seed=3)
        wb.set_num_threads(2)
        two = m.sample(x0=x, steps=300, seed=8)
        l2, g2 = m.loss_and_grad(x, seed=3)
    finally:
        wb.set_num_threads(before)
    chunked = m.sample(x0=x, steps=300, seed=8, progress=True)  # 256-step chunks
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, chunked)
    assert l1 == l2
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_walkback_loss_does_not_depend_on_batch_size():
    m, x = make("mixed", [6, 5], True)
    xx = np.concatenate([x] * 3)
    a = m.walkback_loss(xx, walkbacks=3, seed=1, batch_size=4)
    b = m.walkback_loss(xx, walkbacks=3, seed=1, batch_size=1000)
    assert a == pytest.approx(b, rel=1e-12)


def test_predict_proba_is_a_distribution_and_clamps_the_inputs():
    m, x = make("mixed", [6, 5], True)
    p = m.predict_proba(x[:, :8], steps=7, seed=3)
    assert p.shape == (5, 4)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-10)
    assert np.all(p >= 0)
    # The same from a dict, and the average of the chain's y-means with x clamped and y blank.
    q = m.predict_proba({"x": x[:, :5], "g": x[:, 5:8]}, steps=7, seed=3)
    np.testing.assert_allclose(p, q)
    start = np.concatenate([x[:, :8], np.zeros((5, 4))], axis=1)
    mask = np.zeros(m.visible, bool)
    mask[:8] = True
    _, _, means, _ = gref.chain(m, m.get_params(), start, 3, 7, clamp=mask)
    np.testing.assert_allclose(p, np.mean([mu[:, 8:] for mu in means], axis=0), rtol=1e-9)
    assert np.array_equal(m.predict(x[:, :8], steps=7, seed=3), p.argmax(1))


def test_predict_proba_does_not_depend_on_batch_size():
    m, x = make("mixed", [6, 5], True)
    xx = np.concatenate([x, x[::-1], x])[:, :8]
    a = m.predict_proba(xx, steps=4, seed=2, batch_size=4)
    b = m.predict_proba(xx, steps=4, seed=2, batch_size=1000)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="missing segments"):
        m.predict_proba({"x": x[:, :5]}, steps=2)


def test_kernel_rejects_unknown_codes_with_an_error_not_a_crash():
    from walkback import _backend

    m, x = make("bernoulli", [6], True)
    kw = m._kernel_kwargs()
    kw["activation"] = 9
    with pytest.raises(ValueError, match="activation: unknown code 9"):
        _backend.cpu().gsn_walkback(x, **kw, seed=0, first_chain=0, walkbacks=1, last_only=False)


def test_sample_from_scratch_and_class_conditional():
    m = wb.GSN.hybrid(16, 3, hidden=[12, 10], seed=0)
    s = m.sample(n=6, steps=4, seed=1)
    assert s.shape == (6, 19)
    assert np.all(np.isin(s[:, :16], [0, 1]))
    np.testing.assert_array_equal(s[:, 16:].sum(1), 1)
    c = m.sample(x0={"y": np.array([0, 1, 2, 0, 1, 2])}, clamp="y", steps=4, seed=1)
    np.testing.assert_array_equal(c[:, 16:].argmax(1), [0, 1, 2, 0, 1, 2])
