"""Diffusion inversion: the schedules and posteriors against Monte Carlo runs of the forward
chain, the bound estimate against the NumPy reference, its gradients against float64 finite
differences, the null-model identity, the fused reverse step (with inpainting and denoising)
against the reference, and what training and sampling do."""

import math

import diffusion_reference as dref
import numpy as np
import pytest

import walkback as wb
from walkback import diffusion_schedule as ds

import reference as ref


def make(
    kind="gaussian",
    D=5,
    T=12,
    hidden=(7, 6),
    J=4,
    seed=0,
    dtype=np.float64,
    scale=0.3,
    schedule="fixed",
):
    m = wb.Diffusion(
        D, steps=T, kind=kind, hidden=hidden, basis=J, seed=seed, dtype=dtype, schedule=schedule
    )
    rng = np.random.default_rng(seed + 1)
    # A readout away from zero, so that every term of the loss is exercised.
    # Hidden biases away from zero too: a binary x_t of zeros would put every pre-activation
    # at the leaky ReLU's kink, where finite differences are meaningless.
    shapes = m.param_shapes()
    m.set_params(**{k: rng.normal(0, scale, s) for k, s in shapes.items() if not k.startswith("W")})
    m.set_params(Wout=rng.normal(0, scale, shapes["Wout"]))
    if kind == "gaussian":
        m.set_scaling(1.0, 0.0)
    return m


def data(kind, n, D, seed=3):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.normal(0.2, 0.9, (n, D))
    return (rng.random((n, D)) < 0.4).astype(np.float64)


# ---------------------------------------------------------------- schedules and posteriors
def test_gaussian_schedule_is_the_original_codes():
    b = ds.gaussian_betas(1000)
    assert b[0] == pytest.approx(1e-3 + 1e-6 + (1 / 1000) * (1 - 1e-3 - 1e-6 - 1e-5), rel=1e-12)
    assert b[-1] == pytest.approx(1e-6 + 0.5 * (1 - 1e-6 - 1e-5), rel=1e-12)
    assert np.all(np.diff(b[1:]) > 0)
    # about 1/T of the variance of x_0 is left at the end
    assert 0.1 / 1000 < ds.alphabar(b)[-1] < 10 / 1000


def test_binomial_schedule_ends_at_a_fair_coin():
    T = 50
    ab = ds.alphabar(ds.binomial_betas(T))
    np.testing.assert_allclose(ab, (T - np.arange(1, T + 1)) / T, atol=1e-14)


def test_temporal_basis_sums_to_one_and_peaks_at_its_centres():
    g = ds.temporal_basis(101, 5)
    np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-12)
    assert [int(np.argmax(g[:, j])) for j in range(5)] == [0, 25, 50, 75, 100]


def test_gaussian_posterior_matches_monte_carlo_of_the_forward_chain():
    """Run the forward chain from a fixed x_0; regress x_{t-1} on x_t: the slope, intercept and
    residual variance are the posterior's ct, c0 x_0 and var."""
    T, t, x0 = 20, 7, 1.3
    betas = ds.gaussian_betas(T)
    rng = np.random.default_rng(0)
    n = 400_000
    x = np.full(n, x0)
    for s in range(1, t):
        x = math.sqrt(1 - betas[s - 1]) * x + math.sqrt(betas[s - 1]) * rng.normal(size=n)
    prev = x
    xt = math.sqrt(1 - betas[t - 1]) * prev + math.sqrt(betas[t - 1]) * rng.normal(size=n)
    slope, intercept = np.polyfit(xt, prev, 1)
    resid = prev - (slope * xt + intercept)
    c0, ct, var = ds.gaussian_posterior(betas, t)
    assert slope == pytest.approx(ct, abs=4e-3)
    assert intercept == pytest.approx(c0 * x0, abs=4e-3)
    assert resid.var() == pytest.approx(var, rel=1e-2)


