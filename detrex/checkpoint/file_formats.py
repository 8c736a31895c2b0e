"""Read checkpoint files of every container format detrex knows, and write safetensors files.

* ``torch.save`` files (zip archives, or legacy pickles): ``torch.load(weights_only=True)`` with
  ``argparse.Namespace`` allowed (official releases keep their command-line arguments under "args");
* ``.pkl`` files of detectron2 / caffe2: pickles of numpy arrays (nothing else is unpickled);
* ``.safetensors`` files (any extension; recognised by their header);
* Hugging Face model folders: ``model.safetensors`` or ``pytorch_model.bin`` (or their sharded
  ``*.index.json`` form) next to ``config.json``.

A file cut short is a TruncatedCheckpointError, a file that is no checkpoint a NotACheckpointError; both
name the file and what to do in one line.
"""

import argparse
import json
import os
import pickle
import struct
from collections.abc import Mapping

import torch

from .errors import CheckpointFormatError, NotACheckpointError, TruncatedCheckpointError

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in the order a folder is searched
ZIP_MAGIC = b"PK\x03\x04"
ZIP_END_OF_DIRECTORY = b"PK\x05\x06"
READABLE = ".pth / .pt / .bin (torch.save), .pkl (detectron2, caffe2), .safetensors files and Hugging Face model folders"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for detectron2 / caffe2 ``.pkl`` weights: only numpy arrays and plain containers."""

    ALLOWED = {
        ("collections", "OrderedDict"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights .pkl file")
        return super().find_class(module, name)


def read_checkpoint_file(path: str) -> dict:
    """The object stored in ``path`` (a file or a Hugging Face model folder), as a dict."""
    if os.path.isdir(path):
        return read_hf_folder(path)
    size = os.path.getsize(path)
    if size == 0:
        raise TruncatedCheckpointError(
            "the file is empty (0 bytes): a download, copy or save did not complete; fetch or copy it again",
            path,
        )
    with open(path, "rb") as f:
        head = f.read(64)
    if _is_safetensors(head, size) or path.endswith(".safetensors"):
        return read_safetensors(path)
    if head.startswith(ZIP_MAGIC) and not _has_zip_directory(path, size):
        raise _truncated(path, size, "its zip archive has no central directory at the end")
    try:
        if path.endswith(".pkl"):
            with open(path, "rb") as f:
                obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        elif head.startswith(ZIP_MAGIC) or head[:1] == b"\x80":  # torch's zip format; a legacy pickle
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise NotACheckpointError(
                f"not a checkpoint: {_describe(head)}. Is the path right? detrex reads {READABLE}", path
            )
    except EOFError as e:
        raise _truncated(path, size, _first_line(e) or "the data ends early") from e
    except RuntimeError as e:  # torch's zip reader and legacy loader report damage as RuntimeError
        if _says_cut_off(str(e)):
            raise _truncated(path, size, _first_line(e)) from e
        if not head.startswith(ZIP_MAGIC):
            raise
        raise NotACheckpointError(
            f"not a checkpoint: a zip archive that torch.save did not write ({_first_line(e)}); extract it, or "
            f"pass the checkpoint inside. detrex reads {READABLE}",
            path,
        ) from e
    except pickle.UnpicklingError as e:
        raise _unpickling_error(path, size, head, e) from e
    if not isinstance(obj, Mapping):
        raise NotACheckpointError(
            f"holds a {type(obj).__name__}, not a checkpoint (a dict with a state dict of tensors); save one "
            "with torch.save({'model': model.state_dict()}, path)",
            path,
        )
    return dict(obj)


def read_safetensors(path: str) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (no pickle involved)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        header_size = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if header_size is None or 8 + header_size > size:
            raise _truncated(path, size, "its header is cut off")
        try:
            header = json.loads(f.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise NotACheckpointError(
                f"not a safetensors file: {_describe(head)}. Is the path right? detrex reads {READABLE}", path
            ) from e
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_size + end > size:
        raise _truncated(path, size, f"its tensors need {8 + header_size + end:,} bytes")
    try:
        return load_file(path, device="cpu")
    except SafetensorError as e:
        raise CheckpointFormatError(f"cannot be read as safetensors ({_first_line(e)})", path) from e


def read_hf_folder(folder: str) -> dict[str, torch.Tensor]:
    """The weights of a Hugging Face model folder (single file or shards listed in ``*.index.json``)."""
    for name in HF_WEIGHT_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            return read_checkpoint_file(os.path.join(folder, name))
        index = os.path.join(folder, name + ".index.json")
        if os.path.isfile(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            state_dict = {}
            for shard in shards:
                state_dict.update(read_checkpoint_file(os.path.join(folder, shard)))
            return state_dict
    found = sorted(os.listdir(folder))[:6]
    hint = " (a training output folder: pass its model_final.pth)" if "last_checkpoint" in found else ""
    raise NotACheckpointError(
        f"a folder without {' or '.join(HF_WEIGHT_FILES)} (it holds {found}){hint}; pass a checkpoint file or "
        "a Hugging Face model folder",
        folder,
    )


def read_hf_config(path: str) -> dict | None:
    """``config.json`` of a Hugging Face folder ``path``, or next to the weights file ``path``; None if absent."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    config = os.path.join(folder, "config.json")
    if not os.path.isfile(config):
        return None
    try:
        with open(config) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointFormatError(f"cannot be read as JSON ({_first_line(e)})", config) from e
    return data if isinstance(data, dict) else None


