"""walkback's own GEMM for fixed weights (csrc/walkback/packed_gemm.h): the product against
NumPy in float64, and the chains through it against the BLAS path and the NumPy reference.
Every test runs once per instruction set the processor has (AVX-512, AVX2); where it has
neither the library never takes this path and the BLAS path is what every other test checks."""

import numpy as np
import pytest

import walkback as wb
from walkback import _backend

import reference as ref

cpu = _backend.cpu()
BEST = cpu.packed_gemm_isa()  # chosen when the library loaded
pytestmark = pytest.mark.skipif(
    BEST == "none",
    reason="packed GEMM off: WALKBACK_PACKED_GEMM=0, or a processor without AVX-512 or AVX2",
)


@pytest.fixture(autouse=True, params=["avx512", "avx2"])
def isa(request):
    """Runs each test with one kernel, and always puts the one chosen at load back."""
    if not cpu.set_packed_gemm_isa(request.param):
        pytest.skip(f"this processor has no {request.param}")
    yield request.param
    assert cpu.set_packed_gemm_isa(BEST)


@pytest.fixture
def packed_off(isa):
    """Runs the body with the packed GEMM switched off, and always switches it back on."""
    cpu.set_packed_gemm(False)
    yield
    assert cpu.set_packed_gemm(True)


def packs(run):
    """run()'s result, checking that it packed weights and multiplied by them."""
    packed, products = cpu.packed_weights_count(), cpu.packed_products_count()
    out = run()
    assert cpu.packed_weights_count() > packed, "the call packed nothing"
    assert cpu.packed_products_count() > products, "the call multiplied by nothing packed"
    return out


def same_bits_across_threads(run, want):
    """run() gives want's loss and gradients bit for bit with 1, 2 and 3 threads, and the
    products were really cut differently: more packed products (column or row slices) with
    three threads than with one."""
    threads = wb.get_num_threads()
    counts = {}
    try:
        for t in (1, 2, 3):
            wb.set_num_threads(t)
            before = cpu.packed_products_count()
            loss_t, g_t = run()
            counts[t] = cpu.packed_products_count() - before
            assert float(loss_t) == float(want[0])
            for name in want[1]:
                np.testing.assert_array_equal(g_t[name], want[1][name], err_msg=f"{name}, {t}")
    finally:
        wb.set_num_threads(threads)
    assert counts[3] > counts[1], f"no product was cut by the threads: {counts}"


def agrees_with_blas(prefer, run, atol, blas_packs=False):
    """run() with prefer_packed_gemm off, then on: on multiplied more products by packed
    weights (and, unless blas_packs, off packed none); the loss and the gradients agree to
    float32 rounding (atol relative to each gradient's largest value); and on gives the same
    bits for 1, 2 and 3 threads."""
    out, products = {}, {}
    for mode in (0, 1):
        prefer(mode)
        packed, before = cpu.packed_weights_count(), cpu.packed_products_count()
        out[mode] = run()
        products[mode] = cpu.packed_products_count() - before
        if mode == 0 and not blas_packs:
            assert cpu.packed_weights_count() == packed, "the BLAS path packed weights"
        if mode == 1:
            assert cpu.packed_weights_count() > packed, "the call packed nothing"
    assert products[1] > products[0], "no product went through the packed kernel"
    (loss0, g0), (loss1, g1) = out[0], out[1]
    assert float(loss1) == pytest.approx(float(loss0), rel=1e-5)
    for name in g0:
        scale = np.abs(g0[name]).max()
        np.testing.assert_allclose(g1[name], g0[name], rtol=0, atol=atol * scale, err_msg=name)
    same_bits_across_threads(run, (loss1, g1))


def bound(a, b):
    """float32 rounding bound of a @ b: k units of roundoff on the sum of |terms|."""
    return 4 * a.shape[1] * np.finfo(np.float32).eps * (np.abs(a) @ np.abs(b)) + 1e-30


