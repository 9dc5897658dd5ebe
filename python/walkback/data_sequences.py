"""Sequence-labelling data for the convolutional GSN (Zhou & Troyanskaya 2014): a reader of the
published CB513 / CullPDB .npy files, and an offline stand-in with a known Bayes ceiling, a
sticky hidden Markov model whose posterior marginals come from forward-backward."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from . import _checks

# The published layout (Zhou & Troyanskaya 2014; the files cullpdb+profile_6133.npy and
# cb513+profile_split1.npy): 700 positions x 57 features per protein.
CB513_LENGTH, CB513_FEATURES = 700, 57
_RESIDUES = slice(0, 21)  # 21 amino-acid letters (column 21 is "NoSeq")
_LABELS = slice(22, 30)  # 8 secondary-structure states (column 30 is "NoSeq")
_NOSEQ_LABEL = 30
_PROFILE = slice(35, 56)  # 21 profile values (column 56 is "NoSeq")


def load_cb513(path):
    """Reads a CB513 or CullPDB file in its published .npy layout: N x 700 x 57 (or flattened
    N x 39,900), one-hot residues in columns 0-21, the 8-state labels in 22-30, terminals
    31-32, solvent accessibility 33-34 and the profile in 35-56; column 21, 30 or 56 marks
    "NoSeq" padding.

    Returns:
        (x, y, lengths): x (N, 700, 42) float32, the 21 residue indicators then the 21 profile
        values; y (N, 700) int64 labels in 0..7, -1 past the end; lengths (N,) int64.
    Raises:
        ValueError for a file of another shape, labels that are not one-hot, or padding in
        the middle of a sequence.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_cb513: no such file: {path}")
    a = np.load(path, allow_pickle=False)
    if a.ndim == 2 and a.shape[1] == CB513_LENGTH * CB513_FEATURES:
        a = a.reshape(len(a), CB513_LENGTH, CB513_FEATURES)
    if a.ndim != 3 or a.shape[1:] != (CB513_LENGTH, CB513_FEATURES):
        raise ValueError(
            f"load_cb513: expected shape (N, {CB513_LENGTH}, {CB513_FEATURES}) or "
            f"(N, {CB513_LENGTH * CB513_FEATURES}), got {a.shape}"
        )
    labels = a[:, :, _LABELS]
    pad = a[:, :, _NOSEQ_LABEL] > 0.5
    sums = labels.sum(axis=2)
    if not np.all(np.where(pad, sums == 0, np.isclose(sums, 1))):
        raise ValueError("load_cb513: each position needs one label or the NoSeq mark")
    lengths = (~pad).sum(axis=1)
    if not np.all(pad == (np.arange(CB513_LENGTH)[None, :] >= lengths[:, None])):
        raise ValueError("load_cb513: NoSeq padding must only follow the sequence")
    y = np.where(pad, -1, labels.argmax(axis=2)).astype(np.int64)
    x = np.concatenate([a[:, :, _RESIDUES], a[:, :, _PROFILE]], axis=2).astype(np.float32)
    x[pad] = 0.0
    return x, y, lengths.astype(np.int64)


@dataclass
class HMMSequences:
    """Sequences from a sticky HMM: x (n, L, 42) float32 (21 letter indicators, then a noisy
    21-value profile), y (n, L) int64 states (-1 past each length), lengths (n,), and the
    HMM (start (S,), trans (S, S), letters (S, 21), profile means (S, 21), profile_sigma)."""

    x: np.ndarray
    y: np.ndarray
    lengths: np.ndarray
    start: np.ndarray
    trans: np.ndarray
    letters: np.ndarray
    profile_means: np.ndarray
    profile_sigma: float

    def posterior_marginals(self) -> np.ndarray:
        """p(state_i | the whole sequence) by forward-backward, (n, L, S); 0 past the end."""
        n, L, _ = self.x.shape
        S = len(self.start)
        out = np.zeros((n, L, S))
        for k in range(n):
            m = int(self.lengths[k])
            like = self._emission_likelihood(self.x[k, :m])
            alpha = np.empty((m, S))
            a = self.start * like[0]
            alpha[0] = a / a.sum()
            for i in range(1, m):
                a = (alpha[i - 1] @ self.trans) * like[i]
                alpha[i] = a / a.sum()
            beta = np.ones(S)
            post = np.empty((m, S))
            post[m - 1] = alpha[m - 1]
            for i in range(m - 2, -1, -1):
                beta = self.trans @ (like[i + 1] * beta)
                beta /= beta.sum()
                p = alpha[i] * beta
                post[i] = p / p.sum()
            out[k, :m] = post
        return out

    def _emission_likelihood(self, xs) -> np.ndarray:
        """(m, S) likelihood of each position's letter and profile under each state, scaled
        per position (forward-backward only needs ratios)."""
        letter = xs[:, :21].argmax(axis=1)
        prof = xs[:, 21:].astype(np.float64)
        d2 = ((prof[:, None, :] - self.profile_means[None]) ** 2).sum(axis=2)
        logl = np.log(self.letters[:, letter].T) - d2 / (2 * self.profile_sigma**2)
        return np.exp(logl - logl.max(axis=1, keepdims=True))

    def bayes_accuracy(self) -> float:
        """The per-position accuracy of the posterior marginals' argmax: the ceiling that no
        labeller of these sequences can beat in expectation."""
        post = self.posterior_marginals()
        valid = self.y >= 0
        return float((post.argmax(axis=2) == self.y)[valid].mean())


