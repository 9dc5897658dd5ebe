"""DAE chain sampling throughput: walkback vs the fastest NumPy form vs PyTorch eager (CPU).

One step: salt-and-pepper corruption (p = 0.3), h = sigmoid(x~ W + b1), w = sigmoid(h W^T + b0),
x' ~ Bernoulli(w); binary visible units (D = 784), tied weights. Throughput is chain samples
(chain steps x chains) per second. "sgemm frac" is the time of the step's two GEMMs alone --
the fastest of NumPy's sgemm, walkback's BLAS path and (from 8 chains) its packed kernel with
W packed once per call as `sample` packs it, with no elementwise work -- divided by the step's
time: 1.0 would be a step as fast as its GEMMs. At B = 1 walkback reads W once a step, a block
of units at a time (the decoder's dot products, then, for the units that are on, the next
encoder's rows while they are in cache), so its step can beat the two dense GEMVs (frac > 1).

Peers run in turn with a pause between them (two thread pools used alternately slow each
other); the last section measures exactly that alternation.

    python benchmarks/chain.py            # full table
    python benchmarks/chain.py --quick    # two shapes, for a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb  # noqa: E402
from walkback import _backend  # noqa: E402

from _common import (  # noqa: E402
    best_time,
    blas_report,
    machine,
    markdown_table,
    pause,
    print_header,
    race,
    write_json,
)

D = 784
P = 0.3


def numpy_runner(W, b1, b0, x0):
    b, h = x0.shape[0], W.shape[1]
    rng = np.random.default_rng(0)
    x = x0.copy()
    xt, u, mask = np.empty_like(x), np.empty_like(x), np.empty(x.shape, bool)
    pep = np.empty_like(x)
    hid, o = np.empty((b, h), np.float32), np.empty_like(x)
    WT = W.T

    def step():
        rng.random(out=u, dtype=np.float32)
        np.greater_equal(u, P / 2, out=pep, casting="unsafe")
        np.copyto(xt, x)
        np.less(u, P, out=mask)
        np.copyto(xt, pep, where=mask)
        np.matmul(xt, W, out=hid)
        np.add(hid, b1, out=hid)
        np.negative(hid, out=hid)
        np.exp(hid, out=hid)
        np.add(hid, 1, out=hid)
        np.reciprocal(hid, out=hid)
        np.matmul(hid, WT, out=o)
        np.add(o, b0, out=o)
        np.negative(o, out=o)
        np.exp(o, out=o)
        np.add(o, 1, out=o)
        np.reciprocal(o, out=o)
        rng.random(out=u, dtype=np.float32)
        np.less(u, o, out=mask)
        np.copyto(x, mask)

    return step


def torch_runner(torch, W, b1, b0, x0):
    g = torch.Generator().manual_seed(0)
    Wt, b1t, b0t = torch.from_numpy(W), torch.from_numpy(b1), torch.from_numpy(b0)
    x = torch.from_numpy(x0.copy())
    b, h = x0.shape[0], W.shape[1]
    u, xt = torch.empty_like(x), torch.empty_like(x)
    hid, o = torch.empty((b, h)), torch.empty_like(x)
    # The corruption's masks preallocated too: no temporaries in the step (as the NumPy peer).
    flip, salt = torch.empty(x.shape, dtype=torch.bool), torch.empty_like(x)
    WT = Wt.t()

    def step():
        with torch.no_grad():
            torch.rand(x.shape, generator=g, out=u)
            torch.lt(u, P, out=flip)
            torch.ge(u, P / 2, out=salt)
            torch.where(flip, salt, x, out=xt)
            torch.addmm(b1t, xt, Wt, out=hid)
            hid.sigmoid_()
            torch.addmm(b0t, hid, WT, out=o)
            o.sigmoid_()
            torch.rand(x.shape, generator=g, out=u)
            torch.lt(u, o, out=xt)
            x.copy_(xt)

    return step


def walkback_runner(model, x0, steps):
    def run():
        model.sample(x0=x0, steps=steps, seed=1)

    return run


def gemm_runner(W, b):
    """The step's two GEMMs alone, with NumPy's sgemm: the roofline of a step."""
    a = np.random.default_rng(0).random((b, D), dtype=np.float32)
    hid = np.empty((b, W.shape[1]), np.float32)
    o = np.empty((b, D), np.float32)
    WT = W.T

    def two():
        np.matmul(a, W, out=hid)
        np.matmul(hid, WT, out=o)

    return two


def walkback_gemm_runner(W, b):
    """The same two GEMMs through walkback's own parallel GEMM path (no elementwise work)."""
    from walkback import _backend

    cpu = _backend.cpu()
    a = np.random.default_rng(0).random((b, D), dtype=np.float32)
    hid = np.empty((b, W.shape[1]), np.float32)
    o = np.empty((b, D), np.float32)

    def two():
        cpu.gemm(a, W, hid, False)
        cpu.gemm(hid, W, o, True)

    return two


def walkback_packed_gemm_runner(W, b, steps):
    """`steps` steps' two GEMMs through walkback's packed kernel, W and W^T packed once per call
    as `sample` packs them (from 8 chains): the roofline of the packed path, per call."""
    cpu = _backend.cpu()
    a = np.random.default_rng(0).random((b, D), dtype=np.float32)
    hid = np.empty((b, W.shape[1]), np.float32)
    o = np.empty((b, D), np.float32)

    def run():
        cpu.packed_gemm_many([a] * steps, W, [hid] * steps)
        cpu.packed_gemm_many([hid] * steps, W, [o] * steps, True)

    return run