# m: below, at and past the 12-row tile and the 192-row block; k: 1, odd, past the 1024 at
# which k is cut in blocks; n: below, at and past the 32-column panel.
@pytest.mark.parametrize("m", [1, 5, 12, 13, 200])
@pytest.mark.parametrize("k", [1, 7, 1100])
@pytest.mark.parametrize("n", [1, 17, 32, 33, 100, 257])
@pytest.mark.parametrize("trans_b", [False, True])
def test_product_matches_numpy(m, k, n, trans_b):
    rng = np.random.default_rng(m * 1000 + k + n)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    cpu.packed_gemm(a, b, c, trans_b)
    op_b = b.T if trans_b else b
    want = a.astype(np.float64) @ op_b.astype(np.float64)
    assert np.all(np.abs(c - want) <= bound(a, op_b))


@pytest.mark.parametrize("k0, k1", [(0, 1100), (5, 37), (64, 64), (100, 1100), (3, 1090)])
def test_a_range_of_k_multiplies_only_those_rows_of_the_pack(k0, k1):
    """packed_gemm_k: A[:, k0:k1] times rows k0..k1 of op(B), past the 1024 at which k is cut
    in blocks too. Rows of B outside the range hold inf and NaN: they must not reach C."""
    rng = np.random.default_rng(k0 + k1)
    a = rng.normal(size=(29, 1100)).astype(np.float32)
    b = rng.normal(size=(1100, 70)).astype(np.float32)
    b[:k0] = np.inf
    b[k1:] = np.nan
    c = np.full((29, 70), np.nan, np.float32)
    cpu.packed_gemm_k(a, b, c, k0, k1, False)
    want = a[:, k0:k1].astype(np.float64) @ b[k0:k1].astype(np.float64)
    assert np.all(np.abs(c - want) <= bound(a[:, k0:k1], b[k0:k1]))
    with pytest.raises(ValueError, match="k0 <= k1 <= k"):
        cpu.packed_gemm_k(a, b, c, 5, 1101, False)


def test_both_instruction_sets_give_the_same_bits(isa):
    # One chain of FMAs per element in k order, in the same blocks, on either kernel.
    if not cpu.set_packed_gemm_isa("avx2") or not cpu.set_packed_gemm_isa("avx512"):
        pytest.skip("needs both AVX-512 and AVX2")
    rng = np.random.default_rng(8)
    a = rng.normal(size=(37, 1100)).astype(np.float32)
    b = rng.normal(size=(1100, 83)).astype(np.float32)
    out = {}
    for name in ("avx512", "avx2"):
        cpu.set_packed_gemm_isa(name)
        out[name] = np.empty((37, 83), np.float32)
        cpu.packed_gemm(a, b, out[name], False)
    np.testing.assert_array_equal(out["avx512"], out["avx2"])


# k within one block (the callback runs on blocks of a few rows by the panels that stay in L2:
# 784 x 32 floats a panel, ten to a group at n = 1000, so groups of 10, 10, 10 and 2 panels),
# and past it (one callback on the whole slice at the end).
@pytest.mark.parametrize("m,k,n", [(1, 784, 1000), (29, 784, 1000), (13, 7, 40), (25, 1100, 70)])
def test_block_callback_tiles_c_once_final(m, k, n):
    rng = np.random.default_rng(m + k + n)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    c = np.empty((m, n), np.float32)
    seen = np.full((m, n), np.nan, np.float32)
    blocks = cpu.packed_gemm_blocks(a, b, c, seen, False)
    # Each block copied C where it was final: seen is the whole product, bit for bit.
    np.testing.assert_array_equal(seen, c)
    want = np.empty_like(c)
    cpu.packed_gemm(a, b, want, False)
    np.testing.assert_array_equal(c, want)
    cover = np.zeros((m, n), int)
    for r0, r1, c0, c1 in blocks:
        assert 0 <= r0 < r1 <= m and 0 <= c0 < c1 <= n
        assert c0 % 32 == 0 and (c1 % 32 == 0 or c1 == n)
        cover[r0:r1, c0:c1] += 1
    assert np.all(cover == 1), "the blocks do not tile C exactly once"
    if k <= 1024 and m > 12:
        assert max(r1 - r0 for r0, r1, _, _ in blocks) <= 12, "blocks of a few rows expected"


