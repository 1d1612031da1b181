"""npuc's own thread pool: blocks on several threads give the numbers of one thread."""

from __future__ import annotations

import numpy as np
import pytest

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import accumulate
from npuc.compiler.executor.kernels.conv import conv_nd
from npuc.compiler.executor.kernels.pool import AVG, MAX, _pool2d_fast


def _whole(a, b):
    """The definition: the whole product in float64, rounded once."""
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)


@pytest.mark.parametrize("shapes", [((3, 700, 96), (96, 80)), ((700, 96), (96, 80)),
                                    ((2, 3, 300, 40), (2, 3, 40, 50)), ((1, 40, 90), (2, 1, 90, 77))])
def test_row_blocks_on_two_threads_equal_the_whole_product(monkeypatch, shapes):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    got = {}
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        got[n] = accumulate.matmul(a, b)
    want = _whole(a, b)
    assert all(g.dtype == np.float32 and np.array_equal(g, want) for g in got.values())


def test_a_product_written_into_a_strided_window(monkeypatch):
    monkeypatch.setenv("NPUC_BLAS_THREADS", "2")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((1, 200, 30)).astype(np.float32)
    b = rng.standard_normal((2, 1, 30, 49)).astype(np.float32)
    big = np.zeros((2, 200, 9, 9), np.float32)
    window = big[:, :, 1:8, 1:8]
    accumulate.matmul(a, b, out=window)
    assert np.array_equal(window.reshape(2, 1, 200, 49), _whole(a, b))
    assert not big[:, :, 0].any() and not big[:, :, :, 8].any()


def test_depthwise_convolution_and_pools_by_channel_blocks(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 24, 13, 11)).astype(np.float32)
    w = rng.standard_normal((48, 1, 3, 3)).astype(np.float32)
    runs = []
    for n in ("1", "2"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        conv = conv_nd(x, w, None, [2, 1], [1, 1, 1, 1], [1, 1], group=24)
        pools = [_pool2d_fast(x, mode, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], [7, 6], True)
                 for mode in (MAX, AVG)]
        runs.append([conv, *pools])
    assert all(np.array_equal(p, q) for p, q in zip(*runs))
    # channel 5 of the depthwise output with multiplier 2 reads input channel 2 only
    ref = conv_nd(x[:, 2:3], w[5:6], None, [2, 1], [1, 1, 1, 1], [1, 1], group=1)
    assert np.array_equal(runs[0][0][:, 5:6], ref)


def test_an_error_in_one_block_is_raised_after_every_block_ended(monkeypatch):
    monkeypatch.setenv("NPUC_BLAS_THREADS", "2")
    done = []

    def fn(i):
        if i == 0:
            raise ValueError("block 0")
        done.append(i)

    with pytest.raises(ValueError, match="block 0"):
        threads.parallel(fn, 6)
    assert sorted(done) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("ashape", [(5, 96), (2, 3, 96), (1, 96)])
@pytest.mark.parametrize("narrow", [False, True])
def test_a_large_right_hand_matrix_in_column_blocks_equals_the_whole_product(
        monkeypatch, ashape, narrow):
    """Past WIDE_LIMIT elements the right-hand matrix is widened a block of columns at a
    time; every element is the whole product's, with or without ``out``."""
    import ml_dtypes

    dt = ml_dtypes.bfloat16 if narrow else np.float32
    rng = np.random.default_rng(3)
    a = rng.standard_normal(ashape).astype(dt)
    b = rng.standard_normal((96, 1000)).astype(dt)
    whole = accumulate.matmul(a, b)
    monkeypatch.setattr(accumulate, "WIDE_LIMIT", 96 * 70)  # 15 blocks, the last short
    calls = []
    real = accumulate._by_columns
    monkeypatch.setattr(accumulate, "_by_columns", lambda *x: calls.append(1) or real(*x))
    got = accumulate.matmul(a, b)
    out = np.empty(whole.shape, whole.dtype)
    accumulate.matmul(a, b, out=out)
    assert calls == [1, 1] and got.dtype == whole.dtype
    np.testing.assert_array_equal(got.astype(np.float64), whole.astype(np.float64))
    np.testing.assert_array_equal(out.astype(np.float64), whole.astype(np.float64))


def test_the_pool_runs_items_on_two_threads_in_the_callers_context(monkeypatch):
    import threading

    monkeypatch.setenv("NPUC_BLAS_THREADS", "2")
    meet = threading.Barrier(2, timeout=30)  # broken unless two threads hold items at once
    seen = []

    def fn(i):
        if i < 2:
            meet.wait()
        seen.append((threading.get_ident(), threads.products()))

    with threads.product_precision("float32"):
        threads.parallel(fn, 8)
    assert len(seen) == 8 and {p for _, p in seen} == {"float32"}
    assert len({t for t, _ in seen}) == 2


def test_parallel_work_inside_an_item_or_from_a_second_thread_runs_inline(monkeypatch):
    import threading

    monkeypatch.setenv("NPUC_BLAS_THREADS", "2")
    out = np.zeros((6, 5))

    def outer(i):
        threads.parallel(lambda j: out.__setitem__((i, j), i * 10 + j), 5)

    users = [threading.Thread(target=threads.parallel, args=(outer, 6)) for _ in range(2)]
    for t in users:
        t.start()
    for t in users:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in users)
    assert np.array_equal(out, np.arange(6)[:, None] * 10 + np.arange(5))


@pytest.mark.parametrize("pin", ["1", "0"])
def test_each_call_keeps_the_pool_off_the_core_the_caller_is_on(monkeypatch, pin):
    """The pool's threads may use every allowed core but the one the caller is on at the
    call (placement.py), following the caller when it moves; all of them with
    NPUC_PIN_THREADS=0 or a single allowed core."""
    import os

    from npuc.compiler.executor import placement

    monkeypatch.setenv("NPUC_BLAS_THREADS", "2")
    monkeypatch.setenv("NPUC_PIN_THREADS", pin)
    allowed = sorted(os.sched_getaffinity(0))
    pool = threads._the_pool()
    (worker,) = pool.tids
    for cpu in (allowed[0], allowed[-1]):  # the caller "moves" between the calls
        monkeypatch.setattr(placement, "current_cpu", lambda cpu=cpu: cpu)
        pool.run(lambda i: None, 4)
        got = os.sched_getaffinity(worker)
        if pin == "1" and len(allowed) > 1:
            assert got == set(allowed) - {cpu}
        else:
            assert got == set(allowed)


def test_a_pool_whose_thread_cannot_start_leaves_no_thread_waiting(monkeypatch):
    import threading

    started = []
    real_start = threading.Thread.start

    def start(self):
        if self.name == "npuc-1":
            raise RuntimeError("can't start new thread")
        started.append(self)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError):
        threads._Pool(3)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    started[0].join(timeout=5)
    assert not started[0].is_alive()
