"""Float32 matrix products by register tiles, with the epilogue applied in registers.

The convolutions of a float32-products run multiply a block of weight rows by a block of
columns (the image itself for a 1x1 convolution, gathered columns otherwise). OpenBLAS
packs both operands on every call and is slow on the shapes convolutions have: few input
channels (K = 16 to 32), few output channels (M = 24), or short rows (N = 49 for a 7x7
map): 14-17 GFLOP/s on one core where it reaches 35-40 on square products. Here a
product is computed in register tiles of :data:`MR` rows by :data:`NR` columns
(twelve 8-lane AVX vectors), each the exact code of :func:`_tile` written in LLVM IR:
the weights are read in place, row by row (their rows are the A operand, broadcast one
value at a time), the columns in place with any row stride, and the bias, the residual
and the clamp are applied to the finished tile before it is stored, so the result is
written once.

Every element of the result is the same chain of fused multiply-adds, ``acc = fma(a[i,
k], b[k, j], acc)`` for k = 0, 1, ... from +0.0, whatever tile, block or thread it is
computed in: the bits depend on K alone, never on the cut or the thread count. The
epilogue is the float32 arithmetic of :func:`.epilogue.bias_residual_clamp`: ``(acc +
bias) + residual``, then the clamp of :func:`.binary.clip_value`.

:func:`taps` is the vector step of a depthwise convolution of small planes
(:func:`.conv._depthwise_lanes`): eight channels of an output summed over the kernel's
taps at once.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .binary import clip_value

MR, NR = 4, 24  # a register tile: MR rows by NR columns (MR * NR / 8 = 12 accumulators)
NR_TAIL = 8  # the columns of a tile of the last columns of a block (one vector per row)
KC = 128  # the sum is cut in blocks of KC terms: NR columns of KC rows of B stay in L1
NB = 8 * NR  # the columns of a block: KC x NB of B in L2
LANES = 8

CONTINUE, BIAS, RESIDUAL, CLAMP = 1, 2, 4, 8  # flags of a tile


def _tile_kernel(mr: int, nr: int):
    """The intrinsic ``tile(a, aoff, lda, b, boff, ldb, c, coff, ldc, k, flags, bias,
    bo, res, lo, hi)``: for i < mr, j < nr,

        acc = c[coff + i*ldc + j] if flags & CONTINUE else +0.0
        acc = fma(a[aoff + i*lda + t], b[boff + t*ldb + j], acc)   for t in 0..k-1
        acc = acc + bias[bo + i]                 if flags & BIAS
        acc = acc + res[coff + i*ldc + j]        if flags & RESIDUAL
        acc = clip_value(acc, lo, hi)            if flags & CLAMP
        c[coff + i*ldc + j] = acc
    """
    vectors = nr // LANES

    @intrinsic
    def tile(typingctx, a, aoff, lda, b, boff, ldb, c, coff, ldc, k, flags, bias, bo, res,
             lo, hi):
        sig = types.void(a, aoff, lda, b, boff, ldb, c, coff, ldc, k, flags, bias, bo, res,
                         lo, hi)

        def codegen(context, builder, signature, args):
            (a_, aoff_, lda_, b_, boff_, ldb_, c_, coff_, ldc_, k_, flags_, bias_, bo_, res_,
             lo_, hi_) = args
            i64, i32 = ir.IntType(64), ir.IntType(32)
            vt = ir.VectorType(ir.FloatType(), LANES)
            vptr = vt.as_pointer()
            tys = signature.args

            def data(pos, value):
                return context.make_array(tys[pos])(context, builder, value).data

            pa, pb, pc, pbias, pres = (data(0, a_), data(3, b_), data(6, c_), data(11, bias_),
                                       data(13, res_))
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vt, [vt, vt, vt]), "llvm.fma.v8f32")
            undef = ir.Constant(vt, ir.Undefined)
            lane0 = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)

            def splat(value):
                return builder.shuffle_vector(
                    builder.insert_element(undef, value, ir.Constant(i32, 0)), undef, lane0)

            def const(v):
                return ir.Constant(i64, v)

            def flag(bit):
                return builder.icmp_signed("!=", builder.and_(flags_, const(bit)), const(0))

            with builder.goto_entry_block():  # allocas of the entry block become registers
                acc = [[builder.alloca(vt) for _ in range(vectors)] for _ in range(mr)]
            where = [[builder.bitcast(builder.gep(pc, [builder.add(
                coff_, builder.add(builder.mul(const(i), ldc_), const(q * LANES)))]), vptr)
                for q in range(vectors)] for i in range(mr)]
            zero = ir.Constant(vt, [0.0] * LANES)
            more = flag(CONTINUE)
            with builder.if_else(more) as (then, otherwise):
                with then:
                    for i in range(mr):
                        for q in range(vectors):
                            builder.store(builder.load(where[i][q], align=4), acc[i][q])
                with otherwise:
                    for i in range(mr):
                        for q in range(vectors):
                            builder.store(zero, acc[i][q])
            def step(t):  # one term of every sum of the tile
                brow = builder.add(boff_, builder.mul(t, ldb_))
                bv = [builder.load(builder.bitcast(builder.gep(pb, [builder.add(
                    brow, const(q * LANES))]), vptr), align=4) for q in range(vectors)]
                for i in range(mr):
                    at = builder.add(builder.add(aoff_, builder.mul(const(i), lda_)), t)
                    av = splat(builder.load(builder.gep(pa, [at])))
                    for q in range(vectors):
                        builder.store(builder.call(fma, [av, bv[q], builder.load(acc[i][q])]),
                                      acc[i][q])

            with cgutils.for_range(builder, k_) as loop:
                step(loop.index)
            with builder.if_then(flag(BIAS)):
                for i in range(mr):
                    bv = splat(builder.load(builder.gep(pbias, [builder.add(bo_, const(i))])))
                    for q in range(vectors):
                        builder.store(builder.fadd(builder.load(acc[i][q]), bv), acc[i][q])
            with builder.if_then(flag(RESIDUAL)):
                for i in range(mr):
                    for q in range(vectors):
                        r = builder.bitcast(builder.gep(pres, [builder.add(coff_, builder.add(
                            builder.mul(const(i), ldc_), const(q * LANES)))]), vptr)
                        builder.store(builder.fadd(builder.load(acc[i][q]),
                                                   builder.load(r, align=4)), acc[i][q])
            with builder.if_then(flag(CLAMP)):
                vlo, vhi = splat(lo_), splat(hi_)
                for i in range(mr):
                    for q in range(vectors):
                        v = builder.load(acc[i][q])
                        # clip_value: v stays unless it is below lo (NaN stays), then hi
                        v = builder.select(builder.fcmp_unordered(">", v, vlo), v, vlo)
                        v = builder.select(builder.fcmp_unordered("<", v, vhi), v, vhi)
                        builder.store(v, acc[i][q])
            for i in range(mr):
                for q in range(vectors):
                    builder.store(builder.load(acc[i][q]), where[i][q], align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile = _tile_kernel(MR, NR)
_tail = _tile_kernel(MR, NR_TAIL)


@nb.njit(cache=True, nogil=True)
def gemm(a, aoff, lda, m, k, b, boff, ldb, n, c, coff, ldc, bias, res, lo, hi, flags):
    """``c[coff + i*ldc + j]`` for i < m, j < n = the sum over t < k of ``a[aoff + i*lda
    + t] * b[boff + t*ldb + j]`` (one float32 fma chain per element, see the module),
    then the epilogue of ``flags`` (:data:`BIAS`: ``bias[i]``; :data:`RESIDUAL`:
    ``res`` laid out as ``c``; :data:`CLAMP`: to ``[lo, hi]``). All arrays are 1-D
    float32; ``c`` must not overlap ``a``, ``b`` or ``res``.

    The columns go in blocks of :data:`NB`; a block's rows of B, :data:`KC` at a time,
    are copied into panels of :data:`NR` columns (the last padded with zeros), each
    panel multiplied by every :data:`MR` weight rows while it is in L1. Tiles at the
    block's edges (the last rows when ``m`` is not a multiple of MR, the last columns
    short of :data:`NR_TAIL`) are computed whole into buffers of their own, then
    finished and copied."""
    lo, hi = np.float32(lo), np.float32(hi)
    epi = flags & (BIAS | RESIDUAL | CLAMP)
    mfull = m - m % MR
    mpad = mfull + (MR if m > mfull else 0)
    npan_max = -(-min(n, NB) // NR)
    bp = np.empty(KC * npan_max * NR, np.float32)
    ta = np.zeros(MR * KC, np.float32)  # the last rows' weights, padded with zero rows
    wpad = npan_max * NR
    trows = np.empty(MR * wpad, np.float32)  # the last rows' tiles (ldc = wpad)
    tcols = np.empty(mpad * NR_TAIL, np.float32)  # each row panel's last short tile
    none = bias[:0]
    for j0 in range(0, n, NB):
        w = min(NB, n - j0)
        npan = -(-w // NR)
        chunks = -(-(w - (npan - 1) * NR) // NR_TAIL)  # 8-column tiles of the last panel
        short = w % NR_TAIL  # the width of the last one, when short
        for k0 in range(0, k, KC):
            kc = min(KC, k - k0)
            more = CONTINUE if k0 > 0 else 0
            f = more | (epi if k0 + kc == k else 0)
            _pack(b, boff + k0 * ldb + j0, ldb, kc, w, bp)
            if m > mfull:
                for i in range(m - mfull):
                    for t in range(kc):
                        ta[i * kc + t] = a[aoff + (mfull + i) * lda + k0 + t]
            for p in range(npan):
                po = p * kc * NR
                last = p == npan - 1 and w - p * NR < NR
                for i0 in range(0, mpad, MR):
                    if i0 < mfull:
                        ao, ld = aoff + i0 * lda + k0, lda
                        if not last:
                            _tile(a, ao, ld, bp, po, NR, c, coff + i0 * ldc + j0 + p * NR, ldc,
                                  kc, f, bias, i0, res, lo, hi)
                            continue
                        for q in range(chunks):
                            j = p * NR + q * NR_TAIL
                            if q == chunks - 1 and short:
                                _tail(a, ao, ld, bp, po + q * NR_TAIL, NR, tcols,
                                      i0 * NR_TAIL, NR_TAIL, kc, more, none, 0, none, lo, hi)
                            else:
                                _tail(a, ao, ld, bp, po + q * NR_TAIL, NR, c,
                                      coff + i0 * ldc + j0 + j, ldc, kc, f, bias, i0, res,
                                      lo, hi)
                    else:  # the last rows, whole panels into trows
                        _tile(ta, 0, kc, bp, po, NR, trows, p * NR, wpad, kc, more, none, 0,
                              none, lo, hi)
        # the edge tiles: finished (bias, residual, clamp) and copied
        if short:
            jc = j0 + w - short
            for i0 in range(0, mfull, MR):
                _finish(tcols, i0 * NR_TAIL, NR_TAIL, MR, short, c, coff + i0 * ldc + jc, ldc,
                        bias, i0, res, lo, hi, epi)
        if m > mfull:
            _finish(trows, 0, wpad, m - mfull, w, c, coff + mfull * ldc + j0, ldc, bias,
                    mfull, res, lo, hi, epi)


@nb.njit(cache=True, nogil=True)
def _pack(b, boff, ldb, kc, w, bp):
    """Rows ``t < kc`` of the ``w`` columns at ``b[boff + t*ldb:]`` into panels of NR
    columns: ``bp[(p*kc + t)*NR + j]`` = column ``p*NR + j`` (zero past ``w``)."""
    npan = -(-w // NR)
    for p in range(npan):
        cols = min(NR, w - p * NR)
        for t in range(kc):
            src = b[boff + t * ldb + p * NR:boff + t * ldb + p * NR + cols]
            dst = bp[(p * kc + t) * NR:(p * kc + t + 1) * NR]
            if cols == NR:
                for j in range(NR):
                    dst[j] = src[j]
            else:
                for j in range(cols):
                    dst[j] = src[j]
                for j in range(cols, NR):
                    dst[j] = 0


@nb.njit(cache=True, nogil=True)
def _finish(t, toff, ldt, rows, cols, c, coff, ldc, bias, bo, res, lo, hi, epi):
    """The epilogue of a tile computed into ``t``, stored into ``c``: the float32
    operations of the registers' epilogue, element by element."""
    for i in range(rows):
        for j in range(cols):
            v = t[toff + i * ldt + j]
            if epi & BIAS:
                v = v + bias[bo + i]
            if epi & RESIDUAL:
                v = v + res[coff + i * ldc + j]
            if epi & CLAMP:
                v = clip_value(v, lo, hi)
            c[coff + i * ldc + j] = v


