"""glibc's allocator tuned for a server that makes and drops arrays of megabytes: freed memory goes back.

glibc serves an allocation above its *mmap threshold* with its own memory map, returned to the
system when freed; smaller ones come from its heaps, which keep freed memory unless more than
the *trim threshold* is free at their top. By default the mmap threshold rises (up to 32 MB)
each time a large block is freed, so after the first depth map the 4-30 MB arrays of the
working copy, its 3D model and its downloads all come from the heaps, and the holes they leave
stay with the process: every large photo adds to the server's memory for good.

:func:`tune_allocator` fixes the mmap threshold at 4 MB (arrays from 4 MB up are always mapped
and returned) and the trim threshold at 32 MB (a heap keeps at most that much free at its top,
so small allocations do not pay page faults again and again). Measured with the bounded-cost
server test (``tests/test_bounded_cost.py``: the 6000x6600 photos at every setting and
download, a click to measure, the relief and the report): peak memory above the warmed-up
server +1580 MiB with glibc's defaults, +923 to +1041 MiB tuned; reconstruction speed
unchanged (a 1 MP depth map: 68 / 320 ms at stride 2 / 1, both ways). A 1 MB mmap threshold
alone gave +708 MiB but made reconstructions 45 % slower (every array's pages faulted in
anew). Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform

logger = logging.getLogger(__name__)

#: ``mallopt`` parameters (glibc ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Arrays from this size up are mapped on their own and returned to the system when freed.
MMAP_THRESHOLD_BYTES = 4 * 2**20
#: At most this much free memory stays at the top of a heap.
TRIM_THRESHOLD_BYTES = 32 * 2**20


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc (Linux), loaded once; None elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for this process (see the module docstring).

    Returns:
        True when they were set (Linux with glibc), False elsewhere.
    """
    libc = _glibc()
    if libc is None:
        return False
    try:
        done = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and libc.mallopt(
            _M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES
        )
    except (OSError, AttributeError):
        return False
    logger.debug("glibc allocator: mmap threshold %d, trim threshold %d", MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES)
    return bool(done)


def release_free_memory() -> bool:
    """Give the memory glibc holds free back to the system (``malloc_trim(0)``), e.g. after a spike.

    The heaps keep up to the trim threshold free at their top and any free pages inside; after
    a few hundred MB of heavy work (:mod:`dashboard.services.heavy`) this returns them at once.

    Returns:
        True when memory was released (Linux with glibc), False elsewhere.
    """
    libc = _glibc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except AttributeError:
        return False
