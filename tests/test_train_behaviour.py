"""What training does: it learns the data, walk-back removes spurious modes, fit() keeps its
promises about history, binarization and divergence."""

import numpy as np
import pytest

import walkback as wb

D = 10


def patterns(seed):
    return (np.random.default_rng(seed).random((4, D)) < 0.5).astype(float)


def trained(seed, k, epochs=60):
    data = np.repeat(patterns(seed), 50, axis=0)
    m = wb.DAE(D, 32, corruption=wb.SaltAndPepper(0.1), seed=seed, dtype=np.float64)
    m.fit(
        data,
        walkbacks=k,
        epochs=epochs,
        batch_size=20,
        optimizer=wb.Adam(0.01),
        progress=False,
        seed=seed,
    )
    return m


def test_trained_chain_lands_on_the_data_far_more_than_untrained():
    pats = patterns(0)
    hits = {}
    for name, m in [
        ("trained", trained(0, 1)),
        ("untrained", wb.DAE(D, 32, corruption=wb.SaltAndPepper(0.1), seed=0)),
    ]:
        rec = m.sample(400, steps=50, burn_in=20, every=5, seed=3).reshape(-1, D)
        hits[name] = np.mean(np.any(np.all(rec[:, None, :] == pats[None], -1), -1))
    assert hits["trained"] > 0.6 and hits["untrained"] < 0.05, hits


def spurious_modes(m, pats):
    on_data = set(wb.exact.state_index(pats).tolist())
    return sum(int(i) not in on_data for i in wb.exact.local_maxima(m))


@pytest.mark.slow
def test_walkback_has_fewer_spurious_modes_than_one_step():
    # Exact stationary distributions of 2^10-state chains, over four data sets: measured
    # 2, 0, 2, 1 spurious local maxima with k = 1 and none with k = 4.
    k1 = sum(spurious_modes(trained(s, 1), patterns(s)) for s in range(4))
    k4 = sum(spurious_modes(trained(s, 4), patterns(s)) for s in range(4))
    assert k4 < k1, (k1, k4)


def test_kl_to_the_data_falls_as_training_proceeds():
    """KL(data || stationary) of exact 2^10-state chains falls as training proceeds, for k = 1
    and k = 4, on two data sets.

    What we measured for the issue's second claim (k = 4 below k = 1 at equal epochs): it does
    not hold in this setting. KL after 100 epochs over four data sets, salt-and-pepper 0.2:
    k = 1: 0.31, 0.37, 0.19, 0.27; k = 4: 1.77, 1.02, 0.75, 1.06 (p = 0.3 and 0.5 alike). Walk-back
    removes spurious modes (the test above) but its factorial reconstructions, trained from
    states several steps away, are broader, which costs KL on these four-pattern data sets.
    benchmarks/walkback_kl.py measures twelve settings at D = 10 (RESULTS.md): k = 4 is lower
    in 12 of 48 cases, and about half the time at low corruption (0.01-0.03). At D = 16
    (65,536 states, where random patterns are further apart and leave more room for spurious
    modes) seven settings on eight fresh data sets each: k = 4 lower in 23 of 56, and its
    chain puts less mass on the data's states in every setting. A test cannot assert the
    claim: it does not hold here."""
    kl = {}
    for k in (1, 4):
        for epochs in (5, 60):
            kl[k, epochs] = sum(
                wb.exact.kl(np.repeat(patterns(s), 50, axis=0), trained(s, k, epochs))
                for s in range(2)
            )
    assert kl[1, 60] < 0.5 * kl[1, 5] and kl[4, 60] < 0.5 * kl[4, 5], kl


def test_fit_history_validation_and_determinism():
    x = np.repeat(patterns(1), 10, axis=0)
    a = wb.DAE(D, 8, seed=1)
    h = a.fit(x, walkbacks=2, epochs=3, batch_size=16, validation=x[:8], progress=False, seed=4)
    assert len(h) == 3 and len(h.valid_loss) == 3 and all(v is not None for v in h.valid_loss)
    assert all(s > 0 for s in h.seconds)
    b = wb.DAE(D, 8, seed=1)
    b.fit(x, walkbacks=2, epochs=3, batch_size=16, validation=x[:8], progress=False, seed=4)
    np.testing.assert_array_equal(a.get_params()["W1"], b.get_params()["W1"])
    assert h.train_loss[-1] < h.train_loss[0]


def test_fit_shows_a_progress_bar(capsys):
    x = np.repeat(patterns(1), 10, axis=0)
    wb.DAE(D, 8, seed=1).fit(x, epochs=2, batch_size=10, progress=True)
    assert "training" in capsys.readouterr().err


