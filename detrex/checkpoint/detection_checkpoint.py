"""DetectionCheckpointer: fvcore's Checkpointer that recognises and converts checkpoint formats on load
and saves atomically."""

import logging
import os
import re
from urllib.parse import parse_qs, urlparse

import torch
from fvcore.common.checkpoint import Checkpointer
from iopath.common.file_io import PathHandler, get_cache_dir

from detrex.utils import comm
from detrex.utils.file_io import atomic_write

from .conversion import convert_checkpoint
from .errors import CheckpointDownloadError, CheckpointError, CheckpointNotFoundError, CheckpointPathError
from .file_formats import read_checkpoint_file, read_hf_config
from .huggingface import check_hf_config, parse_hf_config
from .load_report import LoadPlan, format_report, needs_attention, plan_load

logger = logging.getLogger(__name__)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pkl", ".bin", ".safetensors")


class Detectron2Handler(PathHandler):
    """``detectron2://X`` -> https://dl.fbaipublicfiles.com/detectron2/X (detectron2's model zoo files)."""

    PREFIX = "detectron2://"
    URL = "https://dl.fbaipublicfiles.com/detectron2/"

    def __init__(self, path_manager):
        super().__init__()
        self.path_manager = path_manager

    def _get_supported_prefixes(self):
        return [self.PREFIX]

    def _get_local_path(self, path, **kwargs):
        return self.path_manager.get_local_path(self.URL + path[len(self.PREFIX) :], **kwargs)

    def _open(self, path, mode="r", **kwargs):
        return self.path_manager.open(self.URL + path[len(self.PREFIX) :], mode, **kwargs)

    @classmethod
    def to_url(cls, path: str) -> str:
        return cls.URL + path[len(cls.PREFIX) :] if path.startswith(cls.PREFIX) else path


