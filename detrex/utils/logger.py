"""Rank-aware logging set-up in detectron2's format: ``[11/21 20:14:58 detrex.engine.train_loop]: ...``.

Rank 0 prints to the console; every rank writes its own file (``log.txt``, ``log.txt.rank1``, ...).
A record logged with ``extra={"console": False}`` (a model dump, a traceback already summed up in one line)
goes to the file only.
"""

import functools
import logging
import os
import sys

__all__ = ["setup_logger", "log_first_n"]

_DATE_FORMAT = "%m/%d %H:%M:%S"
_GREEN, _RED, _RESET = "\033[32m", "\033[31m", "\033[0m"


class _ColorfulFormatter(logging.Formatter):
    """Console formatter: green header, red WARNING/ERROR prefix, logger root name abbreviated."""

    def __init__(self, fmt: str, root_name: str, abbrev_name: str, color: bool):
        super().__init__(fmt, datefmt=_DATE_FORMAT)
        self._root_name = root_name + "."
        self._abbrev_name = abbrev_name + "." if abbrev_name else ""
        self._color = color

    def formatMessage(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)  # a copy: the file handler keeps the full name
        record.name = record.name.replace(self._root_name, self._abbrev_name, 1)
        line = super().formatMessage(record)
        if record.levelno == logging.WARNING:
            prefix = "WARNING"
        elif record.levelno >= logging.ERROR:
            prefix = "ERROR"
        else:
            return line
        return f"{_RED}{prefix}{_RESET} {line}" if self._color else f"{prefix} {line}"


@functools.cache  # calling it again with the same arguments adds no handler
def setup_logger(
    output: str | None = None,
    distributed_rank: int = 0,
    *,
    color: bool = True,
    name: str = "detrex",
    abbrev_name: str | None = None,
) -> logging.Logger:
    """Configure the logger ``name`` (level DEBUG, not propagating to the root logger).

    Args:
        output: a ``.txt``/``.log`` file name, or a directory (the file is then ``output/log.txt``).
            Rank r > 0 writes to the same name with ``.rank{r}`` appended. None: no file.
        distributed_rank: only rank 0 logs to the console.
        color: colour the console output; only applied when stdout is a terminal.
        name: the root module name of the logger, e.g. "detrex", "fvcore", "projects".
        abbrev_name: what ``name`` is shortened to in console lines (default: ``name``).
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    abbrev_name = name if abbrev_name is None else abbrev_name

    plain = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt=_DATE_FORMAT)
    if distributed_rank == 0:
        use_color = color and sys.stdout.isatty()
        header = f"{_GREEN}[%(asctime)s %(name)s]:{_RESET} " if use_color else "[%(asctime)s %(name)s]: "
        console = logging.StreamHandler(stream=sys.stdout)
        console.setLevel(logging.DEBUG)
        console.setFormatter(_ColorfulFormatter(header + "%(message)s", name, abbrev_name, use_color))
        console.addFilter(lambda record: getattr(record, "console", True))
        logger.addHandler(console)

    if output is not None:
        filename = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = f"{filename}.rank{distributed_rank}"
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        file_handler = logging.StreamHandler(_cached_log_stream(filename))
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(plain)
        logger.addHandler(file_handler)
    return logger


@functools.cache  # several loggers ("detrex", "fvcore", ...) share one open file
def _cached_log_stream(filename: str):
    return open(filename, "a", buffering=1)  # line-buffered: a crash loses no finished line


_LOGGED_COUNTS: dict[tuple[str, str], int] = {}


def log_first_n(level: int, msg: str, n: int = 1, *, name: str = "detrex") -> None:
    """Log ``msg`` to logger ``name`` only the first ``n`` times this exact message is seen."""
    count = _LOGGED_COUNTS[(name, msg)] = _LOGGED_COUNTS.get((name, msg), 0) + 1
    if count <= n:
        logging.getLogger(name).log(level, msg)
