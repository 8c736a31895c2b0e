"""glibc's allocator keeping freed memory for reuse in CPU runs (kernel "malloc")."""

import ctypes
import platform

# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Serve large allocations from the heap instead of fresh ``mmap`` calls, and keep up to 1 GiB of freed
    memory at the heap's top, so that a step reuses the pages of the previous one instead of paying page
    faults and kernel zeroing again. Process-wide and not reversible; idempotent. Returns whether it is
    active (False where the C library is not glibc)."""
    global _tuned
    if _tuned is None:
        _tuned = _tune_glibc()
    return _tuned


def _tune_glibc() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 1 << 30) and mallopt(M_TOP_PAD, 256 << 20)
    )
