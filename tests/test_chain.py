import numpy as np
import pytest

import walkback as wb

import reference as ref

CORRUPTIONS = {
    "salt_and_pepper": (wb.SaltAndPepper(0.3), ("salt_and_pepper", 0.3)),
    "masking": (wb.Masking(0.2), ("masking", 0.2)),
    "bit_flip": (wb.BitFlip(0.1), ("bit_flip", 0.1)),
    "gaussian": (wb.GaussianCorruption(0.4), ("gaussian", 0.4)),
    "none": (None, ("none", 0.0)),
}


def make_model(
    d,
    h,
    *,
    activation="sigmoid",
    corruption="salt_and_pepper",
    recon="bernoulli",
    tied=True,
    dtype=np.float64,
    seed=0,
):
    rec = wb.Gaussian(0.5) if recon == "gaussian" else "bernoulli"
    m = wb.DAE(
        d,
        h,
        activation=activation,
        corruption=CORRUPTIONS[corruption][0],
        reconstruction=rec,
        tied=tied,
        seed=seed,
        dtype=dtype,
    )
    rng = np.random.default_rng(seed + 1)
    m.set_params(b1=rng.normal(0, 0.5, h), b0=rng.normal(0, 0.5, d))
    return m


def ref_params(m):
    return {k: v.astype(np.float64) for k, v in m.get_params().items()}


def start(m, n, rng):
    if m.reconstruction.name == "bernoulli":
        return (rng.random((n, m.visible)) < 0.3).astype(m.dtype)
    return rng.normal(size=(n, m.visible)).astype(m.dtype)


