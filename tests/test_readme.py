"""The README's Python examples run: each block in order, in one namespace (later blocks use
earlier names), with small data and fewer epochs and steps so that the whole file takes
seconds. The CuPy block runs in tests/gpu's place: it is skipped here."""

import os
import re

import numpy as np
import pytest

import walkback as wb

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")

# Sizes that make the examples fast; the calls themselves are as written.
SMALLER = [
    (r"epochs=\d+", "epochs=1"),
    (r"pretrain_epochs=\d+", "pretrain_epochs=1"),
    (r"shaping_epochs=\d+", "shaping_epochs=1"),
    (r"steps=1000\b", "steps=40"),
    (r"steps=10_000", "steps=200"),
    (r"n_samples=10_000", "n_samples=200"),
    (r"steps=2000", "steps=40"),
    (r"make_hmm_sequences\(2500\)", "make_hmm_sequences(40)"),
    (r"\[:2000\]", "[:30]"),
    (r"\[2000:\]", "[30:]"),
    (r"hidden=\[1500, 1500, 1500\]", "hidden=[60, 60, 60]"),
    (r"hidden=\(1000, 1000\)", "hidden=(60, 60)"),
    (r"hidden=\(500, 500\)", "hidden=(60,)"),
    (r"every=100\)", "every=10)"),
]


def python_blocks():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_readme_examples_run():
    blocks = python_blocks()
    assert len(blocks) >= 7
    rng = np.random.default_rng(0)
    binary = lambda n, d: (rng.random((n, d)) < 0.3).astype(np.float32)  # noqa: E731
    x_digits, y_digits = wb.data.load_digits()
    ns = dict(
        np=np,
        wb=wb,
        x_train=binary(40, 784),
        x_test=binary(10, 784),
        x_valid=binary(10, 784),
        x_digits=(x_digits[:60] > 0.5).astype(np.float32),
        labels=y_digits[:60],
        x_digits_test=(x_digits[60:80] > 0.5).astype(np.float32),
        x_binary=binary(20, 8),
    )
    ran = 0
    for i, block in enumerate(blocks):
        if "import cupy" in block:
            continue
        for pattern, repl in SMALLER:
            block = re.sub(pattern, repl, block)
        try:
            exec(compile(block, f"README block {i + 1}", "exec"), ns)  # noqa: S102
        except Exception as e:  # noqa: BLE001 - name the block that failed
            pytest.fail(f"README python block {i + 1} failed: {e!r}\n{block}")
        ran += 1
    assert ran == len(blocks) - 1
