"""Bad input gives a clear ValueError/TypeError that names the argument, never a crash."""

import os

import numpy as np
import pytest

import walkback as wb


@pytest.fixture
def model():
    return wb.DAE(10, 6, seed=0)


def test_constructor_errors():
    with pytest.raises(ValueError, match="visible"):
        wb.DAE(0, 5)
    with pytest.raises(TypeError, match="hidden"):
        wb.DAE(5, 2.5)
    with pytest.raises(ValueError, match="activation"):
        wb.DAE(5, 5, activation="softsign")
    with pytest.raises(ValueError, match="reconstruction"):
        wb.DAE(5, 5, reconstruction="poisson")
    with pytest.raises(TypeError, match="corruption"):
        wb.DAE(5, 5, corruption=0.3)
    with pytest.raises(TypeError, match="dtype"):
        wb.DAE(5, 5, dtype=np.int32)
    with pytest.raises(TypeError, match="tied"):
        wb.DAE(5, 5, tied="yes")
    with pytest.raises(ValueError, match="seed"):
        wb.DAE(5, 5, seed=-3)


def test_sample_argument_errors(model):
    x = np.zeros((3, 10))
    with pytest.raises(ValueError, match="n .*or x0"):
        model.sample()
    with pytest.raises(ValueError, match="x0"):
        model.sample(x0=np.zeros((3, 11)))
    with pytest.raises(ValueError, match="NaN"):
        model.sample(x0=np.full((3, 10), np.nan))
    with pytest.raises(ValueError, match="binary"):
        model.sample(x0=np.full((3, 10), 0.5))
    with pytest.raises(TypeError, match="x0"):
        model.sample(x0=np.array([["a"] * 10]))
    with pytest.raises(ValueError, match="steps"):
        model.sample(x0=x, steps=0)
    with pytest.raises(ValueError, match="burn_in"):
        model.sample(x0=x, burn_in=-1)
    with pytest.raises(ValueError, match="every"):
        model.sample(x0=x, steps=5, every=6)
    with pytest.raises(ValueError, match="clamp"):
        model.sample(x0=x, clamp=np.ones(9, bool))
    with pytest.raises(ValueError, match="clamp"):
        model.sample(x0=x, clamp=np.ones((2, 10), bool))
    with pytest.raises(TypeError, match="clamp"):
        model.sample(x0=x, clamp=np.full(10, 0.5))
    with pytest.raises(ValueError, match="clamp"):
        model.sample(3, clamp=np.ones(10, bool))
    with pytest.raises(ValueError, match="n: x0 has 3 rows"):
        model.sample(4, x0=x)
    with pytest.raises(TypeError, match="seed"):
        model.sample(2, seed="abc")


def test_set_params_errors(model):
    with pytest.raises(ValueError, match="unknown parameter 'U1'"):
        model.set_params(U1=np.zeros((6, 10)))
    with pytest.raises(ValueError, match="W1: expected shape"):
        model.set_params(W1=np.zeros((6, 10)))
    with pytest.raises(ValueError, match="b1: contains NaN"):
        model.set_params(b1=np.full(6, np.inf))
    before = model.get_params()
    model.get_params()["W1"][:] = 99  # a copy: the model is untouched
    np.testing.assert_array_equal(model.get_params()["W1"], before["W1"])


def test_chain_step_errors():
    x = np.zeros((2, 4), np.float32)
    w = np.zeros((4, 3), np.float32)
    b1, b0 = np.zeros(3, np.float32), np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="W1: expected dtype float32"):
        wb.ops.chain_step(x, w.astype(np.float64), b1, b0, seed=0)
    with pytest.raises(ValueError, match="b1: expected shape"):
        wb.ops.chain_step(x, w, np.zeros(4, np.float32), b0, seed=0)
    with pytest.raises(ValueError, match="U1: expected shape"):
        wb.ops.chain_step(x, w, b1, b0, np.zeros((4, 3), np.float32), seed=0)
    with pytest.raises(ValueError, match="binary"):
        wb.ops.chain_step(x + 0.5, w, b1, b0, seed=0)
    with pytest.raises(ValueError, match="C-contiguous"):
        wb.ops.chain_step(x, np.asfortranarray(np.zeros((4, 3), np.float32)), b1, b0, seed=0)
    with pytest.raises(ValueError, match="steps"):
        wb.ops.chain_step(x, w, b1, b0, seed=0, steps=0)


