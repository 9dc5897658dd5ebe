"""The DAE on the GPU against the CPU backend: the chain (direct launches and graph replays),
walk-back losses and gradients, the optimizers, fit and the model's device moves."""

import numpy as np
import pytest

import walkback as wb

cupy = pytest.importorskip("cupy", reason="CuPy is not installed")

D, H = 37, 29  # odd sizes: partial Philox blocks and GEMM edges


def params(dtype, tied=True, seed=0, d=D, h=H):
    rng = np.random.default_rng(seed)
    p = {
        "W1": rng.normal(0, 0.5, (d, h)).astype(dtype),
        "b1": rng.normal(0, 0.2, h).astype(dtype),
        "b0": rng.normal(0, 0.2, d).astype(dtype),
    }
    if not tied:
        p["U1"] = rng.normal(0, 0.5, (h, d)).astype(dtype)
    return p


def on_gpu(p):
    return {k: cupy.asarray(v) for k, v in p.items()}


def binary(n, d=D, seed=1, dtype=np.float64):
    return (np.random.default_rng(seed).random((n, d)) < 0.4).astype(dtype)


@pytest.mark.parametrize("steps", [1, 5, 40])  # 40: two graph replays and 8 direct steps
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("d", [D, 40])  # 40: 16-byte vector accesses
@pytest.mark.parametrize("layout", ["stored", "transposed"])  # how a tied W is read
def test_chain_float64_equals_cpu(monkeypatch, steps, tied, d, layout):
    from walkback import _gpu

    monkeypatch.setattr(_gpu, "W_LAYOUT", layout)
    p = params(np.float64, tied, d=d)
    x = binary(11, d=d)
    kw = dict(corruption=wb.SaltAndPepper(0.3), seed=5, step=3, first_chain=2, steps=steps)
    want, wmean = wb.ops.chain_step(x, **p, return_mean=True, **kw)
    got, gmean = wb.ops.chain_step(cupy.asarray(x), **on_gpu(p), return_mean=True, **kw)
    assert isinstance(got, cupy.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(cupy.asnumpy(got), want)
    np.testing.assert_allclose(cupy.asnumpy(gmean), wmean, rtol=1e-10, atol=1e-12)


def test_graph_is_reused_with_new_seed_state_and_step():
    p = params(np.float64)
    gp = on_gpu(p)
    for seed, step, rows in [(1, 0, 7), (2, 100, 7), (3, 7, 7), (4, 0, 9)]:
        x = binary(rows, seed=seed)
        want = wb.ops.chain_step(x, **p, seed=seed, step=step, steps=33)
        got = wb.ops.chain_step(cupy.asarray(x), **gp, seed=seed, step=step, steps=33)
        np.testing.assert_array_equal(cupy.asnumpy(got), want)


@pytest.mark.parametrize(
    "activation,reconstruction,corruption",
    [
        ("tanh", "bernoulli", wb.Masking(0.4)),
        ("relu", "gaussian", wb.GaussianCorruption(0.3)),
        ("sigmoid", wb.Gaussian(0.5), None),
        ("leaky_relu", "bernoulli", wb.BitFlip(0.1)),
    ],
)
def test_chain_kinds_close_to_cpu(activation, reconstruction, corruption):
    p = params(np.float64)
    rng = np.random.default_rng(3)
    x = binary(6) if reconstruction == "bernoulli" else rng.normal(size=(6, D))
    kw = dict(
        activation=activation,
        reconstruction=reconstruction,
        corruption=corruption,
        seed=9,
        steps=20,
    )
    want = wb.ops.chain_step(x, **p, **kw)
    got = wb.ops.chain_step(cupy.asarray(x), **on_gpu(p), **kw)
    np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-9, atol=1e-9)


def test_chain_float32_close_to_cpu():
    p = params(np.float32, d=784, h=500)
    x = binary(64, d=784, dtype=np.float32)
    want, wmean = wb.ops.chain_step(x, **p, seed=1, return_mean=True)
    got, gmean = wb.ops.chain_step(cupy.asarray(x), **on_gpu(p), seed=1, return_mean=True)
    np.testing.assert_allclose(cupy.asnumpy(gmean), wmean, rtol=1e-4, atol=1e-5)
    # A sample differs only where the uniform falls between the two means.
    assert np.mean(cupy.asnumpy(got) != want) < 1e-3


