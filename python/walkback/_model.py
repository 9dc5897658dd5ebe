"""What every chain model shares: its parameters by name, the walk-back loss and gradients
through the model's kernel, fit(), and model files. A model defines ``param_shapes()``,
``_check_data(name, x)``, ``_walkback_call(x, walkbacks, seed, first_chain, reconstruct,
grads, wait=True)``, ``_default_walkbacks`` and, for sampling, ``_initial_state(n, seed,
first_chain)``, ``_start_state(x0, seed, first_chain)``, ``_clamp_mask(clamp, n)`` and
``_run_chain(x, clamp, steps, burn_in, every, seed, means, progress, first_chain=0)``."""

from __future__ import annotations

import contextlib
import inspect
import threading

import numpy as np

from . import _backend, _checks, _gpu
from . import training as _training

_loading = threading.local()


@contextlib.contextmanager
def params_from_file():
    """Models built inside take their parameters from a file (io.load): their constructors
    allocate none, so a crafted configuration cannot make loading allocate memory that the
    file's tensors do not hold; load then checks the tensors against param_shapes()."""
    _loading.active = True
    try:
        yield
    finally:
        _loading.active = False


def loading() -> bool:
    """Whether a constructor runs inside params_from_file (and must leave _params empty)."""
    return getattr(_loading, "active", False)


class ParamModel:
    """Parameters by name, the model's seeds and files: what every model shares."""

    _params: dict
    _rng: np.random.Generator
    dtype: np.dtype
    device = "cpu"  # where the parameters live and the kernels run: "cpu" or "cuda"
    _runs_on_gpu = False  # True for models whose kernels have a CUDA port

    def __getstate__(self):
        # fit's kept buffers (training.kept_buffers) are scratch: a copy or a pickle of the
        # model does not carry three more copies of its parameters.
        state = dict(self.__dict__)
        state.pop("_fit_buffers", None)
        return state

    # ------------------------------------------------------------------ parameters
    def param_shapes(self) -> dict:
        raise NotImplementedError

    def get_params(self) -> dict:
        """Copies of the parameters, by name (see the class docstring for names and shapes):
        NumPy arrays, or CuPy arrays when the model is on the GPU."""
        return {k: v.copy() for k, v in self._params.items()}

    def set_params(self, **arrays):
        """Replaces parameters by name (copied, cast to the model's dtype, checked finite, and
        put where the model lives)."""
        shapes = self.param_shapes()
        checked = {}
        for name, a in arrays.items():
            if name not in shapes:
                raise ValueError(
                    f"set_params: unknown parameter {name!r}; expected {sorted(shapes)}"
                )
            if _backend.is_gpu_array(a):
                a = _backend.to_backend_array(a, name)[0].get()
            checked[name] = _checks.check_param_array(name, a, shapes[name], self.dtype)
        if self.device == "cuda":
            cupy = _gpu.require("set_params")
            checked = {k: cupy.asarray(v) for k, v in checked.items()}
        self._params.update(checked)
        return self

    def to(self, device):
        """Moves the parameters to ``"cuda"`` (CuPy arrays on CuPy's current device) or
        ``"cpu"`` (NumPy arrays) and returns the model. Afterwards ``fit``, ``sample`` and the
        losses run there and take data that lives there; data on the other device is an
        error naming both. Optimizer state is not moved: start a new optimizer."""
        device = _backend.check_device_name(device)
        if device == self.device:
            return self
        self.__dict__.pop("_fit_buffers", None)  # fit's scratch stays on the old device else
        if device == "cuda":
            if not self._runs_on_gpu:
                raise NotImplementedError(
                    f"{type(self).__name__}.to('cuda'): this model's kernels run on the CPU only "
                    "in this version (the DAE, the optimizers, the random stream, corruption and "
                    "the Parzen estimator have CUDA ports)"
                )
            cupy = _gpu.require(f"{type(self).__name__}.to('cuda')")
            self._params = {k: cupy.asarray(v) for k, v in self._params.items()}
        else:
            self._params = {k: v.get() for k, v in self._params.items()}
        self.device = device
        return self

    def _host_params(self) -> dict:
        """The parameters as NumPy arrays (copies when the model is on the GPU)."""
        return {k: v if isinstance(v, np.ndarray) else v.get() for k, v in self._params.items()}

    def _device_data(self, name: str, x):
        """x unchanged, after checking it lives where the model does."""
        where = _backend.device_of(x)
        if where != self.device:
            other = "cupy.asarray(...)" if self.device == "cuda" else "cupy.asnumpy(...)"
            raise ValueError(
                f"{name}: the data is on {where} but the model is on {self.device}; move one "
                f"(model.to({where!r}) or {other})"
            )
        return x

    def _glorot_params(self) -> dict:
        """Fresh parameters for param_shapes(): matrices Glorot-uniform (Glorot & Bengio 2010:
        U(-r, r), r = sqrt(6 / (fan_in + fan_out))) from the model's generator, in order;
        vectors zero."""
        params = {}
        for name, shape in self.param_shapes().items():
            if len(shape) == 2:
                r = np.sqrt(6.0 / (shape[0] + shape[1]))
                params[name] = self._rng.uniform(-r, r, shape).astype(self.dtype)
            else:
                params[name] = np.zeros(shape, self.dtype)
        return params

    @classmethod
    def from_config(cls, cfg: dict):
        """The model a file's configuration describes (to_config's keys are the constructor's
        arguments unless a model says otherwise). Every argument must be there: a missing one
        would silently take its default."""
        expected = set(inspect.signature(cls.__init__).parameters) - {"self"}
        if not isinstance(cfg, dict) or set(cfg) != expected:
            got = set(cfg) if isinstance(cfg, dict) else cfg
            raise ValueError(
                f"{cls.__name__} configuration: expected keys {sorted(expected)}, got {got}"
            )
        return cls(**{**cfg, "dtype": np.dtype(cfg["dtype"])})

    def _draw_seed(self) -> int:
        return int(self._rng.integers(0, 2**63))

    def _seed(self, seed) -> int:
        return self._draw_seed() if seed is None else _checks.check_seed("seed", seed)

    def save(self, path) -> None:
        """Writes the parameters and the configuration to a safetensors file."""
        from .io import save

        save(self, path)


