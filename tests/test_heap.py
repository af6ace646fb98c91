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


def _mapped_and_heap() -> tuple[int, int]:
    """(bytes in mmap'd blocks, bytes of the main heap), glibc's own accounting."""
    m = _libc.mallinfo2()
    return m.hblkhd, m.arena


def test_large_blocks_come_from_the_heap_and_stay_there_then_defaults_return():
    with keep_freed_memory() as applied:
        assert applied  # Debian's glibc has mallopt
        mapped0, _ = _mapped_and_heap()
        block = np.ones(MB64 // 8)
        mapped1, heap1 = _mapped_and_heap()
        del block
        _, heap2 = _mapped_and_heap()
    assert mapped1 == mapped0                       # not mmap'd
    assert heap1 >= MB64 and heap2 == heap1         # freed, yet the heap kept its pages (no trim)
    mapped3, _ = _mapped_and_heap()
    block = np.ones(MB64 // 8)
    assert _mapped_and_heap()[0] - mapped3 >= MB64  # glibc's default again: a 64 MB block is mmap'd
    del block