def test_sample_records_burn_in_means_and_clamp_equal_cpu():
    m = wb.DAE(D, H, seed=4, dtype=np.float64)
    m.set_params(**params(np.float64))
    x0 = binary(5)
    clamp = np.zeros((5, D), bool)
    clamp[:, :10] = True
    clamp[2, 20:] = True
    kw = dict(x0=x0, steps=24, burn_in=7, every=3, seed=12, clamp=clamp)
    want = m.sample(**kw)
    want_means = m.sample(**kw, means=True)
    g = wb.DAE(D, H, seed=4, dtype=np.float64).to("cuda")
    g.set_params(**params(np.float64))
    got = g.sample(**{**kw, "x0": cupy.asarray(x0)})
    got_means = g.sample(**{**kw, "x0": cupy.asarray(x0)}, means=True)
    assert got.shape == (8, 5, D)
    np.testing.assert_array_equal(cupy.asnumpy(got), want)
    np.testing.assert_allclose(cupy.asnumpy(got_means), want_means, rtol=1e-10, atol=1e-12)
    kept = cupy.asnumpy(got)[:, clamp]
    np.testing.assert_array_equal(kept, np.broadcast_to(x0[clamp], kept.shape))


@pytest.mark.parametrize("branches", [1, 2])
@pytest.mark.parametrize("rows", [5, 12])  # 5: branches of 2 and 3 rows
@pytest.mark.parametrize("d", [D, 40])
def test_chain_branches_equal_cpu(monkeypatch, branches, rows, d):
    """Rows run as one or two graph branches draw the CPU's numbers: each branch finds its
    chains' streams, records and clamp rows from its row offset."""
    from walkback import _gpu

    monkeypatch.setattr(_gpu, "BRANCHES", branches)
    p = params(np.float64, d=d)
    x0 = binary(rows, d=d)
    clamp = np.zeros((rows, d), bool)
    clamp[:, :6] = True
    clamp[rows - 1, 9:] = True  # the last row lies in the second branch
    kw = dict(x0=x0, steps=40, burn_in=3, every=4, seed=8, clamp=clamp)
    m = wb.DAE(d, H, seed=4, dtype=np.float64)
    m.set_params(**p)
    g = wb.DAE(d, H, seed=4, dtype=np.float64).to("cuda")
    g.set_params(**p)
    for means in (False, True):
        want = m.sample(**kw, means=means)
        got = g.sample(**{**kw, "x0": cupy.asarray(x0)}, means=means)
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-10, atol=1e-12)
    # 16 + 16 steps in graphs, 5 direct, with nothing recorded: the final state and means
    kw = dict(seed=3, steps=37, first_chain=1, return_mean=True)
    last, mean = wb.ops.chain_step(x0, **p, **kw)
    got, gmean = wb.ops.chain_step(cupy.asarray(x0), **on_gpu(p), **kw)
    np.testing.assert_array_equal(cupy.asnumpy(got), last)
    np.testing.assert_allclose(cupy.asnumpy(gmean), mean, rtol=1e-10, atol=1e-12)


