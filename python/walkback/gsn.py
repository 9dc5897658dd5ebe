"""Generative Stochastic Networks (Bengio, Thibodeau-Laufer, Alain & Yosinski 2014, "Deep
Generative Stochastic Networks Trainable by Backprop"): a deep Markov chain over a visible layer
and L hidden layers, trained by back-propagating the walk-back loss through the unrolled chain;
with visible segments, the discriminant (Zhou & Troyanskaya 2014) and hybrid (Zöhrer &
Pernkopf 2014) GSNs."""

from __future__ import annotations

import numpy as np

from . import _backend, _checks, _codes, _model, ops
from ._model import ChainModel
from ._sampling import run_chain_chunks
from .noise import (
    GaussianNoise,
    SaltAndPepper,
    as_corruption,
    as_hidden_noise,
    corruption_from_config,
)
from .segments import Segment, as_segments, offsets

# The paper's MNIST model: salt-and-pepper 0.4 on the input, Gaussian noise of standard
# deviation 2 before and after each hidden activation.
_PAPER_INPUT_NOISE = SaltAndPepper(0.4)
_PAPER_HIDDEN_NOISE = GaussianNoise(2.0, 2.0)


class GSN(ChainModel):
    """A deep GSN and its chain.

    Each step corrupts the visible state, updates the odd hidden layers from their neighbours
    (layer 1 reads the corrupted visible layer, the others the even layers of the previous step),
    then the even layers (the visible layer is layer 0, reconstructed per segment and sampled).
    The hidden state is carried from step to step, so h_k depends on h_{k-1} and x_{k-1}.

    Args:
        visible: D, or a list of walkback.Segment (e.g. an image and a categorical label).
        hidden: the sizes of the L hidden layers. Default [1500, 1500, 1500]: the paper's
            MNIST model (3 hidden layers of 1500 units).
        activation: of the hidden layers; 'tanh' as in the paper (default).
        input_noise: the visible corruption; SaltAndPepper(0.4), the paper's, by default.
        hidden_noise: GaussianNoise(pre, post); GaussianNoise(2.0, 2.0), the paper's, by default.
            None turns it off.
        reconstruction: of the visible layer when ``visible`` is an int ('bernoulli', as for
            MNIST in the paper, or 'gaussian').
        tied: W_l shared upward and downward (default, as in the paper), or a separate
            downward U_l (n_l, n_{l-1}) per layer.
        noiseless_h1: no hidden noise on the first hidden layer (default True, as in the
            authors' code, yaoli/GSN's ``noiseless_h1=1``, which produced the paper's MNIST
            numbers: h1 decodes straight to x, and noise of 2.0 there swamps the
            reconstruction). False puts the noise on every hidden layer.
        walkbacks: the default walk-back length of ``fit``: 2L (the paper's choice) when None.
        seed: seeds the initial weights and the random streams of later calls.
        dtype: float32 (default) or float64.

    Parameters (``get_params``): W1 (D, n1), W2 (n1, n2), ..., b0 (D,), b1 (n1,), ... and,
    when untied, U1 (n1, D), U2 (n2, n1), ... Weights start uniform in +-sqrt(6 / (fan_in +
    fan_out)) (the interval of the original code for tanh units), biases at zero.
    """

    def __init__(
        self,
        visible=784,
        hidden=(1500, 1500, 1500),
        activation="tanh",
        input_noise=_PAPER_INPUT_NOISE,
        hidden_noise=_PAPER_HIDDEN_NOISE,
        reconstruction="bernoulli",
        tied=True,
        noiseless_h1=True,
        walkbacks=None,
        seed=0,
        dtype=np.float32,
    ):
        self.input_noise = as_corruption(input_noise, "input_noise")
        self.segments = tuple(
            s.resolved(self.input_noise) for s in as_segments(visible, reconstruction)
        )
        self.offsets = offsets(self.segments)
        self.visible = sum(s.size for s in self.segments)
        self.hidden = list(_checks.check_widths("hidden", hidden))
        _checks.check_activation(activation)
        self.activation = activation
        self.hidden_noise = as_hidden_noise(hidden_noise)
        if not isinstance(tied, (bool, np.bool_)):
            raise TypeError(f"tied: expected True or False, got {tied!r}")
        self.tied = bool(tied)
        if not isinstance(noiseless_h1, (bool, np.bool_)):
            raise TypeError(f"noiseless_h1: expected True or False, got {noiseless_h1!r}")
        self.noiseless_h1 = bool(noiseless_h1)
        L = len(self.hidden)
        self.walkbacks = (
            2 * L if walkbacks is None else _checks.check_int("walkbacks", walkbacks, 1, 10_000)
        )
        self.seed = _checks.check_seed("seed", seed)
        self.dtype = _checks.check_dtype(dtype)
        self._rng = np.random.default_rng(self.seed)
        self._params = {}
        if _model.loading():
            return
        sizes = self.layer_sizes
        for layer in range(1, L + 1):
            lo, hi = sizes[layer - 1], sizes[layer]
            r = np.sqrt(6.0 / (lo + hi))
            self._params[f"W{layer}"] = self._rng.uniform(-r, r, size=(lo, hi)).astype(self.dtype)
        for layer in range(L + 1):
            self._params[f"b{layer}"] = np.zeros(sizes[layer], self.dtype)
        if not self.tied:
            for layer in range(1, L + 1):
                lo, hi = sizes[layer - 1], sizes[layer]
                r = np.sqrt(6.0 / (lo + hi))
                self._params[f"U{layer}"] = self._rng.uniform(-r, r, size=(hi, lo)).astype(
                    self.dtype
                )

    # ------------------------------------------------------------------ discriminant / hybrid
    @classmethod
    def hybrid(cls, inputs, classes, alpha=1.0, input_reconstruction="bernoulli", **kwargs):
        """A hybrid GSN (Zöhrer & Pernkopf 2014): visible = [x (inputs), y (classes,
        categorical)], trained on alpha * NLL(x) + NLL(y) with both walking."""
        visible = [
            Segment("x", inputs, input_reconstruction, weight=alpha),
            Segment("y", classes, "categorical"),
        ]
        return cls(visible=visible, **kwargs)

    @classmethod
    def discriminant(cls, inputs, classes, input_reconstruction="bernoulli", **kwargs):
        """A discriminant GSN (Zhou & Troyanskaya 2014): x clamped through the walk (still
        corrupted before encoding), only NLL(y) trained."""
        visible = [
            Segment("x", inputs, input_reconstruction, weight=0.0, clamped=True),
            Segment("y", classes, "categorical"),
        ]
        return cls(visible=visible, **kwargs)

    # ------------------------------------------------------------------ parameters
    @property
    def _default_walkbacks(self) -> int:
        return self.walkbacks

    @property
    def layer_sizes(self) -> list:
        return [self.visible] + list(self.hidden)

    def param_shapes(self) -> dict:
        sizes, L = self.layer_sizes, len(self.hidden)
        shapes = {f"W{i}": (sizes[i - 1], sizes[i]) for i in range(1, L + 1)}
        shapes.update({f"b{i}": (sizes[i],) for i in range(L + 1)})
        if not self.tied:
            shapes.update({f"U{i}": (sizes[i], sizes[i - 1]) for i in range(1, L + 1)})
        return shapes

    def _kernel_kwargs(self) -> dict:
        L, p = len(self.hidden), self._params
        segs = [
            (
                off,
                s.size,
                s.reconstruction.code,
                s.reconstruction.sigma,
                s.corruption.code,
                s.corruption.param,
                s.weight,
            )
            for s, off in zip(self.segments, self.offsets, strict=True)
        ]
        return dict(
            W=[p[f"W{i}"] for i in range(1, L + 1)],
            U=[p.get(f"U{i}") for i in range(1, L + 1)],
            b=[p[f"b{i}"] for i in range(L + 1)],
            activation=_codes.ACTIVATIONS[self.activation],
            noise_pre=self.hidden_noise.pre,
            noise_post=self.hidden_noise.post,
            noiseless_h1=self.noiseless_h1,
            segments=segs,
        )

    def _check_clamp_given(self, x0, clamp):
        if clamp is None or not isinstance(x0, dict):
            return
        for s, off in zip(self.segments, self.offsets, strict=True):
            if s.name not in x0 and np.any(clamp[..., off : off + s.size]):
                raise ValueError(
                    f"clamp: segment {s.name!r} is clamped, but x0 does not give its values"
                )

    def _binary_columns(self):
        """fit's ``binarize`` applies to the Bernoulli segments only: a categorical or Gaussian
        segment drawn unit by unit would not be data of its kind."""
        return [
            (s.name, off, off + s.size)
            for s, off in zip(self.segments, self.offsets, strict=True)
            if s.reconstruction.name == "bernoulli"
        ]

    # ------------------------------------------------------------------ data
    def segment(self, name) -> tuple:
        """(Segment, offset) of the segment called ``name``."""
        for s, off in zip(self.segments, self.offsets, strict=True):
            if s.name == name:
                return s, off
        raise ValueError(
            f"unknown segment {name!r}; the model has {[s.name for s in self.segments]}"
        )

    def _segment_block(self, name, seg, a, n=None) -> np.ndarray:
        a = np.asarray(a)
        if seg.categorical and a.ndim == 1 and a.dtype.kind in "iu":
            if np.any(a < 0) or np.any(a >= seg.size):
                raise ValueError(f"{name}[{seg.name!r}]: class labels must lie in [0, {seg.size})")
            a = np.eye(seg.size, dtype=self.dtype)[a]
        elif seg.categorical and a.ndim == 1 and a.size != seg.size:
            raise TypeError(
                f"{name}[{seg.name!r}]: class labels must be integers, got dtype {a.dtype} "
                f"(or pass one-hot rows of shape (n, {seg.size}))"
            )
        block = _checks.as_state(f"{name}[{seg.name!r}]", a, self.dtype, seg.size)
        if n is not None and block.shape[0] != n:
            raise ValueError(
                f"{name}: segments have different numbers of rows ({block.shape[0]} vs {n})"
            )
        return block

    def _check_segment_values(self, name, seg, block) -> None:
        if seg.reconstruction.name == "bernoulli" and (block.min() < 0 or block.max() > 1):
            raise ValueError(
                f"{name}: segment {seg.name!r} is Bernoulli and needs values in [0, 1] (binary, "
                "or grey levels used as Bernoulli means)"
            )
        if seg.categorical and (block.min() < 0 or np.max(np.abs(block.sum(axis=1) - 1.0)) > 1e-3):
            raise ValueError(
                f"{name}: segment {seg.name!r} is categorical and needs one-hot rows (or "
                "probabilities summing to 1), or integer class labels"
            )

    def _assemble(self, name, x, fill=None):
        """(n, D) data from an array or a dict of segments; with ``fill(n, seg, off)`` missing
        segments of a dict are filled in, else they are an error."""
        if isinstance(x, dict):
            unknown = set(x) - {s.name for s in self.segments}
            if unknown:
                raise ValueError(f"{name}: unknown segments {sorted(unknown)}")
            blocks, n = {}, None
            for s in self.segments:
                if s.name in x:
                    blocks[s.name] = self._segment_block(name, s, x[s.name], n)
                    n = blocks[s.name].shape[0]
            if n is None:
                raise ValueError(f"{name}: expected at least one segment")
            parts = []
            for s, off in zip(self.segments, self.offsets, strict=True):
                if s.name in blocks:
                    parts.append(blocks[s.name])
                elif fill is not None:
                    parts.append(fill(n, s, off))
                else:
                    raise ValueError(f"{name}: missing segment {s.name!r}")
            out = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=self.dtype)
            given = set(blocks)
        else:
            out = _checks.as_state(name, x, self.dtype, self.visible)
            given = {s.name for s in self.segments}
        for s, off in zip(self.segments, self.offsets, strict=True):
            if s.name in given:
                self._check_segment_values(name, s, out[:, off : off + s.size])
        return out

    def _check_data(self, name, x) -> np.ndarray:
        return self._assemble(name, x)

    def _initial_block(self, n, seg, off, seed, first_chain=0):
        kw = dict(seed=seed, stream="init", first_chain=first_chain)
        u = ops.uniform(n, self.visible, **kw)[:, off : off + seg.size]
        if seg.categorical:
            k = np.minimum((u[:, 0] * seg.size).astype(np.int64), seg.size - 1)
            return np.eye(seg.size, dtype=self.dtype)[k]
        if seg.reconstruction.name == "bernoulli":
            return (u < 0.5).astype(self.dtype)
        z = ops.normal(n, self.visible, **kw)[:, off : off + seg.size]
        return z.astype(self.dtype)

    def _clamp_mask(self, clamp, n):
        if clamp is None:
            return None
        if isinstance(clamp, str) or (
            isinstance(clamp, (list, tuple)) and clamp and all(isinstance(c, str) for c in clamp)
        ):
            names = [clamp] if isinstance(clamp, str) else list(clamp)
            m = np.zeros(self.visible, np.uint8)
            for nm in names:
                s, off = self.segment(nm)
                m[off : off + s.size] = 1
            return m
        m = _checks.as_clamp(clamp, n, self.visible)
        for s, off in zip(self.segments, self.offsets, strict=True):
            blk = m[..., off : off + s.size]
            if s.categorical and not np.all(blk == blk[..., :1]):
                raise ValueError(
                    f"clamp: a categorical segment ({s.name!r}) is clamped whole or not at all"
                )
        return m

    # ------------------------------------------------------------------ sampling
    def _initial_state(self, n, seed, first_chain=0):
        blocks = [
            self._initial_block(n, s, off, seed, first_chain)
            for s, off in zip(self.segments, self.offsets, strict=True)
        ]
        return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=self.dtype)

    def _start_state(self, x0, seed, first_chain=0):
        return self._assemble(
            "x0", x0, fill=lambda m, s, off: self._initial_block(m, s, off, seed, first_chain)
        )

    def _run_chain(
        self,
        x,
        clamp,
        steps,
        burn_in,
        every,
        seed,
        means,
        progress,
        mean_sum=None,
        first_chain=0,
    ):
        kw = self._kernel_kwargs()
        # The hidden layers start at zero, as in the original code.
        hidden = [np.zeros((len(x), h), self.dtype) for h in self.hidden]

        def call(first_step, count, every_, records, final_means):
            _backend.cpu().gsn_chain(
                x,
                **kw,
                hidden=hidden,
                seed=seed,
                first_step=first_step,
                first_chain=first_chain,
                steps=count,
                burn_in=0,
                every=every_,
                clamp=clamp,
                records=records,
                means=final_means,
                record_means=means,
                mean_sum=mean_sum if first_step >= burn_in else None,
            )

        return run_chain_chunks(call, x, self.dtype, steps, burn_in, every, means, progress)

    # ------------------------------------------------------------------ classification
    @property
    def target(self) -> Segment:
        """The segment predict_proba predicts: the last categorical one."""
        cats = [s for s in self.segments if s.categorical]
        if not cats:
            raise ValueError("predict_proba: the model has no categorical segment to predict")
        return cats[-1]

    def predict_proba(self, x, steps=20, burn_in=0, seed=None, batch_size=1000):
        """p(y | x) averaged along the chain with x clamped (and corrupted before encoding as
        in training), y started uninformative (all zeros: no class; with masking noise on y,
        what training shows the network when the label is masked) and resampled each step.
        Each row is its own chain (its random numbers do not depend on ``batch_size``).

        Args:
            x: the other segments' data: an (n, D - k) array (segments in order) or a dict.
            steps: steps whose p(y | ...) are averaged, after ``burn_in`` discarded ones.
        Returns:
            (n, k) class probabilities.
        """
        tgt = self.target
        _, toff = self.segment(tgt.name)
        steps = _checks.check_int("steps", steps, 1, 2**31 - 1)
        burn_in = _checks.check_int("burn_in", burn_in, 0, 2**31 - 1)
        batch_size = _checks.check_int("batch_size", batch_size, 1)
        seed = self._seed(seed)
        if not isinstance(x, dict):
            others = [s for s in self.segments if s is not tgt]
            a = _checks.as_state("x", x, self.dtype, self.visible - tgt.size)
            x, o = {}, 0
            for s in others:
                x[s.name] = a[:, o : o + s.size]
                o += s.size
        elif tgt.name in x:
            raise ValueError(f"x: predict_proba predicts {tgt.name!r}; do not pass it")
        else:
            missing = [s.name for s in self.segments if s is not tgt and s.name not in x]
            if missing:
                raise ValueError(f"x: missing segments {missing} (every input is clamped)")
        blank = lambda m, s, off: np.zeros((m, s.size), self.dtype)  # noqa: E731
        full = self._assemble("x", x, fill=blank)
        mask = np.ones(self.visible, np.uint8)
        mask[toff : toff + tgt.size] = 0
        out = np.empty((full.shape[0], tgt.size), self.dtype)
        for b in range(0, full.shape[0], batch_size):
            xb = np.ascontiguousarray(full[b : b + batch_size])
            acc = np.zeros_like(xb)
            self._run_chain(
                xb,
                mask,
                steps,
                burn_in,
                None,
                seed,
                False,
                False,
                mean_sum=acc,
                first_chain=b,
            )
            out[b : b + len(xb)] = acc[:, toff : toff + tgt.size] / steps
        return out

    def predict(self, x, **kwargs):
        """The most probable class under predict_proba."""
        return np.argmax(self.predict_proba(x, **kwargs), axis=1)

    # ------------------------------------------------------------------ training
    def _train_clamp(self):
        if not any(s.clamped for s in self.segments):
            return None
        m = np.zeros(self.visible, np.uint8)
        for s, off in zip(self.segments, self.offsets, strict=True):
            if s.clamped:
                m[off : off + s.size] = 1
        return m

    def _walkback_call(self, x, walkbacks, seed, first_chain, reconstruct, grads, wait=True):
        """The loss (and gradients into ``grads``); ``wait`` is the GPU's option (a GSN runs
        on the CPU, whose loss is always ready)."""
        L = len(self.hidden)
        g = {}
        if grads is not None:
            g = dict(
                gW=[grads[f"W{i}"] for i in range(1, L + 1)],
                gU=[grads.get(f"U{i}") for i in range(1, L + 1)],
                gb=[grads[f"b{i}"] for i in range(L + 1)],
            )
        return _backend.cpu().gsn_walkback(
            x,
            **self._kernel_kwargs(),
            seed=seed,
            first_chain=first_chain,
            walkbacks=walkbacks,
            last_only=reconstruct == "last",
            clamp=self._train_clamp(),
            **g,
        )

    # ------------------------------------------------------------------ files
    def to_config(self) -> dict:
        return {
            "visible": [s.to_config() for s in self.segments],
            "hidden": list(self.hidden),
            "activation": self.activation,
            "input_noise": self.input_noise.to_config(),
            "hidden_noise": self.hidden_noise.to_config(),
            "tied": self.tied,
            "noiseless_h1": self.noiseless_h1,
            "walkbacks": self.walkbacks,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }

    @classmethod
    def from_config(cls, cfg: dict) -> GSN:
        return cls(
            visible=[Segment.from_config(s) for s in cfg["visible"]],
            hidden=cfg["hidden"],
            activation=cfg["activation"],
            input_noise=corruption_from_config(cfg["input_noise"]),
            hidden_noise=GaussianNoise(**cfg["hidden_noise"]),
            tied=cfg["tied"],
            noiseless_h1=cfg["noiseless_h1"],
            walkbacks=cfg["walkbacks"],
            seed=cfg["seed"],
            dtype=np.dtype(cfg["dtype"]),
        )

    def __repr__(self) -> str:
        segs = ", ".join(f"{s.name}:{s.size}:{s.reconstruction.name}" for s in self.segments)
        return (
            f"GSN(visible=[{segs}], hidden={self.hidden}, activation={self.activation!r}, "
            f"input_noise={self.input_noise!r}, hidden_noise={self.hidden_noise!r}, "
            f"tied={self.tied}, walkbacks={self.walkbacks}, dtype={self.dtype.name})"
        )
