"""heap.keep_freed_memory: inside the block a large allocation comes from the heap (not mmap) and stays there
once freed; after it, glibc's defaults are back (a large block is mmap'd again). Read from glibc's mallinfo2."""
import ctypes
import ctypes.util

import numpy as np

from matteconv.heap import keep_freed_memory

MB64 = 64 * 2**20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]


_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_libc.mallinfo2.restype = _Mallinfo2


def _info():
    return _libc.mallinfo2()


def _unservable_size() -> int:
    """Bytes no free chunk of the heap can hold (more than all its free bytes): malloc must grow the heap or
    mmap, whatever earlier tests in this process left behind."""
    return 2 * _info().fordblks + MB64


def test_large_blocks_come_from_the_heap_and_stay_there_then_defaults_return():
    with keep_freed_memory() as applied:
        assert applied  # Debian's glibc has mallopt
        size = _unservable_size()
        before = _info()
        block = np.ones(size // 8)
        inside = _info()
        del block
        freed = _info()
    assert inside.hblkhd == before.hblkhd                # not mmap'd ...
    assert inside.uordblks - before.uordblks >= size     # ... but in the heap
    assert freed.arena == inside.arena                   # freed, yet the heap kept its pages (no trim)
    size = _unservable_size()
    before = _info()
    block = np.ones(size // 8)
    assert _info().hblkhd - before.hblkhd >= size        # glibc's default again: a block this large is mmap'd
    del block
