"""RMSNorm gives the same bits on a transposed view as on a contiguous copy (a program
reads SRAM buffers, the IR may read views)."""

import numpy as np

from npuc.compiler.executor.kernels import KernelContext, get_kernel


def test_rmsnorm_bits_do_not_depend_on_layout():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, (120, 40)).astype(np.float32).T  # a transposed view
    scale = rng.uniform(0.5, 1.5, 120).astype(np.float32)
    fn = get_kernel("RMSNorm", "npuc")
    attrs = {"axis": -1, "epsilon": 1e-5}
    a = fn([x, scale], attrs, KernelContext())[0]
    b = fn([np.ascontiguousarray(x), scale], attrs, KernelContext())[0]
    assert a.tobytes() == b.tobytes()
