"""Writing files so that readers never see half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

__all__ = ["atomic_write"]


def atomic_write(path: str, write: Callable, mode: str = "wb") -> None:
    """Call ``write(f)`` on a temporary file (opened with ``mode``, "wb" or "w") in ``path``'s folder, then
    move it onto ``path`` in one step: readers see the old file or the whole new one, never a partial one.
    The file gets the permissions a plain ``open()`` would give it under the process's umask."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes it private (0600)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _current_umask() -> int:
    try:  # Linux shows it without changing it
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it (briefly)
    os.umask(mask)
    return mask
