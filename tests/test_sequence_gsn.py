"""The sequence GSN (wb.SequenceGSN): its loss against a NumPy reference, finite-difference
gradients through the unrolled chain, padding, prediction, learning, files and bad input."""

import numpy as np
import pytest
from finite_differences import finite_differences
from sequence_reference import walkback_loss

import walkback as wb


def tiny(noise=2.0, corruption=0.2, seed=0, **kw):
    args = dict(channels=(4, 3), width=3, pool=2, walkbacks=3, seed=seed, dtype=np.float64)
    args.update(kw)
    m = wb.SequenceGSN(3, 3, noise=noise, corruption=corruption, **args)
    rng = np.random.default_rng(seed + 1)
    m.set_params(**{k: rng.normal(0, 0.6, v.shape) for k, v in m.get_params().items()})
    return m


def data(seed=2, n=2, length=7, lens=(7, 5)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, length, 3))
    y = rng.integers(0, 3, size=(n, length))
    for i, k in enumerate(lens):
        y[i, k:] = -1
    return x, y, np.array(lens)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_loss_matches_numpy_reference(steps):
    m = tiny(noise=0.0, corruption=0.0, pool=3)
    x, y, lens = data(n=3, length=9, lens=(9, 4, 7))
    loss, _ = m.loss_and_grad(x, y, walkbacks=steps, seed=11)
    assert loss == pytest.approx(walkback_loss(m, x, y, lens, steps, 11), rel=1e-10)


@pytest.mark.parametrize("walkbacks", [1, 3])
def test_gradients_match_finite_differences(walkbacks):
    m = tiny()
    x, y, _ = data()
    loss, grads = m.loss_and_grad(x, y, walkbacks=walkbacks, seed=5)
    fd = finite_differences(m, lambda: m.loss_and_grad(x, y, walkbacks=walkbacks, seed=5)[0], grads)
    for name, g in grads.items():
        np.testing.assert_allclose(g, fd[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert np.isfinite(loss)


def test_padding_is_ignored():
    m = tiny()
    x, y, _ = data()
    loss, grads = m.loss_and_grad(x, y, seed=3)
    x2 = x.copy()
    x2[1, 5:] = 1e3  # past the second sequence's end
    loss2, grads2 = m.loss_and_grad(x2, y, seed=3)
    assert loss2 == loss
    for k in grads:
        np.testing.assert_array_equal(grads2[k], grads[k])
    p = m.predict_proba(x2, lengths=[7, 5], seed=0)
    assert not p[1, 5:].any()
    np.testing.assert_allclose(p[0].sum(axis=1), 1.0, rtol=1e-12)
    assert (m.predict(x2, lengths=[7, 5], seed=0)[1, 5:] == -1).all()


def test_prediction_is_reproducible_and_never_sees_labels():
    m = tiny()
    x, _, lens = data()
    a = m.predict_proba(x, lens, steps=6, burn_in=2, seed=4)
    b = m.predict_proba(x, lens, steps=6, burn_in=2, seed=4)
    np.testing.assert_array_equal(a, b)
    s = m.single_pass_proba(x, lens)
    np.testing.assert_array_equal(s, m.single_pass_proba(x, lens))
    assert not np.allclose(a, s)


def test_learns_the_hmm_task_and_the_chain_matches_the_single_pass():
    d = wb.data.make_hmm_sequences(260, min_length=40, max_length=80, seed=0)
    train, test = slice(0, 200), slice(200, 260)
    m = wb.SequenceGSN(42, 8, channels=(24, 24), walkbacks=4, noise=0.5, seed=0)
    h = m.fit(d.x[train], d.y[train], epochs=4, batch_size=16, progress=False, seed=1)
    assert h.train_loss[-1] < 0.6 * h.train_loss[0]
    ok = d.y[test] >= 0

    def acc(p):
        return np.mean(p.argmax(axis=2)[ok] == d.y[test][ok])

    chain = acc(m.predict_proba(d.x[test], d.lengths[test], seed=0))
    single = acc(m.single_pass_proba(d.x[test], d.lengths[test]))
    assert chain > 0.5  # chance is about 1/8; the Bayes ceiling about 0.9
    assert chain > single - 0.05


def test_save_and_load(tmp_path):
    m = tiny()
    m.save(tmp_path / "s.safetensors")
    back = wb.load(tmp_path / "s.safetensors")
    assert isinstance(back, wb.SequenceGSN) and back.pool == 2 and back.width == 3
    for k, v in m.get_params().items():
        np.testing.assert_array_equal(back.get_params()[k], v)


def test_bad_inputs_say_what_is_wrong():
    m = tiny()
    x, y, _ = data()
    with pytest.raises(ValueError, match="x: expected shape"):
        m.loss_and_grad(x[:, :, :2], y)
    with pytest.raises(ValueError, match="y: expected shape"):
        m.loss_and_grad(x, y[:, :5])
    bad = y.copy()
    bad[0, 0] = 3
    with pytest.raises(ValueError, match="labels in"):
        m.loss_and_grad(x, bad)
    bad = y.copy()
    bad[0, 2] = -1
    with pytest.raises(ValueError, match="padding"):
        m.loss_and_grad(x, bad)
    with pytest.raises(ValueError, match="lengths"):
        m.predict_proba(x, lengths=[8, 2])
    full = [x.shape[1]] * x.shape[0]
    with pytest.raises(ValueError, match="within a sequence's length is -1"):
        m.loss_and_grad(x, bad, lengths=full)  # bad: a -1 inside the sequence
    with pytest.raises(ValueError, match="burn_in"):
        m.predict_proba(x, steps=3, burn_in=3)
    with pytest.raises(TypeError, match="integer labels"):
        m.loss_and_grad(x, y.astype(float))
    with pytest.raises(ValueError, match="odd"):
        wb.SequenceGSN(3, 3, width=4)
    with pytest.raises(NotImplementedError, match="CPU only"):
        m.to("cuda")


def test_trains_on_a_file_in_the_cb513_layout(tmp_path):
    from test_sequence_data import cb513_file

    cb513_file(tmp_path / "cb513.npy", [30, 50, 20])
    x, y, lengths = wb.data.load_cb513(tmp_path / "cb513.npy")
    m = wb.SequenceGSN(42, 8, channels=(8, 8), walkbacks=2, seed=0)
    h = m.fit(x, y, epochs=2, batch_size=2, progress=False)
    assert len(h) == 2 and np.isfinite(h.train_loss).all()
    pred = m.predict(x, lengths, steps=4, burn_in=1)
    assert pred.shape == (3, 700) and (pred[0, 30:] == -1).all() and (pred[0, :30] >= 0).all()


def test_review_edge_cases():
    m = tiny()
    x, y, _ = data()
    y[1] = -1  # a sequence without labels
    with pytest.raises(ValueError, match="at least one label"):
        m.fit(x, y, epochs=1, progress=False)
    assert m.predict_proba(x, steps=1).shape == (2, 7, 3)  # default burn_in fits in one step
    with pytest.raises(ValueError, match="channel"):
        wb.ops.conv1d(np.zeros((1, 4, 0)), np.zeros((0, 2)))
