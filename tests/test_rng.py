import numpy as np
import pytest
from scipy import stats

import walkback as wb
from walkback import _backend

import reference as ref

# Random123's published known-answer vectors for Philox4x32-10 (its tests/kat_vectors).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(ctr, key, expected):
    assert _backend.cpu().philox4x32_10(*ctr, *key) == expected
    assert tuple(int(v) for v in ref.philox4x32_10(*ctr, *key)) == expected


@pytest.mark.parametrize("stream", ["corrupt", "sample", "init", 7])
def test_uniform_matches_reference_stream_layout(stream):
    seed = 0x1234_5678_9ABC_DEF0
    got = wb.ops.uniform(5, 23, seed=seed, step=42, first_chain=3, stream=stream)
    want = ref.uniform(seed, 42, 5, 23, stream, first_chain=3)
    assert got.dtype == np.float32 and got.shape == (5, 23)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("units", [3, 31, 64, 300, 1001])
def test_simd_blocks_match_reference(units):
    # 300 units = 75 Philox blocks: the 16-wide, 8-wide and scalar paths all run.
    got = wb.ops.uniform(3, units, seed=2**40 + 5, step=9, stream="sample")
    np.testing.assert_array_equal(got, ref.uniform(2**40 + 5, 9, 3, units, "sample"))


@pytest.mark.parametrize("path", [0, 1, 2])  # scalar, AVX2, AVX-512: each this machine has
@pytest.mark.parametrize("groups", [1, 7, 15, 16, 17, 33, 48, 63, 64, 96, 127, 250])
def test_every_simd_path_matches_reference(path, groups):
    """Each Philox path of the CPU, forced, against the reference: passes of 4, 2 and 1
    interleaved sets of 16 (AVX-512) or 8 (AVX2) blocks in every order they cascade in, and
    the partial last batches (masked stores on AVX-512)."""
    got = _backend.cpu().philox_blocks_path(path, 2**40 + 5, 3, 2, groups, False, 9, 1)
    if got is None:
        pytest.skip(f"path {path} is not available on this machine")
    want = ref.uniform(2**40 + 5, 9, 1, 4 * (3 + groups), 1, first_chain=2)[0, 12:]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("path", [0, 1, 2])  # scalar, AVX2, AVX-512: each this machine has
@pytest.mark.parametrize("chains", [1, 7, 8, 9, 16, 17, 40, 64, 100])
def test_every_path_of_one_block_of_many_chains_matches_reference(path, chains):
    """Rows of a few units draw one Philox block of many chains at once (lanes over chains):
    full and partial batches of 8 and 16 lanes, against the reference's block 3 of each."""
    got = _backend.cpu().philox_blocks_path(path, 2**40 + 5, 3, 2, chains, True, 9, 1)
    if got is None:
        pytest.skip(f"path {path} is not available on this machine")
    want = ref.uniform(2**40 + 5, 9, chains, 16, 1, first_chain=2)[:, 12:]
    np.testing.assert_array_equal(got.reshape(chains, 4), want)


@pytest.mark.parametrize("path", [0, 1, 2])  # scalar, AVX2, AVX-512: each this machine has
@pytest.mark.parametrize(
    ("groups", "rows"), [(1, 1), (7, 3), (24, 12), (28, 12), (16, 5), (33, 2), (100, 3)]
)
def test_block_rows_match_reference(path, groups, rows):
    """Several chains' rows at once (the chain's epilogue draws a block of rows so): sets of
    16 (8) blocks taken across the rows, 4, 2 and 1 per pass, against the reference; the row
    stride is kept and nothing past each row's blocks is written."""
    ld = 4 * groups + 5
    got = _backend.cpu().uniform_block_rows_path(path, 2**40 + 5, 3, groups, 2, rows, ld, 9, 1)
    if got is None:
        pytest.skip(f"path {path} is not available on this machine")
    want = ref.uniform(2**40 + 5, 9, rows, 4 * (3 + groups), 1, first_chain=2)[:, 12:]
    np.testing.assert_array_equal(got[:, : 4 * groups], want)
    assert (got[:, 4 * groups :] == -1).all()


