"""GSN throughput: walkback's GSN (training and chain sampling) vs the same model in PyTorch
eager (autograd + torch.optim.SGD with momentum), CPU.

The paper's MNIST GSN (Bengio et al. 2014): 784-1500-1500-1500 tanh, tied weights,
salt-and-pepper 0.4 on the input, Gaussian noise 2.0 before and after every hidden activation,
Bernoulli visibles, 6 walk-back steps (2L), minibatches of 100, SGD with momentum 0.5. Data:
synthetic binary rows (20% ones). Training: examples/s over a few batches (one fit epoch).
Chain: steps/s of a batch of B chains (B = 1 and 100), hidden state carried, no gradients.
"GF/s" is the multiply-adds the model needs (walkback's count, which skips zero states and, in
training, the layers that cannot reach a counted reconstruction) over the time; "sgemm frac"
divides it by the machine's best sgemm rate for the same row count measured in the same run (the
faster of NumPy's sgemm and walkback's packed kernel; for B = 1 the rate of NumPy's GEMV over
the same weights), the roofline for these products.

    python benchmarks/gsn.py [--quick]
"""

from __future__ import annotations

import argparse
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

D, HIDDEN, K, P, NOISE = 784, (1500, 1500, 1500), 6, 0.4, 2.0
LR, MOMENTUM = 0.01, 0.5
BATCH, BATCHES = 100, 4


def make_model():
    return wb.GSN(
        D,
        list(HIDDEN),
        input_noise=wb.SaltAndPepper(P),
        hidden_noise=wb.GaussianNoise(NOISE, NOISE),
        noiseless_h1=False,  # noise on every layer, as the PyTorch peer
        walkbacks=K,
        seed=0,
    )


def walkback_train(model, x):
    opt = wb.SGD(lr=LR, momentum=MOMENTUM)
    return lambda: model.fit(x, epochs=1, batch_size=BATCH, optimizer=opt, progress=False, seed=1)


def walkback_chain(model, x0, steps):
    return lambda: model.sample(x0=x0, steps=steps, seed=1)


class TorchGSN:
    """The same chain step in PyTorch eager; zero layers before the first step are skipped,
    as walkback does."""

    def __init__(self, torch, params):
        self.t = torch
        L = len(HIDDEN)
        self.W = [None] + [
            torch.tensor(params[f"W{i}"], requires_grad=True) for i in range(1, L + 1)
        ]
        self.b = [torch.tensor(params[f"b{i}"], requires_grad=True) for i in range(L + 1)]
        self.g = torch.Generator().manual_seed(0)
        self.opt = torch.optim.SGD(self.W[1:] + self.b, lr=LR, momentum=MOMENTUM)

    def noisy(self, a):
        t, g = self.t, self.g
        a = a + NOISE * t.randn(a.shape, generator=g)
        return t.tanh(a) + NOISE * t.randn(a.shape, generator=g)

    def step(self, xs, h, last=False):
        """One chain step; ``last``: the walk-back's last step, where only layer 1 and the
        decoder reach the loss (walkback prunes the rest there too)."""
        t, W, b, L = self.t, self.W, self.b, len(HIDDEN)
        u = t.rand(xs.shape, generator=self.g)
        xt = t.where(u < P, (u >= P / 2).float(), xs)
        new = list(h)
        for layer in range(1, 2 if last else L + 1, 2):
            below = xt if layer == 1 else h[layer - 1]
            a = b[layer] if below is None else t.addmm(b[layer], below, W[layer])
            if layer < L and h[layer + 1] is not None:
                a = a + h[layer + 1] @ W[layer + 1].t()
            if a.dim() == 1:
                a = a.expand(xs.shape[0], -1)
            new[layer] = self.noisy(a)
        for layer in range(2, 1 if last else L + 1, 2):
            a = t.addmm(b[layer], new[layer - 1], W[layer])
            if layer < L:
                a = a + new[layer + 1] @ W[layer + 1].t()
            new[layer] = self.noisy(a)
        o = t.addmm(b[0], new[1], W[1].t())
        return o, new

    def train(self, x):
        t = self.t
        data = t.from_numpy(x)
        bce = t.nn.functional.binary_cross_entropy_with_logits

        def run():
            perm = t.randperm(len(data), generator=self.g)
            for i in range(0, len(data), BATCH):
                xb = data[perm[i : i + BATCH]]
                xs, h, loss = xb, [None] * (len(HIDDEN) + 2), 0
                for j in range(K):
                    o, h = self.step(xs, h, last=j == K - 1)
                    loss = loss + bce(o, xb, reduction="sum") / len(xb)
                    if j < K - 1:  # the last step's sample is never used (walkback draws none)
                        with t.no_grad():
                            xs = (t.rand(xs.shape, generator=self.g) < t.sigmoid(o)).float()
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()

        return run

    def chain(self, x0, steps):
        t = self.t

        def run():
            with t.no_grad():
                xs = t.from_numpy(x0)
                h = [None] + [t.zeros(len(x0), n) for n in HIDDEN] + [None]
                for _ in range(steps):
                    o, h = self.step(xs, h)
                    xs = (t.rand(xs.shape, generator=self.g) < t.sigmoid(o)).float()

        return run


