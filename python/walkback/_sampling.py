"""The sampling loop shared by the chain models: records, final means and progress chunks."""

from __future__ import annotations

import numpy as np

from . import _backend
from ._progress import progress_bar

CHUNK_STEPS = 256  # steps per C++ call when a progress bar is shown


def run_chain_chunks(call, x, dtype, steps, burn_in, every, means, progress):
    """Runs ``burn_in + steps`` steps through ``call(first_step, count, every, records,
    final_means)``, which advances the state in place (a C++ chain call with its clamp, seed and
    hidden state bound). Chunks only split the work for the progress bar: the stream's step
    index runs on, so the result is the same as one call.

    Returns the records (steps // every, n, D) when ``every`` is given, else the final means
    (when ``means``) or the final state ``x``."""
    n, d = x.shape
    xp = np if isinstance(x, np.ndarray) else _backend.array_module(x)
    records = None if every is None else xp.empty((steps // every, n, d), dtype)
    final_means = xp.empty_like(x) if means and every is None else None
    chunk = CHUNK_STEPS if progress else steps + burn_in
    if every is not None:
        chunk = max(every, chunk - chunk % every)
    bar = progress_bar(steps + burn_in, progress, "sampling", "step")
    done_burn, done, r = 0, 0, 0
    try:
        while done_burn < burn_in:
            k = min(chunk, burn_in - done_burn)
            call(done_burn, k, 0, None, None)
            done_burn += k
            bar.update(k)
        while done < steps:
            k = min(chunk, steps - done)
            rec = None
            if every is not None:
                nrec = k // every
                rec = records[r : r + nrec]
                r += nrec
            call(burn_in + done, k, every or 0, rec, final_means if done + k == steps else None)
            done += k
            bar.update(k)
    finally:
        bar.close()
    if every is not None:
        return records
    return final_means if means else x
