"""Diffusion inversion (Sohl-Dickstein, Weiss, Maheswaranathan & Ganguli 2015, "Deep
Unsupervised Learning using Nonequilibrium Thermodynamics"; the book's section 20.13): a
forward chain slowly destroys the data's structure, and a network learns to undo one step of
it. The model is the last state of the reverse chain, and it has a tractable lower bound K on
the log-likelihood. The reference for details the paper leaves open is the authors' code
(github Sohl-Dickstein/Diffusion-Probabilistic-Models, model.py and regression.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _backend, _checks, _model, ops
from . import training as _training
from ._model import ParamModel
from ._progress import progress_bar
from .diffusion_schedule import (
    alphabar,
    binomial_betas,
    gaussian_betas,
    gaussian_betas_grad_to_coeffs,
    schedule_beta_grad,
    temporal_basis,
)
from .optim import RMSprop, as_optimizer

_KINDS = {"gaussian": 0, "binomial": 1}
# The temporal basis is a (steps, basis) float64 table: 1e8 values is 800 MB.
MAX_BASIS_VALUES = 10**8
_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class BoundResult:
    """The lower bound K on log p(x), per example, estimated by Monte Carlo.

    nats: K in nats per example, in the data's own units (the data scaling's Jacobian
        included). nats_se: its standard error over the examples (and draws).
    bits_per_dim: -K / (D log 2), an upper bound on the negative log-likelihood per unit.
    null_nats: L_null, the log-likelihood under the chain's end distribution pi (N(0, I) in
        the scaled units, or Bernoulli(0.5)), in the same units.
    improvement_nats, improvement_bits: K - L_null per example (the paper's Table 1, right
        column); exactly 0 in expectation for the "null" reverse model (network outputs 0).
    """

    nats: float
    nats_se: float
    bits_per_dim: float
    null_nats: float
    improvement_nats: float
    improvement_bits: float

    @property
    def bits(self) -> float:
        """K in bits per example."""
        return self.nats / _LOG2

    def __str__(self):
        return (
            f"K = {self.nats:.3f} +- {self.nats_se:.3f} nats ({self.bits:.3f} bits) per example,"
            f" {self.bits_per_dim:.4f} bits/dim; K - L_null = {self.improvement_bits:.3f} bits"
        )


class Diffusion(ParamModel):
    """A diffusion probabilistic model: T forward steps and a learned reverse chain.

    Forward process (fixed): Gaussian, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
    ending near N(0, I), with the original code's schedule (diffusion_schedule.gaussian_betas);
    binomial (binary data), q(x_t | x_{t-1}) = Bernoulli(x_{t-1} (1 - beta_t) + beta_t / 2),
    beta_t = 1 / (T - t + 1), ending at Bernoulli(0.5).

    Reverse model: one network serves every t. A stack of dense leaky-ReLU layers (slope 0.05,
    as the original; our ``hidden`` is the paper's dense pathway, without its convolutional
    one) reads x_t; a linear readout gives J coefficients per unit for the mean and J for the
    variance (Gaussian) or J for the logit (binomial), mixed by J Gaussian bumps over t
    (``temporal_basis``). Gaussian, as the code: mu = x_t sqrt(1 - beta_t) + z_mu sqrt(beta_t),
    Sigma = sigmoid(z_Sigma / sqrt(T) + logit beta_t). Binomial (ours; the paper gives only "a
    Bernoulli rate"): rate = sigmoid(z + logit(x_t (1 - beta_t) + beta_t / 2)). In both, zero
    coefficients give the exact reversal of the forward chain at equilibrium (the null model).

    Data: Gaussian data are scaled by one global scale and shift to mean 0 and variance 1 (the
    original's scl and shft; set by the first ``fit``, or ``set_scaling``) and dequantized with
    uniform noise of width ``dequantize`` added after scaling. Binomial data must be binary.
    The chain's last step p(x_0 | x_1) is the bound's (the forward step reversed at
    equilibrium, zero coefficients), as eq. 14 assumes; training draws t from 2..T.

    Args:
        visible: D, the number of units.
        steps: T, the number of diffusion steps (>= 3).
        kind: 'gaussian' (default) or 'binomial'.
        hidden: the widths of the dense layers, an int (one layer) or a sequence; default 500.
        basis: J, the number of temporal basis functions (default 10).
        step1_beta: the added noise of the first Gaussian step (the original's 1e-3): the
            smallest variance of the reverse chain.
        dequantize: width of the uniform noise added to scaled Gaussian data, in the scaled
            units (default 1/255, as the issue that specified this model asks; the original's
            train.py uses (1/255) / scl). Neither is the quantization step of 8-bit data in
            [0, 1] (scl / 255 scaled), so the bound is on a continuous density, not a
            discrete likelihood of 8-bit images.
        schedule: 'fixed' (default) or 'learned' (Gaussian kind; the paper's section 2.4.1,
            the original code's parametrisation: a perturbation of the fixed schedule's logits
            by J coefficients over the temporal basis, parameter ``beta_coeffs``, trained with
            the rest by gradient descent on -K).
        seed: seeds the initial weights and the random streams of later calls.
        dtype: float32 (default) or float64.

    Parameters (``get_params``): W1 (D, H1), b1, ..., WL, bL and the readout Wout (HL, J*D*K),
    bout (J*D*K,), columns ordered (j, unit, k) with k = 0 the mean (or logit), 1 the variance.
    Hidden weights start Glorot-uniform (the original: orthogonal), the readout at zero, so an
    untrained model is the null model; biases at zero.
    """

    def __init__(
        self,
        visible,
        steps=1000,
        kind="gaussian",
        hidden=500,
        basis=10,
        step1_beta=1e-3,
        dequantize=1 / 255,
        schedule="fixed",
        seed=0,
        dtype=np.float32,
    ):
        self.visible = _checks.check_int("visible", visible, 1, 2**31 - 1)
        self.steps = _checks.check_int("steps", steps, 3, 10**7)
        if not isinstance(kind, str) or kind not in _KINDS:
            raise ValueError(f"kind: expected 'gaussian' or 'binomial', got {kind!r}")
        self.kind = kind
        self.hidden = _checks.check_widths("hidden", hidden)
        self.basis = _checks.check_int("basis", basis, 1, 1000)
        if self.steps * self.basis > MAX_BASIS_VALUES:
            raise ValueError(
                f"steps * basis: the temporal basis would hold {self.steps * self.basis} values; "
                f"expected at most {MAX_BASIS_VALUES}"
            )
        self.step1_beta = _checks.check_float("step1_beta", step1_beta)
        if not 0 <= self.step1_beta < 0.5:
            raise ValueError(f"step1_beta: expected a value in [0, 0.5), got {step1_beta}")
        self.dequantize = _checks.check_float("dequantize", dequantize)
        if not (math.isfinite(self.dequantize) and self.dequantize >= 0):
            raise ValueError(f"dequantize: expected a width >= 0, got {dequantize}")
        if not isinstance(schedule, str) or schedule not in ("fixed", "learned"):
            raise ValueError(f"schedule: expected 'fixed' or 'learned', got {schedule!r}")
        if schedule == "learned" and kind != "gaussian":
            raise ValueError("schedule: the binomial schedule is fixed (beta_t = 1 / (T - t + 1))")
        self.schedule = schedule
        self.seed = _checks.check_seed("seed", seed)
        self.dtype = _checks.check_dtype(dtype)
        self.scale = 1.0 if kind == "binomial" else None
        self.shift = 0.0 if kind == "binomial" else None
        # Both (steps)-long tables are made on first use: a model built by load to check a
        # file's tensors against its configuration allocates neither.
        self._basis_table = None
        self._betas_table = None
        self._rng = np.random.default_rng(self.seed)
        self._params = {}
        if _model.loading():
            return
        for name, shape in self.param_shapes().items():
            if name.startswith("W") and name != "Wout":
                r = math.sqrt(6.0 / (shape[0] + shape[1]))
                self._params[name] = self._rng.uniform(-r, r, size=shape).astype(self.dtype)
            else:
                self._params[name] = np.zeros(shape, self.dtype)

    # ------------------------------------------------------------------ parameters
    @property
    def temporal_basis(self) -> np.ndarray:
        """The (steps, basis) temporal basis functions (float64), rows summing to 1."""
        if self._basis_table is None:
            self._basis_table = temporal_basis(self.steps, self.basis)
        return self._basis_table

    @property
    def _fixed_betas(self) -> np.ndarray:
        if self._betas_table is None:
            self._betas_table = (
                gaussian_betas(self.steps, self.step1_beta)
                if self.kind == "gaussian"
                else binomial_betas(self.steps)
            )
        return self._betas_table

    @property
    def _k(self) -> int:
        return 2 if self.kind == "gaussian" else 1

    @property
    def betas(self) -> np.ndarray:
        """beta_t for t = 1..T (float64), learned ones included."""
        if self.schedule == "fixed":
            return self._fixed_betas
        perturb = self.temporal_basis @ self._params["beta_coeffs"].astype(np.float64)
        return gaussian_betas(self.steps, self.step1_beta, perturb)

    @property
    def alphabar(self) -> np.ndarray:
        """prod_{s <= t} (1 - beta_s) for t = 1..T."""
        return alphabar(self.betas)

    def param_shapes(self) -> dict:
        shapes, width = {}, self.visible
        for i, h in enumerate(self.hidden, 1):
            shapes[f"W{i}"] = (width, h)
            shapes[f"b{i}"] = (h,)
            width = h
        cols = self.visible * self._k * self.basis
        shapes["Wout"] = (width, cols)
        shapes["bout"] = (cols,)
        if self.schedule == "learned":
            shapes["beta_coeffs"] = (self.basis,)
        return shapes

    def set_scaling(self, scale, shift):
        """Sets the Gaussian model's data scaling: the model sees x * scale + shift."""
        if self.kind != "gaussian":
            raise ValueError("set_scaling: only a Gaussian diffusion scales its data")
        scale, shift = _checks.check_float("scale", scale), _checks.check_float("shift", shift)
        if not (math.isfinite(scale) and scale > 0 and math.isfinite(shift)):
            raise ValueError(
                f"set_scaling: expected a positive scale and a finite shift, got {scale}, {shift}"
            )
        self.scale, self.shift = scale, shift
        return self

    def _need_scaling(self, what):
        if self.scale is None:
            raise ValueError(
                f"{what}: the data scaling is not set yet; fit the model first or call "
                "set_scaling(scale, shift)"
            )

    def _to_model(self, x):
        return (x * self.scale + self.shift).astype(self.dtype, copy=False)

    def _from_model(self, x):
        return ((x - self.shift) / self.scale).astype(self.dtype, copy=False)

    def _state(self, name, x) -> np.ndarray:
        if _backend.is_gpu_array(x):
            raise NotImplementedError("Diffusion runs on the CPU only in this version")
        return _checks.as_state(name, x, self.dtype, self.visible)

    def _check_data(self, name, x) -> np.ndarray:
        x = self._state(name, x)
        if self.kind == "binomial":
            _checks.check_binary(name, x)
        return x

    def _net(self) -> dict:
        p, n = self._params, len(self.hidden)
        betas = self.betas
        return dict(
            kind=_KINDS[self.kind],
            W=[p[f"W{i}"] for i in range(1, n + 1)],
            b=[p[f"b{i}"] for i in range(1, n + 1)],
            Wout=p["Wout"],
            bout=p["bout"],
            beta=betas,
            alphabar=alphabar(betas),
            basis=self.temporal_basis,
            dequantize=self.dequantize,
        )

    # ------------------------------------------------------------------ the bound
    def _bound_call(self, xs, seed, first_chain=0, t=None, rows=None, grads=None):
        """-K per row of xs (already in model units), its mean returned."""
        if t is not None:
            t = np.ascontiguousarray(t, dtype=np.int32)
        net = self._net()
        sched = None
        if grads is not None and self.schedule == "learned":
            n = xs.shape[0]
            sched = (np.empty(n), np.empty(n), np.empty(n, np.int32))
        loss = _backend.cpu().diffusion_bound(xs, t, seed, first_chain, rows, grads, sched, **net)
        if sched is not None:
            g_b = schedule_beta_grad(net["beta"], self.visible, *sched)
            coeffs = self._params["beta_coeffs"].astype(np.float64)
            g_c = gaussian_betas_grad_to_coeffs(
                self.steps, self.step1_beta, self.temporal_basis, coeffs, g_b
            )
            grads["beta_coeffs"][...] = g_c
        return loss

    def loss_and_grad(self, x, seed=None, t=None):
        """The training loss of a batch, the Monte Carlo estimate of -K averaged over the rows
        (nats per example, in the model's scaled units), and its gradients.

        Each row draws its own t uniformly from {2, ..., T} (the original drew one t per
        minibatch; one per example gives the same expectation with a lower-variance gradient,
        at the cost of reading all J coefficients for each row), then x_t ~ q(x_t | x_0), and
        adds (T - 1) KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) over units to the entropy
        terms -H_q(X_T | X_0) + H_q(X_1 | X_0) + H_p(X_T). (The original code weighs the KL
        by T.) ``t`` (an int array of shape (n,), values in [2, T]) fixes the rows' steps.

        Returns:
            (loss, grads): a float, and a dict of arrays named and shaped like get_params().
        """
        self._need_scaling("loss_and_grad")
        x = self._to_model(self._check_data("x", x))
        t = self._check_t(t, x.shape[0])
        grads = {k: np.empty_like(v) for k, v in self._params.items()}
        loss = self._bound_call(x, self._seed(seed), t=t, grads=grads)
        return loss, grads

    def _check_t(self, t, n):
        if t is None:
            return None
        a = np.asarray(t)
        if a.dtype.kind not in "iu" or a.shape != (n,):
            raise ValueError(f"t: expected an integer array of shape ({n},)")
        if a.min() < 2 or a.max() > self.steps:
            raise ValueError(f"t: time steps must lie in [2, {self.steps}]")
        return a.astype(np.int32)

    def _null_log_likelihood(self, xs) -> np.ndarray:
        """log pi(x_0) per row in model units; for the Gaussian kind averaged over the
        dequantization noise (E[-(x + u)^2 / 2] = -x^2 / 2 - w^2 / 24 per unit)."""
        d = self.visible
        if self.kind == "binomial":
            return np.full(xs.shape[0], -d * _LOG2)
        sq = np.einsum("ij,ij->i", xs, xs, dtype=np.float64)
        return -0.5 * d * math.log(2 * math.pi) - 0.5 * sq - d * self.dequantize**2 / 24.0

    def log_likelihood_bound(
        self, x, t="sample", repeats=1, seed=None, batch_size=1024, progress=False
    ) -> BoundResult:
        """The lower bound K on log p(x), the paper's eq. 14, averaged over the rows of x.

        Args:
            x: (n, D) data in the data's units.
            t: 'sample' draws ``repeats`` steps per row, stratified (draw k of a row falls in
                the k-th of ``repeats`` equal parts of 2..T, uniformly within it: unbiased, with
                less variance than independent draws); 'all' sums the KL over every
                t = 2..T for each row (T - 1 network passes a row; the exact sum over t, Monte
                Carlo only in x_t).
            repeats: draws per row (t='sample').
            seed: the random stream; None draws one.
            batch_size: rows per kernel call.
        Returns:
            A BoundResult (nats, bits per dimension, and K - L_null).
        """
        self._need_scaling("log_likelihood_bound")
        x = self._check_data("x", x)
        if not isinstance(t, str) or t not in ("sample", "all"):
            raise ValueError(f"t: expected 'sample' or 'all', got {t!r}")
        repeats = _checks.check_int("repeats", repeats, 1, 10**6)
        batch_size = _checks.check_int("batch_size", batch_size, 1, 2**31 - 1)
        seed = self._seed(seed)
        xs = self._to_model(x)
        n = xs.shape[0]
        per_row = np.zeros(n)
        if t == "all":
            ts = np.arange(2, self.steps + 1, dtype=np.int32)
            draws = len(ts)
        else:
            draws = repeats
            # draw k of row i: t in stratum k of the T - 1 steps 2..T
            u = np.random.default_rng(seed).random((draws, n))
            ts = 2 + np.floor((np.arange(draws)[:, None] + u) / draws * (self.steps - 1))
            ts = np.minimum(ts, self.steps).astype(np.int32).reshape(-1)
        total = n * draws
        if total >= 2**32:
            raise ValueError("log_likelihood_bound: rows times draws must stay below 2**32")
        bar = progress_bar(total, progress, "bound", "row")
        # Row i of x, draw k, is chain k * n + i of the stream.
        flat_rows = np.arange(total) % n
        try:
            for b in range(0, total, batch_size):
                idx = flat_rows[b : b + batch_size]
                pos = np.arange(b, b + len(idx))
                tb = ts[pos // n] if t == "all" else ts[pos]
                out = np.empty(len(idx))
                self._bound_call(np.ascontiguousarray(xs[idx]), seed, b, t=tb, rows=out)
                np.add.at(per_row, idx, out)
                bar.update(len(idx))
        finally:
            bar.close()
        neg_k = per_row / draws  # -K per row, model units
        jac = self.visible * math.log(self.scale)
        k_rows = -neg_k + jac
        null_rows = self._null_log_likelihood(xs) + jac
        k = float(k_rows.mean())
        se = float(k_rows.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        null = float(null_rows.mean())
        return BoundResult(
            nats=k,
            nats_se=se,
            bits_per_dim=-k / (self.visible * _LOG2),
            null_nats=null,
            improvement_nats=k - null,
            improvement_bits=(k - null) / _LOG2,
        )

    # ------------------------------------------------------------------ training
    def _mean_loss(self, xs, seed, batch_size=4096):
        """The loss (the -K estimate, model units) of rows already scaled, in batches; row i
        is chain i of the stream whatever the batch."""
        total = 0.0
        for b in range(0, xs.shape[0], batch_size):
            xb = xs[b : b + batch_size]
            total += self._bound_call(xb, seed, first_chain=b) * len(xb)
        return total / xs.shape[0]

    def fit(
        self,
        x,
        epochs=10,
        batch_size=512,
        optimizer=None,
        validation=None,
        shuffle=True,
        binarize=None,
        progress=True,
        seed=None,
    ):
        """Minimises the Monte Carlo estimate of -K (see loss_and_grad) with minibatches;
        returns a History (per epoch: the mean training loss, the validation loss, seconds).

        Args:
            x: (n, D) training data (binary for the binomial kind). A Gaussian model's first
                fit sets the data scaling from x (mean 0, variance 1 overall, one scale and one
                shift, as the original).
            optimizer: default RMSprop(lr=1e-3) with batches of 512, the original's;
                walkback.Adam(...) and SGD(...) work too.
            validation: optional data whose loss (same estimate, fixed draws) is reported.
            binarize: None, or "stochastic" (binomial kind, grey-level data in [0, 1]); grey
                validation data are then binarized once, by a fixed draw.
        Raises:
            TrainingDiverged naming the epoch and batch where the loss stopped being finite.
        """
        x = self._state("x", x)
        if self.kind == "binomial" and binarize is None:
            _checks.check_binary("x", x)
        if self.kind == "gaussian" and binarize is not None:
            raise ValueError("binarize: only the binomial kind takes binary data")
        first_scaling = self.kind == "gaussian" and self.scale is None
        if first_scaling:
            mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
            if not std > 0:
                raise ValueError("x: the training data have zero variance")
            self.set_scaling(1.0 / std, -mean / std)
        try:
            xs = self._to_model(x)
            xv = None
            if validation is not None and binarize == "stochastic":
                # Grey levels like x: binarized once (a fixed draw), so that the validation
                # loss compares between epochs.
                v = self._state("validation", validation)
                _training.check_binarize(binarize, v, None, "validation")
                xv = self._to_model(_training.stochastic_binarize(v, 0, 0, 0))
            elif validation is not None:
                xv = self._to_model(self._check_data("validation", validation))
            return _training.fit(
                self,
                xs,
                batch_loss=lambda xb, s, grads: self._bound_call(xb, s, grads=grads),
                valid_loss=self._mean_loss,
                epochs=epochs,
                batch_size=batch_size,
                optimizer=as_optimizer(optimizer, default=RMSprop(lr=1e-3)),
                xv=xv,
                shuffle=shuffle,
                binarize=binarize,
                progress=progress,
                seed=seed,
            )
        except (ValueError, TypeError):
            # A bad argument stops fit before any training: the model is left as it was, so
            # that a later fit sets the scaling from its own data.
            if first_scaling:
                self.scale = self.shift = None
            raise

    # ------------------------------------------------------------------ sampling
    def _start(self, n, seed, clamp, x0, first_chain=0):
        kw = dict(seed=seed, stream="init", first_chain=first_chain)
        if self.kind == "gaussian":
            x = ops.normal(n, self.visible, **kw).astype(self.dtype)
        else:
            u = ops.uniform(n, self.visible, **kw)
            x = (u < 0.5).astype(self.dtype)
        if clamp is None:
            if x0 is not None:
                raise ValueError("x0: give clamp= to say which units of x0 are known")
            return x, None, None, None
        if x0 is None:
            raise ValueError("clamp: clamped sampling needs x0 to give the known values")
        given = self._check_data("x0", x0)
        if given.shape[0] == 1 and n > 1:
            given = np.repeat(given, n, axis=0)
        if given.shape[0] != n:
            raise ValueError(f"x0: expected 1 or {n} rows, got {given.shape[0]}")
        known = self._to_model(given)
        mask = _checks.as_clamp(clamp, n, self.visible)
        mask = np.ascontiguousarray(np.broadcast_to(mask, (n, self.visible)))
        x = np.where(mask.astype(bool), known, x).astype(self.dtype)
        return x, mask, np.ascontiguousarray(known), given

    def _reverse(
        self, x, seed, every, progress, clamp=None, known=None, y=None, obs_var=0.0, first_chain=0
    ):
        net = self._net()
        records = []
        stops = list(range(self.steps, 0, -(every or self.steps)))
        bar = progress_bar(self.steps, progress, "reverse chain", "step")
        try:
            for hi in stops:
                lo = max(1, hi - (every or self.steps) + 1)
                # In chunks of at most 50 steps, so that the bar moves.
                for h in range(hi, lo - 1, -50):
                    l_ = max(lo, h - 49)
                    _backend.cpu().diffusion_reverse(
                        x, h, l_, seed, first_chain, clamp, known, y, obs_var, **net
                    )
                    bar.update(h - l_ + 1)
                if every:
                    records.append(self._from_model(x.copy()))
        finally:
            bar.close()
        return np.stack(records) if every else self._from_model(x)

    def sample(
        self, n=None, every=None, seed=None, clamp=None, x0=None, progress=False, first_chain=0
    ):
        """Runs ``n`` reverse chains from x_T ~ pi (N(0, I) or Bernoulli(0.5)) to x_0.

        Args:
            n: the number of chains (or the rows of x0).
            every: None returns x_0 (n, D); k returns the states after every k-th step,
                shape (ceil(T / k), n, D): record i is x_{T - (i + 1) k} (the last is x_0).
            clamp: inpainting (the paper's section 2.5): a bool mask (D,) or (n, D) of units
                known from ``x0`` (1 or n rows); they start x_T at their values and keep them
                at every step, the rest are sampled.
            seed: the random stream; None draws one.
            progress: show a progress bar over the T steps.
            first_chain: the random stream's index of the first chain (chain c draws chain
                first_chain + c's numbers), so a run split over calls draws what one call
                draws.
        Returns:
            Samples in the data's units (the scaling undone), the model's dtype.
        """
        self._need_scaling("sample")
        if n is None:
            if x0 is None:
                raise ValueError("sample: give n (the number of chains) or x0")
            n = np.atleast_2d(np.asarray(x0)).shape[0]
        n = _checks.check_int("n", n, 1, 2**31 - 1)
        if every is not None:
            every = _checks.check_int("every", every, 1, self.steps)
        seed = self._seed(seed)
        first_chain = _checks.check_first_chain(first_chain, n)
        x, mask, known, given = self._start(n, seed, clamp, x0, first_chain)
        out = self._reverse(
            x, seed, every, progress, clamp=mask, known=known, first_chain=first_chain
        )
        if mask is not None:
            # The known units exactly as given: the scaling's round trip (x s + t - t) / s
            # moves them in the last bits.
            np.copyto(out, given.astype(out.dtype, copy=False), where=mask.astype(bool))
        return out

    def denoise(self, y, noise_sigma, seed=None, every=None, progress=False, first_chain=0):
        """Samples p(x_0 | y) for a Gaussian observation y = x_0 + N(0, noise_sigma^2) (the
        paper's section 2.5): every reverse step's Gaussian is multiplied by the observation's,
        sigma' = (sigma^-2 + sigma_d^-2)^-1/2, mu' = sigma'^2 (mu / sigma^2 + y / sigma_d^2),
        in the model's scaled units. One chain per row of y; ``first_chain`` as in sample."""
        self._need_scaling("denoise")
        if self.kind != "gaussian":
            raise ValueError("denoise: a Gaussian observation needs the Gaussian kind")
        ys = self._state("y", y)
        sigma = _checks.check_float("noise_sigma", noise_sigma)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"noise_sigma: expected a positive number, got {noise_sigma}")
        if every is not None:
            every = _checks.check_int("every", every, 1, self.steps)
        seed = self._seed(seed)
        first_chain = _checks.check_first_chain(first_chain, ys.shape[0])
        x, _, _, _ = self._start(ys.shape[0], seed, None, None, first_chain)
        obs_var = (sigma * self.scale) ** 2
        return self._reverse(
            x,
            seed,
            every,
            progress,
            y=self._to_model(ys),
            obs_var=obs_var,
            first_chain=first_chain,
        )

    # ------------------------------------------------------------------ files
    def to_config(self) -> dict:
        return {
            "visible": self.visible,
            "steps": self.steps,
            "kind": self.kind,
            "hidden": list(self.hidden),
            "basis": self.basis,
            "step1_beta": self.step1_beta,
            "dequantize": self.dequantize,
            "schedule": self.schedule,
            "seed": self.seed,
            "dtype": self.dtype.name,
            "scale": self.scale,
            "shift": self.shift,
        }

    @classmethod
    def from_config(cls, cfg: dict) -> Diffusion:
        m = cls(
            cfg["visible"],
            steps=cfg["steps"],
            kind=cfg["kind"],
            hidden=tuple(cfg["hidden"]),
            basis=cfg["basis"],
            step1_beta=cfg["step1_beta"],
            dequantize=cfg["dequantize"],
            schedule=cfg.get("schedule", "fixed"),
            seed=cfg["seed"],
            dtype=np.dtype(cfg["dtype"]),
        )
        if cfg["kind"] == "gaussian" and cfg["scale"] is not None:
            m.set_scaling(cfg["scale"], cfg["shift"])
        return m

    def __repr__(self) -> str:
        return (
            f"Diffusion(visible={self.visible}, steps={self.steps}, kind={self.kind!r}, "
            f"hidden={self.hidden}, basis={self.basis})"
        )
