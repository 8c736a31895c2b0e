"""Recognise the format of a loaded checkpoint and convert it to a model's parameter names.

Formats, tried in this order:
1. an official release of a registered family (``converters``: Conditional-DETR, Anchor-DETR): renamed,
   class rows 91 -> 80, backbone mapped into the model's backbone layout;
2. a Hugging Face transformers Conditional-DETR file (``huggingface``): renamed, encoder q/k/v stacked,
   class rows 91 -> 80 (or kept), backbone mapped;
3. this project's / detrex's layout (a good share of the keys are model keys): loaded as is;
4. a bare ImageNet ResNet (torchvision ``resnet50-*.pth``, detectron2 ``R-50.pkl``, caffe2 blobs): mapped
   into the model's backbone, ``fc`` dropped.
A checkpoint of one registered family given to a model of another (by ``model_signature``) is an
IncompatibleCheckpointError naming both; anything else is a CheckpointFormatError. With
``matching_heuristics`` (detectron2's ``path?matching_heuristics=True``) the keys that are not model keys
then go to the model key they are a dotted suffix of. ``load_report.plan_load`` then loads what fits.
"""

import re
from collections.abc import Mapping

import numpy as np
import torch

from .converted import ConvertedCheckpoint
from .converters import NUM_OFFICIAL_CLASS_ROWS, FamilyConverter, find_converter, find_model_family
from .errors import CheckpointFormatError, IncompatibleCheckpointError
from .file_formats import read_checkpoint_file
from .huggingface import HFConfig, convert_hf, is_hf_conditional_detr, is_hf_detection_checkpoint
from .resnet_keys import BackboneLayout, detect_resnet_layout, find_backbone_layout, to_torchvision_name

# share of a checkpoint's tensors that must fit the model (name and shape); below it the file "shares almost
# nothing" with the model and is refused instead of loaded in part
MIN_SHARED = 0.25
# detectron2-style training checkpoints record these; DETR-style scripts save "epoch" / "args" instead
TRAINING_STATE_KEYS = ("iteration", "trainer")

__all__ = [
    "MIN_SHARED",
    "TRAINING_STATE_KEYS",
    "CheckpointFormatError",
    "ConvertedCheckpoint",
    "IncompatibleCheckpointError",
    "align_by_suffix",
    "convert_backbone",
    "convert_checkpoint",
    "convert_official",
    "read_checkpoint_file",
    "split_checkpoint",
]


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


def convert_checkpoint(
    obj: Mapping,
    model_state: Mapping[str, torch.Tensor],
    *,
    hf_config: HFConfig | None = None,
    matching_heuristics: bool = False,
) -> ConvertedCheckpoint:
    """Recognise the format of a loaded checkpoint object and convert it to the names of ``model_state``.
    ``hf_config``: the ``config.json`` of a Hugging Face file (class names, backbone flavour)."""
    sd, extra = split_checkpoint(obj)
    shapes = {k: tuple(v.shape) for k, v in model_state.items()}
    try:
        converted = _convert(sd, extra, shapes, hf_config)
    except CheckpointFormatError:
        if not matching_heuristics:
            raise
        converted = ConvertedCheckpoint(sd, "an unrecognised layout", full_model=False)
    return align_by_suffix(converted, shapes) if matching_heuristics else converted


def _convert(sd: dict, extra: dict, shapes: dict, hf_config: HFConfig | None) -> ConvertedCheckpoint:
    backbone = find_backbone_layout(shapes)
    converter = find_converter(sd)
    check_same_family(sd, converter, shapes)
    if converter is not None:
        return convert_official(sd, converter, backbone, shapes)
    if is_hf_detection_checkpoint(sd):
        check_hf_family(sd, shapes, hf_config)
        return convert_hf(sd, backbone, shapes, hf_config)
    known = sum(k in shapes for k in sd)
    if sd and known >= MIN_SHARED * len(sd):
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
        else f"Not an official release of {_families()}, not a Hugging Face Conditional-DETR, not detrex's "
        "layout of this model, not an ImageNet ResNet. Is it a checkpoint of another model? (To load the "
        "tensors whose names end like the model's, add ?matching_heuristics=True to the path.)"
    )
    raise CheckpointFormatError(
        f"unrecognised checkpoint: {len(sd)} tensors, keys like {list(sd)[:4]}; {known} of them are keys of "
        f"the model (which has keys like {list(shapes)[:3]}). {what}"
    )


def check_hf_family(sd: dict, model_shapes: Mapping, hf_config: HFConfig | None) -> None:
    """IncompatibleCheckpointError for a transformers detector that is not Conditional-DETR, or a model that
    is not Conditional-DETR."""
    model_type = hf_config.model_type if hf_config is not None else None
    if not is_hf_conditional_detr(sd) or model_type not in (None, "conditional_detr"):
        raise IncompatibleCheckpointError(
            f"a Hugging Face transformers {model_type or 'DETR-family'} checkpoint ({len(sd)} tensors), not "
            "Conditional-DETR: detrex loads transformers' ConditionalDetrForObjectDetection files"
        )
    ours = find_model_family(model_shapes)
    if ours is not None and ours.family != "conditional_detr":
        raise IncompatibleCheckpointError(
            f"a Hugging Face transformers Conditional-DETR checkpoint; the model to load it into is {ours.name}: "
            "it goes with Conditional-DETR configs (projects/conditional_detr/configs)"
        )


def align_by_suffix(converted: ConvertedCheckpoint, model_shapes: Mapping) -> ConvertedCheckpoint:
    """detectron2's matching heuristics: a checkpoint key that is not a model key goes to the model key it is
    a whole dotted suffix of (``res2.0.conv1.weight`` -> ``backbone.res2.0.conv1.weight``); the longest such
    checkpoint key wins. One checkpoint key matching two model keys is an error."""
    sd = converted.state_dict
    free = sorted(k for k in sd if k not in model_shapes)
    out = ConvertedCheckpoint(
        {k: v for k, v in sd.items() if k in model_shapes},
        f"{converted.format}, matched by name suffix (matching_heuristics)",
        full_model=False,
        extra=converted.extra,
        renamed=list(converted.renamed),
        merged=list(converted.merged),
        sliced=list(converted.sliced),
        dropped=list(converted.dropped),
        notes=list(converted.notes),
    )
    taken: dict[str, str] = {}
    for model_key in model_shapes:
        if model_key in out.state_dict:
            continue
        suffixes = [k for k in free if model_key.endswith("." + k)]
        if not suffixes:
            continue
        key = max(suffixes, key=len)
        if key in taken:
            raise IncompatibleCheckpointError(
                f"matching_heuristics: checkpoint key {key!r} is the suffix of both {taken[key]!r} and "
                f"{model_key!r}; rename the checkpoint's keys or load without ?matching_heuristics=True"
            )
        taken[key] = model_key
        out.state_dict[model_key] = sd[key]
        out.renamed.append((key, model_key))
    out.state_dict.update({k: sd[k] for k in free if k not in taken})  # reported as unexpected
    return out


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
