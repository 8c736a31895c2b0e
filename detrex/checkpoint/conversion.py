"""Read a checkpoint file, recognise its format and convert it to a model's parameter names.

Formats, tried in this order:
1. an official release of a registered family (``converters``: Conditional-DETR, Anchor-DETR): renamed,
   class rows 91 -> 80, backbone mapped into the model's backbone layout;
2. this project's / detrex's layout (most keys are model keys): loaded as is;
3. a bare ImageNet ResNet (torchvision ``resnet50-*.pth``, detectron2 ``R-50.pkl``, caffe2 blobs): mapped
   into the model's backbone, ``fc`` dropped.
A checkpoint of one registered family given to a model of another (by ``model_signature``) is an
IncompatibleCheckpointError naming both; anything else is a CheckpointFormatError. The result is then
checked against the model's state dict (``plan_load``): a full-model checkpoint that fits few of the
model's tensors is an IncompatibleCheckpointError naming what it looks like, not a partial load.
"""

import argparse
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from .converters import NUM_OFFICIAL_CLASS_ROWS, FamilyConverter, find_converter, find_model_family
from .resnet_keys import BackboneLayout, detect_resnet_layout, find_backbone_layout, to_torchvision_name

MIN_FULL_MODEL_MATCH = 0.9  # share of the model's tensors a full-model checkpoint must provide
# detectron2-style training checkpoints record these; DETR-style scripts save "epoch" / "args" instead
TRAINING_STATE_KEYS = ("iteration", "trainer")


class CheckpointFormatError(ValueError):
    """The file's content is not a checkpoint format detrex knows."""


class IncompatibleCheckpointError(ValueError):
    """The checkpoint is a known format but belongs to a different model."""


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
    """The object stored in ``path``. ``.pkl``: detectron2 / caffe2 numpy pickle (numpy arrays only);
    otherwise ``torch.load(weights_only=True)`` with ``argparse.Namespace`` allowed (official releases keep
    their command-line arguments under "args")."""
    try:
        if path.endswith(".pkl"):
            with open(path, "rb") as f:
                obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        else:
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointFormatError(
            f"{path}: cannot be read as weights ({e}). detrex loads checkpoints with torch.load(weights_only=True) "
            "(argparse.Namespace allowed); re-save the file with plain tensors, e.g. torch.save({'model': sd}, f)."
        ) from e
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{path}: holds a {type(obj).__name__}, expected a dict of tensors")
    return dict(obj)


@dataclass
class ConvertedCheckpoint:
    """A state dict in the model's names, and how it was obtained."""

    state_dict: dict[str, torch.Tensor]
    format: str
    full_model: bool  # False for ImageNet backbone weights
    extra: dict = field(default_factory=dict)  # other top-level entries (kept for this project's format)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    sliced: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def split_checkpoint(obj: Mapping) -> tuple[dict, dict]:
    """(state dict with tensors, other top-level entries) of a loaded checkpoint object."""
    if isinstance(obj.get("model"), Mapping):
        sd, extra = dict(obj["model"]), {k: v for k, v in obj.items() if k != "model"}
    elif isinstance(obj.get("blobs"), Mapping):  # caffe2 / Detectron1 weights
        sd, extra = dict(obj["blobs"]), {}
    elif obj and all(isinstance(v, torch.Tensor | np.ndarray) for v in obj.values()):
        sd, extra = dict(obj), {}
    else:
        raise CheckpointFormatError(
            f"no state dict found: top-level keys {sorted(obj)[:8]}; expected 'model' (a dict of tensors), "
            "'blobs' (caffe2), or a flat dict of tensors"
        )
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor | np.ndarray)}
    sd = {k: torch.as_tensor(v) for k, v in sd.items()}
    if sd and all(k.startswith("module.") for k in sd):  # saved from DistributedDataParallel
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd, extra