def _taps_kernel(count: int):
    """The intrinsic ``taps(x, xoff, xstep, offs, k, nt, bias, lo, hi, flags, out, ooff)``:
    eight channels of ``count`` outputs of a depthwise convolution, the outputs'
    windows ``xstep`` apart in ``x``, each as a vector:
    ``acc = +0.0; acc = acc + k[8t:8t+8] * x[xoff + p*xstep + offs[t]:][:8]`` for t < nt,
    in order (a product, then a sum: :func:`.conv._depthwise_planes`'s arithmetic, lane
    by lane), then ``+ bias[0:8]`` (:data:`BIAS`) and the clamp (:data:`CLAMP`), stored
    to ``out[ooff + 8p:][:8]``. The outputs' sums are independent chains, which the
    processor overlaps."""

    @intrinsic
    def taps(typingctx, x, xoff, xstep, offs, k, nt, bias, lo, hi, flags, out, ooff):
        sig = types.void(x, xoff, xstep, offs, k, nt, bias, lo, hi, flags, out, ooff)

        def codegen(context, builder, signature, args):
            x_, xoff_, xstep_, offs_, k_, nt_, bias_, lo_, hi_, flags_, out_, ooff_ = args
            i64, i32 = ir.IntType(64), ir.IntType(32)
            vt = ir.VectorType(context.get_value_type(signature.args[0].dtype), LANES)
            vptr = vt.as_pointer()
            tys = signature.args

            def data(pos, value):
                return context.make_array(tys[pos])(context, builder, value).data

            px, po, pk, pb, pout = (data(0, x_), data(3, offs_), data(4, k_), data(6, bias_),
                                    data(10, out_))

            def vload(ptr, at):
                return builder.load(builder.bitcast(builder.gep(ptr, [at]), vptr), align=4)

            def flag(bit):
                return builder.icmp_signed("!=", builder.and_(flags_, ir.Constant(i64, bit)),
                                           ir.Constant(i64, 0))

            with builder.goto_entry_block():
                acc = [builder.alloca(vt) for _ in range(count)]
            for a in acc:
                builder.store(ir.Constant(vt, [0.0] * LANES), a)
            starts = [builder.add(xoff_, builder.mul(xstep_, ir.Constant(i64, p)))
                      for p in range(count)]
            with cgutils.for_range(builder, nt_) as loop:
                t = loop.index
                off = builder.load(builder.gep(po, [t]))
                kv = vload(pk, builder.mul(t, ir.Constant(i64, LANES)))
                for p in range(count):
                    xv = vload(px, builder.add(starts[p], off))
                    builder.store(builder.fadd(builder.load(acc[p]), builder.fmul(kv, xv)),
                                  acc[p])
            with builder.if_then(flag(BIAS)):
                bv = vload(pb, ir.Constant(i64, 0))
                for a in acc:
                    builder.store(builder.fadd(builder.load(a), bv), a)
            with builder.if_then(flag(CLAMP)):
                undef = ir.Constant(vt, ir.Undefined)
                lane0 = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
                vlo, vhi = (builder.shuffle_vector(builder.insert_element(
                    undef, v, ir.Constant(i32, 0)), undef, lane0) for v in (lo_, hi_))
                for a in acc:
                    v = builder.load(a)
                    v = builder.select(builder.fcmp_unordered(">", v, vlo), v, vlo)
                    v = builder.select(builder.fcmp_unordered("<", v, vhi), v, vhi)
                    builder.store(v, a)
            for p, a in enumerate(acc):
                at = builder.add(ooff_, ir.Constant(i64, p * LANES))
                builder.store(builder.load(a), builder.bitcast(builder.gep(pout, [at]), vptr),
                              align=4)
            return context.get_dummy_value()

        return sig, codegen

    return taps


POSITIONS = 4  # outputs of one call of taps
taps = _taps_kernel(POSITIONS)
taps1 = _taps_kernel(1)