def test_unknown_instruction_set_is_refused():
    with pytest.raises(ValueError, match="avx512"):
        cpu.set_packed_gemm_isa("sse9")


@pytest.mark.parametrize(
    "seed,m,k,n,trans_b",
    [
        (3, 30, 50, 70, False),
        # k past 1024 is summed in blocks of 512 added into C: with accumulate, on top of C's own.
        (4, 13, 1500, 40, True),
    ],
)
def test_accumulate_adds_to_c(seed, m, k, n, trans_b):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(np.float32)
    c0 = rng.normal(size=(m, n)).astype(np.float32)
    c = c0.copy()
    cpu.packed_gemm(a, b, c, trans_b, True)
    op_b = b.T if trans_b else b
    want = c0 + a.astype(np.float64) @ op_b
    assert np.all(np.abs(c - want) <= bound(a, op_b) + 1e-6 * np.abs(c0))


def test_bad_shapes_are_refused():
    a = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="b"):
        cpu.packed_gemm(a, np.zeros((6, 3), np.float32), np.zeros((4, 3), np.float32), False)
    with pytest.raises(ValueError, match="c"):
        cpu.packed_gemm(a, np.zeros((5, 3), np.float32), np.zeros((4, 4), np.float32), False)


def test_switching_it_off_is_reported(packed_off):
    assert not cpu.packed_gemm_supported()
    with pytest.raises(RuntimeError, match="switched off"):
        cpu.packed_gemm(
            np.zeros((2, 2), np.float32),
            np.zeros((2, 2), np.float32),
            np.zeros((2, 2), np.float32),
            False,
        )


@pytest.mark.parametrize("tied", [True, False])
def test_packed_chain_step_matches_reference(tied):
    # 128 chains, two steps a call: the chain packs W (from 8 chains and 2 steps a call).
    # The reference takes the second step from the state after the first (a one-step call,
    # which does not pack).
    m = wb.DAE(64, 48, corruption=wb.SaltAndPepper(0.3), tied=tied, seed=2, dtype=np.float32)
    rng = np.random.default_rng(5)
    x = (rng.random((128, 64)) < 0.3).astype(np.float32)
    p = m.get_params()
    kw = dict(
        seed=3,
        corruption=m.corruption,
        activation=m.activation,
        reconstruction=m.reconstruction,
    )
    args = (p["W1"], p["b1"], p["b0"])
    first = wb.ops.chain_step(x, *args, U1=p.get("U1"), **kw)
    got, mean = packs(
        lambda: wb.ops.chain_step(x, *args, U1=p.get("U1"), steps=2, return_mean=True, **kw)
    )
    params = {k: v.astype(np.float64) for k, v in p.items()}
    want, want_mean = ref.dae_step(
        first,
        params,
        activation="sigmoid",
        corruption=("salt_and_pepper", 0.3),
        recon="bernoulli",
        sigma=1.0,
        seed=3,
        step=1,
    )
    np.testing.assert_allclose(mean, want_mean, rtol=2e-5, atol=2e-6)
    assert np.mean(got != want) < 1e-3


def test_packed_and_blas_chains_agree():
    m = wb.DAE(300, 200, corruption=wb.BitFlip(0.1), seed=4, dtype=np.float32)
    x = (np.random.default_rng(6).random((64, 300)) < 0.3).astype(np.float32)
    kw = dict(x0=x, steps=4, seed=9, means=True)  # 4 x 64 chain steps: the chain packs W
    packed = packs(lambda: m.sample(**kw))
    cpu.set_packed_gemm(False)
    try:
        blas = m.sample(**kw)
    finally:
        assert cpu.set_packed_gemm(True)
    np.testing.assert_allclose(packed, blas, rtol=1e-5, atol=1e-6)


