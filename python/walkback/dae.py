"""The denoising autoencoder used as a generative model (Bengio et al. 2013, "Generalized
Denoising Auto-Encoders as Generative Models"): its Markov chain alternates corruption,
encoding, decoding and sampling, and its stationary distribution estimates the data's."""

from __future__ import annotations

import numpy as np

from . import _backend, _checks, _gpu, _model, ops
from ._model import ChainModel
from ._sampling import run_chain_chunks
from .noise import SaltAndPepper, as_corruption, corruption_from_config
from .reconstruction import as_reconstruction, reconstruction_from_config

_DEFAULT_CORRUPTION = SaltAndPepper(0.3)  # immutable, so safe as a default


class DAE(ChainModel):
    """A one-hidden-layer denoising autoencoder and its sampling chain.

    Args:
        visible: D, the number of visible units.
        hidden: H, the number of hidden units.
        activation: 'sigmoid' (default), 'tanh', 'relu', 'leaky_relu' (slope 0.05 below 0)
            or 'identity'.
        corruption: the input corruption C(x~ | x); default SaltAndPepper(0.3). None: none.
        reconstruction: 'bernoulli' (default), 'gaussian' or walkback.Gaussian(sigma).
        tied: decoder weights W1^T (default) or a separate U1 (H, D).
        seed: seeds the initial weights and the random streams of later calls.
        dtype: float32 (default) or float64.

    Parameters (``get_params``): W1 (D, H), b1 (H,), b0 (D,) and, when untied, U1 (H, D).
    Training (``fit``, ``loss_and_grad``, ``walkback_loss``) and files (``save``) are those of
    every chain model (walkback._model.ChainModel); walk-back defaults to k = 1 here.
    Weights start Glorot-uniform (Glorot & Bengio 2010: U(-r, r), r = sqrt(6 / (D + H))),
    biases at zero.
    """

    _default_walkbacks = 1
    _runs_on_gpu = True

    def __init__(
        self,
        visible,
        hidden,
        activation="sigmoid",
        corruption=_DEFAULT_CORRUPTION,
        reconstruction="bernoulli",
        tied=True,
        seed=0,
        dtype=np.float32,
    ):
        self.visible = _checks.check_int("visible", visible, 1, 2**31 - 1)
        self.hidden = _checks.check_int("hidden", hidden, 1, 2**31 - 1)
        _checks.check_activation(activation)
        self.activation = activation
        self.corruption = as_corruption(corruption)
        self.reconstruction = as_reconstruction(reconstruction)
        if not isinstance(tied, (bool, np.bool_)):
            raise TypeError(f"tied: expected True or False, got {tied!r}")
        self.tied = bool(tied)
        self.seed = _checks.check_seed("seed", seed)
        self.dtype = _checks.check_dtype(dtype)
        self._rng = np.random.default_rng(self.seed)
        self._params = {}
        if _model.loading():
            return
        d, h = self.visible, self.hidden
        r = np.sqrt(6.0 / (d + h))
        self._params = {
            "W1": self._rng.uniform(-r, r, size=(d, h)).astype(self.dtype),
            "b1": np.zeros(h, self.dtype),
            "b0": np.zeros(d, self.dtype),
        }
        if not self.tied:
            self._params["U1"] = self._rng.uniform(-r, r, size=(h, d)).astype(self.dtype)

    # ------------------------------------------------------------------ parameters
    def param_shapes(self) -> dict:
        shapes = {"W1": (self.visible, self.hidden), "b1": (self.hidden,), "b0": (self.visible,)}
        if not self.tied:
            shapes["U1"] = (self.hidden, self.visible)
        return shapes

    # ------------------------------------------------------------------ sampling
    def _start_state(self, x0, seed, first_chain=0):
        x = _checks.as_state("x0", x0, self.dtype, self.visible)
        if self.reconstruction.name == "bernoulli":
            _checks.check_binary("x0", x)
        return x

    def _clamp_mask(self, clamp, n):
        return None if clamp is None else _checks.as_clamp(clamp, n, self.visible)

    def _initial_state(self, n: int, seed: int, first_chain: int = 0) -> np.ndarray:
        kw = dict(seed=seed, stream="init", first_chain=first_chain)
        if self.reconstruction.name == "bernoulli":
            return (ops.uniform(n, self.visible, **kw) < 0.5).astype(self.dtype)
        return ops.normal(n, self.visible, **kw).astype(self.dtype)

    def _kernel_kwargs(self) -> dict:
        p = self._params
        return dict(
            W1=p["W1"],
            b1=p["b1"],
            b0=p["b0"],
            U1=p.get("U1"),
            activation=_checks.check_activation(self.activation),
            reconstruction=self.reconstruction.code,
            sigma=self.reconstruction.sigma,
            corruption=self.corruption.code,
            corruption_param=self.corruption.param,
        )

    def _run_chain(self, x, clamp, steps, burn_in, every, seed, means, progress, first_chain=0):
        kw = self._kernel_kwargs()

        def call(first_step, count, every_, records, final_means):
            run = dict(
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
            )
            if self.device == "cuda":
                _gpu.dae_chain(x, kw, **run)
            else:
                _backend.cpu().dae_chain(x, **kw, **run)

        return run_chain_chunks(call, x, self.dtype, steps, burn_in, every, means, progress)

    # ------------------------------------------------------------------ training
    def _check_data(self, name, x) -> np.ndarray:
        a = _checks.as_state(name, x, self.dtype, self.visible)
        if self.reconstruction.name == "bernoulli" and (float(a.min()) < 0 or float(a.max()) > 1):
            raise ValueError(
                f"{name}: a Bernoulli model needs data in [0, 1] (binary, or grey levels used "
                "as Bernoulli means)"
            )
        return a

    def _walkback_call(self, x, walkbacks, seed, first_chain, reconstruct, grads, wait=True):
        """The loss (and gradients into ``grads``); on the GPU with ``wait=False`` a 0-d CuPy
        array the GPU fills later (NaN for bad data), so nothing waits."""
        run = dict(
            seed=seed,
            first_chain=first_chain,
            walkbacks=walkbacks,
            last_only=reconstruct == "last",
        )
        if self.device == "cuda":
            return _gpu.dae_walkback(x, self._kernel_kwargs(), grads=grads, wait=wait, **run)
        g = {} if grads is None else {f"g{k}": v for k, v in grads.items()}
        return _backend.cpu().dae_walkback(x, **self._kernel_kwargs(), **run, **g)

    # ------------------------------------------------------------------ files
    def to_config(self) -> dict:
        return {
            "visible": self.visible,
            "hidden": self.hidden,
            "activation": self.activation,
            "corruption": self.corruption.to_config(),
            "reconstruction": self.reconstruction.to_config(),
            "tied": self.tied,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }

    @classmethod
    def from_config(cls, cfg: dict) -> DAE:
        return cls(
            visible=cfg["visible"],
            hidden=cfg["hidden"],
            activation=cfg["activation"],
            corruption=corruption_from_config(cfg["corruption"]),
            reconstruction=reconstruction_from_config(cfg["reconstruction"]),
            tied=cfg["tied"],
            seed=cfg["seed"],
            dtype=np.dtype(cfg["dtype"]),
        )

    def __repr__(self) -> str:
        return (
            f"DAE(visible={self.visible}, hidden={self.hidden}, activation={self.activation!r}, "
            f"corruption={self.corruption!r}, reconstruction={self.reconstruction!r}, "
            f"tied={self.tied}, seed={self.seed}, dtype={self.dtype.name})"
        )