def test_large_odd_batch_runs_two_branches_equal_cpu(monkeypatch):
    """1025 chains as two branches of 512 and 513 rows, float64: records, per-chain clamps and
    final means equal the CPU's, through graph replays and direct steps."""
    from walkback import _gpu

    monkeypatch.setattr(_gpu, "BRANCHES", 2)
    d, rows = 40, 1025
    p = params(np.float64, d=d, seed=2)
    x0 = binary(rows, d=d, seed=5)
    clamp = np.zeros((rows, d), bool)
    clamp[::7, :8] = True
    clamp[510:515, 20:] = True  # rows on both sides of the split
    kw = dict(x0=x0, steps=34, burn_in=3, every=5, seed=2, clamp=clamp)
    m = wb.DAE(d, H, seed=4, dtype=np.float64)
    m.set_params(**p)
    g = wb.DAE(d, H, seed=4, dtype=np.float64).to("cuda")
    g.set_params(**p)
    want = m.sample(**kw)
    got = g.sample(**{**kw, "x0": cupy.asarray(x0)})
    np.testing.assert_array_equal(cupy.asnumpy(got), want)
    kw = dict(seed=6, steps=37, first_chain=11, return_mean=True)
    last, mean = wb.ops.chain_step(x0, **p, **kw)
    gl, gm = wb.ops.chain_step(cupy.asarray(x0), **on_gpu(p), **kw)
    np.testing.assert_array_equal(cupy.asnumpy(gl), last)
    np.testing.assert_allclose(cupy.asnumpy(gm), mean, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("branches", [0, 2])  # 0: one (automatic); 2: two streams, side lane
@pytest.mark.parametrize("d", [40, 999, 2000])
def test_large_odd_batch_walkback_grads_equal_cpu(monkeypatch, tied, branches, d):
    """1025 rows, k = 3: as one block, and as two branches on two streams with the bias sums
    and the loss's sum on the side lane. At d = 999 (a partial group per row; one branch) and
    d = 2000 (both branch counts) an H100's epilogue threads take several groups each (its
    grid is 4 blocks of 256 threads per multiprocessor: 135,168 threads for 256,250 and
    512,500 groups)."""
    from walkback import _gpu

    monkeypatch.setattr(_gpu, "BRANCHES", branches)
    p = params(np.float64, tied, d=d, seed=3)
    x = binary(1025, d=d, seed=6)
    kw = dict(walkbacks=3, corruption=wb.SaltAndPepper(0.3), seed=4, first_chain=2)
    loss, grads = wb.ops.walkback_grad(x, **p, **kw)
    gloss, ggrads = wb.ops.walkback_grad(cupy.asarray(x), **on_gpu(p), **kw, wait=True)
    assert gloss == pytest.approx(loss, rel=1e-11)
    for k, v in grads.items():
        np.testing.assert_allclose(cupy.asnumpy(ggrads[k]), v, rtol=1e-9, atol=1e-12, err_msg=k)


def test_large_batch_two_branches_track_one(monkeypatch):
    """float32, 1024 chains of 784 units: two branches draw the chain of one, up to samples
    whose uniform falls between two roundings of a mean."""
    from walkback import _gpu

    p = on_gpu(params(np.float32, d=784, h=500))
    x = cupy.asarray(binary(1024, d=784, dtype=np.float32))
    out = {}
    for branches in (1, 2):
        monkeypatch.setattr(_gpu, "BRANCHES", branches)
        out[branches] = cupy.asnumpy(wb.ops.chain_step(x, **p, seed=4, steps=16))
    assert np.mean(out[1] != out[2]) < 1e-3


def test_transposed_w_follows_changes_in_place(monkeypatch):
    """The copy of W^T is made in every call: a W changed in place between two calls of the
    same shape (one cached graph) is the W the second call multiplies by."""
    from walkback import _gpu

    monkeypatch.setattr(_gpu, "W_LAYOUT", "transposed")
    p = params(np.float64, d=40, h=33)
    gp = on_gpu(p)
    x = binary(6, d=40)
    for scale in (1.0, -2.0):
        gp["W1"] *= scale
        p["W1"] = p["W1"] * scale
        kw = dict(seed=9, steps=20, return_mean=True)
        last, mean = wb.ops.chain_step(x, **p, **kw)
        gl, gm = wb.ops.chain_step(cupy.asarray(x), **gp, **kw)
        np.testing.assert_array_equal(cupy.asnumpy(gl), last)
        np.testing.assert_allclose(cupy.asnumpy(gm), mean, rtol=1e-10, atol=1e-12)


def test_w_layouts_track_each_other(monkeypatch):
    """float32, 784 units: W as stored and W^T copied draw the same chain, up to samples whose
    uniform falls between two roundings of a mean; the automatic choice copies at 256 chains
    and reads W as stored at 1024."""
    from walkback import _gpu

    p = on_gpu(params(np.float32, d=784, h=500))
    for rows, auto in ((256, "transposed"), (1024, "stored")):
        x = cupy.asarray(binary(rows, d=784, dtype=np.float32))
        out = {}
        for layout in ("auto", "stored", "transposed"):
            monkeypatch.setattr(_gpu, "W_LAYOUT", layout)
            out[layout] = cupy.asnumpy(wb.ops.chain_step(x, **p, seed=4, steps=16))
        np.testing.assert_array_equal(out["auto"], out[auto])
        # A flipped sample sends its chain elsewhere: count chains, not units.
        assert np.mean((out["stored"] != out["transposed"]).any(axis=1)) <= 0.02


def test_sample_from_random_start_and_shared_clamp():
    m = wb.DAE(D, H, seed=4, dtype=np.float64)
    g = wb.DAE(D, H, seed=4, dtype=np.float64).to("cuda")
    np.testing.assert_array_equal(
        cupy.asnumpy(g.sample(n=9, steps=17, seed=3)), m.sample(n=9, steps=17, seed=3)
    )
    x0 = binary(4)
    clamp = np.arange(D) < 12
    want = m.sample(x0=x0, steps=5, seed=1, clamp=clamp, means=True)
    got = g.sample(x0=cupy.asarray(x0), steps=5, seed=1, clamp=cupy.asarray(clamp), means=True)
    np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("walkbacks,reconstruct", [(1, "all"), (3, "all"), (3, "last")])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("reconstruction", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("branches", [1, 2])  # 2: rows 0-5 and 6-12 on two streams
def test_walkback_grad_float64_equals_cpu(
    monkeypatch, walkbacks, reconstruct, tied, reconstruction, branches
):
    from walkback import _gpu

    monkeypatch.setattr(_gpu, "BRANCHES", branches)
    p = params(np.float64, tied)
    x = (
        binary(13)
        if reconstruction == "bernoulli"
        else np.random.default_rng(2).normal(size=(13, D))
    )
    kw = dict(
        walkbacks=walkbacks,
        reconstruct=reconstruct,
        reconstruction=reconstruction,
        corruption=wb.SaltAndPepper(0.25)
        if reconstruction == "bernoulli"
        else wb.GaussianCorruption(0.4),
        activation="tanh",
        seed=8,
        first_chain=3,
    )
    loss, grads = wb.ops.walkback_grad(x, **p, **kw)
    gloss, ggrads = wb.ops.walkback_grad(cupy.asarray(x), **on_gpu(p), **kw)
    assert isinstance(gloss, cupy.ndarray) and gloss.shape == ()
    assert float(gloss) == pytest.approx(loss, rel=1e-11)
    assert wb.ops.walkback_grad(cupy.asarray(x), **on_gpu(p), **kw, wait=True)[0] == float(gloss)
    assert set(ggrads) == set(grads)
    for k, v in grads.items():
        assert isinstance(ggrads[k], cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(ggrads[k]), v, rtol=1e-9, atol=1e-12, err_msg=k)


def test_walkback_grad_float32_large_batch():
    p = params(np.float32, d=784, h=1000)
    x = binary(4096, d=784, dtype=np.float32)
    loss, grads = wb.ops.walkback_grad(x, **p, corruption=wb.SaltAndPepper(0.3), seed=1)
    gloss, ggrads = wb.ops.walkback_grad(
        cupy.asarray(x), **on_gpu(p), corruption=wb.SaltAndPepper(0.3), seed=1
    )
    assert float(gloss) == pytest.approx(loss, rel=1e-4)
    for k, v in grads.items():
        g = cupy.asnumpy(ggrads[k])
        assert np.linalg.norm(g - v) <= 1e-3 * np.linalg.norm(v), k


@pytest.mark.parametrize(
    "opt", [wb.SGD(0.1, momentum=0.9, weight_decay=0.01), wb.Adam(0.01), wb.RMSprop(0.01)]
)
def test_optimizers_equal_cpu(opt):
    import copy

    rng = np.random.default_rng(0)
    p = {"a": rng.normal(size=(50, 7)), "b": rng.normal(size=3)}
    gp = on_gpu(p)
    o_cpu, o_gpu = copy.deepcopy(opt), copy.deepcopy(opt)
    for _ in range(3):
        g = {k: rng.normal(size=v.shape) for k, v in p.items()}
        o_cpu.step(p, g)
        o_gpu.step(gp, on_gpu(g))
    for k in p:
        np.testing.assert_allclose(cupy.asnumpy(gp[k]), p[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("opt", [wb.SGD(0.1, momentum=0.9), wb.Adam(0.01), wb.RMSprop(0.01)])
def test_optimizer_launches_many_arrays_of_two_dtypes_as_the_cpu_does(opt):
    """The GPU updates up to 8 arrays of one dtype per launch: 11 float64 arrays (two launches,
    the cut inside them), 3 float32 ones and an empty array, all equal to the CPU's update."""
    import copy

    rng = np.random.default_rng(4)
    shapes = [(5, 3), (1,), (300,), (2, 2), (0,), (7,), (1000,), (4, 9), (3,), (17,), (2,)]
    p = {f"d{i}": rng.normal(size=s) for i, s in enumerate(shapes)}
    p.update(
        {
            f"f{i}": rng.normal(size=s).astype(np.float32)
            for i, s in enumerate([(9,), (4, 33), (1,)])
        }
    )
    gp, p0 = on_gpu(p), copy.deepcopy(p)
    o_cpu, o_gpu = copy.deepcopy(opt), copy.deepcopy(opt)
    for _ in range(3):
        g = {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in p.items()}
        o_cpu.step(p, g)
        o_gpu.step(gp, on_gpu(g))
    for k in p:
        tol = 1e-12 if p[k].dtype == np.float64 else 1e-6
        np.testing.assert_allclose(cupy.asnumpy(gp[k]), p[k], rtol=tol, atol=tol, err_msg=k)
        assert p[k].size == 0 or not np.array_equal(p[k], p0[k]), k  # the update moved it


def test_clipping_equals_cpu_and_leaves_gradients_alone():
    import copy

    rng = np.random.default_rng(1)
    p = {"a": rng.normal(size=(50, 7)), "b": rng.normal(size=3)}
    gp = on_gpu(p)
    o_cpu, o_gpu = wb.Adam(0.01), wb.Adam(0.01)
    for _ in range(3):
        g = {k: 10 * rng.normal(size=v.shape) for k, v in p.items()}
        g_gpu = on_gpu(g)
        g_gpu["a"] = cupy.asfortranarray(g_gpu["a"])  # a strided gradient is read right
        before = copy.deepcopy({k: cupy.asnumpy(v) for k, v in g_gpu.items()})
        n_cpu = o_cpu.step(p, g, max_grad_norm=1.0)
        n_gpu = o_gpu.step(gp, g_gpu, max_grad_norm=1.0)
        assert n_gpu == pytest.approx(n_cpu, rel=1e-12) and n_cpu > 1.0
        for k in g_gpu:
            np.testing.assert_array_equal(cupy.asnumpy(g_gpu[k]), before[k])
    for k in p:
        np.testing.assert_allclose(cupy.asnumpy(gp[k]), p[k], rtol=1e-12, atol=1e-14)


def test_fit_on_gpu_learns_and_tracks_cpu():
    x = wb.data.binarize(wb.data.load_digits()[0], "threshold").astype(np.float32)
    cpu = wb.DAE(64, 100, seed=0)
    gpu = wb.DAE(64, 100, seed=0).to("cuda")
    kw = dict(epochs=4, batch_size=50, optimizer=wb.Adam(3e-3), seed=1, progress=False)
    hc = cpu.fit(x, **kw)
    kw["optimizer"] = wb.Adam(3e-3)
    hg = gpu.fit(cupy.asarray(x), validation=cupy.asarray(x[:200]), **kw)
    assert hg.train_loss[-1] < 0.8 * hg.train_loss[0]
    assert hg.train_loss[-1] == pytest.approx(hc.train_loss[-1], rel=0.03)
    assert all(isinstance(v, cupy.ndarray) for v in gpu.get_params().values())
    assert hg.valid_loss[-1] is not None and np.isfinite(hg.valid_loss[-1])


def test_fit_divergence_on_gpu_restores_finite_parameters():
    """fit reads each loss a batch late on the GPU too: a diverging run stops naming a batch,
    with the parameters of the last finite loss."""
    x = np.repeat(np.eye(D, dtype=np.float32)[:4], 20, axis=0)
    m = wb.DAE(D, 8, activation="relu", reconstruction="gaussian", seed=0).to("cuda")
    with pytest.raises(wb.TrainingDiverged, match=r"epoch \d+, batch \d+"):
        m.fit(cupy.asarray(x), epochs=50, batch_size=10, optimizer=wb.SGD(lr=1e6), progress=False)
    for v in m.get_params().values():
        assert bool(cupy.isfinite(v).all())
    assert np.isfinite(m.walkback_loss(cupy.asarray(x), seed=0))


def test_pending_scalar_reads_its_value_not_later_work():
    from walkback import _gpu

    a = cupy.full((), 3.5)
    pending = _gpu.PendingScalar(a)
    a.fill(7.0)  # queued after the copy
    assert float(pending) == 3.5
    with pytest.raises(ValueError, match="one value"):
        _gpu.PendingScalar(cupy.zeros(3))


def test_fit_stochastic_binarization_on_gpu():
    x = wb.data.load_digits()[0][:300].astype(np.float32)
    m = wb.DAE(64, 50, seed=0).to("cuda")
    h = m.fit(cupy.asarray(x), epochs=2, binarize="stochastic", progress=False, seed=0)
    assert np.isfinite(h.train_loss).all()


def test_move_save_and_load(tmp_path):
    m = wb.DAE(D, H, seed=2).to("cuda")
    assert m.device == "cuda" and isinstance(m.get_params()["W1"], cupy.ndarray)
    m.save(tmp_path / "m.safetensors")
    back = wb.load(tmp_path / "m.safetensors")
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.get_params()["W1"], cupy.asnumpy(m.get_params()["W1"]))
    m.to("cpu")
    assert isinstance(m.get_params()["W1"], np.ndarray)


def test_mixing_devices_is_an_error_naming_both():
    m = wb.DAE(D, H).to("cuda")
    with pytest.raises(ValueError, match="cpu.*cuda"):
        m.loss_and_grad(binary(3, dtype=np.float32))
    with pytest.raises(ValueError, match="cpu.*cuda"):
        m.sample(x0=binary(3, dtype=np.float32))
    p = params(np.float32)
    with pytest.raises(ValueError, match="x is on cuda but W1 is on cpu"):
        wb.ops.chain_step(cupy.asarray(binary(2, dtype=np.float32)), **p, seed=0)
    c = wb.DAE(D, H)
    with pytest.raises(ValueError, match="cuda.*cpu"):
        c.fit(cupy.asarray(binary(3, dtype=np.float32)), epochs=1, progress=False)


def test_models_without_a_cuda_port_say_so():
    with pytest.raises(NotImplementedError, match="CPU only"):
        wb.GSN(visible=10, hidden=(8,)).to("cuda")


def test_runs_on_cupys_current_stream():
    p = params(np.float64)
    x = binary(8)
    want = wb.ops.chain_step(x, **p, seed=2, steps=20)
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        got = wb.ops.chain_step(cupy.asarray(x), **on_gpu(p), seed=2, steps=20)
    s.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(got), want)


def test_host_threads_take_turns_on_the_shared_buffers():
    """Four threads, each on its own non-blocking stream, run chains and walk-back gradients at
    once (Python releases the GIL around the drivers): each gets the CPU's numbers, as if alone."""
    import threading

    p = params(np.float64)
    gp = on_gpu(p)
    xs = [binary(6 + i, seed=20 + i) for i in range(4)]
    want = [wb.ops.chain_step(x, **p, seed=i, steps=40) for i, x in enumerate(xs)]
    want_loss = [wb.ops.walkback_grad(x, **p, seed=i)[0] for i, x in enumerate(xs)]
    got, errors = {}, []

    def work(i):
        try:
            s = cupy.cuda.Stream(non_blocking=True)
            with s:
                for _ in range(5):
                    out = wb.ops.chain_step(cupy.asarray(xs[i]), **gp, seed=i, steps=40)
                    loss, _ = wb.ops.walkback_grad(cupy.asarray(xs[i]), **gp, seed=i, wait=True)
                    got.setdefault(i, []).append((cupy.asnumpy(out), loss))
            s.synchronize()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(4):
        for out, loss in got[i]:
            np.testing.assert_array_equal(out, want[i])
            assert loss == pytest.approx(want_loss[i], rel=1e-11)


def test_dlpack_tensors_run_the_chain():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    p = params(np.float32)
    x = binary(4, dtype=np.float32)
    want = wb.ops.chain_step(x, **p, seed=0, steps=3)
    got = wb.ops.chain_step(
        torch.from_numpy(x).cuda(),
        **{k: torch.from_numpy(v).cuda() for k, v in p.items()},
        seed=0,
        steps=3,
    )
    assert isinstance(got, cupy.ndarray)
    assert np.mean(cupy.asnumpy(got) != want) < 0.01


def test_parzen_equals_cpu():
    rng = np.random.default_rng(0)
    s = rng.random((3000, 50)).astype(np.float32)
    x = rng.random((900, 50)).astype(np.float32)
    for sigma in (0.05, 0.3):
        want = wb.ops.parzen_logpdf(s, x, sigma)
        got = wb.ops.parzen_logpdf(cupy.asarray(s), cupy.asarray(x), sigma)
        # float32 cross terms: both backends keep their rounding below 2e-5 of the
        # normalising term (walkback/parzen.cpp), and round differently.
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=3e-5, atol=1e-4)
    mean, sem = wb.eval.parzen_log_likelihood(cupy.asarray(s), cupy.asarray(x), 0.3)
    assert (mean, sem) == pytest.approx(wb.eval.parzen_log_likelihood(s, x, 0.3), rel=1e-5)


def test_parzen_blocks_over_many_centres():
    rng = np.random.default_rng(1)
    s = rng.random((9000, 8))  # more than one 8192-column block, float64
    x = rng.random((5000, 8))  # more than one 4096-row block
    want = wb.ops.parzen_logpdf(s, x, 0.2)
    got = wb.ops.parzen_logpdf(cupy.asarray(s), cupy.asarray(x), 0.2)
    np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-10)


