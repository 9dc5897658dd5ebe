"""GSN walk-back loss and gradients: the loss against the NumPy reference fed the library's
random numbers, and the gradients (back-propagated through the unrolled chain, hidden noise
on) against float64 central finite differences of that reference with the walk frozen."""

import gsn_reference as gref
import numpy as np
import pytest

import walkback as wb

SEGMENTS = {
    "bernoulli": lambda: [wb.Segment("x", 7, "bernoulli")],
    "gaussian": lambda: [
        wb.Segment("x", 6, wb.Gaussian(0.8), corruption=wb.GaussianCorruption(0.3))
    ],
    "mixed": lambda: [
        wb.Segment("x", 5, "bernoulli", weight=0.7),
        wb.Segment("g", 3, wb.Gaussian(1.3), corruption=wb.Masking(0.2)),
        wb.Segment("y", 4, "categorical", corruption=wb.SaltAndPepper(0.2)),
    ],
}


def make(segments, hidden, tied=True, noiseless_h1=False, seed=0, clamped=False):
    segs = SEGMENTS[segments]()
    if clamped:
        s = segs[0]
        segs[0] = wb.Segment(s.name, s.size, s.reconstruction, s.corruption, 0.0, True)
    m = wb.GSN(
        visible=segs,
        hidden=hidden,
        activation="tanh",
        input_noise=wb.SaltAndPepper(0.3),
        hidden_noise=wb.GaussianNoise(0.4, 0.3),
        tied=tied,
        noiseless_h1=noiseless_h1,
        seed=seed,
        dtype=np.float64,
    )
    rng = np.random.default_rng(seed + 7)
    m.set_params(
        **{k: rng.normal(0, 0.3, v.shape) for k, v in m.get_params().items() if k[0] == "b"}
    )
    cols = []
    for s in m.segments:
        if s.categorical:
            cols.append(np.eye(s.size)[rng.integers(0, s.size, 5)])
        elif s.reconstruction.name == "bernoulli":
            cols.append((rng.random((5, s.size)) < 0.4).astype(float))
        else:
            cols.append(rng.normal(size=(5, s.size)))
    return m, np.concatenate(cols, axis=1)


def train_clamp(m):
    mask = m._train_clamp()
    return None if mask is None else mask.astype(bool)


CASES = [
    ("bernoulli", [6], True, False),
    ("bernoulli", [6, 5], True, False),
    ("bernoulli", [6, 5, 4], True, False),
    ("gaussian", [5, 4], False, False),
    ("mixed", [6, 5, 4], True, False),
    ("mixed", [6, 5], False, True),
    ("mixed", [5, 4, 3], False, False),
]


@pytest.mark.parametrize("segments,hidden,tied,noiseless", CASES)
@pytest.mark.parametrize("k", [1, 4])
def test_loss_matches_reference(segments, hidden, tied, noiseless, k):
    m, x = make(segments, hidden, tied, noiseless)
    loss = m.walkback_loss(x, walkbacks=k, seed=11)
    _, _, _, want = gref.chain(m, m.get_params(), x, 11, k, clamp=train_clamp(m), target=x)
    assert loss == pytest.approx(want, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("segments,hidden,tied,noiseless", CASES)
@pytest.mark.parametrize("last_only", [False, True])
def test_gradients_match_finite_differences(segments, hidden, tied, noiseless, last_only):
    k = 5
    m, x = make(segments, hidden, tied, noiseless)
    clamp = train_clamp(m)
    recon = "last" if last_only else "all"
    loss, grads = m.loss_and_grad(x, walkbacks=k, seed=5, reconstruct=recon)
    params = m.get_params()
    states, _, _, want = gref.chain(m, params, x, 5, k, clamp=clamp, target=x, last_only=last_only)
    assert loss == pytest.approx(want, rel=1e-10)
    eps = 1e-6
    rng = np.random.default_rng(3)
    for name, p in params.items():
        flat = p.reshape(-1)
        idx = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
        for i in idx:
            up, dn = (
                {k_: v.copy() for k_, v in params.items()},
                {k_: v.copy() for k_, v in params.items()},
            )
            up[name].reshape(-1)[i] += eps
            dn[name].reshape(-1)[i] -= eps
            lu = gref.chain(
                m, up, x, 5, k, clamp=clamp, states=states, target=x, last_only=last_only
            )[3]
            ld = gref.chain(
                m, dn, x, 5, k, clamp=clamp, states=states, target=x, last_only=last_only
            )[3]
            fd = (lu - ld) / (2 * eps)
            assert grads[name].reshape(-1)[i] == pytest.approx(fd, rel=1e-5, abs=1e-7), (name, i)


def test_discriminant_gradient_ignores_input_nll():
    m, x = make("mixed", [6, 5], clamped=True)
    assert m.segments[0].clamped and m.segments[0].weight == 0.0
    loss, g = m.loss_and_grad(x, walkbacks=3, seed=2)
    # Only y's and g's NLL count, so the visible bias of x gets no gradient.
    assert np.all(g["b0"][:5] == 0.0)
    assert np.any(g["b0"][5:] != 0.0)
    assert np.isfinite(loss)


def test_float32_matches_float64():
    m64, x = make("mixed", [8, 6, 5], True)
    m32 = wb.GSN.from_config({**m64.to_config(), "dtype": "float32"})
    m32.set_params(**m64.get_params())
    l64, g64 = m64.loss_and_grad(x, walkbacks=4, seed=9)
    l32, g32 = m32.loss_and_grad(x, walkbacks=4, seed=9)
    assert l32 == pytest.approx(l64, rel=1e-4)
    for k in g64:
        np.testing.assert_allclose(g32[k], g64[k], rtol=1e-3, atol=1e-4)
