"""A/B timing of builds of walkback on this CPU: one script run under each build's
PYTHONPATH, in a fresh process, in a new random order every round.

On these VMs a fixed order lies: the second of two identical builds ran up to 5% slower, round
after round (benchmarks/RESULTS.md, twelfth session). A random order per round, medians and
paired ratios against the first build take that bias out.

The script's last line of output gives the time (lower is better): the number before "ms" (or
"ms/step" ...), else the line's last number.

    python benchmarks/ab.py --rounds 6 /tmp/old_site installed -- my_timing.py 256 1000

"installed" stands for the build installed in this Python (no PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys

NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
TIMED = re.compile(rf"({NUMBER})\s+(?:ms\b|ms/)")


def time_of(output: str) -> float:
    """From the output's last line: the number before "ms" (or "ms/..."), else its last
    number."""
    lines = output.strip().splitlines()
    if not lines:
        raise ValueError("the script printed nothing")
    last = lines[-1]
    m = TIMED.search(last)
    if m:
        return float(m.group(1))
    numbers = re.findall(NUMBER, last)
    if not numbers:
        raise ValueError(f"no number on the script's last line: {last!r}")
    return float(numbers[-1])


def run(site: str, command: list[str]) -> float:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # "installed" means no other build on the path
    if site != "installed":
        env["PYTHONPATH"] = site
    out = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{site}: the script failed (exit {out.returncode})")
    return time_of(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sites", nargs="+", help='PYTHONPATH of each build, or "installed"')
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    argv = sys.argv[1:]
    if "--" not in argv:
        ap.error("give the script to time after --")
    cut = argv.index("--")
    args, command = ap.parse_args(argv[:cut]), argv[cut + 1 :]
    if not command:
        ap.error("give the script to time after --")
    rng = random.Random(args.seed)
    sites = args.sites  # the same site twice is an A/A test: each keeps its own times
    times = [[] for _ in sites]
    for r in range(args.rounds):
        order = list(range(len(sites)))
        rng.shuffle(order)
        for i in order:
            times[i].append(run(sites[i], command))
        now = "  ".join(f"{s}={t[-1]:.4g}" for s, t in zip(sites, times, strict=True))
        print(f"round {r + 1}: {now}")
    for s, t in zip(sites, times, strict=True):
        ratios = [b / a for a, b in zip(times[0], t, strict=True)]
        print(
            f"{s}: median {statistics.median(t):.4g}, min {min(t):.4g}, "
            f"median ratio to {sites[0]} {statistics.median(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