def safetensors_bytes(
    state_dict: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> bytes:
    """``state_dict`` as the bytes of a ``.safetensors`` file. Tensors that share memory with an earlier one
    (tied parameters, slices of one tensor) and channels-last ones are stored as contiguous copies, so that
    every key is present."""
    from safetensors.torch import save

    tensors, seen = {}, set()
    for key, value in state_dict.items():
        value = value.detach().cpu()
        storage = value.untyped_storage().data_ptr()
        if storage in seen or not value.is_contiguous():  # safetensors stores each tensor's own bytes
            value = value.clone(memory_format=torch.contiguous_format)
        tensors[key] = value
        seen.add(storage)
    return save(tensors, metadata=metadata)


def _is_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file starts with the length of its JSON header (8 bytes, little endian), then '{'."""
    return len(head) > 8 and 0 < struct.unpack("<Q", head[:8])[0] < size and head[8:9] == b"{"


def _has_zip_directory(path: str, size: int) -> bool:
    """Whether the zip archive's end-of-central-directory record is there (a truncated file lacks it)."""
    with open(path, "rb") as f:
        f.seek(max(0, size - 65_557))  # the record (22 bytes) plus the longest archive comment
        return ZIP_END_OF_DIRECTORY in f.read()


def _says_cut_off(message: str) -> bool:
    words = (
        "central directory",
        "unexpected EOF",
        "truncated",
        "Ran out of input",
        "corrupt",
        "invalid header",
    )
    return any(w in message for w in words)


def _truncated(path: str, size: int, detail: str) -> TruncatedCheckpointError:
    return TruncatedCheckpointError(
        f"the checkpoint is truncated or corrupt ({size:,} bytes; {detail}): it was cut off while being "
        "downloaded, copied or saved. Download or copy it again (or use an earlier checkpoint of the run)",
        path,
    )


def _unpickling_error(path: str, size: int, head: bytes, e: pickle.UnpicklingError) -> CheckpointFormatError:
    message = str(e)
    if "not allowed" in message or "Unsupported global" in message or "weights_only" in message.lower():
        if head[:1] == b"\x80" or head.startswith(ZIP_MAGIC) or path.endswith(".pkl"):
            reason = _first_line(e).removeprefix("Weights only load failed. ")
            return CheckpointFormatError(
                f"cannot be read as weights ({reason}). detrex reads pickled checkpoints with "
                "torch.load(weights_only=True) (argparse.Namespace allowed) and .pkl files as numpy arrays only; "
                "re-save the file with plain tensors, e.g. torch.save({'model': model.state_dict()}, path)",
                path,
            )
    if _says_cut_off(message):
        return _truncated(path, size, _first_line(e))
    return NotACheckpointError(
        f"not a checkpoint: {_describe(head)}. Is the path right? detrex reads {READABLE}", path
    )


def _describe(head: bytes) -> str:
    """What a file that is no checkpoint looks like, from its first bytes."""
    kinds = {
        b"\xff\xd8\xff": "a JPEG image",
        b"\x89PNG": "a PNG image",
        b"\x1f\x8b": "a gzip archive (extract it first)",
        b"7z\xbc\xaf": "a 7-zip archive (extract it first)",
        b"version https://git-lfs": "a Git LFS pointer, not the file (run git lfs pull)",
    }
    for magic, kind in kinds.items():
        if head.startswith(magic):
            return kind
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml")):
        return "an HTML / XML page (e.g. an error page saved by a failed download)"
    try:
        return f"text starting with {head.decode('utf-8')[:40]!r}"
    except UnicodeDecodeError:
        return f"an unknown format starting with {head[:12]!r}"


def _first_line(e: BaseException) -> str:
    return str(e).strip().split("\n")[0][:200]