def small_gsn(tied):
    """A two-layer GSN with noise everywhere, 4 walk-backs, and 64 binary rows for it: enough
    rows and steps for its chain and its training to pack."""
    g = wb.GSN(
        100,
        [70, 50],
        input_noise=wb.SaltAndPepper(0.2),
        hidden_noise=wb.GaussianNoise(0.5, 0.5),
        tied=tied,
        walkbacks=4,
        seed=3,
    )
    return g, (np.random.default_rng(4).random((64, 100)) < 0.3).astype(np.float32)


def _on_and_off(run):
    """run() with the packed GEMM on (checked to pack), then off (always switched back on)."""
    on = packs(run)
    cpu.set_packed_gemm(False)
    try:
        off = run()
    finally:
        assert cpu.set_packed_gemm(True)
    return on, off


@pytest.mark.parametrize("tied", [True, False])
def test_packed_and_blas_gsn_chains_agree(tied):
    # 64 chains x 4 steps: the GSN chain packs every layer's weights, both orientations.
    g, x = small_gsn(tied)
    on, off = _on_and_off(lambda: g.sample(x0=x, steps=4, seed=2, means=True))
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=1e-6)


def small_diffusion(kind, visible, steps, basis):
    """A 40-100 diffusion model with a readout that is not zero, so that the hidden layers'
    products reach its samples and its loss."""
    m = wb.Diffusion(visible, steps=steps, kind=kind, hidden=(40, 100), basis=basis, seed=0)
    shapes = m.param_shapes()
    m.set_params(Wout=np.random.default_rng(1).normal(0, 0.3, shapes["Wout"]))
    if kind == "gaussian":
        m.set_scaling(1.0, 0.0)
    return m


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_packed_and_blas_diffusion_chains_agree(kind):
    # 64 chains x 8 steps: the reverse chain packs its hidden layers once.
    # Layer 1 (40 wide) splits its 64 rows over threads, layer 2 (100) its columns.
    m = small_diffusion(kind, 6, steps=8, basis=3)
    on, off = _on_and_off(lambda: m.sample(64, seed=5))
    if kind == "binomial":
        assert np.mean(on != off) < 1e-3  # a unit flips only where its uniform nearly ties
    else:
        np.testing.assert_allclose(on, off, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_packed_and_blas_diffusion_gradients_agree(kind):
    # 200 rows whose t spread over 2..300 with 10 basis functions: a narrow readout (5 units)
    # in blocks of 64 rows, each multiplying by the columns of the functions it uses (packed
    # W of the readout, and its W^T backward); the hidden layers packed both ways.
    m = small_diffusion(kind, 5, steps=300, basis=10)
    rng = np.random.default_rng(2)
    x = (rng.random((200, 5)) < 0.4).astype(np.float32)
    t = rng.integers(2, 301, 200).astype(np.int32)
    (loss, grads), (loss_b, grads_b) = _on_and_off(lambda: m.loss_and_grad(x, seed=5, t=t))
    assert loss == pytest.approx(loss_b, rel=1e-5)
    for k in grads:
        scale = np.abs(grads_b[k]).max()
        np.testing.assert_allclose(grads[k], grads_b[k], rtol=1e-3, atol=1e-4 * scale, err_msg=k)


def test_calls_too_small_to_repay_a_pack_use_the_blas(isa):
    m = wb.DAE(64, 48, seed=1, dtype=np.float32)
    rng = np.random.default_rng(0)
    before = cpu.packed_weights_count()
    m.sample(x0=(rng.random((256, 64)) < 0.3).astype(np.float32), steps=1, seed=1)  # one step
    # One chain never packs (tied: its own pass over W; untied: row sums and a GEMV).
    m.sample(x0=(rng.random((1, 64)) < 0.3).astype(np.float32), steps=100, seed=1)
    assert cpu.packed_weights_count() == before
    m.sample(x0=(rng.random((2, 64)) < 0.3).astype(np.float32), steps=2, seed=1)
    assert cpu.packed_weights_count() == before + 2  # W and W^T


def test_a_few_chains_split_over_calls_give_the_bits_of_one_call(isa):
    # From two chains the products are walkback's kernel (OpenBLAS repacked W on every call:
    # 4x slower a step at two chains), whose bits do not depend on how the chains are cut.
    m = wb.DAE(784, 300, seed=2, dtype=np.float32)
    x = (np.random.default_rng(3).random((6, 784)) < 0.3).astype(np.float32)
    p = m.get_params()
    kw = dict(seed=8, steps=4, return_mean=True)
    whole, whole_mean = packs(lambda: wb.ops.chain_step(x, p["W1"], p["b1"], p["b0"], **kw))
    parts = [
        wb.ops.chain_step(x[:2], p["W1"], p["b1"], p["b0"], **kw),
        wb.ops.chain_step(x[2:], p["W1"], p["b1"], p["b0"], first_chain=2, **kw),
    ]
    np.testing.assert_array_equal(whole, np.vstack([q[0] for q in parts]))
    np.testing.assert_array_equal(whole_mean, np.vstack([q[1] for q in parts]))


def test_switching_off_during_a_chain_does_not_break_it(isa):
    # A chain decides to pack when it starts; its later steps multiply by that pack even if
    # another thread switches the packed GEMM off meanwhile (the chain releases the GIL).
    import threading

    m = wb.DAE(784, 1000, seed=1, dtype=np.float32)
    x = (np.random.default_rng(0).random((64, 784)) < 0.3).astype(np.float32)
    errors = []

    def run():
        try:
            m.sample(x0=x, steps=150, seed=1)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    import time

    time.sleep(0.05)
    cpu.set_packed_gemm(False)
    t.join()
    assert cpu.set_packed_gemm(True)
    assert not errors, errors


@pytest.mark.parametrize("tied", [True, False])
def test_packed_and_blas_gsn_gradients_agree(tied):
    # 64 rows x 4 walk-backs: a batch packs every layer, used forward and by the data gradients
    # backward (tied: both orientations; untied: W_l only).
    g, x = small_gsn(tied)
    (loss, grads), (loss_b, grads_b) = _on_and_off(lambda: g.loss_and_grad(x, seed=5))
    assert loss == pytest.approx(loss_b, rel=1e-5)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads_b[k], rtol=1e-4, atol=1e-5)


