"""The convolutional discriminant GSN for sequences (Zhou & Troyanskaya 2014, "Deep Supervised
and Convolutional Generative Stochastic Network for Protein Secondary Structure Prediction";
the book's section 20.12.1): a Markov chain over the label sequence and two convolutional
hidden layers, conditioned on the clamped input sequence."""

from __future__ import annotations

import numpy as np

from . import _backend, _checks, _model
from . import training as _training
from ._model import ParamModel
from ._progress import progress_bar
from .optim import Adam, as_optimizer

# Walk-back steps per training sequence, in the constructor and in loss_and_grad: the chain
# keeps every step's activations for the backward pass, so this bounds its memory.
MAX_WALKBACKS = 1000


class SequenceGSN(ParamModel):
    """A 1-D convolutional discriminant GSN: per-position class probabilities for sequences.

    One chain step (csrc/walkback/sequence_gsn.h has the equations):

    - layer 1 convolves, along the sequence, the input channels x together with the current
      label sequence Y, corrupted by salt-and-pepper on its one-hot units; its tanh units get
      Gaussian noise before and after (``noise``), and a top-down input from layer 2 (the
      transposed convolution of the previous step's h2, un-pooled);
    - mean pooling over ``pool`` positions, then layer 2, a second noisy tanh convolution;
    - p(Y) = softmax of the transposed (tied) label rows of layer 1's convolution, per
      position; the next step's Y is drawn from it.

    Training (``fit``) is walk-back: the chain starts from the true labels and runs
    ``walkbacks`` steps; the loss is the labels' NLL at every step, summed over steps and
    averaged over positions, back-propagated through the hidden states (the label samples are
    constants); only the labels are modelled, x is always clamped. ``predict_proba`` averages
    p(Y) along the chain started from the uninformative labels (1/K at every position), never
    from the true ones.

    Sources: the two noisy tanh layers, noise 2 before and after, the tied transposed decoding,
    walk-back 12 steps, width 5 and pooling 5 follow the issue's reading of the paper; the
    paper does not publish every size. Ours: 128 channels per layer, mean pooling with its
    adjoint as un-pooling, salt-and-pepper 0.2 on the labels, the Glorot initialisation,
    training chains started from the true labels, and the loss averaged per position.

    Args:
        in_channels: channels of x per position.
        classes: K, the number of labels.
        channels: (C1, C2), the channels of the two hidden layers.
        width: taps of both convolutions (odd; "same" padding).
        pool: positions per pooling window.
        walkbacks: chain steps per training sequence.
        noise: standard deviation of the hidden noise, before and after tanh.
        corruption: salt-and-pepper probability on the one-hot label units.

    Parameters (``get_params``): W1 (width * (in_channels + classes), C1), b1 (C1,),
    W2 (width * C1, C2), b2 (C2,), c (classes,). Data: x (N, L, in_channels), labels y (N, L)
    integers with -1 past each sequence's end (trailing padding only), or explicit lengths.
    """

    def __init__(
        self,
        in_channels,
        classes,
        channels=(128, 128),
        width=5,
        pool=5,
        walkbacks=12,
        noise=2.0,
        corruption=0.2,
        seed=0,
        dtype=np.float32,
    ):
        self.in_channels = _checks.check_int("in_channels", in_channels, 1, 2**31 - 1)
        self.classes = _checks.check_int("classes", classes, 2, 2**31 - 1)
        self.channels = _checks.check_widths("channels", channels, 2)
        self.width = _checks.check_int("width", width, 1, 2**31 - 1)
        if self.width % 2 == 0:
            raise ValueError(f"width: expected an odd number of taps, got {width}")
        self.pool = _checks.check_int("pool", pool, 1, 2**31 - 1)
        self.walkbacks = _checks.check_int("walkbacks", walkbacks, 1, MAX_WALKBACKS)
        self.noise = _checks.check_float("noise", noise)
        if not (self.noise >= 0 and np.isfinite(self.noise)):
            raise ValueError(f"noise: expected a finite number >= 0, got {noise}")
        self.corruption = _checks.check_float("corruption", corruption)
        if not 0 <= self.corruption <= 1:
            raise ValueError(f"corruption: expected a probability, got {corruption}")
        self.seed = _checks.check_seed("seed", seed)
        self.dtype = _checks.check_dtype(dtype)
        self._rng = np.random.default_rng(self.seed)
        self._params = {} if _model.loading() else self._glorot_params()

    def param_shapes(self) -> dict:
        c1, c2 = self.channels
        return {
            "W1": (self.width * (self.in_channels + self.classes), c1),
            "b1": (c1,),
            "W2": (self.width * c1, c2),
            "b2": (c2,),
            "c": (self.classes,),
        }

    # ------------------------------------------------------------------ data
    def _x(self, x) -> np.ndarray:
        if _backend.is_gpu_array(x):
            raise NotImplementedError("SequenceGSN runs on the CPU only in this version")
        a = _checks.as_numeric("x", x)
        if a.ndim != 3 or a.shape[2] != self.in_channels:
            raise ValueError(f"x: expected shape (N, L, {self.in_channels}), got {a.shape}")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"x: expected at least one sequence and one position, got {a.shape}")
        a = np.ascontiguousarray(a, dtype=self.dtype)
        if not np.all(np.isfinite(a)):
            raise ValueError("x: contains NaN or infinite values")
        return a

    def _lengths(self, x, y=None, lengths=None) -> np.ndarray:
        n, length = x.shape[:2]
        if lengths is None:
            if y is None:
                return np.full(n, length, np.int32)
            lens = (y >= 0).sum(axis=1)
            if np.any((y >= 0) != (np.arange(length)[None, :] < lens[:, None])):
                raise ValueError("y: padding (-1) must come after each sequence's labels")
            if lens.min() < 1:
                raise ValueError("y: every sequence needs at least one label (one is all -1)")
            return lens.astype(np.int32)
        lens = np.asarray(lengths)
        if lens.shape != (n,) or lens.dtype.kind not in "iu":
            raise ValueError(f"lengths: expected ({n},) integers, got {lens.shape} {lens.dtype}")
        if lens.min() < 1 or lens.max() > length:
            raise ValueError(f"lengths: expected values in [1, {length}]")
        if y is not None and np.any((y < 0) & (np.arange(length)[None, :] < lens[:, None])):
            raise ValueError("y: a label within a sequence's length is -1 (padding); check lengths")
        return np.ascontiguousarray(lens, dtype=np.int32)

    def _y(self, y, x) -> np.ndarray:
        a = np.asarray(y)
        if a.shape != x.shape[:2]:
            raise ValueError(
                f"y: expected shape {x.shape[:2]} (that of x's positions), got {a.shape}"
            )
        if a.dtype.kind not in "iu":
            raise TypeError(f"y: expected integer labels, got dtype {a.dtype}")
        if a.max() >= self.classes or a.min() < -1:
            raise ValueError(f"y: expected labels in [0, {self.classes}) and -1 for padding")
        return np.ascontiguousarray(a, dtype=np.int32)

    def _kw(self, steps, seed, noise, first_chain=0) -> dict:
        c1, c2 = self.channels
        return dict(
            self._params,
            in_channels=self.in_channels,
            classes=self.classes,
            c1=c1,
            c2=c2,
            width=self.width,
            pool=self.pool,
            noise_pre=self.noise,
            noise_post=self.noise,
            corruption=self.corruption,
            steps=int(steps),
            seed=int(seed),
            first_chain=int(first_chain),
            noise=bool(noise),
        )

    # ------------------------------------------------------------------ training
    def _loss(self, x, y, lens, walkbacks, seed, first_chain, grads):
        kw = self._kw(walkbacks, seed, True, first_chain)
        return _backend.cpu().seq_gsn_walkback(x, y, lens, kw, grads)

    def loss_and_grad(self, x, y, lengths=None, walkbacks=None, seed=None):
        """The walk-back loss of a batch (NLL of the labels summed over the chain's steps, mean
        per valid position) and its gradients, named like get_params()."""
        x = self._x(x)
        y = self._y(y, x)
        lens = self._lengths(x, y, lengths)
        k = (
            self.walkbacks
            if walkbacks is None
            else _checks.check_int("walkbacks", walkbacks, 1, MAX_WALKBACKS)
        )
        grads = {k_: np.empty_like(v) for k_, v in self._params.items()}
        loss = self._loss(x, y, lens, k, self._seed(seed), 0, grads)
        return loss, grads

    def fit(
        self,
        x,
        y,
        lengths=None,
        epochs=10,
        batch_size=32,
        optimizer=None,
        validation=None,
        progress=True,
        seed=None,
    ):
        """Walk-back training with minibatches of sequences; returns a History (losses: each
        batch's mean per position, averaged over sequences). Default optimizer: Adam(1e-3).
        ``validation``: (x, y) or (x, y, lengths), scored by the walk-back loss after each
        epoch."""
        x = self._x(x)
        y = self._y(y, x)
        lens = self._lengths(x, y, lengths)
        if validation is not None:
            if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
                raise ValueError("validation: expected (x, y) or (x, y, lengths)")
            vx = self._x(validation[0])
            vy = self._y(validation[1], vx)
            vl = self._lengths(vx, vy, validation[2] if len(validation) > 2 else None)
        k = self.walkbacks

        def batch_loss(rows, s, grads):
            idx = rows[:, 0].astype(np.int64)
            return self._loss(x[idx], y[idx], lens[idx], k, s, 0, grads)

        def valid_loss(rows, s):
            # Weighted by sequences, as the training loss of the History is.
            total = 0.0
            for b in range(0, len(vx), 64):
                sl = slice(b, b + 64)
                total += self._loss(vx[sl], vy[sl], vl[sl], k, s, b, None) * len(vx[sl])
            return total / len(vx)

        # The shared fit loop batches rows of an array: here, the indices of the sequences.
        index = np.arange(len(x), dtype=np.int64)[:, None]
        return _training.fit(
            self,
            index,
            batch_loss=batch_loss,
            valid_loss=valid_loss,
            epochs=epochs,
            batch_size=batch_size,
            optimizer=as_optimizer(optimizer, Adam(1e-3)),
            xv=None if validation is None else index[:1],
            progress=progress,
            seed=seed,
        )

    # ------------------------------------------------------------------ prediction
    def predict_proba(
        self, x, lengths=None, steps=None, burn_in=None, seed=None, batch_size=64, progress=False
    ):
        """p(label | x) per position, (N, L, classes), averaged along the chain started from the
        uninformative labels: ``steps`` steps (default 2 * walkbacks), the first ``burn_in``
        (default walkbacks // 2, at most steps - 1) not counted. Zero past each sequence's
        length."""
        x = self._x(x)
        lens = self._lengths(x, None, lengths)
        steps = (
            2 * self.walkbacks if steps is None else _checks.check_int("steps", steps, 1, 2**31 - 1)
        )
        if burn_in is None:
            burn = min(self.walkbacks // 2, steps - 1)
        else:
            burn = _checks.check_int("burn_in", burn_in, 0)
        if burn >= steps:
            raise ValueError(f"burn_in: expected fewer than steps ({steps}), got {burn}")
        return self._proba(x, lens, steps, burn, self._seed(seed), True, batch_size, progress)

    def single_pass_proba(self, x, lengths=None, batch_size=64):
        """The same network run once, without the chain or any noise, from the uninformative
        labels: the baseline the chain is measured against."""
        x = self._x(x)
        lens = self._lengths(x, None, lengths)
        return self._proba(x, lens, 1, 0, 0, False, batch_size, False)

    def _proba(self, x, lens, steps, burn, seed, noise, batch_size, progress):
        batch_size = _checks.check_int("batch_size", batch_size, 1, 2**31 - 1)
        out = np.zeros((*x.shape[:2], self.classes), self.dtype)
        bar = progress_bar((len(x) + batch_size - 1) // batch_size, progress, "predict", "batch")
        try:
            for b in range(0, len(x), batch_size):
                sl = slice(b, b + batch_size)
                kw = self._kw(steps, seed, noise, b)
                _backend.cpu().seq_gsn_predict(x[sl], lens[sl], kw, burn, out[sl])
                bar.update(1)
        finally:
            bar.close()
        return out

    def predict(self, x, lengths=None, **kw):
        """The most probable label per position (argmax of predict_proba), -1 past the end."""
        x = self._x(x)
        lens = self._lengths(x, None, lengths)
        p = self.predict_proba(x, lens, **kw)
        out = p.argmax(axis=2).astype(np.int64)
        out[np.arange(x.shape[1])[None, :] >= lens[:, None]] = -1
        return out

    # ------------------------------------------------------------------ files
    def to_config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "classes": self.classes,
            "channels": list(self.channels),
            "width": self.width,
            "pool": self.pool,
            "walkbacks": self.walkbacks,
            "noise": self.noise,
            "corruption": self.corruption,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }

    def __repr__(self) -> str:
        return (
            f"SequenceGSN(in_channels={self.in_channels}, classes={self.classes}, "
            f"channels={self.channels}, width={self.width}, pool={self.pool}, "
            f"walkbacks={self.walkbacks}, noise={self.noise}, corruption={self.corruption})"
        )