def test_bindings_reject_bad_arrays_without_crashing():
    from walkback import _backend

    cpu = _backend.cpu()
    with pytest.raises(TypeError, match="out: expected dtype float32"):
        cpu.uniform(0, 0, 0, 0, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="out: expected shape"):
        cpu.uniform(0, 0, 0, 0, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="records: expected shape"):
        cpu.dae_chain(
            np.zeros((2, 4)),
            W1=np.zeros((4, 3)),
            b1=np.zeros(3),
            b0=np.zeros(4),
            U1=None,
            activation=0,
            reconstruction=0,
            sigma=1.0,
            corruption=0,
            corruption_param=0.0,
            seed=0,
            first_step=0,
            first_chain=0,
            steps=4,
            burn_in=0,
            every=2,
            clamp=None,
            records=np.zeros((1, 2, 4)),
            means=None,
            record_means=False,
        )


def test_thread_count_errors():
    with pytest.raises(ValueError, match="n"):
        wb.set_num_threads(0)


@pytest.mark.parametrize(
    "value, threads",
    [("abc", None), ("0", None), ("100000", None), ("2x", None), ("", 0), (" 3 ", 3)],
)
def test_the_thread_count_in_the_environment(value, threads):
    import subprocess
    import sys

    code = "import walkback as wb; wb.DAE(4, 3).sample(n=2, steps=1); print(wb.get_num_threads())"
    env = {**os.environ, "WALKBACK_NUM_THREADS": value}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if threads is None:  # a bad value is an error
        assert r.returncode == 1 and "WALKBACK_NUM_THREADS" in r.stderr
    else:  # empty means unset (the CPUs the process may use); blanks around a number pass
        assert r.returncode == 0 and int(r.stdout) == (threads or len(os.sched_getaffinity(0)))


def _seq_model():
    return wb.SequenceGSN(3, 4, channels=(5, 6), width=3, pool=2, walkbacks=2)


def test_sequence_gsn_argument_errors():
    m = _seq_model()
    x = np.random.default_rng(0).random((4, 7, 3))
    y = np.zeros((4, 7), np.int64)
    for bad in (-1, 0):
        with pytest.raises(ValueError, match="batch_size"):
            m.predict_proba(x, batch_size=bad)
        with pytest.raises(ValueError, match="batch_size"):
            m.single_pass_proba(x, batch_size=bad)
    with pytest.raises(TypeError, match="batch_size"):
        m.predict(x, batch_size=2.0)
    with pytest.raises(ValueError, match="walkbacks"):
        m.loss_and_grad(x, y, walkbacks=10**7)
    with pytest.raises(ValueError, match="steps"):
        m.predict_proba(x, steps=2**63)
    with pytest.raises(TypeError, match="x: expected a real"):
        m.predict_proba(x + 1j)
    with pytest.raises(ValueError, match="validation"):
        m.fit(x, y, epochs=1, validation=(x,), progress=False)
    for bad in (5, (5, 6, 7)):
        with pytest.raises(ValueError, match="channels: expected 2 layer sizes"):
            wb.SequenceGSN(3, 4, channels=bad)
    with pytest.raises(TypeError, match="channels"):
        wb.SequenceGSN(3, 4, channels="wide")
    with pytest.raises(TypeError, match="noise"):
        wb.SequenceGSN(3, 4, noise="loud")


def test_layer_widths_dtypes_and_numbers_are_checked_alike():
    # An int is one layer everywhere; anything else that is not a sequence of ints is named.
    assert wb.ShapedChain(6, latent=2, hidden=5, guide_hidden=4).hidden == (5,)
    assert wb.GSN(6, hidden=7).hidden == [7]
    for make in (
        lambda: wb.ShapedChain(6, hidden=None),
        lambda: wb.GSN(6, hidden=None),
        lambda: wb.Diffusion(4, steps=5, hidden="500"),
    ):
        with pytest.raises(TypeError, match="hidden"):
            make()
    for make in (
        lambda: wb.DAE(5, 5, dtype="banana"),
        lambda: wb.GSN(5, hidden=[3], dtype="banana"),
        lambda: wb.Diffusion(5, steps=5, dtype="banana"),
    ):
        with pytest.raises(TypeError, match="dtype"):
            make()
    with pytest.raises(ValueError, match="activation"):
        wb.DAE(5, 5, activation=["tanh"])
    with pytest.raises(ValueError, match="kind"):
        wb.Diffusion(5, steps=5, kind=["gaussian"])
    with pytest.raises(TypeError, match="step1_beta"):
        wb.Diffusion(5, steps=5, step1_beta="small")
    with pytest.raises(TypeError, match="kld"):
        wb.ShapedChain(6, kld="1")
    with pytest.raises(ValueError, match="kld"):
        wb.ShapedChain(6, kld=10**400)
    with pytest.raises(ValueError, match="steps \\* basis"):
        wb.Diffusion(5, steps=10**7, basis=1000)
    # NumPy scalars are numbers.
    g = wb.GSN(6, hidden=[3], hidden_noise=np.float32(0.5))
    assert g.hidden_noise == wb.GaussianNoise(0.5, 0.5)