def test_packed_and_blas_shaped_gradients_agree():
    # 64 rows x 4 steps: the generator packs its encoder's and decoder's layers, W and W^T,
    # used by every step forward and by the gradients of each layer's input backward.
    m = wb.ShapedChain(40, latent=5, hidden=(33, 70), chain_len=4, seed=0)
    x = (np.random.default_rng(0).random((64, 40)) < 0.3).astype(np.float32)
    (parts, grads), (parts_b, grads_b) = _on_and_off(lambda: m.generator_loss_and_grad(x, seed=3))
    for k in parts:
        assert parts[k] == pytest.approx(parts_b[k], rel=1e-5, abs=1e-7)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads_b[k], rtol=1e-4, atol=1e-6)


def test_the_gsn_backward_pass_multiplies_by_the_packs(isa):
    # The same sizes, tied and untied: a tied GSN's backward data gradients multiply by both
    # packed orientations, an untied one's by neither (U^T is packed nowhere), while their
    # forward passes make the same products. So the tied batch runs more packed products.
    counts = {}
    for tied in (True, False):
        g, x = small_gsn(tied)
        n = cpu.packed_products_count()
        g.loss_and_grad(x, seed=5)
        counts[tied] = cpu.packed_products_count() - n
    assert counts[True] > counts[False] > 0


def test_a_short_call_of_few_chains_packs_and_splits_give_the_same_bits(isa):
    # 8 chains and 2 steps: packed (it was measured faster than OpenBLAS from there), so a
    # split into calls of 8 takes the same kernel as one call of 16.
    m = wb.DAE(64, 48, seed=2)
    x0 = (np.random.default_rng(5).random((16, 64)) < 0.3).astype(np.float32)
    whole = packs(lambda: m.sample(x0=x0, steps=2, seed=1, means=True))
    a = m.sample(x0=x0[:8], steps=2, seed=1, means=True)
    b = m.sample(x0=x0[8:], steps=2, seed=1, means=True, first_chain=8)
    np.testing.assert_array_equal(whole, np.concatenate([a, b]))


