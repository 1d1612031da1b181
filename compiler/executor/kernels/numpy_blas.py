"""numpy's own ``cblas_sgemm``, callable from Numba code without the interpreter.

Numba's ``np.dot`` calls SciPy's BLAS, another build of OpenBLAS than the one numpy's
``matmul`` calls. A kernel that must give the bits of a numpy product (a fused pair of
nodes against the nodes run apart) calls the same function with the same arguments:
:func:`sgemm` takes its address (found once, in the library numpy links, by
``threadpoolctl``) as an argument, so the compiled code holds no address and Numba can
cache it. :func:`address` is 0 where the library or the function is not found (numpy
built on another BLAS), or where a small product through it does not give numpy's bits:
callers then keep the interpreter's path.
"""

from __future__ import annotations

import ctypes

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# (symbol, 64-bit integers) in the order tried: numpy's wheels link scipy-openblas64
SYMBOLS = (("scipy_cblas_sgemm64_", True), ("cblas_sgemm64_", True),
           ("scipy_cblas_sgemm", False), ("cblas_sgemm", False))
ROW_MAJOR, NO_TRANS = 101, 111  # CBLAS enumerations

_found: tuple[int, bool] | None = None


def address() -> tuple[int, bool]:
    """``(address of numpy's cblas_sgemm, whether it takes 64-bit integers)``, or
    ``(0, False)``: found once, and kept only when a product through it has the bits of
    ``numpy.matmul``'s."""
    global _found
    if _found is None:
        _found = _locate()
        if _found[0] and not _agrees(*_found):
            _found = (0, False)
    return _found


def _agrees(fn: int, wide: bool) -> bool:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 53)).astype(np.float32)
    b = rng.standard_normal((53, 29)).astype(np.float32)
    c = np.full((37, 29), np.nan, np.float32)
    sgemm(fn, wide, 37, 29, 53, a.reshape(-1), 0, 53, b.reshape(-1), 0, 29, c.reshape(-1), 0,
          29)
    return c.tobytes() == np.matmul(a, b).tobytes()


def _wide_build() -> bool:
    """Whether numpy's BLAS was built with 64-bit integers (``USE64BITINT``)."""
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # (an older numpy: no such report)
        return False
    return "USE64BITINT" in str(config.get("openblas configuration", ""))


def _locate() -> tuple[int, bool]:
    try:
        from threadpoolctl import threadpool_info

        paths = [i["filepath"] for i in threadpool_info()
                 if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
    except Exception:  # (no threadpoolctl, or it failed: keep the interpreter's path)
        return 0, False
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, wide in SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is not None:  # (a name without the suffix: the build says which)
                return ctypes.cast(fn, ctypes.c_void_p).value or 0, wide or _wide_build()
    return 0, False


def _call(wide: bool):
    index = ir.IntType(64 if wide else 32)

    @intrinsic
    def call(typingctx, fn, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc):
        sig = types.void(fn, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc)

        def codegen(context, builder, signature, args):
            f32, i32 = ir.FloatType(), ir.IntType(32)
            ptr = ir.PointerType(f32)
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, index, index, index, f32,
                                                   ptr, index, ptr, index, f32, ptr, index])
            target = builder.inttoptr(args[0], fnty.as_pointer())

            def data(pos, off):
                arr = context.make_array(signature.args[pos])(context, builder, args[pos])
                return builder.gep(arr.data, [args[off]])

            def size(pos):
                return builder.trunc(args[pos], index) if not wide else args[pos]

            builder.call(target, [ir.Constant(i32, ROW_MAJOR), ir.Constant(i32, NO_TRANS),
                                  ir.Constant(i32, NO_TRANS), size(1), size(2), size(3),
                                  ir.Constant(f32, 1.0), data(4, 5), size(6), data(7, 8),
                                  size(9), ir.Constant(f32, 0.0), data(10, 11), size(12)])
            return context.get_dummy_value()

        return sig, codegen

    return call


_call64, _call32 = _call(True), _call(False)


@nb.njit(cache=True, nogil=True)
def sgemm(fn, wide, m, n, k, a, aoff, lda, b, boff, ldb, c, coff, ldc):
    """``c[coff:]`` (m rows of ldc) = ``a[aoff:]`` (m x k, rows of lda) times
    ``b[boff:]`` (k x n, rows of ldb), float32 row-major, by numpy's ``cblas_sgemm`` at
    address ``fn`` (:func:`address`) as ``numpy.matmul`` calls it."""
    if wide:
        _call64(fn, np.int64(m), np.int64(n), np.int64(k), a, np.int64(aoff), np.int64(lda),
                b, np.int64(boff), np.int64(ldb), c, np.int64(coff), np.int64(ldc))
    else:
        _call32(fn, np.int64(m), np.int64(n), np.int64(k), a, np.int64(aoff), np.int64(lda),
                b, np.int64(boff), np.int64(ldb), c, np.int64(coff), np.int64(ldc))