class DetectionCheckpointer(Checkpointer):
    """Checkpointer of detection models (detectron2's API).

    ``load(path)`` accepts this project's checkpoints, detrex's published ones, the official Conditional-DETR
    / Anchor-DETR releases, Hugging Face transformers Conditional-DETR folders and files, and ImageNet ResNet
    weights (torchvision ``.pth``, detectron2 / caffe2 ``.pkl``), pickled or as ``.safetensors``; it converts
    them in memory to the model's names (``detrex.checkpoint.conversion``), loads every tensor that fits
    and logs one report with a table of what did not (a warning when a detector checkpoint left model
    tensors out). ``path?matching_heuristics=True`` also loads tensors whose names are a dotted suffix of
    a model key (detectron2's heuristics). Paths may be local, http(s):// or detectron2://. Training state
    (optimizer, scheduler, iteration) is restored only from this project's checkpoints. Every failure is a
    ``CheckpointError`` (``detrex.checkpoint.errors``) whose message is one line naming the file and the fix.
    ``save(name)`` writes ``<save_dir>/<name>.pth`` and ``last_checkpoint`` atomically (main process only
    unless ``save_to_disk`` says otherwise).
    """

    def __init__(self, model, save_dir: str = "", *, save_to_disk: bool | None = None, **checkpointables):
        if save_to_disk is None:
            save_to_disk = comm.is_main_process()
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.path_manager.register_handler(Detectron2Handler(self.path_manager))
        self.logger = logger
        # what the last load() read: the detected format, and whether it held a whole detector (False for
        # ImageNet backbone weights; None before any file was read)
        self.loaded_format: str | None = None
        self.loaded_full_model: bool | None = None
        # the last load's LoadPlan: .not_loaded, .wrong_shape, .missing, .unexpected, .unloaded_class_head
        self.last_load: LoadPlan | None = None
        self._path = "checkpoint"
        self._matching_heuristics = False

    def load(self, path: str, checkpointables: list[str] | None = None) -> dict:
        """Load ``path`` into the model (and, from this project's checkpoints, into ``checkpointables``);
        returns the checkpoint's other entries (e.g. "iteration"). An empty path loads nothing."""
        if not path:
            self.logger.info("No checkpoint given: the model keeps its initial weights")
            return {}
        path, self._matching_heuristics = split_query(path)
        self._path = path
        checkpoint = self._load_file(self.local_path(path))
        self._load_model(checkpoint)
        for key in self.checkpointables if checkpointables is None else checkpointables:
            if key in checkpoint:
                self.logger.info(f"Loading {key} from {path} ...")
                self.checkpointables[key].load_state_dict(checkpoint.pop(key))
        return checkpoint

    def local_path(self, path: str) -> str:
        """A local file or folder for ``path`` (without ``?query``), downloading URLs into iopath's cache;
        CheckpointNotFoundError / CheckpointDownloadError when there is none."""
        if os.path.exists(path):
            return path
        iopath_logger = logging.getLogger("iopath.common.download")
        level = iopath_logger.level
        iopath_logger.setLevel(logging.CRITICAL)  # its "Failed to download" line: ours says more
        try:
            local = self.path_manager.get_local_path(path)
        except OSError as e:  # urllib's URLError / HTTPError, timeouts, refused connections
            raise download_error(path, e) from e
        finally:
            iopath_logger.setLevel(level)
        if not os.path.exists(local):
            hint = ""
            if is_hub_id(path):
                hint = f" (a Hugging Face model id? download it with `hf download {path} --local-dir DIR`, pass DIR)"
            raise CheckpointNotFoundError(
                f"no such file or folder{hint}; check the path (train.init_checkpoint=...), or pass "
                "train.init_checkpoint='' to start from the config's initial weights",
                path,
            )
        return local

    def _load_file(self, filename: str) -> dict:
        try:
            config = read_hf_config(filename)
            hf_config = parse_hf_config(config) if config is not None and "model_type" in config else None
            converted = convert_checkpoint(
                read_checkpoint_file(filename),
                self.model.state_dict(),
                hf_config=hf_config,
                matching_heuristics=self._matching_heuristics,
            )
            if hf_config is not None and converted.format.startswith("Hugging Face"):
                check_hf_config(hf_config, self.model)
        except CheckpointError as e:
            e.name_file(self._path)
            raise
        self.loaded_format = converted.format
        self.loaded_full_model = converted.full_model
        return {"model": converted, **converted.extra}

    def _load_model(self, checkpoint: dict) -> None:
        converted = checkpoint.pop("model")
        try:
            plan = plan_load(converted, self.model.state_dict(keep_vars=True))
        except CheckpointError as e:
            e.name_file(self._path)
            raise
        self.model.load_state_dict(plan.to_load, strict=False)
        self.last_load = plan
        level = logging.WARNING if needs_attention(plan) else logging.INFO
        self.logger.log(level, format_report(plan, self._path))
        return None  # the report above replaces fvcore's incompatible-keys log

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        os.makedirs(self.save_dir, exist_ok=True)
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(save_file, lambda f: f.write(last_filename_basename.encode()))


def is_hub_id(path: str) -> bool:
    """Whether a path that does not exist looks like a Hugging Face model id ("microsoft/conditional-detr-r50")."""
    return re.fullmatch(r"[\w-]+/[\w.-]+", path) is not None and not path.endswith(CHECKPOINT_SUFFIXES)


def split_query(path: str) -> tuple[str, bool]:
    """``(path without its query, matching_heuristics)`` for detectron2's ``path?matching_heuristics=True``."""
    if "?" not in path or os.path.exists(path):
        return path, False
    parsed = urlparse(path)
    queries = parse_qs(parsed.query)
    value = queries.pop("matching_heuristics", ["False"])
    if queries or value not in (["True"], ["False"]):
        raise CheckpointPathError(
            f"unsupported query {parsed.query!r}: only ?matching_heuristics=True (or False) is understood",
            path,
        )
    return parsed._replace(query="").geturl(), value == ["True"]


def download_error(path: str, error: OSError) -> CheckpointDownloadError:
    """One line: the URL that failed, where a copy of the file would be used instead, and the config keys."""
    url = Detectron2Handler.to_url(path)
    cache = os.path.join(get_cache_dir(), os.path.dirname(urlparse(url).path.lstrip("/")), url.split("/")[-1])
    reason = str(getattr(error, "reason", None) or error).strip().split("\n")[0]
    return CheckpointDownloadError(
        f"cannot download {url} ({reason}). Without network, put the file at {cache} (the download cache; "
        "$FVCORE_CACHE moves it), or set train.init_checkpoint=<local file>, or train.init_checkpoint='' to "
        "start from the config's initial weights",
        path=url,
        cache_path=cache,
    )