@pytest.mark.parametrize("x0", [0, 1])
def test_binomial_posterior_matches_monte_carlo_of_the_forward_chain(x0):
    T, t = 10, 4
    betas = ds.binomial_betas(T)
    rng = np.random.default_rng(1)
    n = 400_000
    x = np.full(n, float(x0))
    for s in range(1, t + 1):
        prev = x
        p = x * (1 - betas[s - 1]) + betas[s - 1] / 2
        x = (rng.random(n) < p).astype(float)
    for xt in (0, 1):
        sel = x == xt
        freq = prev[sel].mean()
        se = math.sqrt(freq * (1 - freq) / sel.sum())
        assert abs(freq - ds.binomial_posterior(betas, t, x0, xt)) < 5 * se + 1e-9


def test_gaussian_kl_closed_form_against_quadrature():
    """The reference's KL (which the library's bound is checked against) against numerical
    integration of q log(q / p)."""
    mq, vq, mp, vp = 0.3, 0.02, 0.25, 0.03
    z = np.linspace(mq - 12 * math.sqrt(vq), mq + 12 * math.sqrt(vq), 200_001)

    def logn(z, m, v):
        return -0.5 * math.log(2 * math.pi * v) - (z - m) ** 2 / (2 * v)

    q = np.exp(logn(z, mq, vq))
    numeric = np.trapezoid(q * (logn(z, mq, vq) - logn(z, mp, vp)), z)
    closed = dref.gauss_kl(mq, vq, mp, vp)
    assert numeric == pytest.approx(closed, rel=1e-6)


# ---------------------------------------------------------------- the bound and its gradients
@pytest.mark.parametrize("kind, D", [("gaussian", 5), ("binomial", 5), ("binomial", 300)])
def test_bound_rows_match_the_reference(kind, D):
    """D = 300 binomial units make a readout of >= 256 columns: column slices, d0 > 0."""
    m = make(kind, D=D)
    x = data(kind, 9, D)
    t = np.array([2, 3, 5, 12, 7, 2, 11, 9, 4], dtype=np.int32)
    rows = np.empty(9)
    mean = m._bound_call(x, 11, first_chain=4, t=t, rows=rows)
    want = dref.row_loss(m, m._params, x, t, 11, first_chain=4)
    np.testing.assert_allclose(rows, want, rtol=1e-9, atol=1e-9)
    assert mean == pytest.approx(want.mean(), rel=1e-9)


def test_drawn_time_steps_are_uniform_on_2_to_T():
    """Rows draw t from 32 raw bits of the init stream: the loss of row r equals the
    reference's at that t, and the rule covers {2..T} evenly."""
    m = make("gaussian", T=9)
    x = data("gaussian", 6, 5)

    def draw(n):  # the kernel's rule: 2 + floor(bits (T - 1) / 2^32) from 32 raw bits
        bits = ref.stream_bits(5, 0, n, 1, "init")[:, 0].astype(np.uint64)
        return (2 + ((bits * np.uint64(8)) >> np.uint64(32))).astype(int)

    rows = np.empty(6)
    m._bound_call(x, 5, rows=rows)
    # the rows' losses are the reference's at exactly these steps: the kernel draws them so
    np.testing.assert_allclose(rows, dref.row_loss(m, m._params, x, draw(6), 5), rtol=1e-9)
    counts = np.bincount(draw(80_000), minlength=10)[2:]
    expected = 80_000 / 8
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 24.3  # the 0.999 quantile of chi2 with 7 degrees of freedom