def make_hmm_sequences(
    n,
    states=8,
    min_length=100,
    max_length=300,
    mean_segment=(3, 15),
    profile_sigma=1.0,
    seed=0,
) -> HMMSequences:
    """An offline stand-in for protein secondary-structure data: a sticky ``states``-state
    HMM whose mean segment lengths are spread over ``mean_segment`` (self-transition
    1 - 1 / length), each state emitting one of 21 letters from its own Dirichlet(0.5) draw
    and a 21-value profile (the state's letter distribution, scaled, plus Gaussian noise of
    ``profile_sigma``). Lengths are uniform on [min_length, max_length]."""
    n = _checks.check_int("n", n, 1, 10**7)
    states = _checks.check_int("states", states, 2, 1000)
    min_length = _checks.check_int("min_length", min_length, 1, 10**6)
    max_length = _checks.check_int("max_length", max_length, min_length, 10**6)
    if isinstance(mean_segment, (int, float, np.integer, np.floating)):
        mean_segment = (mean_segment, mean_segment)  # one mean length for every state
    try:
        lo, hi = float(mean_segment[0]), float(mean_segment[1])
    except (TypeError, ValueError, IndexError) as e:
        raise TypeError(
            f"mean_segment: expected a number or (low, high), got {mean_segment!r}"
        ) from e
    if not 1 <= lo <= hi < np.inf:
        raise ValueError(f"mean_segment: expected finite 1 <= low <= high, got {mean_segment}")
    profile_sigma = _checks.check_float("profile_sigma", profile_sigma)
    if not 0 < profile_sigma < np.inf:
        raise ValueError(f"profile_sigma: expected a positive number, got {profile_sigma}")
    rng = np.random.default_rng(seed)
    seg = np.linspace(lo, hi, states)
    stay = 1.0 - 1.0 / seg
    jump = rng.dirichlet(np.ones(states - 1), size=states)
    trans = np.zeros((states, states))
    for s in range(states):
        trans[s, s] = stay[s]
        trans[s, np.arange(states) != s] = (1 - stay[s]) * jump[s]
    start = np.full(states, 1.0 / states)
    letters = rng.dirichlet(np.full(21, 0.5), size=states)
    means = 3.0 * letters
    lengths = rng.integers(min_length, max_length + 1, size=n)
    L = int(lengths.max())
    x = np.zeros((n, L, 42), np.float32)
    y = np.full((n, L), -1, np.int64)
    cum = np.cumsum(trans, axis=1)
    for k in range(n):
        m = int(lengths[k])
        u = rng.random(m)
        s = int(rng.choice(states, p=start))
        seq = np.empty(m, np.int64)
        for i in range(m):
            if i:
                s = min(int(np.searchsorted(cum[s], u[i], side="right")), states - 1)
            seq[i] = s
        y[k, :m] = seq
        let = (rng.random(m)[:, None] > np.cumsum(letters[seq], axis=1)).sum(axis=1)
        x[k, np.arange(m), np.minimum(let, 20)] = 1.0
        x[k, :m, 21:] = means[seq] + profile_sigma * rng.normal(size=(m, 21))
    return HMMSequences(
        x, y, lengths.astype(np.int64), start, trans, letters, means, float(profile_sigma)
    )