def test_cublas_was_found():
    from walkback import _gpu

    assert "libcublas" in _gpu.cublas_origin()


@pytest.mark.parametrize("branches", [1, 2])  # 2: the bad row lies in the second branch
def test_walkback_checks_the_data_inside_the_kernel(monkeypatch, branches):
    from walkback import _gpu

    monkeypatch.setattr(_gpu, "BRANCHES", branches)
    p = on_gpu(params(np.float32))
    x = binary(6, dtype=np.float32)
    m = wb.DAE(D, H).to("cuda")
    m.set_params(**p)
    x[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        wb.ops.walkback_grad(cupy.asarray(x), **p, seed=0, wait=True)
    assert np.isnan(float(wb.ops.walkback_grad(cupy.asarray(x), **p, seed=0)[0]))
    x[3, 5] = 2.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wb.ops.walkback_grad(cupy.asarray(x), **p, seed=0, wait=True)
    assert np.isnan(float(wb.ops.walkback_grad(cupy.asarray(x), **p, seed=0)[0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m._walkback_call(cupy.asarray(x), 1, 0, 0, "all", None)  # what loss_and_grad runs
    x[3, 5] = 1.0
    loss, _ = wb.ops.walkback_grad(cupy.asarray(x), **p, seed=0, wait=True)  # flags were reset
    assert np.isfinite(loss)


def test_chain_rejects_bad_states_in_one_check():
    p = on_gpu(params(np.float32))
    x = binary(4, dtype=np.float32)
    x[1, 2] = 0.5
    with pytest.raises(ValueError, match="binary"):
        wb.ops.chain_step(cupy.asarray(x), **p, seed=0)
    x[1, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        wb.ops.chain_step(cupy.asarray(x), **p, seed=0)
    x[1, 2] = 0.5  # Gaussian chains take any finite state
    out = wb.ops.chain_step(cupy.asarray(x), **p, seed=0, reconstruction="gaussian")
    assert out.shape == x.shape
    # The check is read after the chain was queued (graph replays too): the caller's array is
    # untouched, and the next call's flags start clean.
    gx = cupy.asarray(x)
    with pytest.raises(ValueError, match="binary"):
        wb.ops.chain_step(gx, **p, seed=0, steps=40)
    np.testing.assert_array_equal(cupy.asnumpy(gx), x)
    p64 = params(np.float64)
    x = x.astype(np.float64)
    x[1, 2] = 1.0
    want = wb.ops.chain_step(x, **p64, seed=0, steps=40)
    got = wb.ops.chain_step(cupy.asarray(x), **on_gpu(p64), seed=0, steps=40)
    np.testing.assert_array_equal(cupy.asnumpy(got), want)


def test_first_chain_splits_a_gpu_run_as_the_cpu_does():
    # The GPU chain draws chain first_chain + c's numbers, as the CPU does: a split run
    # follows one call's chains. float64, where the layouts and kernels agree to rounding.
    m = wb.DAE(D, H, seed=3, dtype=np.float64)
    cpu = m.sample(n=32, steps=6, seed=4, means=True, first_chain=100)
    m.to("cuda")
    whole = m.sample(n=64, steps=6, seed=4, means=True, first_chain=68).get()
    part = m.sample(n=32, steps=6, seed=4, means=True, first_chain=100).get()
    np.testing.assert_allclose(part, cpu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(whole[32:], cpu, rtol=1e-9, atol=1e-12)
    x = cupy.zeros((0, D), cupy.float32)
    assert wb.ops.corrupt(x, wb.SaltAndPepper(0.3), seed=0).shape == (0, D)