@pytest.fixture
def prefer(request):
    """Sets prefer_packed_gemm's mode for the body and always puts the default back."""
    yield cpu.set_prefer_packed_gemm
    cpu.set_prefer_packed_gemm(-1)


def test_packed_gemm_is_preferred_where_its_kernel_is_wider(prefer, isa):
    """By default the sequence GSN's convolutions and DAE training take packed_gemm only where
    its kernel is AVX-512 and OpenBLAS's is not; the override wins, but never without it."""
    core = cpu.blas_info().rsplit("core ", 1)[1].lower()
    blas_avx512 = any(c in core for c in ("skylakex", "cooperlake", "sapphirerapids"))
    assert cpu.prefer_packed_gemm() == (isa == "avx512" and not blas_avx512)
    prefer(1)
    assert cpu.prefer_packed_gemm()
    prefer(0)
    assert not cpu.prefer_packed_gemm()
    prefer(1)
    cpu.set_packed_gemm(False)
    try:
        assert not cpu.prefer_packed_gemm()
    finally:
        assert cpu.set_packed_gemm(True)


# rows x F: tall products (rows >= 4 F) are cut in row slices, the others in column panels.
@pytest.mark.parametrize("n, length, c, f", [(3, 40, 6, 9), (2, 5, 7, 45)])
@pytest.mark.parametrize("width", [1, 5])
def test_conv1d_through_packed_filters_matches_reference(n, length, c, f, width):
    from sequence_reference import conv

    rng = np.random.default_rng(n * 100 + f + width)
    x = rng.normal(size=(n, length, c)).astype(np.float32)
    h = rng.normal(size=(n, length, f)).astype(np.float32)
    W = rng.normal(size=(width * c, f)).astype(np.float32)
    b = rng.normal(size=f).astype(np.float32)
    lens = np.array([length, 3, length - 1][:n], np.int32)
    ok = (np.arange(length)[None, :] < lens[:, None])[:, :, None]
    x, h = x * ok, h * ok

    def forward(packed):
        cols = np.empty((n * length, width * c), np.float32)
        y = np.empty((n, length, f), np.float32)
        cpu.conv1d_forward(x, W, b, width, lens, cols, y, packed=packed)
        return y

    def transpose(packed):
        work = np.empty((n * length, width * c), np.float32)
        out = np.zeros((n, length, c), np.float32)
        cpu.conv1d_transpose_add(h, W, width, lens, work, out, packed=packed)
        return out

    y = packs(lambda: forward(True))
    want = conv(x.astype(np.float64), W.astype(np.float64), lens) + b * ok
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, forward(False), rtol=1e-5, atol=1e-5)
    assert not y[1, 3:].any(), "a position past its length was written"
    # The adjoint: sum(conv(x) * h) == sum(x * conv^T(h)).
    t = packs(lambda: transpose(True))
    np.testing.assert_allclose(t, transpose(False), rtol=1e-5, atol=1e-5)
    lhs = np.sum((want - b * ok) * h)
    assert np.sum(x.astype(np.float64) * t) == pytest.approx(lhs, rel=1e-5, abs=1e-4)


def test_conv1d_packed_filters_are_float32_only():
    x = np.zeros((1, 4, 2))
    with pytest.raises(ValueError, match="float32 only"):
        cpu.conv1d_forward(
            x, np.zeros((2, 3)), None, 1, None, np.empty((4, 2)), np.empty((1, 4, 3)), packed=True
        )