def chain_macs():
    """Multiply-adds per row of one chain step (the hidden state is carried)."""
    d, (a, b, c) = D, HIDDEN
    return d * a + a * b + b * c + (a * b + b * c) + a * d


def train_macs():
    """Multiply-adds per row of one walk-back batch: the forward (zero states skipped, layers 2
    and 3 of the last step pruned), the backward propagation (all but the x~ W1 terms) and the
    weight gradients (one per forward term)."""
    d, (a, b, c) = D, HIDDEN
    first = d * a + (a * b + b * c) + a * d  # step 0: h2, h3 of the previous step are zero
    middle = chain_macs()
    last = d * a + a * b + a * d  # only layer 1 and the decoder reach the last loss term
    fwd = first + (K - 2) * middle + last
    return 3 * fwd - K * d * a


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "gsn.json"))
    args = ap.parse_args()
    torch = torch_peer()
    rounds = 1 if args.quick else args.rounds
    print_header(torch, wb, np)
    model = make_model()
    rng = np.random.default_rng(0)
    x = (rng.random((BATCH * BATCHES, D)) < 0.2).astype(np.float32)
    work = {"train": (BATCH * BATCHES, "examples/s")}
    macs = {"train": BATCH * BATCHES * train_macs()}
    rates = {r: sgemm_rate(r, HIDDEN[0], HIDDEN[1]) for r in (1, BATCH)}
    print(
        "  best sgemm (NumPy's or walkback's packed kernel), (rows, 1500) x (1500, 1500): "
        + ", ".join(f"{r} rows {g:.0f} GF/s" for r, g in rates.items())
    )
    peers = {"train": {"walkback": walkback_train(model, x)}}
    # The chains sample a model of their own, which the training race does not move: both
    # peers sample the same (initial) parameters.
    chain_model = make_model()
    for b, steps in ((1, 100), (100, 20)):
        x0 = np.ascontiguousarray(x[:b])
        key = f"chain B={b}"
        work[key] = (steps, "steps/s")
        macs[key] = b * steps * chain_macs()
        peers[key] = {"walkback": walkback_chain(chain_model, x0, steps)}
        if torch is not None:
            peers[key]["torch"] = TorchGSN(torch, chain_model.get_params()).chain(x0, steps)
    if torch is not None:
        peers["train"]["torch"] = TorchGSN(torch, model.get_params()).train(x)
    rows, records = [], []
    for key, fns in peers.items():
        best = race(fns, rounds, min_time=0.5)
        n, unit = work[key]
        wb_rate = n / best["walkback"]
        pt_rate = n / best["torch"] if "torch" in best else None
        gf_wb = 2 * macs[key] / best["walkback"] / 1e9
        gf_pt = 2 * macs[key] / best["torch"] / 1e9 if pt_rate else None
        roof = rates[1 if key == "chain B=1" else BATCH]
        records.append(
            dict(
                workload=key,
                unit=unit,
                walkback=wb_rate,
                torch=pt_rate,
                walkback_gflops=gf_wb,
                torch_gflops=gf_pt,
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
                f"{gf_wb:.0f}",
                f"{gf_wb / roof:.2f}",
                f"{gf_pt / roof:.2f}" if pt_rate else "-",
            ]
        )
        print(
            f"  {key}: walkback {wb_rate:,.1f} {unit}"
            + (f", torch {pt_rate:,.1f}" if pt_rate else ""),
            flush=True,
        )
    print()
    headers = ["workload", "unit", "walkback", "PyTorch eager", "vs PyTorch", "walkback GF/s"]
    print(markdown_table(headers + ["sgemm frac walkback", "sgemm frac PyTorch"], rows))
    save_rows(args.json, records)


if __name__ == "__main__":
    main()