def test_gsn_float_labels_are_named_as_labels():
    m = wb.GSN.hybrid(8, 3, hidden=[5])
    x = np.zeros((4, 8))
    with pytest.raises(TypeError, match="class labels must be integers"):
        m.fit({"x": x, "y": np.array([0.0, 1.0, 2.0, 1.0])}, epochs=1, progress=False)


def test_diffusion_fit_with_a_bad_argument_leaves_the_model_unscaled():
    m = wb.Diffusion(4, steps=5, hidden=6, basis=3)
    x = np.random.default_rng(0).random((20, 4))
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(x, batch_size=0, progress=False)
    assert m.scale is None and m.shift is None
    m.fit(x * 3.0, epochs=1, batch_size=10, progress=False)
    assert m.scale == pytest.approx(1.0 / (x * 3.0).std())


def test_ops_counters_never_wrap():
    x = np.full((2, 64), 0.5, np.float32)
    with pytest.raises(ValueError, match="first_chain \\+ chains"):
        wb.ops.corrupt(x, wb.SaltAndPepper(1.0), seed=0, first_chain=2**32 - 1)
    W, b1, b0 = np.zeros((64, 3), np.float32), np.zeros(3, np.float32), np.zeros(64, np.float32)
    xb = np.zeros((2, 64), np.float32)
    with pytest.raises(ValueError, match="first_chain \\+ chains"):
        wb.ops.chain_step(xb, W, b1, b0, seed=0, first_chain=2**32 - 1)
    with pytest.raises(ValueError, match="step \\+ steps"):
        wb.ops.chain_step(xb, W, b1, b0, seed=0, step=2**32 - 1, steps=2)
    with pytest.raises(ValueError, match="first_chain \\+ chains"):
        wb.ops.walkback_grad(xb, W, b1, b0, seed=0, first_chain=2**32 - 1)
    with pytest.raises(ValueError, match="at least one row"):
        wb.ops.walkback_grad(np.zeros((0, 64), np.float32), W, b1, b0, seed=0)
    # The last chain index and the last step still work.
    wb.ops.corrupt(x[:1], wb.SaltAndPepper(1.0), seed=0, first_chain=2**32 - 1)
    wb.ops.chain_step(xb, W, b1, b0, seed=0, step=2**32 - 1)


def test_corrupt_out_may_be_x_but_not_overlap_it():
    rng = np.random.default_rng(0)
    buf = np.zeros(30, np.float32)
    buf[:24] = rng.random(24)
    xx, o = buf[:24].reshape(4, 6), buf[6:30].reshape(4, 6)
    with pytest.raises(ValueError, match="overlaps x"):
        wb.ops.corrupt(xx, wb.GaussianCorruption(0.5), seed=0, out=o)
    ref = wb.ops.corrupt(xx.copy(), wb.GaussianCorruption(0.5), seed=0)
    assert wb.ops.corrupt(xx, wb.GaussianCorruption(0.5), seed=0, out=xx) is xx
    np.testing.assert_array_equal(xx, ref)


def test_evaluation_input_errors():
    m = wb.DAE(4, 3, seed=0)
    with pytest.raises(ValueError, match="binary"):
        wb.eval.csl(m, np.array([[0, 1, 0, 7.0]]), n_samples=20, chains=2, seed=0)
    with pytest.raises(ValueError, match="means"):
        wb.eval.csl_from_means(np.full(4, 0.5), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="samples"):
        wb.eval.energy_distance(1.0, 2.0)
    with pytest.raises(TypeError, match="samples"):
        wb.ops.parzen_logpdf(np.ones((3, 2)) + 1j, np.ones((2, 2)), 0.5)