def step_args(m):
    return dict(activation=m.activation, corruption=m.corruption, reconstruction=m.reconstruction)


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("recon", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("chains", [6, 1])  # one chain: dae_chain_one (tied), row sums and GEMV
def test_chain_step_matches_reference_float64(corruption, activation, recon, tied, chains, rng):
    m = make_model(21, 13, activation=activation, corruption=corruption, recon=recon, tied=tied)
    x = start(m, chains, rng)
    p = m.get_params()
    got, mean = wb.ops.chain_step(
        x,
        p["W1"],
        p["b1"],
        p["b0"],
        p.get("U1"),
        seed=77,
        step=5,
        first_chain=3,
        return_mean=True,
        **step_args(m),
    )
    want, want_mean = ref.dae_step(
        x,
        ref_params(m),
        activation=activation,
        corruption=CORRUPTIONS[corruption][1],
        recon=recon,
        sigma=0.5,
        seed=77,
        step=5,
        first_chain=3,
    )
    np.testing.assert_allclose(mean, want_mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_chain_step_float32_close_to_reference(activation, rng):
    m = make_model(64, 48, activation=activation, dtype=np.float32)
    x = start(m, 32, rng)
    p = m.get_params()
    got, mean = wb.ops.chain_step(
        x, p["W1"], p["b1"], p["b0"], seed=3, return_mean=True, **step_args(m)
    )
    want, want_mean = ref.dae_step(
        x,
        ref_params(m),
        activation=activation,
        corruption=("salt_and_pepper", 0.3),
        recon="bernoulli",
        sigma=1.0,
        seed=3,
        step=0,
    )
    assert got.dtype == np.float32
    np.testing.assert_allclose(mean, want_mean, rtol=2e-5, atol=2e-6)
    # A float32 mean can land on the other side of a uniform only when they nearly tie.
    assert np.mean(got != want) < 1e-3


def test_clamped_units_keep_their_values_and_are_still_corrupted(rng):
    m = make_model(20, 10)
    x = start(m, 5, rng)
    clamp = np.zeros(20, bool)
    clamp[:8] = True
    p = m.get_params()
    got, mean = wb.ops.chain_step(
        x, p["W1"], p["b1"], p["b0"], seed=9, clamp=clamp, return_mean=True, **step_args(m)
    )
    want, want_mean = ref.dae_step(
        x,
        ref_params(m),
        activation="sigmoid",
        corruption=("salt_and_pepper", 0.3),
        recon="bernoulli",
        sigma=1.0,
        seed=9,
        step=0,
        clamp=clamp,
    )
    np.testing.assert_array_equal(got[:, :8], x[:, :8])
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-9)
    # per-chain masks
    per_chain = np.zeros((5, 20), bool)
    per_chain[np.arange(5), np.arange(5)] = True
    got2 = m.sample(x0=x, clamp=per_chain, steps=3, seed=1)
    np.testing.assert_array_equal(got2[per_chain], x[per_chain])


def test_many_steps_equal_repeated_single_steps(rng):
    m = make_model(16, 12)
    x = start(m, 4, rng)
    p = m.get_params()
    many = wb.ops.chain_step(x, p["W1"], p["b1"], p["b0"], seed=2, steps=4, **step_args(m))
    y = x
    for s in range(4):
        y = wb.ops.chain_step(y, p["W1"], p["b1"], p["b0"], seed=2, step=s, **step_args(m))
    np.testing.assert_array_equal(many, y)


def test_sample_records_every_and_burn_in(rng):
    m = make_model(16, 12)
    x = start(m, 4, rng)
    rec = m.sample(x0=x, steps=6, burn_in=3, every=2, seed=8)
    assert rec.shape == (3, 4, 16)
    p = m.get_params()
    y = x
    states = []
    for s in range(9):
        y = wb.ops.chain_step(y, p["W1"], p["b1"], p["b0"], seed=8, step=s, **step_args(m))
        states.append(y)
    np.testing.assert_array_equal(rec, np.stack([states[4], states[6], states[8]]))
    final = m.sample(x0=x, steps=6, burn_in=3, seed=8)
    np.testing.assert_array_equal(final, states[8])
    means = m.sample(x0=x, steps=6, burn_in=3, every=3, seed=8, means=True)
    assert means.shape == (2, 4, 16)
    assert np.all((means > 0) & (means < 1))


def test_progress_chunks_do_not_change_the_chain(rng, capsys):
    m = make_model(30, 20, dtype=np.float32)
    x = start(m, 3, rng)
    a = m.sample(x0=x, steps=600, burn_in=100, every=50, seed=4)
    b = m.sample(x0=x, steps=600, burn_in=100, every=50, seed=4, progress=True)
    np.testing.assert_array_equal(a, b)


def test_threads_and_batch_split_give_bitwise_equal_chains():
    m = make_model(784, 300, dtype=np.float32, seed=3)
    rng = np.random.default_rng(0)
    x = (rng.random((256, 784)) < 0.2).astype(np.float32)
    p = m.get_params()
    kw = dict(seed=123, steps=5, **step_args(m))
    whole = wb.ops.chain_step(x, p["W1"], p["b1"], p["b0"], **kw)
    halves = np.vstack(
        [
            wb.ops.chain_step(x[:128], p["W1"], p["b1"], p["b0"], **kw),
            wb.ops.chain_step(x[128:], p["W1"], p["b1"], p["b0"], first_chain=128, **kw),
        ]
    )
    np.testing.assert_array_equal(whole, halves)
    n = wb.get_num_threads()
    try:
        for threads in (1, 2):
            wb.set_num_threads(threads)
            again = wb.ops.chain_step(x, p["W1"], p["b1"], p["b0"], **kw)
            np.testing.assert_array_equal(whole, again)
    finally:
        wb.set_num_threads(n)


def test_single_chain_sparse_encoder_matches_reference():
    # B = 1 with a sparse corrupted input: only the rows of the units that are on are added.
    m = make_model(100, 40, corruption="masking")
    x = np.zeros((1, 100))
    x[0, :10] = 1
    p = m.get_params()
    got, mean = wb.ops.chain_step(
        x, p["W1"], p["b1"], p["b0"], seed=5, return_mean=True, **step_args(m)
    )
    want, want_mean = ref.dae_step(
        x,
        ref_params(m),
        activation="sigmoid",
        corruption=("masking", 0.2),
        recon="bernoulli",
        sigma=1.0,
        seed=5,
        step=0,
    )
    np.testing.assert_allclose(mean, want_mean, rtol=1e-9)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("density", [0.2, 0.97])
def test_single_chain_is_the_same_for_any_thread_count_and_split_of_steps(density):
    """B = 1 (tied: one pass over W a step, dae_chain_one.cpp; sparse or dense inputs): one call
    of six steps equals six calls of one, with any number of threads."""
    m = make_model(784, 300, dtype=np.float32, seed=3, corruption="bit_flip")
    x = (np.random.default_rng(1).random((1, 784)) < density).astype(np.float32)
    p = m.get_params()
    kw = dict(seed=31, return_mean=True, **step_args(m))
    # The means too: a sum in another order moves them in the last bits, rarely a sample.
    whole, whole_mean = wb.ops.chain_step(x, p["W1"], p["b1"], p["b0"], steps=6, **kw)
    y = x
    for s in range(6):
        y, mean = wb.ops.chain_step(y, p["W1"], p["b1"], p["b0"], step=s, **kw)
    np.testing.assert_array_equal(whole, y)
    np.testing.assert_array_equal(whole_mean, mean)
    n = wb.get_num_threads()
    try:
        for threads in (1, 2, 3, 5, 9):  # 9: more threads than the pass's 8 groups
            wb.set_num_threads(threads)
            again = wb.ops.chain_step(x, p["W1"], p["b1"], p["b0"], steps=6, **kw)
            np.testing.assert_array_equal(whole, again[0])
            np.testing.assert_array_equal(whole_mean, again[1])
    finally:
        wb.set_num_threads(n)


@pytest.mark.parametrize("corruption", ["salt_and_pepper", "gaussian"])
def test_one_chain_pass_matches_reference_on_even_and_odd_steps(corruption, rng):
    """B = 1, tied, D = 784: eight groups of visible units of two blocks each, passed forwards
    on even steps and backwards on odd ones; every step against the float64 reference."""
    m = make_model(784, 37, corruption=corruption)
    x = start(m, 1, rng)
    p = m.get_params()
    for step in range(4):
        got, mean = wb.ops.chain_step(
            x, p["W1"], p["b1"], p["b0"], seed=11, step=step, return_mean=True, **step_args(m)
        )
        want, want_mean = ref.dae_step(
            x,
            ref_params(m),
            activation="sigmoid",
            corruption=CORRUPTIONS[corruption][1],
            recon="bernoulli",
            sigma=1.0,
            seed=11,
            step=step,
        )
        np.testing.assert_allclose(mean, want_mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(got, want)
        x = got


def test_one_chain_records_means_and_clamp_for_any_thread_count(rng):
    # Records, burn-in, the last step's means and clamped units through the one-chain pass.
    m = make_model(784, 120, dtype=np.float32, seed=4)
    x = start(m, 1, rng)
    clamp = rng.random(784) < 0.2
    kw = dict(x0=x, steps=7, burn_in=2, every=3, clamp=clamp, seed=21)
    n = wb.get_num_threads()
    try:
        wb.set_num_threads(1)
        want = m.sample(**kw)
        want_means = m.sample(**kw, means=True)
        for threads in (2, 3, 9):
            wb.set_num_threads(threads)
            np.testing.assert_array_equal(m.sample(**kw), want)
            np.testing.assert_array_equal(m.sample(**kw, means=True), want_means)
    finally:
        wb.set_num_threads(n)
    assert want.shape == (2, 1, 784)
    np.testing.assert_array_equal(want[:, 0, clamp], np.broadcast_to(x[0, clamp], (2, clamp.sum())))
    assert 0 < want[:, 0, ~clamp].mean() < 1  # the free units move


def test_default_start_and_seed_draws():
    m = wb.DAE(12, 8, seed=1)
    a = m.sample(50, steps=2)
    assert a.shape == (50, 12) and set(np.unique(a)) <= {0.0, 1.0}
    b = m.sample(50, steps=2)
    assert not np.array_equal(a, b)  # seed=None draws a fresh stream each call
    np.testing.assert_array_equal(m.sample(50, steps=2, seed=5), m.sample(50, steps=2, seed=5))
    g = wb.DAE(12, 8, reconstruction="gaussian", seed=1).sample(5, steps=2)
    assert np.all(np.isfinite(g)) and len(np.unique(g)) > 2


def test_first_chain_splits_a_run_over_calls():
    # One call of 128 chains against two of 64 with first_chain: the same bits (each call of
    # 64 chains and 4 steps takes the same kind of product as the call of 128).
    def split(sample):
        whole = sample(128, 0)
        return whole, np.concatenate([sample(64, 0), sample(64, 64)], axis=-2)

    dae = wb.DAE(784, 500, seed=1)
    gsn = wb.GSN.hybrid(64, 10, hidden=[50])
    diff = wb.Diffusion(20, steps=30, kind="binomial", hidden=(64,), basis=4, seed=1)
    shaped = wb.ShapedChain(784, latent=20, hidden=(200,), guide_hidden=(8,), chain_len=3)
    for name, sample in [
        ("dae", lambda n, f: dae.sample(n=n, steps=4, seed=2, means=True, first_chain=f)),
        ("gsn", lambda n, f: gsn.sample(n=n, steps=4, seed=2, means=True, first_chain=f)),
        ("diffusion", lambda n, f: diff.sample(n, seed=2, first_chain=f)),
        ("shaped", lambda n, f: shaped.sample(n, seed=2, first_chain=f)),
    ]:
        whole, halves = split(sample)
        np.testing.assert_array_equal(whole, halves, err_msg=name)
        assert not np.array_equal(whole[..., :64, :], whole[..., 64:, :])
    with pytest.raises(ValueError, match="first_chain \\+ chains"):
        dae.sample(n=2, first_chain=2**32 - 1)
    with pytest.raises(ValueError, match="first_chain"):
        shaped.sample(2, first_chain=-1)
