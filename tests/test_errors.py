"""Bad input gives a clear ValueError/TypeError that names the argument, never a crash."""

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