def convert_official(
    sd: dict, converter: FamilyConverter, backbone: BackboneLayout | None, model_shapes: Mapping | None = None
) -> ConvertedCheckpoint:
    """Rename an official ``converter.family`` state dict. ``backbone``: where the torchvision-layout ResNet
    under ``converter.backbone_prefix`` goes (required when that prefix is set). Class rows are sliced to
    ``converter.class_rows`` when the tensor has 91 rows and the model's (if given) has 80."""
    out = ConvertedCheckpoint({}, f"official {converter.family} ({converter.description})", full_model=True)
    rows = torch.as_tensor(converter.class_rows)
    for key, value in sd.items():
        prefix = converter.backbone_prefix
        if prefix is not None and key.startswith(prefix):
            if backbone is None:
                raise IncompatibleCheckpointError(f"{out.format}: the model has no ResNet backbone for {key}")
            if key.endswith("num_batches_tracked"):
                out.dropped.append(key)
                continue
            new_key = backbone.name(key[len(prefix) :])
        else:
            new_key = converter.rename(key)
        if converter.is_class_key(new_key) and value.shape[0] == NUM_OFFICIAL_CLASS_ROWS:
            target = None if model_shapes is None else model_shapes.get(new_key)
            if target is None or target[0] == len(rows):
                value = value[rows]
                out.sliced.append(new_key)
        if new_key != key:
            out.renamed.append((key, new_key))
        out.state_dict[new_key] = value
    return out


def convert_backbone(sd: dict, layout: str, backbone: BackboneLayout | None) -> ConvertedCheckpoint:
    """Map bare ImageNet ResNet weights (``layout``: torchvision / detectron2 / caffe2) into ``backbone``."""
    names = {
        "torchvision": "torchvision ResNet",
        "detectron2": "detectron2 ResNet",
        "caffe2": "caffe2 ResNet",
    }
    out = ConvertedCheckpoint({}, f"{names[layout]} ImageNet weights (backbone only)", full_model=False)
    if backbone is None:
        raise IncompatibleCheckpointError(f"{out.format}: the model has no ResNet backbone to initialise")
    for key, value in sd.items():
        tv_key = to_torchvision_name(key, layout)
        if tv_key.startswith("fc") or key.endswith(("num_batches_tracked", "_momentum")):
            out.dropped.append(key)  # classifier and optimizer / counter state of the ImageNet model
            continue
        new_key = backbone.name(tv_key)
        out.renamed.append((key, new_key))
        out.state_dict[new_key] = value
    return out


def convert_checkpoint(obj: Mapping, model_state: Mapping[str, torch.Tensor]) -> ConvertedCheckpoint:
    """Recognise the format of a loaded checkpoint object and convert it to the names of ``model_state``."""
    sd, extra = split_checkpoint(obj)
    shapes = {k: tuple(v.shape) for k, v in model_state.items()}
    backbone = find_backbone_layout(shapes)
    converter = find_converter(sd)
    check_same_family(sd, converter, shapes)
    if converter is not None:
        return convert_official(sd, converter, backbone, shapes)
    known = sum(k in shapes for k in sd)
    if sd and known >= 0.5 * len(sd):
        own = any(k in extra for k in TRAINING_STATE_KEYS)
        fmt = "detrex layout (this project's checkpoint)" if own else "detrex layout"
        return ConvertedCheckpoint(sd, fmt, full_model=True, extra=extra if own else {})
    layout = detect_resnet_layout(sd)
    if layout is not None:
        return convert_backbone(sd, layout, backbone)
    family = find_model_family(sd)
    what = (
        f"It has the keys of a detrex {family.name} checkpoint, but not this model's: is the config for another "
        "model or variant?"
        if family is not None
        else f"Not an official release of {_families()}, not detrex's layout of this model, not an ImageNet "
        "ResNet. Is it a checkpoint of another model?"
    )
    raise CheckpointFormatError(
        f"unrecognised checkpoint: {len(sd)} tensors, keys like {list(sd)[:4]}; {known} of them are keys of "
        f"the model (which has keys like {list(shapes)[:3]}). {what}"
    )


def check_same_family(sd: dict, official: FamilyConverter | None, model_state: Mapping) -> None:
    """IncompatibleCheckpointError when the checkpoint (an official release of ``official``, or detrex's
    layout of a registered family) belongs to one family and the model to another."""
    ours = find_model_family(model_state)
    theirs = official or find_model_family(sd)
    if ours is None or theirs is None or theirs is ours:
        return
    what = (
        f"an official {theirs.name} release" if official is not None else f"a detrex {theirs.name} checkpoint"
    )
    pattern = (official.signature if official is not None else theirs.model_signature)[0]
    telling = next((k for k in sd if re.search(pattern, k)), "?")
    raise IncompatibleCheckpointError(
        f"this looks like {what} ({len(sd)} tensors, with {telling}); the model to load it into is "
        f"{ours.name}: it goes with {theirs.name} configs (projects/{theirs.family}/configs)"
    )


def _families() -> str:
    from .converters import CONVERTERS

    return "/".join(CONVERTERS)
