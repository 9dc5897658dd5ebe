"""``walkback demo --model sequence``: the convolutional discriminant GSN (wb.SequenceGSN) on
the offline HMM task, with its accuracy beside the same network's single pass and the Bayes
ceiling, and a picture of predicted against true label tracks."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from .data_sequences import make_hmm_sequences
from .images import save_label_tracks
from .sequence_gsn import SequenceGSN


def demo_sequence(args) -> int:
    print(
        "walkback demo --model sequence: a convolutional discriminant GSN (Zhou & "
        "Troyanskaya 2014) labelling the states of a sticky 8-state HMM"
    )
    d = make_hmm_sequences(700, min_length=100, max_length=200, seed=args.seed)
    tr, te = slice(0, 600), slice(600, 700)
    model = SequenceGSN(42, 8, channels=(32, 32), walkbacks=6, noise=0.5, seed=args.seed)
    epochs = 6 if args.epochs is None else args.epochs
    t0 = time.perf_counter()
    model.fit(
        d.x[tr], d.y[tr], epochs=epochs, batch_size=16, progress=not args.quiet, seed=args.seed
    )
    print(f"  trained {epochs} epochs on 600 sequences in {time.perf_counter() - t0:.0f} s")
    test = dataclasses.replace(d, x=d.x[te], y=d.y[te], lengths=d.lengths[te])
    ok = test.y >= 0
    chain = model.predict(test.x, test.lengths, seed=args.seed)
    single = model.single_pass_proba(test.x, test.lengths).argmax(axis=2)
    bayes = test.posterior_marginals().argmax(axis=2)
    accs = {}
    for name, pred in (("chain", chain), ("single pass", single), ("Bayes", bayes)):
        accs[name] = float(np.mean(pred[ok] == test.y[ok]))
    for name, acc in accs.items():
        print(
            f"  {name:>12}: per-position accuracy {acc:.3f} "
            f"({acc / accs['Bayes']:.3f} of the Bayes ceiling)"
        )
    groups = []
    for i in range(4):
        m = int(test.lengths[i])
        groups.append(
            [
                ("true states", test.y[i, :m]),
                ("GSN chain", chain[i, :m]),
                ("single pass", np.where(ok[i], single[i], -1)[:m]),
                ("Bayes", bayes[i, :m]),
            ]
        )
    paths = {
        "label tracks": os.path.join(args.out, "sequence_tracks.png"),
        "model": os.path.join(args.out, "sequence_gsn.safetensors"),
    }
    save_label_tracks(groups, paths["label tracks"])
    model.save(paths["model"])
    for k, v in paths.items():
        print(f"  {k:>16}: {v}")
    return 0