def alternation(torch, W, b1, b0, quick):
    """NumPy GEMMs and a library's chain step called alternately, vs each alone."""
    b = 256
    x0 = (np.random.default_rng(1).random((b, D)) < 0.2).astype(np.float32)
    a = np.random.default_rng(2).random((b, D), dtype=np.float32)
    out = np.empty((b, W.shape[1]), np.float32)

    def np_call():
        np.matmul(a, W, out=out)

    model = wb.DAE(D, W.shape[1], corruption=wb.SaltAndPepper(P), seed=0)
    model.set_params(W1=W, b1=b1, b0=b0)
    peers = {"walkback": walkback_runner(model, x0, 1)}
    if torch is not None:
        peers["PyTorch"] = torch_runner(torch, W, b1, b0, x0)
    rows = []
    t_np = best_time(np_call)
    for name, step in peers.items():
        pause()
        t_step = best_time(step)
        pause()

        def both(step=step):
            np_call()
            step()

        t_both = best_time(both)
        rows.append(
            [
                name,
                f"{t_np * 1e3:.2f}",
                f"{t_step * 1e3:.2f}",
                f"{t_both * 1e3:.2f}",
                f"{t_both / (t_np + t_step):.2f}",
            ]
        )
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two shapes only")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of peers taken in turn")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "chain.json"))
    args = ap.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, 2)
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    shapes = (
        [(1, 1000), (256, 1000)]
        if args.quick
        else [(b, h) for h in (1000, 2000) for b in (1, 16, 256, 1024)]
    )

    print_header(torch, wb, np)
    rows, records = [], []
    for b, h in shapes:
        rng = np.random.default_rng(0)
        r = np.sqrt(6 / (D + h))
        W = rng.uniform(-r, r, (D, h)).astype(np.float32)
        b1 = np.zeros(h, np.float32)
        b0 = np.full(D, -1.0, np.float32)
        x0 = (rng.random((b, D)) < 0.2).astype(np.float32)
        model = wb.DAE(D, h, corruption=wb.SaltAndPepper(P), seed=0)
        model.set_params(W1=W, b1=b1, b0=b0)
        steps = max(1, 4096 // b)
        peers = {
            "sgemm": gemm_runner(W, b),
            "wb_gemm": walkback_gemm_runner(W, b),
            "walkback": walkback_runner(model, x0, steps),
            "numpy": numpy_runner(W, b1, b0, x0),
        }
        if b >= 8 and _backend.cpu().packed_gemm_supported():
            peers["wb_packed_gemm"] = walkback_packed_gemm_runner(W, b, steps)
        if torch is not None:
            peers["torch"] = torch_runner(torch, W, b1, b0, x0)
        # Peers in turn, several rounds, the best of each: this VM's speed drifts over seconds.
        best = race(peers, args.rounds, min_time=0.2)
        # The roofline: the fastest of NumPy's sgemm, walkback's BLAS path and its packed
        # kernel (per step, its packing counted as `sample` counts it).
        t_packed = best["wb_packed_gemm"] / steps if "wb_packed_gemm" in best else np.inf
        t_gemm, t_np = min(best["sgemm"], best["wb_gemm"], t_packed), best["numpy"]
        t_wb = best["walkback"] / steps
        t_pt = best.get("torch")
        rec = dict(
            B=b,
            H=h,
            walkback_s=t_wb,
            numpy_s=t_np,
            torch_s=t_pt,
            numpy_sgemm_s=best["sgemm"],
            walkback_gemm_s=best["wb_gemm"],
            walkback_packed_gemm_s=None if np.isinf(t_packed) else t_packed,
        )
        records.append(rec)
        rows.append(
            [
                b,
                h,
                f"{b / t_wb:,.0f}",
                f"{b / t_np:,.0f}",
                f"{b / t_pt:,.0f}" if t_pt else "-",
                f"{t_np / t_wb:.2f}x",
                f"{t_pt / t_wb:.2f}x" if t_pt else "-",
                f"{t_gemm / t_wb:.2f}",
                f"{t_gemm / t_np:.2f}",
                f"{t_gemm / t_pt:.2f}" if t_pt else "-",
            ]
        )
        print(
            f"  B={b:5d} H={h}: walkback {b / t_wb:,.0f}/s  numpy {b / t_np:,.0f}/s"
            + (f"  torch {b / t_pt:,.0f}/s" if t_pt else ""),
            flush=True,
        )
    print()
    print(
        markdown_table(
            [
                "B",
                "H",
                "walkback samples/s",
                "NumPy samples/s",
                "PyTorch samples/s",
                "vs NumPy",
                "vs PyTorch",
                "sgemm frac walkback",
                "sgemm frac NumPy",
                "sgemm frac PyTorch",
            ],
            rows,
        )
    )
    print()
    print("Alternating a NumPy sgemm (256 x 784 x H=1000) with one chain step (B = 256), ms:")
    W = np.random.default_rng(0).uniform(-0.05, 0.05, (D, 1000)).astype(np.float32)
    alt = alternation(torch, W, np.zeros(1000, np.float32), np.zeros(D, np.float32), args.quick)
    print(
        markdown_table(
            ["peer", "NumPy call alone", "step alone", "both, alternated", "alternated / sum"], alt
        )
    )
    write_json(
        args.json,
        dict(
            machine=machine(),
            blas=blas_report(),
            rows=records,
            alternation=alt,
            time=time.strftime("%Y-%m-%d %H:%M"),
        ),
    )


if __name__ == "__main__":
    main()
