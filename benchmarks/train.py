"""Walk-back training throughput: walkback's fit() vs the same model in PyTorch eager
(autograd + torch.optim.SGD with momentum), CPU.

DAE D = 784, tied weights, sigmoid hidden units, salt-and-pepper 0.3, Bernoulli visibles; k
walk-back steps per example (visible samples are constants); SGD lr 0.01, momentum 0.5. Data:
synthetic binary rows (20% ones), no binarization. Examples/s = rows trained per second.
"sgemm frac" = time of the step's GEMMs alone (k x 2 forward products of B rows, dO W of k B
rows, and the weight gradient as one product of 2 k B rows, as fit does it; the fastest of
NumPy's sgemm, walkback's BLAS path and its packed kernel) / time per batch.

    python benchmarks/train.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb
from walkback import _backend

from _common import (
    markdown_table,
    print_header,
    race,
    save_rows,
    torch_peer,
)

D = 784
P = 0.3
LR, MOMENTUM = 0.01, 0.5
BATCHES = 8


def walkback_runner(W, b, k, x):
    model = wb.DAE(D, W.shape[1], corruption=wb.SaltAndPepper(P), seed=0)
    model.set_params(W1=W)
    opt = wb.SGD(lr=LR, momentum=MOMENTUM)

    def run():
        model.fit(
            x,
            walkbacks=k,
            epochs=1,
            batch_size=b,
            optimizer=opt,
            progress=False,
            shuffle=True,
            seed=1,
        )

    return run


def torch_runner(torch, W, b, k, x):
    g = torch.Generator().manual_seed(0)
    Wt = torch.tensor(W, requires_grad=True)
    b1 = torch.zeros(W.shape[1], requires_grad=True)
    b0 = torch.zeros(D, requires_grad=True)
    opt = torch.optim.SGD([Wt, b1, b0], lr=LR, momentum=MOMENTUM)
    data = torch.from_numpy(x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def run():
        perm = torch.randperm(len(data), generator=g)
        for i in range(0, len(data), b):
            xb = data[perm[i : i + b]]
            xj = xb
            loss = 0
            for j in range(k):
                u = torch.rand(xj.shape, generator=g)
                xt = torch.where(u < P, (u >= P / 2).float(), xj)
                h = torch.sigmoid(torch.addmm(b1, xt, Wt))
                o = torch.addmm(b0, h, Wt.t())
                loss = loss + bce(o, xb, reduction="sum") / b
                if j < k - 1:  # the last step's sample is never used (walkback draws none)
                    with torch.no_grad():
                        xj = (torch.rand(xj.shape, generator=g) < torch.sigmoid(o)).float()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def gemms(b, k, h, path):
    """The batch's GEMMs alone: k x (x~ W, h W^T) on b rows; dO W on k b; and the weight
    gradient X~^T dA + dO^T H as one product [X~; dO]^T [dA; H] of 2 k b rows (as `fit` does
    it: the stacked operands are its buffers, no copy). path: "numpy", "walkback" (its BLAS
    path) or "packed" (W and W^T packed once, as `fit` packs them where walkback's kernel is
    wider than OpenBLAS's)."""
    rng = np.random.default_rng(0)
    W = rng.random((D, h), dtype=np.float32)
    xo = rng.random((2 * k * b, D), dtype=np.float32)  # X~ of the k steps, then dO
    ah = rng.random((2 * k * b, h), dtype=np.float32)  # dA, then H
    xt, o = xo[: k * b], xo[k * b :]
    da, hh = ah[: k * b], ah[k * b :]
    gw = np.empty((D, h), np.float32)
    cpu = _backend.cpu()

    def numpy_run():
        for j in range(k):
            np.matmul(xt[j * b : (j + 1) * b], W, out=hh[j * b : (j + 1) * b])
            np.matmul(hh[j * b : (j + 1) * b], W.T, out=o[j * b : (j + 1) * b])
        np.matmul(o, W, out=da)
        np.matmul(xo.T, ah, out=gw)

    xoT = np.ascontiguousarray(xo.T)

    def walkback_run():
        for j in range(k):
            cpu.gemm(xt[j * b : (j + 1) * b], W, hh[j * b : (j + 1) * b], False)
            cpu.gemm(hh[j * b : (j + 1) * b], W, o[j * b : (j + 1) * b], True)
        cpu.gemm(o, W, da, False)
        cpu.gemm(xoT, ah, gw, False)

    def packed_run():
        rows = [slice(j * b, (j + 1) * b) for j in range(k)]
        cpu.packed_gemm_many([xt[r] for r in rows] + [o], W, [hh[r] for r in rows] + [da])
        cpu.packed_gemm_many([hh[r] for r in rows], W, [o[r] for r in rows], True)
        cpu.packed_gemm_at(xo, ah, gw)

    return {"numpy": numpy_run, "walkback": walkback_run, "packed": packed_run}[path]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one shape only")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "train.json"))
    args = ap.parse_args()
    torch = torch_peer()
    shapes = (
        [(100, 4, 1000)]
        if args.quick
        else [(b, k, h) for h in (1000, 2000) for k in (1, 4) for b in (100, 256)]
    )
    print_header(torch, wb, np)
    rows, records = [], []
    for b, k, h in shapes:
        rng = np.random.default_rng(0)
        r = np.sqrt(6 / (D + h))
        W = rng.uniform(-r, r, (D, h)).astype(np.float32)
        x = (rng.random((b * BATCHES, D)) < 0.2).astype(np.float32)
        peers = {
            "np_gemm": gemms(b, k, h, "numpy"),
            "wb_gemm": gemms(b, k, h, "walkback"),
            "walkback": walkback_runner(W, b, k, x),
        }
        if _backend.cpu().packed_gemm_supported():
            peers["wb_packed_gemm"] = gemms(b, k, h, "packed")
        if torch is not None:
            peers["torch"] = torch_runner(torch, W, b, k, x)
        best = race(peers, args.rounds, min_time=0.5)
        t_gemm = min(best["np_gemm"], best["wb_gemm"], best.get("wb_packed_gemm", np.inf))
        t_wb = best["walkback"] / BATCHES
        t_pt = best["torch"] / BATCHES if torch is not None else None
        records.append(
            dict(
                B=b,
                k=k,
                H=h,
                walkback_batch_s=t_wb,
                torch_batch_s=t_pt,
                numpy_gemm_s=best["np_gemm"],
                walkback_gemm_s=best["wb_gemm"],
                walkback_packed_gemm_s=best.get("wb_packed_gemm"),
            )
        )
        rows.append(
            [
                b,
                k,
                h,
                f"{b / t_wb:,.0f}",
                f"{b / t_pt:,.0f}" if t_pt else "-",
                f"{t_pt / t_wb:.2f}x" if t_pt else "-",
                f"{t_gemm / t_wb:.2f}",
                f"{t_gemm / t_pt:.2f}" if t_pt else "-",
            ]
        )
        print(
            f"  B={b} k={k} H={h}: walkback {b / t_wb:,.0f}/s"
            + (f"  torch {b / t_pt:,.0f}/s" if t_pt else ""),
            flush=True,
        )
    print()
    print(
        markdown_table(
            [
                "B",
                "k",
                "H",
                "walkback examples/s",
                "PyTorch examples/s",
                "vs PyTorch",
                "sgemm frac walkback",
                "sgemm frac PyTorch",
            ],
            rows,
        )
    )
    save_rows(args.json, records)


if __name__ == "__main__":
    main()
