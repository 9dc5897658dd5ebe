"""Optimizers: the update of every parameter runs fused in C++ or CUDA (elementwise.h), one
call per parameter array, in place, on the device the parameters live on."""

from __future__ import annotations

import math
import weakref

import numpy as np

from . import _backend, _checks, _gpu


def _positive(name, v, allow_zero=False):
    v = _checks.check_float(name, v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(
            f"{name}: expected a {'non-negative' if allow_zero else 'positive'} "
            f"finite number, got {v}"
        )
    return v


class Optimizer:
    """Base class: ``step(params, grads)`` updates the arrays of ``params`` in place."""

    def __init__(self):
        self._state: dict[str, tuple] = {}
        self.t = 0
        # The model whose fit last used this optimizer (a weak reference): another model's
        # fit starts a fresh state, the same model's continues it.
        self._model = None

    def reset(self):
        """Forgets the moments and the step count."""
        self._state.clear()
        self.t = 0

    def _reset_if_poisoned(self) -> None:
        """Forgets the state if a moment is NaN or infinite (fit, after the step that broke
        the parameters, when it kept no copy of the state before it)."""
        if not all(_checks.all_finite(slots) for slots in self._state.values()):
            self.reset()

    def _bind(self, model) -> None:
        """Called by fit: a model other than the one this optimizer last trained (slots are
        kept by parameter name, so another model's would take its moments and step count)
        starts from a fresh state."""
        last = None if self._model is None else self._model()
        if self._model is not None and last is not model:
            self.reset()
        self._model = weakref.ref(model)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_model"] = None  # a weak reference does not pickle; a copy is unbound
        return state

    def _save_state(self, store: dict) -> None:
        """Copies the slots and the step count into ``store`` (arrays kept across calls): what
        fit restores when it sees a non-finite loss only after a later step."""
        store["t"] = self.t
        saved = store.setdefault("slots", {})
        # Within one fit a slot, once made, keeps its name, shape and device: copy into it.
        for name, slots in self._state.items():
            kept = saved.get(name)
            if kept is None:
                saved[name] = tuple(s.copy() for s in slots)
            else:
                for k, s in zip(kept, slots, strict=True):
                    _backend.array_module(s).copyto(k, s)

    def _load_state(self, store: dict) -> None:
        """The slots and step count saved by _save_state (slots it did not see are dropped)."""
        self.t = store["t"]
        for name in list(self._state):
            if name not in store["slots"]:
                del self._state[name]
        for name, kept in store["slots"].items():
            slots = self._state.get(name)
            if slots is None:
                self._state[name] = tuple(k.copy() for k in kept)
            else:
                for s, k in zip(slots, kept, strict=True):
                    _backend.array_module(s).copyto(s, k)

    def _slots(self, name, p, n):
        st = self._state.get(name)
        if (
            st is None
            or type(st[0]) is not type(p)  # the model moved between devices
            or st[0].shape != p.shape
            or st[0].dtype != p.dtype
        ):
            xp = _backend.array_module(p)
            st = tuple(xp.zeros_like(p) for _ in range(n))
            self._state[name] = st
        return st

    def step(self, params: dict, grads: dict, max_grad_norm: float = 0.0, backup=None):
        """One update of every array of ``params`` in place, from ``grads`` (same names), on
        the device the arrays live on: one C++ call per array on the CPU, one call for all of
        them on the GPU.

        max_grad_norm > 0 clips: when the global L2 norm of the gradients of ``params``
        exceeds it, every gradient is scaled by max_grad_norm / norm (as
        ``torch.nn.utils.clip_grad_norm_``, without its 1e-6). ``grads`` are never modified:
        on the CPU the scale is applied inside the update, on the GPU to a copy. Returns the
        global norm when clipping, else None.

        backup: a dict of arrays like ``params`` that receives the parameters as they were
        before this step (on the CPU in the same pass as the update): what ``fit`` restores
        when a later loss is not finite."""
        max_grad_norm = _positive("max_grad_norm", max_grad_norm, allow_zero=True)
        # Everything is checked before any parameter moves.
        _check_step_arrays(params, grads)
        if backup is not None:
            flat_backup = {name: _backup_view(backup, name, p) for name, p in params.items()}
        norm = None
        if max_grad_norm > 0:  # before the step count moves: this may raise on bad gradients
            norm = grad_norm(grads[name] for name in params)
        self.t += 1
        hyper = self._step_hyper()
        if norm is not None and norm > max_grad_norm:
            hyper["grad_scale"] = max_grad_norm / norm
        on_gpu = []
        for name, p in params.items():
            g = grads[name]
            pdev = _backend.device_of(p)
            slots = self._slots(name, p, self._nslots)
            s2 = slots[1] if len(slots) > 1 else None
            if pdev == "cuda":
                # The kernel reads the gradient as a flat array: a strided view is copied.
                g = _backend.array_module(g).ascontiguousarray(g)
                if "grad_scale" in hyper:
                    g = g * g.dtype.type(hyper["grad_scale"])  # a copy: grads stay as given
                if backup is not None:
                    _backend.array_module(p).copyto(flat_backup[name], p.reshape(-1))
                on_gpu.append((p, g, slots[0], s2))
            else:
                _backend.cpu().optimizer_update(
                    self._kind,
                    p.reshape(-1),
                    np.ascontiguousarray(g).reshape(-1),
                    slots[0].reshape(-1),
                    None if s2 is None else s2.reshape(-1),
                    hyper,
                    None if backup is None else flat_backup[name],
                )
        if on_gpu:
            _gpu.optimizer_update(self._kind, on_gpu, hyper)
        return norm

    def _step_hyper(self) -> dict:
        return self._hyper()

    def to_config(self) -> dict:
        return {"kind": type(self).__name__, **self._hyper()}


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball momentum and L2 weight decay:
    v = momentum v - lr (g + weight_decay p); p += v."""

    _kind, _nslots = 0, 1

    def __init__(self, lr=0.1, momentum=0.0, weight_decay=0.0):
        super().__init__()
        self.lr = _positive("lr", lr)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum: expected a value in [0, 1), got {self.momentum}")
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay})"


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient."""

    _kind, _nslots = 1, 2

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__()
        self.lr = _positive("lr", lr)
        self.beta1 = _positive("beta1", beta1, allow_zero=True)
        self.beta2 = _positive("beta2", beta2, allow_zero=True)
        if self.beta1 >= 1 or self.beta2 >= 1:
            raise ValueError("beta1, beta2: expected values in [0, 1)")
        self.eps = _positive("eps", eps)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)

    def _hyper(self):
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }

    def _step_hyper(self):
        h = self._hyper()
        h["bc1"] = 1 - self.beta1**self.t
        h["bc2"] = 1 - self.beta2**self.t
        return h

    def __repr__(self):
        return (
            f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012), the diffusion paper's optimizer (lr 1e-3 there):
    v = rho v + (1 - rho) g^2; p -= lr g / (sqrt(v) + eps), with L2 weight decay added to g."""

    _kind, _nslots = 2, 1

    def __init__(self, lr=1e-3, rho=0.9, eps=1e-8, weight_decay=0.0):
        super().__init__()
        self.lr = _positive("lr", lr)
        self.rho = _positive("rho", rho, allow_zero=True)
        if self.rho >= 1:
            raise ValueError(f"rho: expected a value in [0, 1), got {self.rho}")
        self.eps = _positive("eps", eps)
        self.weight_decay = _positive("weight_decay", weight_decay, allow_zero=True)

    def _hyper(self):
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps, "weight_decay": self.weight_decay}

    def __repr__(self):
        return (
            f"RMSprop(lr={self.lr}, rho={self.rho}, eps={self.eps}, "
            f"weight_decay={self.weight_decay})"
        )


def _check_step_arrays(params, grads) -> None:
    """Every parameter a writeable C-contiguous float array (updated in place: a copy would
    take the update in vain), every gradient there, of its parameter's shape and dtype."""
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise TypeError("optimizer: params and grads must be dicts of arrays")
    for name, p in params.items():
        if not _backend.is_gpu_array(p) and not isinstance(p, np.ndarray):
            raise TypeError(
                f"optimizer: parameter {name!r} must be a NumPy or CuPy array, got "
                f"{type(p).__name__}"
            )
        if p.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"optimizer: parameter {name!r} must be float32 or float64, got {p.dtype}"
            )
        if not p.flags.c_contiguous or not getattr(p.flags, "writeable", True):
            raise ValueError(
                f"optimizer: parameter {name!r} must be a writeable C-contiguous array (it is "
                "updated in place)"
            )
        if name not in grads:
            raise ValueError(f"optimizer: no gradient for parameter {name!r}")
        g = grads[name]
        pdev, gdev = _backend.device_of(p), _backend.device_of(g)
        if pdev != gdev:
            raise ValueError(
                f"optimizer: parameter {name!r} is on {pdev} but its gradient on {gdev}"
            )
        if not hasattr(g, "shape") or g.shape != p.shape or g.dtype != p.dtype:
            desc = f"{g.dtype} {g.shape}" if hasattr(g, "shape") else type(g).__name__
            raise ValueError(
                f"optimizer: gradient {name!r} is {desc}, expected {p.dtype} {p.shape}"
            )
    # Two names for one memory would be updated twice, and on the GPU at once (one launch
    # updates all the arrays of a dtype). The arrays are contiguous, so their byte ranges say
    # it: sorted by start, each range must end before the next begins (host pointers and
    # device pointers apart; CUDA's addresses are unique across devices).
    spans = sorted(
        (_backend.device_of(p), _data_address(p), _data_address(p) + p.nbytes, name)
        for name, p in params.items()
        if p.size
    )
    for a, b in zip(spans, spans[1:], strict=False):
        (dev_a, _, end_a, name_a), (dev_b, start_b, _, name_b) = a, b
        if dev_a == dev_b and start_b < end_a:
            raise ValueError(
                f"optimizer: parameters {name_a!r} and {name_b!r} share memory (each array "
                "must be one parameter)"
            )


