"""The npuc process reuses freed blocks instead of faulting fresh pages in each time."""

import platform
import resource

import pytest

from npuc.compiler.allocator import reuse_freed_memory


def _faults_of_a_fresh_block(size: int):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(size)
    block[::4096] = bytes(size // 4096)  # one write a page
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, block


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_freed_block_is_reused_without_page_faults():
    assert reuse_freed_memory()
    size = 8 << 20  # above glibc's default mmap threshold, below the one set
    _, block = _faults_of_a_fresh_block(size)
    del block
    faults, block = _faults_of_a_fresh_block(size)
    assert faults < size // 4096 // 8  # unmapped and faulted again would be 2048