@pytest.mark.parametrize("kind", ["gaussian", "binomial", "learned", "wide"])
def test_gradients_match_finite_differences(kind):
    """Every parameter, the learned schedule's coefficients too (x_t moves with the schedule,
    its noise held: the reparametrized gradient); "wide" has a readout of >= 256 columns,
    which runs in column slices (the others in row slices)."""
    if kind == "learned":
        m = make("gaussian", schedule="learned")
    elif kind == "wide":
        m = make("gaussian", D=130)
    else:
        m = make(kind)
    kind = m.kind
    x = data(kind, 6, m.visible)
    t = np.array([2, 12, 6, 3, 9, 5], dtype=np.int32)
    loss, grads = m.loss_and_grad(x, seed=2, t=t)
    params = m.get_params()
    rng = np.random.default_rng(0)
    eps = 1e-6
    for name, g in grads.items():
        for idx in [tuple(rng.integers(0, s) for s in g.shape) for _ in range(6)]:
            p = {k: v.copy() for k, v in params.items()}
            p[name][idx] += eps
            up = dref.row_loss(m, p, x, t, 2).mean()
            p[name][idx] -= 2 * eps
            down = dref.row_loss(m, p, x, t, 2).mean()
            assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7), (
                name,
                idx,
            )
    assert loss == pytest.approx(dref.row_loss(m, params, x, t, 2).mean(), rel=1e-9)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_narrow_readouts_in_many_blocks_of_rows(kind):
    """A narrow readout (a few units) runs in blocks of 64 rows sorted by t, each multiplying
    by the columns of the basis functions it uses. 300 rows over t in 2..400 with 10 functions
    make blocks with different ranges of functions: the rows' losses match the reference, and
    the gradients of all rows are the row-weighted mean of those of three parts of them, which
    fall into other blocks."""
    m = make(kind, D=5, T=400, hidden=(20, 30), J=10)
    rng = np.random.default_rng(4)
    x = data(kind, 300, 5)
    t = rng.integers(2, 401, 300).astype(np.int32)
    rows = np.empty(300)
    m._bound_call(x, 7, t=t, rows=rows)
    np.testing.assert_allclose(rows, dref.row_loss(m, m._params, x, t, 7), rtol=1e-9, atol=1e-9)
    # first_chain keeps each row's draws its own in the parts
    loss, grads = m.loss_and_grad(x, seed=7, t=t)
    cuts = [0, 37, 170, 300]
    mean = {k: np.zeros_like(g) for k, g in grads.items()}
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        rows_ab = np.empty(b - a)
        g_ab = {k: np.empty_like(g) for k, g in grads.items()}
        m._bound_call(x[a:b], 7, first_chain=a, t=t[a:b], rows=rows_ab, grads=g_ab)
        np.testing.assert_allclose(rows_ab, rows[a:b], rtol=1e-12)
        for k in mean:
            mean[k] += g_ab[k] * (b - a) / 300
    for k in grads:
        np.testing.assert_allclose(grads[k], mean[k], rtol=1e-9, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_basis_function_no_row_uses_does_not_reach_the_gradients(dtype):
    """Rows whose t no basis function J - 1 covers: an infinite weight of that function (set
    behind set_params's back, as a diverged run might hold) leaves the loss finite, and the
    gradients must stay finite too (the readout's products skip the functions a block of rows
    does not use; a product over them would make 0 * inf = NaN)."""
    m = make("gaussian", D=5, T=400, hidden=(20, 30), J=10, dtype=dtype)
    first = np.nonzero(m.temporal_basis[:, 9])[0].min() + 1  # the first t that uses it
    rng = np.random.default_rng(2)
    t = rng.integers(2, first - 30, 200).astype(np.int32)
    x = data("gaussian", 200, 5).astype(dtype)
    m._params["Wout"][3, 9 * 10 + 1] = np.inf  # function 9's block of 2 x 5 coefficients
    loss, grads = m.loss_and_grad(x, seed=7, t=t)
    assert np.isfinite(loss)
    for k, g in grads.items():
        assert np.isfinite(g).all(), k


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_null_model_bound_equals_the_end_distributions_likelihood(kind):
    """With the readout at zero (z_mu = 0, Sigma = beta_t) the reverse chain is the exact
    reversal of the forward chain at equilibrium, so K = log pi(x_0) in expectation for any
    data: the reported improvement is 0 (the original code's check)."""
    m = wb.Diffusion(4, steps=30, kind=kind, hidden=8, basis=3, seed=1, dtype=np.float64)
    if kind == "gaussian":
        m.set_scaling(1.0, 0.0)
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, (400, 4)) if kind == "gaussian" else data(kind, 400, 4)
    r = m.log_likelihood_bound(x, t="all", seed=3)
    assert abs(r.improvement_nats) < 4 * r.nats_se + 1e-3
    assert abs(r.improvement_nats) < 0.02 * abs(r.null_nats)


