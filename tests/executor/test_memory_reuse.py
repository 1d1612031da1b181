"""A process that runs npuc's executor reuses the blocks a run freed in its next run."""

import os
import platform
import subprocess
import sys

import pytest

PROBE = r"""
import resource
import numpy as np
import npuc
from onnx import TensorProto, helper

def faults_of_a_fresh_block(size):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(size)
    block[::4096] = bytes(size // 4096)  # one write a page
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, block

t = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in "xy"]
model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                            t[:1], t[1:]))
npuc.execute(npuc.load_model(model), {"x": np.ones(4, np.float32)})
size = 8 << 20  # above glibc's default mmap threshold, below the one the executor sets
_, block = faults_of_a_fresh_block(size)
del block
faults, block = faults_of_a_fresh_block(size)
print(faults)
"""


def _faults(env_value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "NPUC_REUSE_MEMORY"}
    if env_value is not None:
        env["NPUC_REUSE_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_executor_keeps_freed_blocks_for_the_next_run_unless_told_not_to():
    pages = (8 << 20) // 4096
    assert _faults(None) < pages // 8  # reused: no fresh pages
    assert _faults("0") >= pages // 2  # glibc's default: unmapped, faulted in again
