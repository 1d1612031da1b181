"""Best-fit memory planning: reuse across lifetimes, alignment, overlap detection."""

from npuc.compiler.schedule.memplan import best_fit, check, plan
from npuc.compiler.schedule.model import Allocation


def test_buffers_with_disjoint_lifetimes_share_space():
    placed = plan([("a", 100, 0, 1), ("b", 100, 2, 3)], alignment=32)
    assert {a.name: a.offset for a in placed} == {"a": 0, "b": 0}


def test_live_buffers_do_not_overlap_and_are_aligned():
    placed = plan([("a", 100, 0, 3), ("b", 50, 1, 2), ("c", 10, 2, 2)], alignment=64)
    assert all(a.offset % 64 == 0 for a in placed)
    assert check(placed) is None


def test_best_fit_takes_the_smallest_gap():
    placed = [Allocation("x", "sram", 0, 64, 0, 9), Allocation("y", "sram", 192, 64, 0, 9),
              Allocation("z", "sram", 320, 32, 0, 9)]
    # gaps: [64, 192) of 128 bytes and [256, 320) of 64 bytes; a 64-byte buffer fits best
    # in the second
    out = best_fit([("new", 64, 0, 9)], 32, placed)
    assert out[-1].offset == 256


def test_capacity_is_never_exceeded():
    assert best_fit([("big", 1000, 0, 0)], 32, [], capacity=512) is None


def test_check_names_overlapping_buffers():
    bad = [Allocation("a", "sram", 0, 64, 0, 2), Allocation("b", "sram", 32, 64, 1, 1)]
    assert "a and b overlap" in check(bad)