def test_data_exact_images_and_energy_distance_inputs(tmp_path):
    m = wb.DAE(4, 3, seed=0)
    with pytest.raises(ValueError, match="n >= 1"):
        wb.exact.kl(np.zeros((0, 4)), m)
    with pytest.raises(ValueError, match="n >= 1"):
        wb.exact.log_likelihood(m, np.zeros((0, 4)))
    with pytest.raises(TypeError, match="bool mask"):
        wb.exact.transition_matrix(m, clamp=[0.5, 0, 0, 0], values=[1, 0, 0, 0])
    with pytest.raises(ValueError, match="62"):
        wb.exact.state_index(np.ones((1, 70)))
    pi = wb.exact.stationary_distribution([[0.5, 0.5], [0.2, 0.8]])  # nested lists
    np.testing.assert_allclose(pi, [2 / 7, 5 / 7])
    assert list(wb.exact.local_maxima([0.1, 0.2, 0.3, 0.4])) == [3]
    # MNIST as .npz: labels must match, values must be grey levels or [0, 1].
    imgs = np.zeros((5, 28, 28), np.uint8)
    np.savez(tmp_path / "a.npz", x_train=imgs, y_train=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="5 images"):
        wb.data.load_mnist(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x_train=np.ones((2, 784), np.uint8), y_train=np.zeros(2, int))
    assert wb.data.load_mnist(tmp_path / "b.npz")[0].max() == 1.0  # binary stays binary
    np.savez(tmp_path / "c.npz", x_train=np.full((2, 784), 1020.0), y_train=np.zeros(2, int))
    with pytest.raises(ValueError, match="grey levels"):
        wb.data.load_mnist(tmp_path / "c.npz")
    for kw in (dict(sigma=np.nan), dict(sigma=-1.0)):
        with pytest.raises(ValueError, match="sigma"):
            wb.data.make_ring_mixture(5, **kw)
    with pytest.raises(ValueError, match="mean_segment"):
        wb.data.make_hmm_sequences(3, mean_segment=(2, np.inf))
    assert wb.data.make_hmm_sequences(3, mean_segment=5, seed=0).x.shape[0] == 3
    # Images: clear errors, and a panel of one point still draws it.
    from walkback import images

    with pytest.raises(ValueError, match="cols"):
        images.save_grid(np.zeros((2, 3, 3)), tmp_path / "g.png", cols=0)
    with pytest.raises(ValueError, match="frames"):
        images.save_chain_gif(np.zeros((0, 3, 3)), tmp_path / "c.gif")
    images.save_scatter_panels([np.zeros((1, 2))], ["a"], tmp_path / "p.png")
    from PIL import Image

    assert np.asarray(Image.open(tmp_path / "p.png").convert("L")).min() < 128
    # Energy distance: 1-D samples are scalars, and a far shift changes nothing.
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 0.3
    e = wb.eval.energy_distance(a, b)
    assert wb.eval.energy_distance(a + 1e7, b + 1e7) == pytest.approx(e, rel=1e-6)
    assert wb.eval.energy_distance(a[:, 0], b[:, 0]) > 0


def test_generators_take_the_same_seeds_and_short_idx_files_say_so(tmp_path):
    for make in (wb.data.make_swiss_roll, wb.data.make_heartbeat):
        with pytest.raises(TypeError, match="seed"):
            make(10, seed=None)
        np.testing.assert_array_equal(make(10, seed=2**40), make(10, seed=2**40))
    (tmp_path / "train-images-idx3-ubyte").write_bytes((2051).to_bytes(4, "big") + b"\0" * 6)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big") + b"\0" * 4)
    with pytest.raises(ValueError, match="too short"):
        wb.data.load_mnist(tmp_path)


def test_generator_seeds_images_and_one_row_chain_steps(tmp_path):
    a = wb.data.make_swiss_roll(50, seed=0)
    np.testing.assert_array_equal(a, wb.data.make_swiss_roll(50, seed=0))
    assert not np.array_equal(a, wb.data.make_swiss_roll(50, seed=2**32))
    for bad, err in ((None, TypeError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(err, match="seed"):
            wb.data.make_ring_mixture(10, seed=bad)
    imgs = np.zeros((2, 3, 3))
    for scale in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="scale: expected an integer >= 1"):
            wb.images.save_grid(imgs, tmp_path / "g.png", scale=scale)
    with pytest.raises(ValueError, match="images: contains NaN"):
        wb.images.save_grid(np.full((1, 3, 3), np.nan), tmp_path / "g.png")
    with pytest.raises(ValueError, match="completed: expected the shape of original"):
        wb.images.save_inpainting(imgs, np.ones((3, 3), bool), imgs[:1], tmp_path / "i.png")
    for bad in (True, "0.3"):
        with pytest.raises(TypeError, match="expected a number"):
            wb.SaltAndPepper(bad)
    m = wb.DAE(16, 8, seed=0)
    p = m.get_params()
    x = np.zeros(16, np.float32)
    out = wb.ops.chain_step(x, W1=p["W1"], b1=p["b1"], b0=p["b0"], seed=1)
    assert out.shape == (16,) == wb.ops.corrupt(x, wb.SaltAndPepper(0.3), seed=1).shape
    with pytest.raises(ValueError, match=r"b1: expected shape \(8,\), got \(16,\)"):
        wb.ops.chain_step(x, W1=p["W1"], b1=np.zeros(16, np.float32), b0=p["b0"], seed=1)
