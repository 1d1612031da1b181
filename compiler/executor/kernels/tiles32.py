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
(:func:`.conv_depthwise._depthwise_lanes`): eight channels of an output summed over the kernel's
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
NB = 16 * NR  # the columns of a block at most: KC x NB of B in L2
LANES = 8
INPLACE_ROWS = 32  # products of at most this many rows read B's full panels in place
# (packed, each panel would serve at most 8 tiles: 1-2% of MobileNetV2's run)

CONTINUE, BIAS, RESIDUAL, CLAMP = 1, 2, 4, 8  # flags of a tile


class _IR:
    """What both kernels' code generation needs: array data pointers, vectors of
    :data:`LANES` elements of the arrays' type, flag tests and the clamp."""

    def __init__(self, context, builder, signature, args, dtype):
        self.context, self.builder, self.sig, self.args = context, builder, signature, args
        self.i64, self.i32 = ir.IntType(64), ir.IntType(32)
        self.vt = ir.VectorType(context.get_value_type(dtype), LANES)

    def data(self, pos):
        """The data pointer of argument ``pos`` (an array)."""
        ty = self.sig.args[pos]
        return self.context.make_array(ty)(self.context, self.builder, self.args[pos]).data

    def const(self, v):
        return ir.Constant(self.i64, v)

    def vptr(self, ptr, at):
        """The vector at element ``at`` of the array ``ptr`` points to."""
        return self.builder.bitcast(self.builder.gep(ptr, [at]), self.vt.as_pointer())

    def load(self, ptr, at):
        return self.builder.load(self.vptr(ptr, at), align=4)

    def splat(self, value):
        undef = ir.Constant(self.vt, ir.Undefined)
        lane0 = ir.Constant(ir.VectorType(self.i32, LANES), [0] * LANES)
        b = self.builder
        return b.shuffle_vector(b.insert_element(undef, value, ir.Constant(self.i32, 0)),
                                undef, lane0)

    def flag(self, flags, bit):
        b = self.builder
        return b.icmp_signed("!=", b.and_(flags, self.const(bit)), self.const(0))

    def clamp(self, v, lo, hi):
        """:func:`.binary.clip_value` of each lane: ``v`` stays unless it is below ``lo``
        (NaN stays), then unless it is above ``hi``."""
        b = self.builder
        v = b.select(b.fcmp_unordered(">", v, lo), v, lo)
        return b.select(b.fcmp_unordered("<", v, hi), v, hi)


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
            (_, aoff_, lda_, _, boff_, ldb_, _, coff_, ldc_, k_, flags_, _, bo_, _, lo_,
             hi_) = args
            g = _IR(context, builder, signature, args, signature.args[0].dtype)
            pa, pb, pc, pbias, pres = g.data(0), g.data(3), g.data(6), g.data(11), g.data(13)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(g.vt, [g.vt] * 3), "llvm.fma.v8f32")

            def at(i, q):  # element (i, 8q) of the tile in c (and in res)
                return builder.add(coff_, builder.add(builder.mul(g.const(i), ldc_),
                                                      g.const(q * LANES)))

            with builder.goto_entry_block():  # allocas of the entry block become registers
                acc = [[builder.alloca(g.vt) for _ in range(vectors)] for _ in range(mr)]
            with builder.if_else(g.flag(flags_, CONTINUE)) as (then, otherwise):
                with then:
                    for i in range(mr):
                        for q in range(vectors):
                            builder.store(g.load(pc, at(i, q)), acc[i][q])
                with otherwise:
                    for i in range(mr):
                        for q in range(vectors):
                            builder.store(ir.Constant(g.vt, [0.0] * LANES), acc[i][q])
            with cgutils.for_range(builder, k_) as loop:  # one term of every sum
                t = loop.index
                brow = builder.add(boff_, builder.mul(t, ldb_))
                bv = [g.load(pb, builder.add(brow, g.const(q * LANES))) for q in range(vectors)]
                for i in range(mr):
                    ai = builder.add(builder.add(aoff_, builder.mul(g.const(i), lda_)), t)
                    av = g.splat(builder.load(builder.gep(pa, [ai])))
                    for q in range(vectors):
                        builder.store(builder.call(fma, [av, bv[q], builder.load(acc[i][q])]),
                                      acc[i][q])
            with builder.if_then(g.flag(flags_, BIAS)):
                for i in range(mr):
                    bv = g.splat(builder.load(builder.gep(pbias, [builder.add(bo_,
                                                                              g.const(i))])))
                    for q in range(vectors):
                        builder.store(builder.fadd(builder.load(acc[i][q]), bv), acc[i][q])
            with builder.if_then(g.flag(flags_, RESIDUAL)):
                for i in range(mr):
                    for q in range(vectors):
                        builder.store(builder.fadd(builder.load(acc[i][q]),
                                                   g.load(pres, at(i, q))), acc[i][q])
            with builder.if_then(g.flag(flags_, CLAMP)):
                vlo, vhi = g.splat(lo_), g.splat(hi_)
                for row in acc:
                    for a in row:
                        builder.store(g.clamp(builder.load(a), vlo, vhi), a)
            for i in range(mr):
                for q in range(vectors):
                    builder.store(builder.load(acc[i][q]), g.vptr(pc, at(i, q)), align=4)
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

    The columns go in balanced blocks of at most :data:`NB` (a short last block would
    read all of A again for a few columns); a block's rows of B, :data:`KC` at a time,
    are copied into panels of :data:`NR` columns (the last padded with zeros), each
    panel multiplied by every :data:`MR` weight rows while it is in L1 (with at most
    :data:`INPLACE_ROWS` rows, the full panels are read in place instead). Tiles at the
    block's edges (the last rows when ``m`` is not a multiple of MR, the last columns
    short of :data:`NR_TAIL`) are computed whole into buffers of their own, then
    finished and copied."""
    lo, hi = np.float32(lo), np.float32(hi)
    epi = flags & (BIAS | RESIDUAL | CLAMP)
    mfull = m - m % MR
    mpad = mfull + (MR if m > mfull else 0)
    per = -(-n // max(1, -(-n // NB)))  # the columns in blocks of at most NB, balanced,
    step = max(NR, -(-per // NR) * NR)  # each a whole number of panels but the last
    npan_max = -(-min(n, step) // NR)
    bp = np.empty(KC * npan_max * NR, np.float32)
    ta = np.empty(MR * KC, np.float32)  # the last rows' weights, padded with zero rows
    wpad = npan_max * NR
    trows = np.empty(MR * wpad, np.float32)  # the last rows' tiles (ldc = wpad)
    tcols = np.empty(mpad * NR_TAIL, np.float32)  # each row panel's last short tile
    none = bias[:0]
    inplace = mpad <= INPLACE_ROWS
    for j0 in range(0, n, step):
        w = min(step, n - j0)
        npan = -(-w // NR)
        chunks = -(-(w - (npan - 1) * NR) // NR_TAIL)  # 8-column tiles of the last panel
        short = w % NR_TAIL  # the width of the last one, when short
        for k0 in range(0, k, KC):
            kc = min(KC, k - k0)
            more = CONTINUE if k0 > 0 else 0
            f = more | (epi if k0 + kc == k else 0)
            # panels read in place (few rows: packing would cost more than it saves),
            # the others (a short last one always) packed into bp
            full = w // NR if inplace else 0
            if full < npan:
                _pack(b, boff + k0 * ldb + j0 + full * NR, ldb, kc, w - full * NR, bp)
            if m > mfull:  # (the rows past m stay zero whatever kc is)
                for i in range(MR):
                    for t in range(kc):
                        ta[i * kc + t] = a[aoff + (mfull + i) * lda + k0 + t] \
                            if mfull + i < m else 0
            for p in range(npan):
                if p < full:
                    src, so, sld = b, boff + k0 * ldb + j0 + p * NR, ldb
                else:
                    src, so, sld = bp, (p - full) * kc * NR, NR
                last = p == npan - 1 and w - p * NR < NR
                for i0 in range(0, mpad, MR):
                    if i0 < mfull:
                        ao, ld = aoff + i0 * lda + k0, lda
                        if not last:
                            _tile(a, ao, ld, src, so, sld, c, coff + i0 * ldc + j0 + p * NR,
                                  ldc, kc, f, bias, i0, res, lo, hi)
                            continue
                        for q in range(chunks):
                            j = p * NR + q * NR_TAIL
                            if q == chunks - 1 and short:
                                _tail(a, ao, ld, src, so + q * NR_TAIL, sld, tcols,
                                      i0 * NR_TAIL, NR_TAIL, kc, more, none, 0, none, lo, hi)
                            else:
                                _tail(a, ao, ld, src, so + q * NR_TAIL, sld, c,
                                      coff + i0 * ldc + j0 + j, ldc, kc, f, bias, i0, res,
                                      lo, hi)
                    else:  # the last rows, whole panels into trows
                        _tile(ta, 0, kc, src, so, sld, trows, p * NR, wpad, kc, more, none, 0,
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


@intrinsic
def _copy_row(typingctx, src, soff, dst, doff):
    """``dst[doff:doff + NR] = src[soff:soff + NR]`` as :data:`NR` / 8 vector moves (the
    arrays may not overlap: numba's loop, not knowing it, moves one float at a time)."""
    sig = types.void(src, soff, dst, doff)

    def codegen(context, builder, signature, args):
        _, soff_, _, doff_ = args
        g = _IR(context, builder, signature, args, signature.args[0].dtype)
        ps, pd = g.data(0), g.data(2)
        for q in range(NR // LANES):
            v = g.load(ps, builder.add(soff_, g.const(q * LANES)))
            builder.store(v, g.vptr(pd, builder.add(doff_, g.const(q * LANES))), align=4)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(cache=True, nogil=True)
def _pack(b, boff, ldb, kc, w, bp):
    """Rows ``t < kc`` of the ``w`` columns at ``b[boff + t*ldb:]`` into panels of NR
    columns: ``bp[(p*kc + t)*NR + j]`` = column ``p*NR + j`` (zero past ``w``)."""
    npan = -(-w // NR)
    for p in range(npan):
        cols = min(NR, w - p * NR)
        if cols == NR:
            for t in range(kc):
                _copy_row(b, boff + t * ldb + p * NR, bp, (p * kc + t) * NR)
            continue
        for t in range(kc):
            src = b[boff + t * ldb + p * NR:boff + t * ldb + p * NR + cols]
            dst = bp[(p * kc + t) * NR:(p * kc + t + 1) * NR]
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


def taps_kernel(count: int, reduce: str = "products"):
    """The intrinsic ``taps(x, xoff, xstep, offs, k, nt, bias, lo, hi, flags, out, ooff)``:
    eight channels of ``count`` outputs of a depthwise convolution, the outputs'
    windows ``xstep`` apart in ``x``, each as a vector:
    ``acc = +0.0; acc = acc + k[8t:8t+8] * x[xoff + p*xstep + offs[t]:][:8]`` for t < nt,
    in order (a product, then a sum: :func:`.conv_depthwise._depthwise_planes`'s arithmetic, lane
    by lane), then ``+ bias[0:8]`` (:data:`BIAS`) and the clamp (:data:`CLAMP`), stored
    to ``out[ooff + 8p:][:8]``. The outputs' sums are independent chains, which the
    processor overlaps. A pool's instead (``k`` unread), the taps in order: ``reduce``
    ``"max"``, ``acc = -inf; acc = x if x > acc else acc`` (a NaN never wins), or
    ``"sum"``, ``acc = +0.0; acc = acc + x``."""
    maximum = reduce == "max"

    @intrinsic
    def taps(typingctx, x, xoff, xstep, offs, k, nt, bias, lo, hi, flags, out, ooff):
        sig = types.void(x, xoff, xstep, offs, k, nt, bias, lo, hi, flags, out, ooff)

        def codegen(context, builder, signature, args):
            _, xoff_, xstep_, _, _, nt_, _, lo_, hi_, flags_, _, ooff_ = args
            g = _IR(context, builder, signature, args, signature.args[0].dtype)
            px, po, pk, pb, pout = g.data(0), g.data(3), g.data(4), g.data(6), g.data(10)
            with builder.goto_entry_block():
                acc = [builder.alloca(g.vt) for _ in range(count)]
            for a in acc:
                builder.store(ir.Constant(g.vt, [-np.inf if maximum else 0.0] * LANES), a)
            starts = [builder.add(xoff_, builder.mul(xstep_, g.const(p))) for p in range(count)]
            with cgutils.for_range(builder, nt_) as loop:
                t = loop.index
                off = builder.load(builder.gep(po, [t]))
                kv = g.load(pk, builder.mul(t, g.const(LANES))) if reduce == "products" \
                    else None
                for p in range(count):
                    xv, av = g.load(px, builder.add(starts[p], off)), builder.load(acc[p])
                    if maximum:
                        v = builder.select(builder.fcmp_ordered(">", xv, av), xv, av)
                    else:
                        v = builder.fadd(av, xv if kv is None else builder.fmul(kv, xv))
                    builder.store(v, acc[p])
            with builder.if_then(g.flag(flags_, BIAS)):
                bv = g.load(pb, g.const(0))
                for a in acc:
                    builder.store(builder.fadd(builder.load(a), bv), a)
            with builder.if_then(g.flag(flags_, CLAMP)):
                vlo, vhi = g.splat(lo_), g.splat(hi_)
                for a in acc:
                    builder.store(g.clamp(builder.load(a), vlo, vhi), a)
            for p, a in enumerate(acc):
                builder.store(builder.load(a), g.vptr(pout, builder.add(
                    ooff_, g.const(p * LANES))), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return taps


POSITIONS = 4  # outputs of one call of taps
taps = taps_kernel(POSITIONS)
taps1 = taps_kernel(1)
