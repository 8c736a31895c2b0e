"""Training metrics: ``EventStorage`` (scalar histories per iteration) and the writers that print/save them.

``CommonMetricPrinter`` prints detectron2's console line, ``JSONWriter`` appends one JSON object per line
to ``metrics.json``, ``TensorboardXWriter`` writes TensorBoard events.
"""

import datetime
import json
import logging
import math
import os
import time
from collections import defaultdict
from functools import cached_property

import numpy as np
import torch

from .file_io import atomic_write

__all__ = [
    "HistoryBuffer",
    "EventStorage",
    "get_event_storage",
    "EventWriter",
    "JSONWriter",
    "CommonMetricPrinter",
    "TensorboardXWriter",
]

_STORAGE_STACK: list["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    """The innermost ``EventStorage`` in use (``with EventStorage(): ...``); raises outside of one."""
    if not _STORAGE_STACK:
        raise RuntimeError("get_event_storage() has to be called inside a 'with EventStorage(...)' block")
    return _STORAGE_STACK[-1]


class HistoryBuffer:
    """The last ``max_length`` values of one scalar, each with its iteration, plus a global average."""

    def __init__(self, max_length: int = 1_000_000):
        self._max_length = max_length
        self._data: list[tuple[float, int]] = []  # (value, iteration)
        self._count = 0
        self._total = 0.0

    def update(self, value: float, iteration: int) -> None:
        if len(self._data) == self._max_length:
            self._data.pop(0)
        self._data.append((value, iteration))
        self._count += 1
        self._total += value

    def latest(self) -> float:
        return self._data[-1][0]

    def median(self, window_size: int) -> float:
        return float(np.median([v for v, _ in self._data[-window_size:]]))

    def avg(self, window_size: int) -> float:
        return float(np.mean([v for v, _ in self._data[-window_size:]]))

    def global_avg(self) -> float:
        return self._total / max(self._count, 1)

    def values(self) -> list[tuple[float, int]]:
        return self._data

    def state_dict(self, last_n: int) -> dict:
        return {"data": self._data[-last_n:], "count": self._count, "total": self._total}

    def load_state_dict(self, state: dict) -> None:
        self._data = [(float(v), int(i)) for v, i in state["data"]][-self._max_length :]
        self._count, self._total = int(state["count"]), float(state["total"])


class EventStorage:
    """Scalars put during training, keyed by name, each value tagged with the iteration it belongs to.

    Use as a context manager so that ``get_event_storage()`` finds it. ``state_dict()`` keeps the
    recent history so that a resumed run logs the same smoothed values as an uninterrupted one.
    """

    def __init__(self, start_iter: int = 0):
        self._history: dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: dict[str, bool] = {}
        self._latest_scalars: dict[str, tuple[float, int]] = {}
        self._iter = start_iter

    def put_scalar(self, name: str, value, smoothing_hint: bool = True, cur_iter: int | None = None) -> None:
        """Record ``value`` (float or 0-dim tensor) for ``name`` at the current (or given) iteration.

        smoothing_hint: whether writers should median-smooth this scalar (noisy losses: yes; lr: no).
        """
        cur_iter = self._iter if cur_iter is None else int(cur_iter)
        value = float(value)
        self._history[name].update(value, cur_iter)
        self._latest_scalars[name] = (value, cur_iter)
        hint = self._smoothing_hints.setdefault(name, smoothing_hint)
        if hint != smoothing_hint:
            raise ValueError(
                f"Scalar '{name}' was put with smoothing_hint={hint} before, now {smoothing_hint}"
            )

    def put_scalars(self, *, smoothing_hint: bool = True, cur_iter: int | None = None, **scalars) -> None:
        """``put_scalar`` for each keyword argument, e.g. ``put_scalars(loss_bbox=0.3, loss_giou=0.5)``."""
        for name, value in scalars.items():
            self.put_scalar(name, value, smoothing_hint=smoothing_hint, cur_iter=cur_iter)

    def history(self, name: str) -> HistoryBuffer:
        if name not in self._history:
            raise KeyError(f"No history metric available for '{name}'")
        return self._history[name]

    def histories(self) -> dict[str, HistoryBuffer]:
        return self._history

    def latest(self) -> dict[str, tuple[float, int]]:
        """name -> (most recent value, its iteration)."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> dict[str, tuple[float, int]]:
        """Like ``latest()``, but scalars with a smoothing hint are the median of the last
        ``window_size`` iterations."""
        result = {}
        for name, (value, itr) in self._latest_scalars.items():
            if self._smoothing_hints[name]:
                value = self._history[name].median(self.count_samples(name, window_size))
            result[name] = (value, itr)
        return result

    def count_samples(self, name: str, window_size: int = 20) -> int:
        """How many values of ``name`` were put within the last ``window_size`` iterations."""
        data = self._history[name].values()
        last_iter = data[-1][1]
        count = 0
        for _, itr in reversed(data):
            if itr <= last_iter - window_size:
                break
            count += 1
        return count

    def smoothing_hints(self) -> dict[str, bool]:
        return self._smoothing_hints

    def step(self) -> None:
        self._iter += 1

    @property
    def iter(self) -> int:
        return self._iter

    @iter.setter
    def iter(self, value: int) -> None:
        self._iter = int(value)

    def state_dict(self, last_n: int = 100) -> dict:
        """The last ``last_n`` values of every scalar (enough for the writers' smoothing windows)."""
        return {
            "histories": {k: h.state_dict(last_n) for k, h in self._history.items()},
            "smoothing_hints": dict(self._smoothing_hints),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore histories (not the "latest" values: writers only write what is put after this)."""
        for name, hist_state in state["histories"].items():
            self._history[name].load_state_dict(hist_state)
        self._smoothing_hints.update(state["smoothing_hints"])

    def __enter__(self) -> "EventStorage":
        _STORAGE_STACK.append(self)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        assert _STORAGE_STACK[-1] is self, "EventStorage contexts must be nested"
        _STORAGE_STACK.pop()


class EventWriter:
    """Base class of the writers: ``write()`` reads ``get_event_storage()``; ``close()`` releases files."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def resume_from(self, iteration: int) -> None:
        """Training restarts at ``iteration`` (after --resume): drop what was written for it and later
        by the interrupted run, which is about to be recomputed."""


class JSONWriter(EventWriter):
    """Append the scalars of each new iteration to ``json_file``, one JSON object per line, flushed.

    Read it back with ``[json.loads(line) for line in open("metrics.json")]``.
    """

    def __init__(self, json_file: str, window_size: int = 20):
        self._path = json_file
        self._file = open(json_file, "a")
        self._window_size = window_size
        self._written: dict[str, int] = {}  # name -> last iteration written

    def resume_from(self, iteration: int) -> None:
        """Rewrite the file without the rows of ``iteration`` and later (atomically)."""
        self._file.flush()
        with open(self._path) as f:
            lines = f.read().splitlines(keepends=True)
        keep = [line for line in lines if _row_iteration(line) < iteration]
        if len(keep) == len(lines):
            return
        self._file.close()
        atomic_write(self._path, lambda f: f.writelines(keep), mode="w")
        self._file = open(self._path, "a")
        logging.getLogger(__name__).info(
            f"{self._path}: dropped {len(lines) - len(keep)} rows of iteration >= {iteration} written by the "
            "interrupted run (they are recomputed from the checkpoint)"
        )

    def write(self) -> None:
        by_iter: dict[int, dict] = defaultdict(dict)
        for name, (value, itr) in _new_scalars(self._written, self._window_size).items():
            by_iter[itr][name] = value
        for itr in sorted(by_iter):
            self._file.write(json.dumps({**by_iter[itr], "iteration": itr}, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _row_iteration(line: str) -> float:
    """The "iteration" of a metrics.json row; rows that cannot be read sort first (and are kept)."""
    try:
        return json.loads(line)["iteration"]
    except (ValueError, KeyError, TypeError):
        return -math.inf


def _new_scalars(written: dict[str, int], window_size: int) -> dict[str, tuple[float, int]]:
    """The (smoothed) latest scalars not written yet; marks them written."""
    new = {}
    for name, (value, itr) in get_event_storage().latest_with_smoothing_hint(window_size).items():
        if itr > written.get(name, -1):
            new[name] = (value, itr)
            written[name] = itr
    return new


class TensorboardXWriter(EventWriter):
    """Write every new scalar to TensorBoard event files in ``log_dir``."""

    def __init__(self, log_dir: str, window_size: int = 20):
        self._log_dir = log_dir
        self._window_size = window_size
        self._written: dict[str, int] = {}
        self._purge_step: int | None = None

    def resume_from(self, iteration: int) -> None:
        self._purge_step = iteration  # TensorBoard hides the older files' events from this step on

    @cached_property
    def _writer(self):
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when used

        return SummaryWriter(log_dir=self._log_dir, purge_step=self._purge_step)

    def write(self) -> None:
        for name, (value, itr) in _new_scalars(self._written, self._window_size).items():
            self._writer.add_scalar(name, value, itr)
        if "_writer" in self.__dict__:
            self._writer.flush()

    def close(self) -> None:
        if "_writer" in self.__dict__:  # created only if something was written
            self._writer.close()


class CommonMetricPrinter(EventWriter):
    """Print detectron2's progress line: ETA, iteration, median-smoothed losses, timings, lr, memory.

    ``eta: 0:12:34  iter: 19  total_loss: 1.23  loss_class: 0.4  ...  time: 0.1234  last_time: 0.1200
    data_time: 0.0123  last_data_time: 0.0100   lr: 0.0001  max_mem: 1234M`` (max_mem on CUDA only).
    """

    def __init__(self, max_iter: int | None = None, window_size: int = 20):
        self.logger = logging.getLogger("detrex.utils.events")
        self._max_iter = max_iter
        self._window_size = window_size
        self._last_write: tuple[int, float] | None = None  # (iteration, time) when no "time" history
        self._last_printed = -1

    def _eta(self, storage: EventStorage) -> str | None:
        if self._max_iter is None:
            return None
        remaining = self._max_iter - storage.iter - 1
        if "time" in storage.histories():
            eta_seconds = storage.history("time").median(1000) * remaining
            storage.put_scalar("eta_seconds", eta_seconds, smoothing_hint=False)
            return str(datetime.timedelta(seconds=int(eta_seconds)))
        eta = None
        now = time.perf_counter()
        if self._last_write is not None and storage.iter > self._last_write[0]:
            per_iter = (now - self._last_write[1]) / (storage.iter - self._last_write[0])
            eta = str(datetime.timedelta(seconds=int(per_iter * remaining)))
        self._last_write = (storage.iter, now)
        return eta

    def _smoothed(self, storage: EventStorage, name: str) -> float:
        return storage.history(name).median(storage.count_samples(name, self._window_size))

    def write(self) -> None:
        storage = get_event_storage()
        put_now = any(itr == storage.iter for _, itr in storage.latest().values())
        if not put_now or storage.iter in (self._max_iter, self._last_printed):  # nothing new to report
            return
        self._last_printed = storage.iter
        histories = storage.histories()
        parts = []
        eta = self._eta(storage)
        if eta:
            parts.append(f"eta: {eta}")
        parts.append(f"iter: {storage.iter}")
        parts += [f"{k}: {self._smoothed(storage, k):.4g}" for k in histories if "loss" in k]
        parts += [f"{k}: {self._smoothed(storage, k):.4g}" for k in histories if "[metric]" in k]
        if "time" in histories:
            parts.append(f"time: {storage.history('time').global_avg():.4f}")
            parts.append(f"last_time: {storage.history('time').latest():.4f}")
        if "data_time" in histories:
            window = storage.count_samples("data_time", self._window_size)
            parts.append(f"data_time: {storage.history('data_time').avg(window):.4f}")
            parts.append(f"last_data_time: {storage.history('data_time').latest():.4f}")
        lr = f"{storage.history('lr').latest():.5g}" if "lr" in histories else "N/A"
        line = "  ".join(parts) + f"   lr: {lr}"
        if torch.cuda.is_available():
            line += f"  max_mem: {torch.cuda.max_memory_allocated() / 1024.0**2:.0f}M"
        self.logger.info(" " + line)