def test_stochastic_binarization_redraws_each_epoch():
    from walkback.training import stochastic_binarize

    x = np.full((2000, 5), 0.3)
    a = stochastic_binarize(x, seed=1, epoch=0, first_row=0)
    b = stochastic_binarize(x, seed=1, epoch=1, first_row=0)
    assert set(np.unique(a)) == {0.0, 1.0} and not np.array_equal(a, b)
    assert abs(a.mean() - 0.3) < 0.02
    m = wb.DAE(5, 4, seed=0)
    m.fit(x[:100], epochs=2, binarize="stochastic", progress=False)
    with pytest.raises(ValueError, match="binarize"):
        m.fit(x, binarize="threshold")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.fit(x + 1, binarize="stochastic")


def test_divergence_stops_with_epoch_and_batch_and_keeps_good_parameters():
    x = np.repeat(patterns(2), 20, axis=0)
    m = wb.DAE(D, 8, activation="relu", reconstruction="gaussian", seed=0, dtype=np.float32)
    with pytest.raises(wb.TrainingDiverged, match=r"epoch \d+, batch \d+") as err:
        m.fit(x, epochs=50, batch_size=10, optimizer=wb.SGD(lr=1e6), progress=False)
    assert "restored" in str(err.value)
    for v in m.get_params().values():
        assert np.all(np.isfinite(v))
    assert np.isfinite(m.walkback_loss(x, seed=0))


def _fit_rows(m, batch_loss, rows, epochs, optimizer):
    """fit's shared loop on `rows` zero rows in batches of 2, with a stand-in batch_loss."""
    from walkback import training

    return training.fit(
        m,
        np.zeros((rows, D), np.float32),
        batch_loss=batch_loss,
        valid_loss=None,
        epochs=epochs,
        batch_size=2,
        optimizer=optimizer,
        progress=False,
        seed=0,
    )


def test_divergence_restores_the_last_parameters_that_gave_a_finite_loss():

    m = wb.DAE(D, 8, seed=0)
    seen = []

    def batch_loss(xb, seed, grads):
        seen.append({k: v.copy() for k, v in m._params.items()})
        for g in grads.values():
            g[...] = 0.01
        return float("nan") if len(seen) == 4 else 1.0

    with pytest.raises(wb.TrainingDiverged, match="epoch 2, batch 2"):
        _fit_rows(m, batch_loss, rows=4, epochs=3, optimizer=wb.SGD(lr=0.5))
    # The parameters of call 3 (the last finite loss), not those of call 4 or the initial ones.
    for k, v in m.get_params().items():
        np.testing.assert_array_equal(v, seen[2][k])
        assert not np.array_equal(v, seen[0][k])


def test_fit_keeps_its_buffers_between_calls_and_restores_the_parameters_of_this_call():
    # Fresh gradient and backup arrays each call were page-faulted in (+40% a batch, measured):
    # fit keeps them on the model. A second call must still restore its own starting
    # parameters, not the first call's.
    m = wb.DAE(D, 8, seed=0)
    calls = []

    def batch_loss(xb, seed, grads):
        calls.append(grads)
        for g in grads.values():
            g[...] = 0.01
        return float("nan") if len(calls) == 3 else 1.0

    _fit_rows(m, batch_loss, rows=4, epochs=1, optimizer=wb.SGD(lr=0.5))
    start = {k: v + 1 for k, v in m.get_params().items()}
    m.set_params(**start)
    with pytest.raises(wb.TrainingDiverged, match="epoch 1, batch 1"):
        _fit_rows(m, batch_loss, rows=4, epochs=1, optimizer=wb.SGD(lr=0.5))
    assert calls[2] is calls[0]  # the same gradient arrays in both calls
    for k, v in m.get_params().items():
        np.testing.assert_array_equal(v, start[k])


class _LateLoss:
    """A loss read only when asked (float()), as a GPU's 0-d array is: fit reads it a batch
    late."""

    def __init__(self, value):
        self.value = value

    def __float__(self):
        return float(self.value)


@pytest.mark.parametrize("late", [False, True])
@pytest.mark.parametrize("bad_call,where,restored", [(3, "epoch 1, batch 3", 1), (1, "batch 1", 0)])
def test_divergence_restores_the_last_finite_parameters_and_optimizer(
    late, bad_call, where, restored
):
    """A loss read at once (a float) or a batch late (a GPU's loss, after its own step and the
    next batch's gradients): either way the parameters come back to those of the last finite
    loss (or the initial ones) and the optimizer's momentum and step count to what they were
    then, so fitting again with the same optimizer does not start from a poisoned state."""

    m = wb.DAE(D, 8, seed=0)
    seen = []
    opt = wb.SGD(lr=0.5, momentum=0.9)
    states = []

    def batch_loss(xb, seed, grads):
        seen.append({k: v.copy() for k, v in m._params.items()})
        states.append(({k: s[0].copy() for k, s in opt._state.items()}, opt.t))
        bad = len(seen) == bad_call
        for g in grads.values():
            g[...] = np.nan if bad else 0.01 * len(seen)
        value = float("nan") if bad else 1.0
        return _LateLoss(value) if late else value

    with pytest.raises(wb.TrainingDiverged, match=where):
        _fit_rows(m, batch_loss, rows=8, epochs=2, optimizer=opt)
    assert len(seen) == bad_call + (1 if late else 0)  # late: the next batch ran first
    for k, v in m.get_params().items():
        np.testing.assert_array_equal(v, seen[restored][k])
    # The optimizer as it was when the bad batch's loss was computed (before its step).
    slots, t = states[bad_call - 1]
    assert opt.t == t
    assert set(opt._state) == set(slots)
    for k, v in slots.items():
        np.testing.assert_array_equal(opt._state[k][0], v)
        assert np.all(np.isfinite(opt._state[k][0]))


