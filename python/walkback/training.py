"""The one ``fit`` loop every model shares: batches, the optimizer, validation, progress, NaN
handling and stochastic binarization. A model provides ``_params`` (name -> array) and
``_draw_seed()``; the caller gives the data already checked and two closures:
``batch_loss(xb, seed, grads)`` (fills ``grads``; returns a float, or a 0-d device array the
device fills later) and ``valid_loss(x, seed) -> float``.

A loss that is not a plain float (a GPU's 0-d array) is read only after the next batch's
gradients are queued, so the device never waits for Python between batches. Such a loss is
seen one batch late, after its own optimizer step: two backups of the parameters and of the
optimizer's state (before each of the last two steps) still give back what a loss read at once
would have kept. Plain floats are read at once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import _backend, _checks, _gpu, ops
from ._progress import progress_bar
from .optim import as_optimizer


@dataclass
class History:
    """Per epoch: the mean training loss over its batches, the validation loss (or None) and
    the seconds the epoch took. Losses are NLL summed over steps and units, mean per example."""

    train_loss: list = field(default_factory=list)
    valid_loss: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def __len__(self):
        return len(self.train_loss)

    def as_dict(self) -> dict:
        return {
            "train_loss": list(self.train_loss),
            "valid_loss": list(self.valid_loss),
            "seconds": list(self.seconds),
        }


class TrainingDiverged(FloatingPointError):
    """Raised when a batch's loss is NaN or infinite; the model keeps its last good
    parameters (those that gave the previous finite loss)."""


def stochastic_binarize(x, seed: int, epoch: int, first_row: int, columns=None):
    """Binary sample with P(1) = x, from walkback's stream (dynamic binarization); on the
    device x lives on. ``columns``: the (start, stop) ranges of units to binarize (a GSN's
    Bernoulli segments), or None for every unit; the others are returned as they are."""
    u = ops.uniform(
        x.shape[0],
        x.shape[1],
        seed=seed,
        step=epoch,
        first_chain=first_row,
        stream="user",
        device=_backend.device_of(x),
    )
    if columns is None:
        return (u < x).astype(x.dtype)
    out = x.copy()
    for a, b in columns:
        out[:, a:b] = u[:, a:b] < x[:, a:b]
    return out


def kept_buffers(model, params, xp, batch_shape, dtype):
    """fit's gradients, its two backups of the parameters (the one read first set to the
    parameters now) and, on the CPU, the buffer batches are gathered into: kept on the model
    between fit calls, like PyTorch's ``.grad``, at the cost of three more copies of the
    parameters (dropped by ``model.to``, left out of copies and pickles). Fresh arrays of a few
    MB each call were page-faulted in whenever malloc handed them out from new pages: measured
    3,858 faults a call and 3.09 against 2.37 ms a batch for a DAE with H = 1000 fitted one
    epoch of 8 batches a call (benchmarks/RESULTS.md)."""
    sig = tuple(
        (k, v.shape, v.dtype.str, str(getattr(v, "device", "cpu"))) for k, v in params.items()
    )
    kept = getattr(model, "_fit_buffers", None)
    if kept is None or kept["sig"] != sig:
        kept = {
            "sig": sig,
            "grads": {k: xp.empty_like(v) for k, v in params.items()},
            "backups": [{k: xp.empty_like(v) for k, v in params.items()} for _ in range(2)],
        }
        model._fit_buffers = kept
    # Only backups[1] is read before a step writes it (fit's first restore, at step 0 or, for a
    # loss read late, step 1); backups[0] is written by step 0 before any read.
    for k, v in params.items():
        xp.copyto(kept["backups"][1][k], v)
    batch_buf = None
    if xp is np:
        batch_buf = kept.get("batch")
        if batch_buf is None or batch_buf.shape != batch_shape or batch_buf.dtype != dtype:
            batch_buf = kept["batch"] = np.empty(batch_shape, dtype)
    return kept["grads"], kept["backups"], batch_buf


def check_last_step(params: dict, before: dict, epoch: int, optimizers) -> None:
    """fit's end-of-epoch check. Each loss is read before its step, so only a look at the
    parameters sees what the epoch's last step did (an earlier step that broke them would have
    given a non-finite loss): if they are not finite, they go back to ``before`` (the
    parameters before that step), each (optimizer, state) of ``optimizers`` gets its saved
    state back, and TrainingDiverged is raised."""
    if _checks.all_finite(params.values()):
        return
    for k, v in before.items():
        _backend.array_module(params[k]).copyto(params[k], v)
    for opt, state in optimizers:
        opt._load_state(state)
    raise TrainingDiverged(
        f"fit: the parameters became NaN or infinite at the last step of epoch {epoch + 1}; "
        "they were restored to those before it (try a smaller learning rate)"
    )


def check_binarize(binarize, x, columns, name="x"):
    """The checks of fit's ``binarize`` on data x (the argument ``name``); ``columns``: None
    (every unit) or [(segment, start, stop)] of the units that are binarized."""
    if binarize not in (None, "stochastic"):
        raise ValueError(f"binarize: expected None or 'stochastic', got {binarize!r}")
    if binarize is None:
        return
    if columns is not None and not columns:
        raise ValueError("binarize: the model has no Bernoulli units to binarize")
    for segment, a, b in [(None, 0, x.shape[1])] if columns is None else columns:
        part = x[:, a:b]
        if part.size and (float(part.min()) < 0 or float(part.max()) > 1):
            where = "" if segment is None else f" (segment {segment!r})"
            raise ValueError(f"{name}: binarize='stochastic' needs values in [0, 1]{where}")


def fit(
    model,
    x,
    *,
    batch_loss,
    valid_loss,
    epochs=10,
    batch_size=100,
    optimizer=None,
    shuffle=True,
    binarize=None,
    binary_columns=None,
    progress=True,
    seed=None,
    xv=None,
):
    """``x`` and ``xv`` (the validation data, or None) come checked by the model.
    ``binary_columns``: None, or [(name, start, stop)], the units ``binarize`` applies to."""
    n = x.shape[0]
    epochs = _checks.check_int("epochs", epochs, 0, 10**9)
    batch_size = _checks.check_int("batch_size", batch_size, 1, 2**31 - 1)
    check_binarize(binarize, x, binary_columns)
    ranges = None if binary_columns is None else [(a, b) for _, a, b in binary_columns]
    opt = as_optimizer(optimizer)
    opt._bind(model)
    seed = model._draw_seed() if seed is None else _checks.check_seed("seed", seed)
    rng = np.random.default_rng(seed)
    valid_seed = int(rng.integers(0, 2**63))
    params = model._params
    xp = _backend.array_module(x)  # NumPy, or CuPy for a model on the GPU
    batch_shape = (min(batch_size, n),) + x.shape[1:]
    # backups[i % 2]: the parameters before optimizer step i (both start as the initial ones);
    # opt_backups[i % 2]: the optimizer's state before step i, kept only for losses read late.
    grads, backups, batch_buf = kept_buffers(model, params, xp, batch_shape, x.dtype)
    opt_backups = [{}, {}]
    epoch_end_state = {}  # the optimizer before each epoch's last step (losses read at once)
    history = History()
    batches = (n + batch_size - 1) // batch_size
    bar = progress_bar(epochs * batches, progress, "training", "batch")
    step = 0  # optimizer steps taken
    pending = None  # (loss, epoch, batch, rows) of the last step, not read yet
    total = 0.0

    def settle(entry, restore_from, opt_state=None):
        """Reads the loss of `entry` (loss, epoch, batch, rows); a non-finite one restores the
        parameters `restore_from` (and the optimizer's state `opt_state`, for a loss read after
        its own step) and raises."""
        nonlocal total
        loss, epoch, b, rows = entry
        value = float(loss)
        if not np.isfinite(value):
            for k, v in restore_from.items():
                xp.copyto(params[k], v)
            if opt_state is not None:
                opt._load_state(opt_state)
            else:  # its moments may come from the step that broke the parameters
                opt._reset_if_poisoned()
            raise TrainingDiverged(
                f"fit: the loss became {value} at epoch {epoch + 1}, batch {b + 1}; the "
                "parameters were restored to the last ones with a finite loss "
                "(try a smaller learning rate)"
            )
        total += value * rows
        bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}", refresh=False)

    try:
        for epoch in range(epochs):
            t0 = time.perf_counter()
            order = rng.permutation(n) if shuffle else np.arange(n)
            # On a GPU the whole epoch's order goes over once: a copy per batch could wait for
            # the device.
            device_order = None if xp is np else xp.asarray(order)
            total = 0.0
            for b in range(batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                if xp is np and x.flags.c_contiguous:
                    # Into one buffer kept across batches: a fresh 1-2 MB array per batch
                    # is page-faulted in every time.
                    # mode="clip": idx is a permutation in range, and the default "raise"
                    # makes NumPy build a temporary and copy it (measured 2x slower).
                    xb = np.take(x, idx, axis=0, out=batch_buf[: len(idx)], mode="clip")
                else:
                    rows = idx if xp is np else device_order[b * batch_size : (b + 1) * batch_size]
                    xb = xp.ascontiguousarray(x[rows])
                if binarize == "stochastic":
                    xb = stochastic_binarize(xb, seed, epoch, b * batch_size, ranges)
                loss = batch_loss(xb, int(rng.integers(0, 2**63)), grads)
                if _backend.is_gpu_array(loss):
                    loss = _gpu.PendingScalar(loss)  # its copy to the host queued now
                entry = (loss, epoch, b, len(idx))
                late = not isinstance(loss, (float, int, np.floating))
                if pending is not None:
                    # The previous loss came from the parameters before step `step - 1`; the
                    # last finite one, from those before step `step - 2`: backups[step % 2].
                    # The optimizer's state to keep is the one before step `step - 1`.
                    settle(pending, backups[step % 2], opt_backups[(step - 1) % 2])
                if late:
                    opt._save_state(opt_backups[step % 2])
                else:  # read at once, before its step: the parameters before the last step
                    settle(entry, backups[(step + 1) % 2])
                    if b == batches - 1:  # what the end-of-epoch check would restore
                        opt._save_state(epoch_end_state)
                opt.step(params, grads, backup=backups[step % 2])
                step += 1
                pending = entry if late else None
            if pending is not None:  # the epoch's last loss, read after its step
                settle(pending, backups[step % 2], opt_backups[(step - 1) % 2])
                pending = None
            if step:
                check_last_step(
                    params,
                    backups[(step - 1) % 2],
                    epoch,
                    [(opt, opt_backups[(step - 1) % 2] if late else epoch_end_state)],
                )
            history.train_loss.append(total / n)
            history.valid_loss.append(None if xv is None else valid_loss(xv, valid_seed))
            history.seconds.append(time.perf_counter() - t0)
    finally:
        bar.close()
    return history
