"""DetectionCheckpointer: fvcore's Checkpointer that recognises and converts checkpoint formats on load
and saves atomically."""

import logging
import os

import torch
from fvcore.common.checkpoint import Checkpointer
from iopath.common.file_io import PathHandler

from detrex.utils import comm
from detrex.utils.file_io import atomic_write

from .conversion import convert_checkpoint, read_checkpoint_file
from .load_report import format_report, plan_load

logger = logging.getLogger(__name__)


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


class DetectionCheckpointer(Checkpointer):
    """Checkpointer of detection models (detectron2's API).

    ``load(path)`` accepts this project's checkpoints, detrex's published ones, the official Conditional-DETR
    / Anchor-DETR releases and ImageNet ResNet weights (torchvision ``.pth``, detectron2 / caffe2 ``.pkl``),
    converts them in memory to the model's names (``detrex.checkpoint.conversion``) and logs one report.
    Paths may be local, http(s):// or detectron2://. Training state (optimizer, scheduler, iteration) is
    restored only from this project's checkpoints.
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

    def load(self, path: str, checkpointables: list[str] | None = None) -> dict:
        if path and not os.path.isfile(path):
            local = self.path_manager.get_local_path(path)
            if not os.path.isfile(local):
                raise FileNotFoundError(f"checkpoint {path!r} not found (local path {local!r})")
            path = local
        self._path = path
        return super().load(path, checkpointables)

    def _load_file(self, filename: str) -> dict:
        converted = convert_checkpoint(read_checkpoint_file(filename), self.model.state_dict())
        self.loaded_format = converted.format
        self.loaded_full_model = converted.full_model
        return {"model": converted, **converted.extra}

    def _load_model(self, checkpoint: dict) -> None:
        converted = checkpoint.pop("model")
        plan = plan_load(converted, self.model.state_dict(keep_vars=True))
        self.model.load_state_dict(plan.to_load, strict=False)
        self.logger.info(format_report(plan, getattr(self, "_path", "checkpoint")))
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
