"""Diffusion throughput: walkback's Diffusion (training and the reverse chain) vs the same model
in PyTorch eager (autograd + torch.optim.Adam), CPU, one process, peers in turn.

Models (the readout has K * J coefficients per unit; J = 10 temporal basis functions):
  mnist     784-500-500, Gaussian, T = 1000, batch 512 (the original's), chain of 100
  heartbeat 20-512-512, binomial, T = 2000, batch 512, chain of 1000
  swiss     2-128-128, Gaussian, T = 40, batch 128, chain of 2000
Training: examples/s of loss, gradients and an Adam step, t drawn per example. Chain:
reverse steps/s for the whole batch of chains. "GF/s" counts the model's multiply-adds (the
readout over the basis functions with a weight above zero per row in training (walkback; the
PyTorch peer computes all J, as the original code); the basis-mixed readout, K per unit, in
the chain, where all rows share t); "sgemm frac" divides it by the machine's best sgemm rate
on (rows, 500) x (500, 500) measured in the same run (the faster of NumPy's sgemm and
walkback's packed kernel), the roofline for these products.

    python benchmarks/diffusion.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb

from _common import (
    markdown_table,
    print_header,
    race,
    save_rows,
    sgemm_rate,
    torch_peer,
)

CONFIGS = {
    "mnist": dict(D=784, hidden=(500, 500), kind="gaussian", T=1000, batch=512, chains=100),
    "heartbeat": dict(D=20, hidden=(512, 512), kind="binomial", T=2000, batch=512, chains=1000),
    "swiss": dict(D=2, hidden=(128, 128), kind="gaussian", T=40, batch=128, chains=2000),
}
J, BATCHES = 10, 4


def make(cfg):
    m = wb.Diffusion(
        cfg["D"], steps=cfg["T"], kind=cfg["kind"], hidden=cfg["hidden"], basis=J, seed=0
    )
    rng = np.random.default_rng(1)
    shapes = m.param_shapes()
    m.set_params(Wout=rng.normal(0, 0.01, shapes["Wout"]))
    if cfg["kind"] == "gaussian":
        m.set_scaling(1.0, 0.0)
    return m


def data(cfg, n):
    rng = np.random.default_rng(0)
    if cfg["kind"] == "gaussian":
        return rng.normal(size=(n, cfg["D"])).astype(np.float32)
    return (rng.random((n, cfg["D"])) < 0.3).astype(np.float32)


def macs(cfg, rows, train, nnz):
    widths = (cfg["D"], *cfg["hidden"])
    k = 2 if cfg["kind"] == "gaussian" else 1
    dense = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    readout = widths[-1] * cfg["D"] * k * (nnz if train else 1)
    # training: forward, the input-side gradients (not of layer 1) and the weight gradients
    first = widths[0] * widths[1]
    return rows * ((3 * (dense + readout) - first) if train else (dense + readout))


class TorchDiffusion:
    """The same model in PyTorch eager: leaky ReLU (0.05) stack, the readout of J coefficients
    per unit and k, mixed by the temporal basis at each row's t, the closed-form KL."""

    def __init__(self, torch, model):
        self.torch, self.m = torch, model
        p = model.get_params()
        self.params = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
        self.basis = torch.tensor(model.temporal_basis, dtype=torch.float32)
        self.beta = torch.tensor(model.betas, dtype=torch.float32)
        ab = model.alphabar
        self.ab = torch.tensor(ab, dtype=torch.float32)
        self.ab_prev = torch.tensor(np.concatenate([[1.0], ab[:-1]]), dtype=torch.float32)
        self.L = len(model.hidden)

    def net(self, x):
        F, p = self.torch.nn.functional, self.params
        h = x
        for i in range(1, self.L + 1):
            h = F.leaky_relu(h @ p[f"W{i}"] + p[f"b{i}"], 0.05)
        return h

    def loss(self, x0):
        torch, m = self.torch, self.m
        n, d, k = x0.shape[0], m.visible, m._k
        T = m.steps
        t = torch.randint(2, T + 1, (n,))
        beta, ab, abp = self.beta[t - 1, None], self.ab[t - 1, None], self.ab_prev[t - 1, None]
        if m.kind == "gaussian":
            x0 = x0 + (torch.rand_like(x0) - 0.5) * m.dequantize
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn_like(x0)
        else:
            xt = (torch.rand_like(x0) < ab * x0 + (1 - ab) / 2).float()
        h = self.net(xt)
        z = (h @ self.params["Wout"] + self.params["bout"]).view(n, J, d, k)
        c = torch.einsum("njdk,nj->ndk", z, self.basis[t - 1])
        if m.kind == "gaussian":
            alpha = 1 - beta
            lam = 1 / (1 - abp) + alpha / beta
            vq = 1 / lam
            mq = vq * (abp.sqrt() * x0 / (1 - abp) + alpha.sqrt() * xt / beta)
            mu = xt * alpha.sqrt() + c[..., 0] * beta.sqrt()
            a = c[..., 1] / math.sqrt(T) + torch.log(beta / (1 - beta))
            logv = -torch.nn.functional.softplus(-a)
            kl = 0.5 * (logv - vq.log() + (vq + (mq - mu) ** 2) / logv.exp() - 1)
        else:
            prior = abp * x0 + (1 - abp) / 2
            half = beta / 2
            l1 = torch.where(xt > 0.5, 1 - half, half)
            l0 = torch.where(xt > 0.5, half, 1 - half)
            q = prior * l1 / (prior * l1 + (1 - prior) * l0)
            lf = torch.log(1 - half) - torch.log(half)
            a = c[..., 0] + torch.where(xt > 0.5, lf, -lf)
            lp, l1p = -torch.nn.functional.softplus(-a), -torch.nn.functional.softplus(a)
            kl = q * (q.log() - lp) + (1 - q) * ((1 - q).log() - l1p)
        return (T - 1) * kl.sum(1).mean()

    def train(self, x, batch):
        torch = self.torch
        opt = torch.optim.Adam(self.params.values(), lr=1e-4)
        xt = torch.tensor(x)

        def run():
            for b in range(0, len(xt), batch):
                opt.zero_grad()
                self.loss(xt[b : b + batch]).backward()
                opt.step()

        return run

    def chain(self, n):
        torch, m = self.torch, self.m
        d, k, T = m.visible, m._k, m.steps
        p = {key: v.detach() for key, v in self.params.items()}
        h_last = p["Wout"].shape[0]
        wout = p["Wout"].view(h_last, J, d * k).transpose(1, 2)
        bout = p["bout"].view(J, d * k).t()
        F = torch.nn.functional

        @torch.no_grad()
        def run():
            x = torch.randn(n, d) if m.kind == "gaussian" else (torch.rand(n, d) < 0.5).float()
            for t in range(T, 0, -1):
                g = self.basis[t - 1]
                w_eff, b_eff = wout @ g, bout @ g
                h = x
                for i in range(1, self.L + 1):
                    h = F.leaky_relu(h @ p[f"W{i}"] + p[f"b{i}"], 0.05)
                o = (h @ w_eff + b_eff).view(n, d, k)
                beta = float(m.betas[t - 1])
                if m.kind == "gaussian":
                    mu = x * math.sqrt(1 - beta) + o[..., 0] * math.sqrt(beta)
                    var = torch.sigmoid(o[..., 1] / math.sqrt(T) + math.log(beta / (1 - beta)))
                    x = mu + var.sqrt() * torch.randn_like(mu)
                else:
                    half = beta / 2
                    lf = math.log(1 - half) - math.log(half) if half < 0.5 else 0.0
                    pr = torch.sigmoid(o[..., 0] + torch.where(x > 0.5, lf, -lf))
                    x = (torch.rand_like(pr) < pr).float()
            return x

        return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one round, fewer chain steps")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "diffusion.json"))
    args = ap.parse_args()
    torch = torch_peer()
    rounds = 1 if args.quick else args.rounds
    print_header(torch, wb, np)
    rows, records = [], []
    for name, cfg in CONFIGS.items():
        model = make(cfg)
        x = data(cfg, cfg["batch"] * BATCHES)
        opt = wb.Adam(lr=1e-4)
        peers = {
            "train": {
                "walkback": lambda m=model, x=x, o=opt, b=cfg["batch"]: m.fit(
                    x, epochs=1, batch_size=b, optimizer=o, progress=False, seed=1
                )
            },
            "chain": {"walkback": lambda m=model, n=cfg["chains"]: m.sample(n, seed=1)},
        }
        if torch is not None:
            tm = TorchDiffusion(torch, model)
            peers["train"]["torch"] = tm.train(x, cfg["batch"])
            peers["chain"]["torch"] = tm.chain(cfg["chains"])
        for what, fns in peers.items():
            best = race(fns, rounds, min_time=0.5)
            if what == "train":
                n, unit, r = len(x), "examples/s", cfg["batch"]
                nnz = float((model.temporal_basis > 0).sum(axis=1).mean())
                work = macs(cfg, len(x), True, nnz)
            else:
                n, unit, r = cfg["T"], "steps/s", cfg["chains"]
                work = macs(cfg, cfg["chains"] * cfg["T"], False, 1)
            roof = sgemm_rate(min(r, 4096), 500, 500)
            wb_rate = n / best["walkback"]
            pt_rate = n / best["torch"] if "torch" in best else None
            gf = 2 * work / best["walkback"] / 1e9
            key = f"{name} {what}"
            records.append(
                dict(
                    workload=key,
                    unit=unit,
                    walkback=wb_rate,
                    torch=pt_rate,
                    walkback_gflops=gf,
                    numpy_sgemm_gflops=roof,
                )
            )
            rows.append(
                [
                    key,
                    unit,
                    f"{wb_rate:,.1f}",
                    f"{pt_rate:,.1f}" if pt_rate else "-",
                    f"{wb_rate / pt_rate:.2f}x" if pt_rate else "-",
                    f"{gf:.0f}",
                    f"{gf / roof:.2f}",
                ]
            )
            print(
                f"  {key}: walkback {wb_rate:,.1f} {unit}"
                + (f", torch {pt_rate:,.1f}" if pt_rate else ""),
                flush=True,
            )
    print()
    headers = [
        "workload",
        "unit",
        "walkback",
        "PyTorch eager",
        "vs PyTorch",
        "walkback GF/s",
        "sgemm frac",
    ]
    print(markdown_table(headers, rows))
    save_rows(args.json, records)


if __name__ == "__main__":
    main()
