"""No CUDA kernel of walkback keeps an array in local memory.

A register array indexed at run time (a loop bound that is not a constant, a pointer chosen
between two arrays) goes to the stack, in local memory: every access is then a load or store
through the cache. On an H100 removing the stack frames of the elementwise kernels made the
B = 4096 chain and training steps 0.5-2% faster (benchmarks/RESULTS.md). ptxas reports each
kernel's stack frame; this test compiles every file of cuda/ the way CMakeLists.txt does, for
sm_80 and sm_90, and asserts that every frame is 0 bytes. It needs nvcc (CI has it, with a host
compiler: a failing compile fails the test, as it fails the build), not a GPU.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "cuda").glob("*.cu"))
NVCC = shutil.which("nvcc") or (
    "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None
)

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found: no CUDA code to inspect")

FRAME = re.compile(r"Function properties for (\S+)\n\s+(\d+) bytes stack frame")


def ptxas_report(source: Path, tmp: Path, arch: str) -> str:
    out = subprocess.run(
        [
            NVCC,
            "-std=c++20",
            f"-arch={arch}",
            "--fmad=false",
            f"-I{ROOT / 'csrc'}",
            f"-I{ROOT}",
            "-Xptxas",
            "-v",
            "-c",
            str(source),
            "-o",
            str(tmp / f"{source.stem}_{arch}.o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"nvcc failed on {source.name}:\n{out.stderr[-3000:]}"
    return out.stderr


def test_the_sources_are_found():
    names = {p.name for p in SOURCES}
    assert {"dae_chain.cu", "dae_train.cu", "corrupt.cu"} <= names, names


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])  # the real architectures CMake builds
def test_no_kernel_has_a_stack_frame(tmp_path, arch):
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda s: ptxas_report(s, tmp_path, arch), SOURCES))
    frames = [(m.group(1), int(m.group(2))) for r in reports for m in FRAME.finditer(r)]
    # The elementwise kernels are there (the report was read, not an empty string).
    assert any("walkback_epilogue_kernel" in name for name, _ in frames), frames[:5]
    assert any("chain_epilogue_kernel" in name for name, _ in frames)
    assert len(frames) >= 20
    with_stack = [f"{name}: {n} bytes" for name, n in frames if n > 0]
    assert not with_stack, "kernels with a stack frame (local memory):\n" + "\n".join(with_stack)