def test_fit_argument_errors():
    m = wb.DAE(D, 4)
    x = np.zeros((5, D))
    with pytest.raises(ValueError, match="walkbacks"):
        m.fit(x, walkbacks=0)
    with pytest.raises(TypeError, match="optimizer"):
        m.fit(x, optimizer="adam")
    with pytest.raises(ValueError, match="lr"):
        wb.SGD(lr=-1)
    with pytest.raises(ValueError, match=r"x: a Bernoulli model needs data in \[0, 1\]"):
        m.fit(x + 2)
    with pytest.raises(ValueError, match="reconstruct"):
        m.loss_and_grad(x, reconstruct="first")
    with pytest.raises(ValueError, match="validation"):
        m.fit(x, validation=np.zeros((2, D + 1)))


def test_a_last_step_that_breaks_the_parameters_raises_and_restores_them(tmp_path):
    # The loss is read before its step, so only a look at the parameters sees the last one.
    x = (np.random.default_rng(0).random((10, 16)) < 0.5).astype(np.float32)
    m = wb.DAE(16, 8, seed=0)
    before = {k: v.copy() for k, v in m.get_params().items()}
    opt = wb.SGD(lr=1e300, momentum=0.5)
    with pytest.raises(wb.TrainingDiverged, match="last step of epoch 1"):
        m.fit(x, epochs=1, batch_size=10, optimizer=opt, progress=False, seed=0)
    for k, v in m.get_params().items():
        np.testing.assert_array_equal(v, before[k])
    # The optimizer is back to its state before that step too: with a sane rate it trains.
    assert opt.t == 0
    opt.lr = 0.01
    m.fit(x, epochs=2, batch_size=10, optimizer=opt, progress=False, seed=0)
    assert all(np.all(np.isfinite(v)) for v in m.get_params().values())
    bad = wb.DAE(16, 8, seed=0)
    bad._params["W1"][0, 0] = np.inf
    with pytest.raises(ValueError, match="save: parameter W1 contains NaN or infinite"):
        bad.save(tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_a_poisoned_optimizer_is_reset_when_a_loss_stops_fit():
    # A step that makes the parameters (and the momentum) infinite shows as the next batch's
    # loss: the parameters come back, and the infinite momentum is not kept for the next fit.
    x = (np.random.default_rng(0).random((20, 16)) < 0.5).astype(np.float32)
    m = wb.DAE(16, 8, seed=0)
    opt = wb.SGD(lr=1e300, momentum=0.5)
    with pytest.raises(wb.TrainingDiverged, match="batch 2"):
        m.fit(x, epochs=1, batch_size=10, optimizer=opt, progress=False, seed=0)
    assert opt.t == 0 and not opt._state
    opt.lr = 0.01
    m.fit(x, epochs=2, batch_size=10, optimizer=opt, progress=False, seed=0)
    assert all(np.all(np.isfinite(v)) for v in m.get_params().values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copies_and_pickles_of_a_fitted_model_leave_fit_s_buffers_behind(dtype):
    # Also: an unpickled model's dtype is a new np.dtype object, equal to the builtin one; the
    # kernels took only the builtin object and refused its arrays.
    import copy
    import pickle

    m = wb.DAE(D, 8, seed=0, dtype=dtype)
    x = np.repeat(patterns(1), 5, axis=0)
    m.fit(x, epochs=1, batch_size=10, progress=False, seed=0)
    assert "_fit_buffers" in m.__dict__
    for c in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert "_fit_buffers" not in c.__dict__
        for k, v in m.get_params().items():
            np.testing.assert_array_equal(c.get_params()[k], v)
        np.testing.assert_array_equal(
            c.sample(x0=x, steps=3, seed=1), m.sample(x0=x, steps=3, seed=1)
        )
        c.fit(x, epochs=1, batch_size=10, progress=False, seed=0)  # makes its own
        assert c._fit_buffers["grads"]["W1"] is not m._fit_buffers["grads"]["W1"]