def test_sequence_gsn_convolutions_through_packed_weights(prefer):
    """The same walk-back loss and gradients with the convolutions through packed_gemm as
    through the BLAS (float32 rounding apart), and the same bits for 1 and 2 threads."""
    rng = np.random.default_rng(3)
    m = wb.SequenceGSN(
        5, 4, channels=(40, 36), width=3, pool=2, walkbacks=3, seed=0, dtype=np.float32
    )
    x = rng.normal(size=(4, 50, 5)).astype(np.float32)
    y = rng.integers(0, 4, size=(4, 50))
    y[1, 30:] = -1
    y[3, 7:] = -1

    def run():
        return m.loss_and_grad(x, y, walkbacks=3, seed=7)

    agrees_with_blas(prefer, run, atol=1e-4)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("reconstruction", ["bernoulli", "gaussian"])
def test_dae_walkback_through_packed_weights(prefer, tied, reconstruction):
    """DAE walk-back training with its products through packed_gemm: the loss and gradients of
    the BLAS path (float32 rounding apart), and the same bits for 1, 2 and 3 threads."""
    rng = np.random.default_rng(4)
    m = wb.DAE(
        200, 300, corruption=wb.SaltAndPepper(0.3), reconstruction=reconstruction, tied=tied, seed=2
    )
    x = (rng.random((64, 200)) < 0.3).astype(np.float32)

    def run():
        return m.loss_and_grad(x, walkbacks=3, seed=9)

    agrees_with_blas(prefer, run, atol=1e-4)


def test_packed_gemm_many_is_each_product(isa):
    """The benchmarks' roofline of the packed path: one pack, then each A_i op(B)."""
    rng = np.random.default_rng(5)
    b = rng.normal(size=(40, 70)).astype(np.float32)
    for trans_b, w in ((False, b), (True, b.T)):
        k = w.shape[0]
        a = [rng.normal(size=(m, k)).astype(np.float32) for m in (3, 12, 50)]
        c = [np.empty((m, w.shape[1]), np.float32) for m in (3, 12, 50)]
        packs(lambda a=a, c=c, t=trans_b: cpu.packed_gemm_many(a, b, c, t))
        for ai, ci in zip(a, c, strict=True):
            want = ai.astype(np.float64) @ w.astype(np.float64)
            assert np.all(np.abs(ci - want) <= bound(ai, w))
    with pytest.raises(ValueError, match="one length"):
        cpu.packed_gemm_many(a, b, c[:1], True)


@pytest.mark.parametrize("m", [1, 13, 200])
@pytest.mark.parametrize("k", [1, 7, 1100])
@pytest.mark.parametrize("n", [17, 33, 100, 300])  # 300: column slices that start past 0
@pytest.mark.parametrize("trans_b", [False, True])
def test_product_with_a_given_transposed_matches_numpy(m, k, n, trans_b):
    """packed_gemm_at: C = at^T op(B), at (k x m) as a batch's rows lie; the same bits as
    packed_gemm on the transposed copy (each element one chain of FMAs in k order)."""
    rng = np.random.default_rng(m * 7 + k + n)
    at = rng.normal(size=(k, m)).astype(np.float32)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(np.float32)
    w = b.T if trans_b else b
    c = np.empty((m, n), np.float32)
    packs(lambda: cpu.packed_gemm_at(at, b, c, trans_b))
    a = np.ascontiguousarray(at.T)
    assert np.all(np.abs(c - a.astype(np.float64) @ w.astype(np.float64)) <= bound(a, w))
    same = np.empty_like(c)
    cpu.packed_gemm(a, b, same, trans_b)
    np.testing.assert_array_equal(c, same)
    cpu.packed_gemm_at(at, b, c, trans_b, accumulate=True)
    assert np.all(np.abs(c - 2 * same) <= 2 * bound(a, w))


def gsn_case():
    # W2's gradient (300 x 130) takes gemm_tn_accumulate's row slices at 3 threads (n < 64 x 3)
    # and its column slices at 1 and 2: the same bits either way.
    m = wb.GSN(60, hidden=[300, 130], walkbacks=4, seed=1)
    x = (np.random.default_rng(6).random((20, 60)) < 0.3).astype(np.float32)
    return lambda: m.loss_and_grad(x, walkbacks=4, seed=3)


