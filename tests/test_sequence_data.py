"""Sequence data: the CB513 reader on a small file in the published layout, the HMM stand-in,
and its forward-backward posteriors against brute-force enumeration."""

import itertools

import numpy as np
import pytest

import walkback as wb
from walkback.data_sequences import HMMSequences


def cb513_file(path, lengths, flat=False, seed=0):
    rng = np.random.default_rng(seed)
    a = np.zeros((len(lengths), 700, 57), np.float32)
    labels = []
    for k, m in enumerate(lengths):
        res = rng.integers(0, 21, m)
        lab = rng.integers(0, 8, m)
        a[k, np.arange(m), res] = 1
        a[k, np.arange(m), 22 + lab] = 1
        a[k, m:, 21] = 1
        a[k, m:, 30] = 1
        a[k, :m, 35:56] = rng.random((m, 21))
        a[k, m:, 56] = 1
        labels.append(lab)
    np.save(path, a.reshape(len(lengths), -1) if flat else a)
    return a, labels


@pytest.mark.parametrize("flat", [False, True])
def test_load_cb513_reads_the_published_layout(tmp_path, flat):
    a, labels = cb513_file(tmp_path / "cb.npy", [5, 700, 123], flat=flat)
    x, y, lengths = wb.data.load_cb513(tmp_path / "cb.npy")
    assert x.shape == (3, 700, 42) and y.shape == (3, 700)
    np.testing.assert_array_equal(lengths, [5, 700, 123])
    for k, m in enumerate(lengths):
        np.testing.assert_array_equal(y[k, :m], labels[k])
        assert np.all(y[k, m:] == -1) and np.all(x[k, m:] == 0)
        np.testing.assert_array_equal(x[k, :m, :21], a[k, :m, :21])
        np.testing.assert_array_equal(x[k, :m, 21:], a[k, :m, 35:56])


def test_load_cb513_rejects_other_files(tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 700, 50), np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        wb.data.load_cb513(tmp_path / "bad.npy")
    a, _ = cb513_file(tmp_path / "cb.npy", [10])
    a[0, 3, 22:31] = 0  # a position with no label and no NoSeq mark
    np.save(tmp_path / "nolabel.npy", a)
    with pytest.raises(ValueError, match="one label"):
        wb.data.load_cb513(tmp_path / "nolabel.npy")
    a, _ = cb513_file(tmp_path / "cb2.npy", [10])
    a[0, 4, 22:30] = 0  # NoSeq in the middle of the sequence
    a[0, 4, 30] = 1
    np.save(tmp_path / "gap.npy", a)
    with pytest.raises(ValueError, match="only follow"):
        wb.data.load_cb513(tmp_path / "gap.npy")
    with pytest.raises(FileNotFoundError):
        wb.data.load_cb513(tmp_path / "missing.npy")


def test_hmm_sequences_have_the_asked_shape_and_sticky_segments():
    d = wb.data.make_hmm_sequences(60, seed=1)
    assert d.x.shape[0] == 60 and d.x.shape[2] == 42
    assert d.lengths.min() >= 100 and d.lengths.max() <= 300
    for k in range(60):
        m = d.lengths[k]
        assert np.all(d.y[k, :m] >= 0) and np.all(d.y[k, m:] == -1)
        np.testing.assert_array_equal(d.x[k, :m, :21].sum(axis=1), 1)
    np.testing.assert_allclose(d.trans.sum(axis=1), 1)
    # mean segment lengths: 1 / (1 - stay) spread over 3..15
    seg = 1 / (1 - np.diag(d.trans))
    np.testing.assert_allclose([seg.min(), seg.max()], [3, 15])
    runs = [len(list(g)) for k in range(60) for _, g in itertools.groupby(d.y[k, : d.lengths[k]])]
    assert 3 < np.mean(runs) < 15


def test_hmm_samples_follow_its_transitions_and_letters():
    d = wb.data.make_hmm_sequences(300, seed=3)
    S = len(d.start)
    trans = np.zeros((S, S))
    letters = np.zeros((S, 21))
    for k in range(300):
        m = d.lengths[k]
        ys = d.y[k, :m]
        np.add.at(trans, (ys[:-1], ys[1:]), 1)
        np.add.at(letters, (ys, d.x[k, :m, :21].argmax(axis=1)), 1)
    np.testing.assert_allclose(trans / trans.sum(1, keepdims=True), d.trans, atol=0.02)
    np.testing.assert_allclose(letters / letters.sum(1, keepdims=True), d.letters, atol=0.02)


def test_emission_likelihood_is_the_letter_times_the_profile_density():
    """Up to a constant per position: log p(letter | s) + log N(profile; mean_s, sigma^2 I)."""
    d = wb.data.make_hmm_sequences(3, seed=4, profile_sigma=0.7)
    xs = d.x[0, : d.lengths[0]]
    got = np.log(d._emission_likelihood(xs))
    letter = xs[:, :21].argmax(axis=1)
    prof = xs[:, 21:].astype(np.float64)
    want = np.log(d.letters[:, letter].T) + np.stack(
        [
            -0.5 * np.sum((prof - d.profile_means[s]) ** 2, axis=1) / 0.7**2
            - 21 * np.log(0.7 * np.sqrt(2 * np.pi))
            for s in range(len(d.start))
        ],
        axis=1,
    )
    diff = got - want
    np.testing.assert_allclose(diff - diff[:, :1], 0, atol=1e-9)


def test_forward_backward_matches_brute_force_enumeration():
    rng = np.random.default_rng(0)
    S, L = 3, 5
    trans = rng.dirichlet(np.ones(S), size=S)
    letters = rng.dirichlet(np.ones(21), size=S)
    means = rng.normal(size=(S, 21))
    x = np.zeros((1, L, 42), np.float32)
    x[0, np.arange(L), rng.integers(0, 21, L)] = 1
    x[0, :, 21:] = rng.normal(size=(L, 21))
    start = rng.dirichlet(np.ones(S))
    d = HMMSequences(
        x, np.zeros((1, L), np.int64), np.array([L]), start, trans, letters, means, 0.8
    )
    like = d._emission_likelihood(x[0])
    joint = {}
    for seq in itertools.product(range(S), repeat=L):
        p = start[seq[0]] * like[0, seq[0]]
        for i in range(1, L):
            p *= trans[seq[i - 1], seq[i]] * like[i, seq[i]]
        joint[seq] = p
    z = sum(joint.values())
    brute = np.zeros((L, S))
    for seq, p in joint.items():
        for i, s in enumerate(seq):
            brute[i, s] += p / z
    np.testing.assert_allclose(d.posterior_marginals()[0], brute, rtol=1e-10)


def test_bayes_ceiling_beats_the_emissions_alone():
    d = wb.data.make_hmm_sequences(40, seed=2)
    ceiling = d.bayes_accuracy()
    # per position, without the chain: the most likely state of the emission alone
    local = []
    for k in range(40):
        m = d.lengths[k]
        local.append(d._emission_likelihood(d.x[k, :m]).argmax(axis=1) == d.y[k, :m])
    local = np.concatenate(local).mean()
    assert local < ceiling <= 1.0 and ceiling > 0.5
