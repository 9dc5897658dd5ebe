"""The optimizers' fused updates and gradient-norm clipping against NumPy references."""

import pickle

import numpy as np
import pytest

import walkback as wb
from walkback import _backend
from walkback.optim import grad_norm

# Not a multiple of the 4096-element blocks or of any vector width: every loop's tail runs.
N = 3 * 4096 + 7


def arrays(dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=N).astype(dtype)
    return p, [rng.normal(size=N).astype(dtype) for _ in range(3)]


def adam_reference(p, grads, lr, b1, b2, eps, wd, scales):
    p, m, v = p.astype(np.float64), np.zeros(N), np.zeros(N)
    for t, (g, s) in enumerate(zip(grads, scales, strict=True), start=1):
        g = s * g.astype(np.float64) + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return p


def sgd_reference(p, grads, lr, mom, wd, scales):
    p, v = p.astype(np.float64), np.zeros(N)
    for g, s in zip(grads, scales, strict=True):
        v = mom * v - lr * (s * g.astype(np.float64) + wd * p)
        p = p + v
    return p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_matches_numpy(dtype):
    p, grads = arrays(dtype)
    opt = wb.Adam(lr=0.01, beta1=0.8, beta2=0.9, eps=1e-6, weight_decay=0.1)
    q = {"w": p.copy()}
    for g in grads:
        opt.step(q, {"w": g})
    want = adam_reference(p, grads, 0.01, 0.8, 0.9, 1e-6, 0.1, [1, 1, 1])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(q["w"], want, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_matches_numpy(dtype):
    p, grads = arrays(dtype)
    opt = wb.SGD(lr=0.05, momentum=0.5, weight_decay=0.01)
    q = {"w": p.copy()}
    for g in grads:
        opt.step(q, {"w": g})
    want = sgd_reference(p, grads, 0.05, 0.5, 0.01, [1, 1, 1])
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(q["w"], want, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_squares_matches_float64(dtype):
    x = np.random.default_rng(1).normal(size=N).astype(dtype)
    want = float(np.sum(x.astype(np.float64) ** 2))
    assert _backend.cpu().sum_squares(x) == pytest.approx(want, rel=1e-13)
    assert _backend.cpu().sum_squares(x[:5]) == pytest.approx(
        float(np.sum(x[:5].astype(np.float64) ** 2)), rel=1e-15
    )
    assert _backend.cpu().sum_squares(x[:0]) == 0.0


def test_sum_squares_same_for_any_thread_count():
    x = np.random.default_rng(2).normal(size=10 * N).astype(np.float32)
    old = wb.get_num_threads()
    try:
        wb.set_num_threads(1)
        one = _backend.cpu().sum_squares(x)
        wb.set_num_threads(2)
        two = _backend.cpu().sum_squares(x)
    finally:
        wb.set_num_threads(old)
    assert one == two


def test_clipping_scales_inside_the_update_and_leaves_grads_alone():
    p, grads = arrays(np.float64)
    halves = {"a": p[: N // 2].copy(), "b": p[N // 2 :].copy()}
    opt = wb.Adam(lr=0.01)
    max_norm = 5.0
    scales = []
    for g in grads:
        gd = {"a": g[: N // 2].copy(), "b": g[N // 2 :].copy()}
        before = {k: v.copy() for k, v in gd.items()}
        norm = opt.step(halves, gd, max_grad_norm=max_norm)
        true_norm = float(np.linalg.norm(g))
        assert norm == pytest.approx(true_norm, rel=1e-12)
        assert true_norm > max_norm  # so the clip is active
        scales.append(max_norm / true_norm)
        for k in gd:  # the caller's gradients are not modified
            np.testing.assert_array_equal(gd[k], before[k])
    want = adam_reference(p, grads, 0.01, 0.9, 0.999, 1e-8, 0.0, scales)
    got = np.concatenate([halves["a"], halves["b"]])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_clipping_below_the_threshold_changes_nothing():
    p, grads = arrays(np.float32)
    a, b = {"w": p.copy()}, {"w": p.copy()}
    opt_a, opt_b = wb.SGD(lr=0.1, momentum=0.5), wb.SGD(lr=0.1, momentum=0.5)
    for g in grads:
        opt_a.step(a, {"w": g})
        norm = opt_b.step(b, {"w": g}, max_grad_norm=1e6)
        assert norm == pytest.approx(grad_norm([g]), rel=1e-12)
    np.testing.assert_array_equal(a["w"], b["w"])  # bit for bit: a scale of 1 is exact


def test_clipping_rejects_bad_thresholds():
    p, grads = arrays(np.float32)
    for bad in (-1.0, float("nan"), "x"):
        with pytest.raises((TypeError, ValueError), match="max_grad_norm"):
            wb.SGD().step({"w": p}, {"w": grads[0]}, max_grad_norm=bad)
    assert wb.SGD().step({"w": p}, {"w": grads[0]}) is None  # no clipping, no norm


@pytest.mark.parametrize("opt", [wb.SGD(0.1, momentum=0.5), wb.Adam(0.01), wb.RMSprop(0.01)])
def test_backup_receives_the_parameters_before_the_step(opt):
    p, grads = arrays(np.float32)
    q = {"w": p[: 3 * 4096].reshape(3, 4096).copy(), "b": p[:7].copy()}
    backup = {k: np.full_like(v, np.nan) for k, v in q.items()}
    plain = {k: v.copy() for k, v in q.items()}
    other = type(opt)(**opt._hyper())
    for g in grads:
        gd = {"w": g[: 3 * 4096].reshape(3, 4096).copy(), "b": g[:7].copy()}
        before = {k: v.copy() for k, v in q.items()}
        opt.step(q, gd, backup=backup)
        other.step(plain, gd)
        for k in q:
            np.testing.assert_array_equal(backup[k], before[k])
            np.testing.assert_array_equal(q[k], plain[k])  # the update itself is unchanged


def test_backup_must_be_like_the_parameters_and_is_checked_before_any_update():
    p, grads = arrays(np.float32)
    read_only = np.empty(N, np.float32)
    read_only.flags.writeable = False
    bad_ones = (
        np.empty(N, np.float64),
        np.empty(N + 1, np.float32),
        np.empty((N, 2), np.float32)[:, 0],  # strided
        read_only,
        None,  # the parameter itself
    )
    for bad in bad_ones:
        q = {"a": p.copy(), "w": p.copy()}
        bad = q["w"] if bad is None else bad
        opt = wb.Adam()
        with pytest.raises(ValueError, match="backup"):
            opt.step(q, {"a": grads[0], "w": grads[0]}, backup={"a": np.empty_like(p), "w": bad})
        np.testing.assert_array_equal(q["a"], p)  # nothing moved
        assert opt.t == 0
    with pytest.raises(ValueError, match="no array for parameter 'w'"):
        wb.SGD().step({"w": p}, {"w": grads[0]}, backup={})


@pytest.mark.parametrize("make", [lambda: wb.SGD(lr=1.0), lambda: wb.Adam(lr=0.1)])
def test_bad_arrays_are_refused_before_any_parameter_moves(make):
    opt = make()
    a = np.zeros(3, np.float32)
    # A gradient of the wrong shape for the second parameter: the first must not move.
    with pytest.raises(ValueError, match="gradient 'b' is float32 \\(5,\\)"):
        opt.step(
            {"a": a, "b": np.zeros(4, np.float32)},
            {"a": np.ones(3, np.float32), "b": np.ones(5, np.float32)},
        )
    assert not a.any() and opt.t == 0
    # The same size in another shape is not the parameter's gradient.
    with pytest.raises(ValueError, match="expected float32 \\(2, 3\\)"):
        opt.step({"w": np.zeros((2, 3), np.float32)}, {"w": np.ones((3, 2), np.float32)})
    with pytest.raises(ValueError, match="no gradient for parameter 'w'"):
        opt.step({"w": np.zeros(2, np.float32)}, {})
    with pytest.raises(TypeError, match="parameter 'w' must be a NumPy or CuPy array"):
        opt.step({"w": [0.0, 0.0]}, {"w": np.ones(2, np.float32)})
    # Transposed and Fortran-ordered parameters: an update into a copy would be lost.
    w = np.zeros((3, 4), np.float32)
    for p in (w.T, np.asfortranarray(w)):
        with pytest.raises(ValueError, match="writeable C-contiguous"):
            opt.step({"w": p}, {"w": np.ones(p.shape, np.float32)})
    assert not w.any()
    # One array under two names (or overlapping views) would be updated twice.
    w = np.zeros(8, np.float32)
    for a, b in ((w, w), (w[:6], w[4:]), (w.reshape(2, 4), w[3:5])):
        with pytest.raises(ValueError, match="share memory"):
            opt.step(
                {"a": a, "b": b},
                {"a": np.ones(a.shape, np.float32), "b": np.ones(b.shape, np.float32)},
            )
    assert not w.any() and opt.t == 0
    # Neighbouring slices of one buffer are separate parameters.
    opt.step({"a": w[:4], "b": w[4:]}, {"a": np.ones(4, np.float32), "b": np.ones(4, np.float32)})
    assert (w != 0).all()
    with pytest.raises(TypeError, match="lr: expected a number"):
        wb.SGD(lr=True)


def test_fit_starts_another_models_state_afresh_and_continues_its_own():
    x = (np.random.default_rng(0).random((32, 16)) < 0.5).astype(np.float32)
    opt = wb.Adam(lr=1e-2)
    wb.DAE(16, 8, seed=0).fit(x, epochs=3, batch_size=16, optimizer=opt, progress=False, seed=1)
    assert opt.t == 6
    # Another model (same shapes, same names): as with a new optimizer, bit for bit.
    a, b = wb.DAE(16, 8, seed=5), wb.DAE(16, 8, seed=5)
    a.fit(x, epochs=1, batch_size=16, optimizer=opt, progress=False, seed=2)
    b.fit(x, epochs=1, batch_size=16, optimizer=wb.Adam(lr=1e-2), progress=False, seed=2)
    for k, v in a.get_params().items():
        np.testing.assert_array_equal(v, b.get_params()[k])
    # The same model again: its state goes on.
    a.fit(x, epochs=1, batch_size=16, optimizer=opt, progress=False, seed=3)
    assert opt.t == 4
    # Raw steps keep the state by name, as before (a loop may pass copies each time).
    raw = wb.SGD(lr=0.1, momentum=0.9)
    g = {"w": np.ones(2, np.float32)}
    for _ in range(2):
        raw.step({"w": np.zeros(2, np.float32)}, g)
    assert raw.t == 2
    # A stepped optimizer pickles (its model reference is left out) and copies unbound.
    clone = pickle.loads(pickle.dumps(opt))
    assert clone.t == opt.t and clone._model is None


def test_one_optimizer_for_both_of_a_shaped_chains_networks_keeps_its_state():
    x = (np.random.default_rng(1).random((16, 6)) < 0.5).astype(np.float32)
    m = wb.ShapedChain(6, latent=2, hidden=(5,), chain_len=2, seed=0)
    opt = wb.Adam(1e-3)
    m.fit(
        x,
        pretrain_epochs=1,
        shaping_epochs=2,
        batch_size=8,
        optimizer=opt,
        guide_optimizer=opt,
        progress=False,
        seed=0,
    )
    # 2 pretraining steps, then 2 shaping batches x 2 epochs, each stepping both networks.
    assert opt.t == 2 + 2 * 2 * 2