class ChainModel(ParamModel):
    """A model whose generative process is a corrupt-encode-decode-sample chain trained by
    walk-back (the DAE and the GSN)."""

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
        first_chain=0,
    ):
        """Runs ``n`` chains of the model's Markov chain at once.

        Each step corrupts the state (every unit, clamped ones too, so the encoder sees inputs
        like those it was trained on), encodes, decodes and samples the free units; clamped
        units keep the values they have in ``x0``. A GSN's hidden layers start at zero (as the
        original code does) and are carried from step to step.

        Args:
            n: the number of chains (or give ``x0``).
            steps: steps after burn-in (>= 1).
            x0: (n, D) or (D,) start states (binary for a Bernoulli DAE); for a GSN also a dict
                of segments, the missing ones started at random. Default: Bernoulli units start
                from fair coin flips, Gaussian ones from N(0, 1), categorical ones at a
                uniformly drawn class.
            clamp: bool mask (D,) or (n, D) of units held at their ``x0`` values; for a GSN
                also a segment name or list of names (e.g. "y" for class-conditional samples).
            burn_in: steps run and discarded before ``steps``.
            every: None returns the final state (n, D); k returns the state after every k-th
                step past burn-in, shape (steps // k, n, D).
            seed: the random stream's key; None draws one from the model's generator.
            means: return the mean of p(x | h) at the recorded steps instead of the samples.
            progress: show a progress bar (tqdm) over the steps.
            first_chain: the random stream's index of the first chain. Chain c draws the
                numbers of chain first_chain + c, so ``sample(n=64, first_chain=64)`` draws
                what ``sample(n=128)``'s second half draws: a run split over calls or machines
                draws the same numbers as one call. On the CPU the results are the same bits
                when every call takes the same kind of product: 8 chains or more and 2 steps or
                more a call (walkback's own kernel; with AVX2 only, up to 256 chains), or 64
                chains or more and one step (OpenBLAS); else they agree to about 1e-7. On the GPU
                cuBLAS's kernels and the chain's layout follow the batch size, so splits agree
                to rounding only.
        Returns:
            An array of the model's dtype: NumPy, or CuPy when the model is on the GPU.
        """
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
            first_chain = _checks.check_first_chain(first_chain, n)
            x = self._initial_state(n, seed, first_chain)
            if self.device == "cuda":
                x = _gpu.require("sample").asarray(x)
        else:
            # (A GSN's missing segments draw their start through ops, which checks first_chain.)
            x = self._start_state(self._device_data("x0", x0), seed, first_chain)
            if n is not None and _checks.check_int("n", n, 1) != x.shape[0]:
                raise ValueError(f"n: x0 has {x.shape[0]} rows but n = {n}")
            first_chain = _checks.check_first_chain(first_chain, x.shape[0])
        if _backend.is_gpu_array(clamp):
            clamp = _backend.to_backend_array(clamp, "clamp")[0].get()
        cl = self._clamp_mask(clamp, x.shape[0])
        self._check_clamp_given(x0, cl)
        if self.device == "cuda":
            cl = _gpu.clamp_to_device(cl, _gpu.require("sample"))
        return self._run_chain(
            x,
            cl,
            steps,
            burn_in,
            every,
            seed,
            _checks.check_bool("means", means),
            bool(progress),
            first_chain=first_chain,
        )

    # ------------------------------------------------------------------ walk-back loss
    def _walkbacks(self, walkbacks) -> int:
        if walkbacks is None:
            return self._default_walkbacks
        return _checks.check_int("walkbacks", walkbacks, 1, 10_000)

    @staticmethod
    def _check_reconstruct(reconstruct):
        if reconstruct not in ("all", "last"):
            raise ValueError(f"reconstruct: expected 'all' or 'last', got {reconstruct!r}")

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
        x = self._check_data("x", self._device_data("x", x))
        walkbacks = self._walkbacks(walkbacks)
        seed = self._seed(seed)
        grads = {k: _backend.array_module(v).empty_like(v) for k, v in self._params.items()}
        loss = self._walkback_call(x, walkbacks, seed, 0, reconstruct, grads)
        return loss, grads

    def walkback_loss(self, x, walkbacks=None, seed=None, reconstruct="all", batch_size=1000):
        """The walk-back loss alone (see loss_and_grad), computed ``batch_size`` rows at a
        time; the result does not depend on ``batch_size``."""
        self._check_reconstruct(reconstruct)
        x = self._check_data("x", self._device_data("x", x))
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
            optimizer: walkback.SGD(...), walkback.Adam(...) or walkback.RMSprop(...); default
                SGD(0.1, momentum 0.5).
            validation: optional data (like x) whose loss is reported after each epoch.
            binarize: None, or "stochastic" to redraw a binary sample of grey-level data each
                epoch (dynamic binarization); a GSN's Bernoulli segments only.
            seed: the training run's random stream (batches, corruption, samples).
        Raises:
            TrainingDiverged (a FloatingPointError) naming the epoch and batch where the loss
            became NaN or infinite; the parameters are those of the last finite loss.
        """
        self._check_reconstruct(reconstruct)
        walkbacks = self._walkbacks(walkbacks)
        x = self._check_data("x", self._device_data("x", x))
        xv = None
        if validation is not None:
            xv = self._check_data("validation", self._device_data("validation", validation))
        return _training.fit(
            self,
            x,
            # wait=False: on a GPU the loss stays on it until fit reads it, a batch later
            batch_loss=lambda xb, s, grads: self._walkback_call(
                xb, walkbacks, s, 0, reconstruct, grads, wait=False
            ),
            valid_loss=lambda v, s: self.walkback_loss(
                v, walkbacks=walkbacks, seed=s, reconstruct=reconstruct
            ),
            epochs=epochs,
            batch_size=batch_size,
            optimizer=optimizer,
            xv=xv,
            shuffle=shuffle,
            binarize=binarize,
            binary_columns=self._binary_columns(),
            progress=progress,
            seed=seed,
        )

    def _check_clamp_given(self, x0, clamp):
        """Raises if a clamped unit is not given by x0 (a GSN's dict may leave segments out)."""

    def _binary_columns(self):
        """The units fit's ``binarize`` applies to: None for all of them (a DAE)."""
        return None