def shaped_case():
    m = wb.ShapedChain(50, latent=16, hidden=(200, 136), guide_hidden=(24,), chain_len=3, seed=1)
    x = np.random.default_rng(7).random((20, 50)).astype(np.float32)

    def run():
        parts, grads = m.loss_and_grads(x, seed=4)
        return sum(parts.values()), grads

    return run


def diffusion_case(kind):
    m = wb.Diffusion(24, steps=30, kind=kind, hidden=(40,), basis=4, seed=1)
    if kind == "gaussian":
        m.set_scaling(1.0, 0.0)
    rng = np.random.default_rng(8)
    x = (rng.random((40, 24)) < 0.4) if kind == "binomial" else rng.normal(size=(40, 24))
    return lambda: m.loss_and_grad(x.astype(np.float32), seed=5)


@pytest.mark.parametrize("case", ["gsn", "shaped", "diffusion-gaussian", "diffusion-binomial"])
def test_weight_gradients_through_packed_gemm(prefer, case):
    """gemm_tn_accumulate (every model's weight gradients) through packed_gemm_at where it is
    preferred: the loss and gradients of the BLAS path (float32 rounding apart), and the same
    bits for 1, 2 and 3 threads."""
    run = {
        "gsn": gsn_case,
        "shaped": shaped_case,
        "diffusion-gaussian": lambda: diffusion_case("gaussian"),
        "diffusion-binomial": lambda: diffusion_case("binomial"),
    }[case]()

    agrees_with_blas(prefer, run, atol=2e-4, blas_packs=True)


@pytest.mark.parametrize(
    "threads,chains,tied,recon",
    [(2, 300, True, "bernoulli"), (3, 400, False, "gaussian"), (2, 1100, True, "bernoulli")],
)
def test_chains_split_over_threads_give_the_bits_of_one_thread(isa, threads, chains, tied, recon):
    # From 128 chains a thread the threads each take whole chains through every step, in
    # chunks of about 256 (uneven here); one thread takes column slices of every product.
    # Clamping per chain, records, burn-in and the final means go through both. The AVX2
    # kernel packs only up to 256 chains (packed_gemm_pays): 256 on two threads there.
    if isa == "avx2":
        threads, chains = 2, 256
    rng = np.random.default_rng(2)
    m = wb.DAE(
        784,
        200,
        tied=tied,
        seed=5,
        dtype=np.float32,
        reconstruction=wb.Gaussian(0.5) if recon == "gaussian" else "bernoulli",
    )
    m.set_params(b1=rng.normal(0, 0.5, 200), b0=rng.normal(0, 0.5, 784))
    if recon == "gaussian":
        x = rng.normal(size=(chains, 784)).astype(np.float32)
    else:
        x = (rng.random((chains, 784)) < 0.3).astype(np.float32)
    clamp = rng.random((chains, 784)) < 0.1
    kw = dict(x0=x, steps=5, burn_in=1, every=2, clamp=clamp, seed=9)
    n = wb.get_num_threads()
    try:
        wb.set_num_threads(1)
        want = m.sample(**kw)
        want_means = m.sample(**kw, means=True)
        wb.set_num_threads(threads)
        got = m.sample(**kw)
        got_means = m.sample(**kw, means=True)
        # The split runs: one product per chunk per half-step (dae_chain.cpp's chunks), where
        # column slices make several per product. (One call of 5 steps: sample runs `every`
        # in calls of its own, and a call of one step packs nothing.)
        before = cpu.packed_products_count()
        m.sample(x0=x, steps=5, clamp=clamp, seed=9)
        products = cpu.packed_products_count() - before
    finally:
        wb.set_num_threads(n)
    chunks = threads * -(-chains // (256 * threads))
    assert products == chunks * 2 * 5
    assert got.shape == (2, chains, 784)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_means, want_means)
    np.testing.assert_array_equal(got[:, clamp], np.broadcast_to(x[clamp], got[:, clamp].shape))
