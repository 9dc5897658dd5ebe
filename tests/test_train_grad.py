"""Walk-back gradients against float64 central finite differences of a NumPy reference loss
that holds the visited visible states fixed (they are constants in walk-back training)."""

import numpy as np
import pytest

import walkback as wb

import reference as ref

CORR = {
    "salt_and_pepper": (wb.SaltAndPepper(0.3), ("salt_and_pepper", 0.3)),
    "gaussian": (wb.GaussianCorruption(0.3), ("gaussian", 0.3)),
    "masking": (wb.Masking(0.2), ("masking", 0.2)),
    "bit_flip": (wb.BitFlip(0.1), ("bit_flip", 0.1)),
    "none": (None, ("none", 0.0)),
}


def model_and_data(recon, tied, activation, corruption, seed=0):
    rec = wb.Gaussian(0.7) if recon == "gaussian" else "bernoulli"
    m = wb.DAE(
        9,
        5,
        activation=activation,
        corruption=CORR[corruption][0],
        reconstruction=rec,
        tied=tied,
        seed=seed,
        dtype=np.float64,
    )
    rng = np.random.default_rng(seed + 10)
    m.set_params(b1=rng.normal(0, 0.3, 5), b0=rng.normal(0, 0.3, 9))
    if recon == "bernoulli":
        x = (rng.random((6, 9)) < 0.4).astype(float)
    else:
        x = rng.normal(size=(6, 9))
    return m, x


def reference_loss(params, m, x, states, seed, corruption, last_only):
    """sum_j NLL(x | o_j) / B with x_j fixed (states[j]); j = 0..k-1."""
    total = 0.0
    k = len(states)
    b, d = x.shape
    kind, p = corruption
    for j, xj in enumerate(states):
        if last_only and j + 1 < k:
            continue
        u = ref.uniform(seed, j, b, d, "corrupt")
        n = ref.library_normal(seed, j, b, d, "corrupt")
        xt = ref.corrupt(kind, p, xj, u, n)
        h = ref.activate(m.activation, xt @ params["W1"] + params["b1"])
        dec = params["U1"] if "U1" in params else params["W1"].T
        o = h @ dec + params["b0"]
        if m.reconstruction.name == "bernoulli":
            nll = np.logaddexp(0, o) - x * o
        else:
            s = m.reconstruction.sigma
            nll = 0.5 * ((x - o) / s) ** 2 + np.log(s) + 0.5 * np.log(2 * np.pi)
        total += nll.sum()
    return total / b


@pytest.mark.parametrize("k,last_only", [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize("recon", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("corruption", list(CORR))
def test_gradients_match_finite_differences(k, recon, tied, activation, corruption, last_only):
    m, x = model_and_data(recon, tied, activation, corruption)
    seed = 321
    reconstruct = "last" if last_only else "all"
    loss, grads = m.loss_and_grad(x, walkbacks=k, seed=seed, reconstruct=reconstruct)
    states = [x] + [m.sample(x0=x, steps=j, seed=seed) for j in range(1, k)]
    params = m.get_params()
    want = reference_loss(params, m, x, states, seed, CORR[corruption][1], last_only)
    assert loss == pytest.approx(want, rel=1e-10)
    eps = 1e-6
    for name, p in params.items():
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            hi = {**params, name: p.copy()}
            lo = {**params, name: p.copy()}
            hi[name][i] += eps
            lo[name][i] -= eps
            num[i] = (
                reference_loss(hi, m, x, states, seed, CORR[corruption][1], last_only)
                - reference_loss(lo, m, x, states, seed, CORR[corruption][1], last_only)
            ) / (2 * eps)
        np.testing.assert_allclose(grads[name], num, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("recon", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("tied", [True, False])
def test_one_step_without_corruption_equals_autograd(recon, tied):
    torch = pytest.importorskip("torch")
    m, x = model_and_data(recon, tied, "tanh", "none")
    loss, grads = m.loss_and_grad(x, walkbacks=1, seed=0)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.get_params().items()}
    xt = torch.tensor(x)
    h = torch.tanh(xt @ p["W1"] + p["b1"])
    o = h @ (p["U1"] if "U1" in p else p["W1"].T) + p["b0"]
    if recon == "bernoulli":
        nll = torch.nn.functional.binary_cross_entropy_with_logits(o, xt, reduction="sum")
    else:
        s = m.reconstruction.sigma
        nll = (0.5 * ((xt - o) / s) ** 2 + np.log(s) + 0.5 * np.log(2 * np.pi)).sum()
    (nll / x.shape[0]).backward()
    assert loss == pytest.approx((nll / x.shape[0]).item(), rel=1e-12)
    for k, v in p.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_gradients_close_to_float64():
    m64, x = model_and_data("bernoulli", True, "sigmoid", "salt_and_pepper")
    m32 = wb.DAE(9, 5, corruption=wb.SaltAndPepper(0.3), seed=0, dtype=np.float32)
    m32.set_params(**m64.get_params())
    l64, g64 = m64.loss_and_grad(x, walkbacks=3, seed=5)
    l32, g32 = m32.loss_and_grad(x.astype(np.float32), walkbacks=3, seed=5)
    assert l32 == pytest.approx(l64, rel=1e-4)
    for k in g64:
        assert g32[k].dtype == np.float32
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-4)


def test_walkback_forward_visits_the_chain_states():
    # The loss of step j alone equals the k = 1 loss of the chain's state after j steps with
    # the random streams shifted by j: checked through reconstruct='last' at k = 2.
    m, x = model_and_data("bernoulli", True, "sigmoid", "salt_and_pepper")
    l_all, _ = m.loss_and_grad(x, walkbacks=2, seed=7)
    l_last, _ = m.loss_and_grad(x, walkbacks=2, seed=7, reconstruct="last")
    l_first, _ = m.loss_and_grad(x, walkbacks=1, seed=7)
    assert l_all == pytest.approx(l_first + l_last, rel=1e-12)


def test_ops_walkback_grad_equals_the_model():
    m, x = model_and_data("bernoulli", False, "tanh", "salt_and_pepper")
    loss, grads = m.loss_and_grad(x, walkbacks=3, seed=4)
    p = m.get_params()
    l2, g2 = wb.ops.walkback_grad(
        x,
        p["W1"],
        p["b1"],
        p["b0"],
        p["U1"],
        activation="tanh",
        corruption=wb.SaltAndPepper(0.3),
        walkbacks=3,
        seed=4,
    )
    assert l2 == loss
    for k in grads:
        np.testing.assert_array_equal(g2[k], grads[k])