def _data_address(a) -> int:
    """The address of a contiguous array's first element (host or device)."""
    return int(a.data.ptr) if _backend.is_gpu_array(a) else int(a.ctypes.data)


def _backup_view(backup, name, p):
    """backup[name] as a flat, writeable view of an array like p on p's device (never a copy,
    which the update would write in vain)."""
    if name not in backup:
        raise ValueError(f"backup: no array for parameter {name!r}")
    b = backup[name]
    xp = _backend.array_module(p)
    if not isinstance(b, xp.ndarray) or b.shape != p.shape or b.dtype != p.dtype:
        raise ValueError(
            f"backup {name!r}: expected a {xp.__name__} array of {p.dtype} {p.shape}, "
            f"like the parameter"
        )
    # CuPy's flags have no `writeable`: its arrays always are.
    if not b.flags.c_contiguous or not getattr(b.flags, "writeable", True):
        raise ValueError(f"backup {name!r}: expected a writeable C-contiguous array")
    # Bounds, not CuPy's exact shares_memory (which sorts the address of every element on the
    # GPU and waits for the answer, for every parameter at every step); b is C-contiguous, so
    # for a contiguous parameter overlapping bounds are shared memory.
    if xp.may_share_memory(b, p):
        raise ValueError(f"backup {name!r}: must not share memory with the parameter")
    return b.reshape(-1)


def grad_norm(grads) -> float:
    """The global L2 norm of an iterable of gradient arrays (NumPy on the CPU: summed in double
    by walkback's own threads, so no second BLAS pool wakes; CuPy on the GPU)."""
    total = 0.0
    for g in grads:
        if _backend.device_of(g) == "cuda":
            total += float((g.astype("float64") ** 2).sum())  # in double, as on the CPU
        else:
            total += _backend.cpu().sum_squares(np.ascontiguousarray(g).reshape(-1))
    return math.sqrt(total)


def as_optimizer(opt, default=None) -> Optimizer:
    if opt is None:
        return SGD(lr=0.1, momentum=0.5) if default is None else default
    if isinstance(opt, Optimizer):
        return opt
    raise TypeError(
        f"optimizer: expected walkback.SGD, walkback.Adam or walkback.RMSprop, got {opt!r}"
    )