@pytest.mark.parametrize("path", [0, 1, 2])
def test_one_block_of_many_chains_wraps_past_the_last_chain_id(path):
    """Chain ids are 32-bit: 17 chains from 2**32 - 5 are chains 2**32 - 5 .. 2**32 - 1, then
    0 .. 11, in every lane of every path."""
    got = _backend.cpu().philox_blocks_path(path, 2**40 + 5, 3, 2**32 - 5, 17, True, 9, 1)
    if got is None:
        pytest.skip(f"path {path} is not available on this machine")
    want = np.concatenate(
        [
            ref.uniform(2**40 + 5, 9, 5, 16, 1, first_chain=2**32 - 5)[:, 12:],
            ref.uniform(2**40 + 5, 9, 12, 16, 1, first_chain=0)[:, 12:],
        ]
    )
    np.testing.assert_array_equal(got.reshape(17, 4), want)


@pytest.mark.parametrize("units", [1, 2, 3, 4, 5, 13, 31])
def test_rows_of_few_units_are_the_rows_of_many_bit_for_bit(units):
    """Fewer than 32 units per row take the many-chain path; 40 units the one-row path. Both
    give each unit the same uniform and normal, bit for bit, for 150 chains (two batches of
    64 chains and a partial one, split over the threads)."""
    kw = dict(seed=77, step=5, first_chain=9, stream="sample")
    wide_u, wide_n = wb.ops.uniform(150, 40, **kw), wb.ops.normal(150, 40, **kw)
    np.testing.assert_array_equal(wb.ops.uniform(150, units, **kw), wide_u[:, :units])
    np.testing.assert_array_equal(wb.ops.normal(150, units, **kw), wide_n[:, :units])
    np.testing.assert_array_equal(wide_u, ref.uniform(77, 5, 150, 40, "sample", first_chain=9))


def test_normal_matches_box_muller_reference():
    got = wb.ops.normal(4, 30, seed=9, step=3, stream="sample")
    want = ref.normal(9, 3, 4, 30, "sample")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_uniforms_are_uniform_in_open_interval():
    u = wb.ops.uniform(200, 1000, seed=1).ravel()
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    counts = np.histogram(u, bins=64, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3


def test_normals_are_standard_normal():
    z = wb.ops.normal(100, 1000, seed=2).ravel().astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


def test_streams_steps_and_seeds_are_independent():
    a = wb.ops.uniform(100, 1000, seed=3, step=0, stream="corrupt").ravel()
    others = [
        wb.ops.uniform(100, 1000, seed=3, step=0, stream="sample").ravel(),
        wb.ops.uniform(100, 1000, seed=3, step=1, stream="corrupt").ravel(),
        wb.ops.uniform(100, 1000, seed=4, step=0, stream="corrupt").ravel(),
        wb.ops.uniform(100, 1000, seed=3, step=0, first_chain=100).ravel(),
    ]
    for b in others:
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.01
        assert not np.array_equal(a, b)


def test_batch_split_and_threads_give_the_same_uniforms():
    whole = wb.ops.uniform(256, 100, seed=5, step=2)
    halves = np.vstack(
        [
            wb.ops.uniform(128, 100, seed=5, step=2),
            wb.ops.uniform(128, 100, seed=5, step=2, first_chain=128),
        ]
    )
    np.testing.assert_array_equal(whole, halves)
    n = wb.get_num_threads()
    try:
        wb.set_num_threads(1)
        one = wb.ops.uniform(256, 100, seed=5, step=2)
    finally:
        wb.set_num_threads(n)
    np.testing.assert_array_equal(whole, one)


def test_bad_random_arguments():
    with pytest.raises(ValueError, match="seed"):
        wb.ops.uniform(2, 2, seed=-1)
    with pytest.raises(TypeError, match="chains"):
        wb.ops.uniform(2.5, 2, seed=0)
    with pytest.raises(ValueError, match="stream"):
        wb.ops.uniform(2, 2, seed=0, stream="nope")
    with pytest.raises(ValueError, match="device"):
        wb.ops.uniform(2, 2, seed=0, device="tpu")
