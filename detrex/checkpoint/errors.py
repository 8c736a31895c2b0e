"""Why a checkpoint cannot be used. Every message is one line that names the file (or URL) and the fix, so
that scripts can print ``str(e)`` instead of a traceback: catch ``CheckpointError`` for all of them.

    CheckpointError
    ├── CheckpointNotFoundError   (also FileNotFoundError)  no such file or folder
    ├── CheckpointDownloadError   (also OSError)            a URL that could not be downloaded
    ├── CheckpointPathError       (also ValueError)         a ``?query`` suffix detrex does not understand
    ├── CheckpointFormatError     (also ValueError)         content that is not a checkpoint format detrex knows
    │   ├── TruncatedCheckpointError                        a checkpoint cut off (interrupted download / copy)
    │   └── NotACheckpointError                             a file that is no checkpoint at all
    └── IncompatibleCheckpointError (also ValueError)       a known format, but for another model or variant
"""


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; ``path``: the file, folder or URL (None when not known yet)."""

    def __init__(self, message: str, path: str | None = None):
        if path is not None and not message.startswith(str(path)):
            message = f"{path}: {message}"
        super().__init__(message)
        self.path = path

    def name_file(self, path: str) -> "CheckpointError":
        """The same error with ``path`` in front of its message (for errors raised before the file was known)."""
        if self.path is None:
            self.path = path
            if not str(self).startswith(str(path)):
                self.args = (f"{path}: {self}",)
        return self


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    pass


class CheckpointDownloadError(CheckpointError, OSError):
    """``path``: the URL; ``cache_path``: where a copy of the file makes the download unnecessary."""

    def __init__(self, message: str, path: str, cache_path: str):
        super().__init__(message, path)
        self.cache_path = cache_path


class CheckpointPathError(CheckpointError, ValueError):
    pass


class CheckpointFormatError(CheckpointError, ValueError):
    """The file's content is not a checkpoint format detrex knows."""


class TruncatedCheckpointError(CheckpointFormatError):
    """The file starts like a checkpoint but ends early, or its archive index is missing."""


class NotACheckpointError(CheckpointFormatError):
    """The file is no checkpoint at all (text, an HTML page, an image, an archive, a tensor ...)."""


class IncompatibleCheckpointError(CheckpointError, ValueError):
    """The checkpoint is a known format but belongs to a different model."""
