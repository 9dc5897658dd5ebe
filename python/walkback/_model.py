"""What every chain model shares: its parameters by name, the walk-back loss and gradients
through the model's kernel, fit(), and model files. A model defines ``param_shapes()``,
``_check_data(name, x)``, ``_walkback_call(x, walkbacks, seed, first_chain, reconstruct,
grads)`` and ``_default_walkbacks``."""

from __future__ import annotations

import numpy as np

from . import _checks
from . import training as _training


class ChainModel:
    _params: dict
    _rng: np.random.Generator
    dtype: np.dtype

    # ------------------------------------------------------------------ parameters
    def param_shapes(self) -> dict:
        raise NotImplementedError

    def get_params(self) -> dict:
        """Copies of the parameters, by name (see the class docstring for names and shapes)."""
        return {k: v.copy() for k, v in self._params.items()}

    def set_params(self, **arrays):
        """Replaces parameters by name (copied, cast to the model's dtype, checked finite)."""
        shapes = self.param_shapes()
        checked = {}
        for name, a in arrays.items():
            if name not in shapes:
                raise ValueError(
                    f"set_params: unknown parameter {name!r}; expected {sorted(shapes)}"
                )
            checked[name] = _checks.check_param_array(name, a, shapes[name], self.dtype)
        self._params.update(checked)
        return self

    def _draw_seed(self) -> int:
        return int(self._rng.integers(0, 2**63))

    def _seed(self, seed) -> int:
        return self._draw_seed() if seed is None else _checks.check_seed("seed", seed)

    # ------------------------------------------------------------------ walk-back loss
    def _walkbacks(self, walkbacks) -> int:
        if walkbacks is None:
            return self._default_walkbacks
        return _checks.check_int("walkbacks", walkbacks, 1, 10_000)

    @staticmethod
    def _check_reconstruct(reconstruct):
        if reconstruct not in ("all", "last"):
            raise ValueError(f"reconstruct: expected 'all' or 'last', got {reconstruct!r}")

    def _loss_and_grad_into(self, x, walkbacks, seed, grads, reconstruct):
        return self._walkback_call(x, walkbacks, seed, 0, reconstruct, grads)

    def loss_and_grad(self, x, walkbacks=None, seed=None, reconstruct="all"):
        """The walk-back loss of a batch and its gradients.

        From each row of ``x`` the chain runs ``walkbacks`` steps (default: the model's: 1 for
        a DAE, 2L for a GSN), sampling the visible units between them (the samples are
        constants; a GSN's hidden noise is reparametrized, so its gradient flows back through
        the hidden states across steps). The loss adds -log p(x | w_j) of the *clean* x at every
        step j (``reconstruct="all"``, Bengio et al. 2013's walk-back) or at the last only,
        summed over units (weighted per segment in a GSN) and averaged over rows. The random
        numbers are the chain's: ``sample(x0=x, steps=j, seed=seed)`` visits the same states.

        Returns:
            (loss, grads): a float, and a dict of arrays named and shaped like get_params().
        """
        self._check_reconstruct(reconstruct)
        x = self._check_data("x", x)
        walkbacks = self._walkbacks(walkbacks)
        seed = self._seed(seed)
        grads = {k: np.empty_like(v) for k, v in self._params.items()}
        loss = self._walkback_call(x, walkbacks, seed, 0, reconstruct, grads)
        return loss, grads

    def walkback_loss(self, x, walkbacks=None, seed=None, reconstruct="all", batch_size=1000):
        """The walk-back loss alone (see loss_and_grad), computed ``batch_size`` rows at a
        time; the result does not depend on ``batch_size``."""
        self._check_reconstruct(reconstruct)
        x = self._check_data("x", x)
        walkbacks = self._walkbacks(walkbacks)
        batch_size = _checks.check_int("batch_size", batch_size, 1)
        seed = self._seed(seed)
        total = 0.0
        for b in range(0, x.shape[0], batch_size):
            xb = x[b : b + batch_size]
            total += self._walkback_call(xb, walkbacks, seed, b, reconstruct, None) * len(xb)
        return total / x.shape[0]

    def fit(
        self,
        x,
        walkbacks=None,
        epochs=10,
        batch_size=100,
        optimizer=None,
        validation=None,
        shuffle=True,
        binarize=None,
        progress=True,
        seed=None,
        reconstruct="all",
    ):
        """Walk-back training with minibatches; returns a History (per epoch: train and
        validation loss, seconds) and shows a tqdm progress bar.

        Args:
            x: (n, D) training data (in [0, 1] for Bernoulli units); for a GSN also a dict of
                segments, a categorical segment as integer labels or one-hot rows.
            walkbacks: k, the chain steps per example; default the model's (1 for a DAE,
                ordinary denoising training; 2L for a GSN, the paper's choice).
            optimizer: walkback.SGD(...) or walkback.Adam(...); default SGD(0.1, momentum 0.5).
            validation: optional data (like x) whose loss is reported after each epoch.
            binarize: None, or "stochastic" to redraw a binary sample of grey-level data each
                epoch (dynamic binarization).
            seed: the training run's random stream (batches, corruption, samples).
        Raises:
            TrainingDiverged (a FloatingPointError) naming the epoch and batch where the loss
            became NaN or infinite; the parameters are those of the last finite loss.
        """
        return _training.fit(
            self,
            x,
            walkbacks=self._walkbacks(walkbacks),
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            validation=validation,
            shuffle=shuffle,
            binarize=binarize,
            progress=progress,
            seed=seed,
            reconstruct=reconstruct,
        )

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        """Writes the parameters and the configuration to a safetensors file."""
        from .io import save

        save(self, path)