def test_stratified_draws_of_t_agree_with_the_sum_over_all_t():
    m = make("gaussian", D=3, T=30)
    x = data("gaussian", 300, 3)
    exact = m.log_likelihood_bound(x, t="all", seed=1)
    sampled = m.log_likelihood_bound(x, t="sample", repeats=8, seed=2)
    assert abs(sampled.nats - exact.nats) < 4 * math.hypot(sampled.nats_se, exact.nats_se)
    assert sampled.nats_se < 3 * exact.nats_se  # stratification keeps the noise near exact's


def test_bound_and_validation_loss_do_not_depend_on_the_batch_size():
    m = make("gaussian", D=3, T=10)
    x = data("gaussian", 50, 3)
    a = m.log_likelihood_bound(x, repeats=3, seed=4, batch_size=7)
    b = m.log_likelihood_bound(x, repeats=3, seed=4, batch_size=1000)
    assert a.nats == pytest.approx(b.nats, rel=1e-12)
    assert m._mean_loss(x, 5, batch_size=7) == pytest.approx(m._mean_loss(x, 5), rel=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_float32_bound_rows_are_the_same_bits_in_parts_of_8_rows_or_more(kind):
    """walkback's own kernel takes batches of 8 rows or more (OpenBLAS smaller ones, whose
    kernel follows the shape), so parts of 8 and 32 rows give each row the bits one batch of
    40 gives it."""
    m = make(kind, D=5, T=300, hidden=(20, 30), J=10, dtype=np.float32)
    x = data(kind, 40, 5).astype(np.float32)
    t = np.random.default_rng(5).integers(2, 301, 40).astype(np.int32)
    whole = np.empty(40)
    m._bound_call(x, 3, t=t, rows=whole)
    for a, b in ((0, 8), (8, 40)):
        part = np.empty(b - a)
        m._bound_call(x[a:b], 3, first_chain=a, t=t[a:b], rows=part)
        np.testing.assert_array_equal(part, whole[a:b])


def test_bound_reports_data_units():
    """Scaling the data by s shifts K by -D log s (the Jacobian), and bits per dim follow."""
    m = make("gaussian", D=3, T=10)
    x = data("gaussian", 50, 3)
    r1 = m.log_likelihood_bound(x, t="all", seed=1)
    m.set_scaling(0.5, 0.0)
    r2 = m.log_likelihood_bound(2 * x, t="all", seed=1)
    assert r2.nats == pytest.approx(r1.nats - 3 * math.log(2), rel=1e-6)
    assert r2.bits_per_dim == pytest.approx(-r2.nats / (3 * math.log(2)))


# ---------------------------------------------------------------- the reverse chain
@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_reverse_step_matches_the_reference(kind):
    m = make(kind, D=6, T=10)
    n = 5
    x = data(kind, n, 6, seed=4)
    out = x.copy()
    wb._backend.cpu().diffusion_reverse(out, 7, 7, 9, 0, None, None, None, 0.0, **m._net())
    stream = "sample_normal" if kind == "gaussian" else "sample"
    r = (
        ref.library_normal(9, 7, n, 6, stream)
        if kind == "gaussian"
        else ref.uniform(9, 7, n, 6, stream)
    )
    np.testing.assert_allclose(out, dref.reverse_step(m, m._params, x, 7, r), rtol=1e-9)


@pytest.mark.parametrize(
    "kind, D, n", [("gaussian", 130, 3), ("gaussian", 6, 40), ("binomial", 300, 3)]
)
def test_reverse_step_matches_the_reference_on_wide_readouts_and_many_rows(kind, D, n):
    """A readout of >= 256 columns runs in column slices, a batch with at least as many rows as
    a layer has outputs in row slices (and in two of them here): both against the reference."""
    m = make(kind, D=D, T=10)
    x = data(kind, n, D, seed=4)
    out = x.copy()
    wb._backend.cpu().diffusion_reverse(out, 5, 5, 9, 0, None, None, None, 0.0, **m._net())
    r = (
        ref.library_normal(9, 5, n, D, "sample_normal")
        if kind == "gaussian"
        else ref.uniform(9, 5, n, D, "sample")
    )
    np.testing.assert_allclose(out, dref.reverse_step(m, m._params, x, 5, r), rtol=1e-9)


@pytest.mark.parametrize("kind, D", [("gaussian", 6), ("gaussian", 130), ("binomial", 300)])
def test_clamped_units_keep_their_values_and_the_others_follow_the_reference(kind, D):
    m = make(kind, D=D, T=10)
    x, known = data(kind, 3, D, seed=4), data(kind, 3, D, seed=8)
    clamp = (np.random.default_rng(0).random((3, D)) < 0.3).astype(np.uint8)
    out = x.copy()
    wb._backend.cpu().diffusion_reverse(out, 5, 5, 9, 0, clamp, known, None, 0.0, **m._net())
    r = (
        ref.library_normal(9, 5, 3, D, "sample_normal")
        if kind == "gaussian"
        else ref.uniform(9, 5, 3, D, "sample")
    )
    want = np.where(clamp == 1, known, dref.reverse_step(m, m._params, x, 5, r))
    np.testing.assert_allclose(out, want, rtol=1e-9)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_rows_of_a_few_units_sampled_in_blocks_follow_the_reference(kind):
    """Rows of fewer than 32 units are sampled 64 rows at a time as one run of units: 200 rows
    (thread slices of more than one block) from chain 7, with clamped units and (Gaussian) a
    noisy observation, each row against the reference fed its own chain's numbers."""
    D, n = 5, 200
    m = make(kind, D=D, T=10)
    x, known = data(kind, n, D, seed=4), data(kind, n, D, seed=8)
    clamp = (np.random.default_rng(0).random((n, D)) < 0.3).astype(np.uint8)
    y = data(kind, n, D, seed=6) if kind == "gaussian" else None
    obs = 0.04 if kind == "gaussian" else 0.0
    out = x.copy()
    wb._backend.cpu().diffusion_reverse(out, 5, 5, 9, 7, clamp, known, y, obs, **m._net())
    r = (
        ref.library_normal(9, 5, n, D, "sample_normal", first_chain=7)
        if kind == "gaussian"
        else ref.uniform(9, 5, n, D, "sample", first_chain=7)
    )
    want = dref.reverse_step(m, m._params, x, 5, r, y=y, obs_var=obs)
    np.testing.assert_allclose(out, np.where(clamp == 1, known, want), rtol=1e-9)


def test_last_step_is_the_bounds_fixed_reversal():
    """p(x_0 | x_1) = N(sqrt(alpha_1) x_1, beta_1) whatever the network says (eq. 14)."""
    m = make("gaussian", D=6, T=10)
    x = data("gaussian", 4, 6, seed=4)
    out = x.copy()
    wb._backend.cpu().diffusion_reverse(out, 1, 1, 3, 0, None, None, None, 0.0, **m._net())
    r = ref.library_normal(3, 1, 4, 6, "sample_normal")
    b = m.betas[0]
    np.testing.assert_allclose(out, x * math.sqrt(1 - b) + math.sqrt(b) * r, rtol=1e-9)


def test_float32_schedule_gradient_matches_float64_with_a_tiny_first_step():
    """1 - alphabar_1 ~ 1e-6 makes the schedule's derivative terms cancel: the kernel takes
    them in double, so float32 agrees with float64."""
    grads = {}
    for dt in (np.float64, np.float32):
        m = wb.Diffusion(
            4,
            steps=12,
            hidden=(7, 6),
            basis=4,
            step1_beta=0.0,
            seed=0,
            dtype=dt,
            schedule="learned",
        ).set_scaling(1.0, 0.0)
        m.set_params(**make("gaussian", D=4, T=12, schedule="learned").get_params())
        x = data("gaussian", 8, 4).astype(dt)
        t = np.array([2, 2, 3, 2, 5, 2, 12, 2], np.int32)
        grads[dt] = m.loss_and_grad(x, seed=1, t=t)[1]["beta_coeffs"]
    np.testing.assert_allclose(grads[np.float32], grads[np.float64], rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("D", [6, 130])
def test_denoising_step_is_the_product_of_gaussians(D):
    m = make("gaussian", D=D, T=10)
    x = data("gaussian", 4, D, seed=5)
    y = data("gaussian", 4, D, seed=6)
    out = x.copy()
    wb._backend.cpu().diffusion_reverse(out, 3, 3, 2, 0, None, None, y, 0.04, **m._net())
    r = ref.library_normal(2, 3, 4, D, "sample_normal")
    want = dref.reverse_step(m, m._params, x, 3, r, y=y, obs_var=0.04)
    np.testing.assert_allclose(out, want, rtol=1e-9)


def test_null_chain_samples_the_end_distribution():
    """The null reverse chain keeps N(0, 1) stationary: its samples are standard normal."""
    m = wb.Diffusion(3, steps=20, hidden=4, basis=2, seed=0).set_scaling(1.0, 0.0)
    s = m.sample(20_000, seed=4).astype(np.float64)
    assert np.abs(s.mean(axis=0)).max() < 0.04
    assert np.abs(s.var(axis=0) - 1).max() < 0.05


def test_inpainting_keeps_the_known_units_and_records_every_k_steps():
    m = make("gaussian", D=6, T=12)
    known = data("gaussian", 1, 6)[0]
    mask = np.array([1, 0, 1, 0, 0, 1], bool)
    s = m.sample(8, x0=known, clamp=mask, seed=1, every=4)
    assert s.shape == (3, 8, 6)
    np.testing.assert_allclose(s[:, :, mask], np.broadcast_to(known[mask], (3, 8, 3)))
    assert np.ptp(s[-1][:, ~mask], axis=0).min() > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inpainting_returns_the_known_values_bit_for_bit(dtype):
    # The scaling's round trip (x s + t - t) / s moves values in the last bits: the known
    # units are the user's own numbers, in the last state and in every record.
    m = wb.Diffusion(visible=4, steps=10, hidden=8, basis=3, seed=0, dtype=dtype)
    m.set_scaling(0.3, -1.7)
    x0 = (np.random.default_rng(0).normal(size=(200, 4)) * 3 + 5).astype(dtype)
    mask = np.array([True, False, True, False])
    s = m.sample(x0=x0, clamp=mask, seed=0)
    np.testing.assert_array_equal(s[:, mask], x0[:, mask])
    r = m.sample(x0=x0, clamp=mask, seed=0, every=5)
    np.testing.assert_array_equal(r[:, :, mask], np.broadcast_to(x0[:, mask], (2, 200, 2)))


def test_binarized_fit_binarizes_grey_validation_data_once():
    grey = np.random.default_rng(0).random((64, 6))
    m = wb.Diffusion(visible=6, steps=8, kind="binomial", hidden=8, basis=3, seed=0)
    h = m.fit(
        grey,
        epochs=2,
        batch_size=32,
        binarize="stochastic",
        validation=grey,
        progress=False,
        seed=1,
    )
    assert all(np.isfinite(h.valid_loss))
    with pytest.raises(ValueError, match="validation: binarize='stochastic' needs values"):
        m.fit(grey, epochs=1, binarize="stochastic", validation=grey + 1, progress=False)


def test_binomial_samples_are_binary():
    m = make("binomial", D=7, T=10)
    s = m.sample(50, seed=2)
    assert set(np.unique(s)) <= {0.0, 1.0}


def test_sampling_is_reproducible_and_keyed_by_seed():
    m = make("gaussian")
    a, b, c = m.sample(5, seed=1), m.sample(5, seed=1), m.sample(5, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# ---------------------------------------------------------------- training
def test_training_on_a_2d_gaussian_beats_the_null_model():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3000, 2)) * [1.0, 0.2] @ [[0.8, 0.6], [-0.6, 0.8]]).astype(np.float32)
    m = wb.Diffusion(2, steps=20, hidden=(32, 32), basis=4, seed=0)
    h = m.fit(x, epochs=25, batch_size=128, optimizer=wb.Adam(3e-3), progress=False, seed=1)
    assert h.train_loss[-1] < h.train_loss[0]
    r = m.log_likelihood_bound(x[:500], t="all", seed=2)
    # scaled, the data's covariance has eigenvalues 1.923 and 0.077: the true density beats
    # N(0, I) by 0.955 nats per example; the bound must recover more than half of that
    assert r.improvement_nats > 0.5
    assert r.nats < -2 * 0.5 * math.log(2 * math.pi * math.e) + 2.5  # sanity: a finite bound


