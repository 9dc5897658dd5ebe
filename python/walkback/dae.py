"""The denoising autoencoder used as a generative model (Bengio et al. 2013, "Generalized
Denoising Auto-Encoders as Generative Models"): its Markov chain alternates corruption,
encoding, decoding and sampling, and its stationary distribution estimates the data's."""

from __future__ import annotations

import numpy as np

from . import _backend, _checks, ops
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
        activation: 'sigmoid' (default), 'tanh', 'relu' or 'identity'.
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
        self.dtype = np.dtype(dtype)
        if self.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        self._rng = np.random.default_rng(self.seed)
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
    def sample(
        self,
        n=None,
        steps=1,
        x0=None,
        clamp=None,
        burn_in=0,
        every=None,
        seed=None,
        means=False,
        progress=False,
    ):
        """Runs ``n`` chains of the DAE's Markov chain at once.

        Each step corrupts the state (every unit, clamped ones too, so the encoder sees inputs
        like those it was trained on), encodes, decodes and samples the free units; clamped
        units keep the values they have in ``x0``.

        Args:
            n: the number of chains (or give ``x0``).
            steps: steps after burn-in (>= 1).
            x0: (n, D) or (D,) start states (binary for a Bernoulli model). Default: Bernoulli
                chains start from independent fair coin flips, Gaussian ones from N(0, 1).
            clamp: bool mask (D,) or (n, D) of units held at their ``x0`` values.
            burn_in: steps run and discarded before ``steps``.
            every: None returns the final state (n, D); k returns the state after every k-th
                step past burn-in, shape (steps // k, n, D).
            seed: the random stream's key; None draws one from the model's generator.
            means: return the mean of p(x | h) at the recorded steps instead of the samples.
            progress: show a progress bar (tqdm) over the steps.
        Returns:
            A NumPy array of the model's dtype.
        """
        d = self.visible
        steps = _checks.check_int("steps", steps, 1, 2**31 - 1)
        burn_in = _checks.check_int("burn_in", burn_in, 0, 2**31 - 1)
        if steps + burn_in >= 2**32:
            raise ValueError("steps + burn_in: the chain's step index must stay below 2**32")
        if every is not None:
            every = _checks.check_int("every", every, 1, steps)
        seed = self._seed(seed)
        if x0 is None:
            if n is None:
                raise ValueError("sample: give n (the number of chains) or x0 (start states)")
            n = _checks.check_int("n", n, 1, 2**31 - 1)
            if clamp is not None:
                raise ValueError("clamp: clamped sampling needs x0 to give the clamped values")
            x = self._initial_state(n, seed)
        else:
            x = _checks.as_state("x0", x0, self.dtype, d)
            if n is not None and _checks.check_int("n", n, 1) != x.shape[0]:
                raise ValueError(f"n: x0 has {x.shape[0]} rows but n = {n}")
            n = x.shape[0]
            if self.reconstruction.name == "bernoulli":
                _checks.check_binary("x0", x)
        cl = None if clamp is None else _checks.as_clamp(clamp, n, d)
        return self._run_chain(x, cl, steps, burn_in, every, seed, bool(means), bool(progress))

    def _initial_state(self, n: int, seed: int) -> np.ndarray:
        if self.reconstruction.name == "bernoulli":
            u = ops.uniform(n, self.visible, seed=seed, stream="init")
            return (u < 0.5).astype(self.dtype)
        return ops.normal(n, self.visible, seed=seed, stream="init").astype(self.dtype)

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

    def _run_chain(self, x, clamp, steps, burn_in, every, seed, means, progress):
        kw = self._kernel_kwargs()

        def call(first_step, count, every_, records, final_means):
            _backend.cpu().dae_chain(
                x,
                **kw,
                seed=seed,
                first_step=first_step,
                first_chain=0,
                steps=count,
                burn_in=0,
                every=every_,
                clamp=clamp,
                records=records,
                means=final_means,
                record_means=means,
            )

        return run_chain_chunks(call, x, self.dtype, steps, burn_in, every, means, progress)

    # ------------------------------------------------------------------ training
    def _check_data(self, name, x) -> np.ndarray:
        a = _checks.as_state(name, x, self.dtype, self.visible)
        if self.reconstruction.name == "bernoulli" and (a.min() < 0 or a.max() > 1):
            raise ValueError(
                f"{name}: a Bernoulli model needs data in [0, 1] (binary, or grey levels used "
                "as Bernoulli means)"
            )
        return a

    def _walkback_call(self, x, walkbacks, seed, first_chain, reconstruct, grads):
        g = {} if grads is None else {f"g{k}": v for k, v in grads.items()}
        return _backend.cpu().dae_walkback(
            x,
            **self._kernel_kwargs(),
            seed=seed,
            first_chain=first_chain,
            walkbacks=walkbacks,
            last_only=reconstruct == "last",
            **g,
        )

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