def test_a_learned_schedule_beats_the_fixed_one_on_the_swiss_roll():
    """The fixed schedule's first step adds noise of variance 1/T: a learned one shrinks it
    and the bound (and the samples' sharpness) gains (the paper's section 2.4.1)."""
    x = wb.data.make_swiss_roll(4000, seed=0)
    gains = {}
    for schedule in ("fixed", "learned"):
        m = wb.Diffusion(2, steps=40, hidden=(128, 128), schedule=schedule, seed=0)
        m.fit(x[:3000], epochs=80, batch_size=128, optimizer=wb.Adam(3e-3), progress=False)
        gains[schedule] = m.log_likelihood_bound(x[3000:], t="all", seed=1).improvement_bits
        if schedule == "learned":
            assert m.betas[0] < 0.5 * m._fixed_betas[0]
    assert gains["learned"] > gains["fixed"] + 0.5, gains


def test_rmsprop_update_matches_numpy():
    rng = np.random.default_rng(0)
    p, g = rng.normal(size=10).astype(np.float32), rng.normal(size=10).astype(np.float32)
    opt = wb.RMSprop(lr=0.01, rho=0.8, eps=1e-6, weight_decay=0.1)
    q = {"w": p.copy()}
    opt.step(q, {"w": g})
    opt.step(q, {"w": g})
    v, want = np.zeros(10), p.astype(np.float64)
    for _ in range(2):
        gg = g + 0.1 * want
        v = 0.8 * v + 0.2 * gg * gg
        want = want - 0.01 * gg / (np.sqrt(v) + 1e-6)
    np.testing.assert_allclose(q["w"], want, rtol=1e-5)


# ---------------------------------------------------------------- files and errors
def test_save_and_load_round_trip(tmp_path):
    m = make("gaussian", dtype=np.float32)
    m.set_scaling(2.0, -0.5)
    m.save(tmp_path / "d.safetensors")
    k = wb.load(tmp_path / "d.safetensors")
    assert isinstance(k, wb.Diffusion) and (k.scale, k.shift) == (2.0, -0.5)
    np.testing.assert_array_equal(k.sample(3, seed=1), m.sample(3, seed=1))


def test_clear_errors():
    with pytest.raises(ValueError, match="kind"):
        wb.Diffusion(3, kind="poisson")
    with pytest.raises(ValueError, match="steps"):
        wb.Diffusion(3, steps=2)
    with pytest.raises(ValueError, match="hidden"):
        wb.Diffusion(3, hidden=())
    g = wb.Diffusion(3, steps=10, hidden=4)
    with pytest.raises(ValueError, match="scaling is not set"):
        g.sample(2)
    g.set_scaling(1, 0)
    with pytest.raises(ValueError, match="shape"):
        g.log_likelihood_bound(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="t: time steps"):
        g.loss_and_grad(np.zeros((2, 3)), t=[1, 5])
    with pytest.raises(ValueError, match="clamp"):
        g.sample(2, clamp=[True, False, True])
    b = wb.Diffusion(3, steps=10, kind="binomial", hidden=4)
    with pytest.raises(ValueError, match="binary"):
        b.fit(np.full((4, 3), 0.5), epochs=1, progress=False)
    with pytest.raises(ValueError, match="Gaussian kind"):
        b.denoise(np.zeros((2, 3)), 0.1)
    with pytest.raises(ValueError, match="noise_sigma"):
        g.denoise(np.zeros((2, 3)), -1.0)
    with pytest.raises(ValueError, match="only a Gaussian"):
        b.set_scaling(1.0, 0.0)
