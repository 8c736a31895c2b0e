"""Write a detrex Conditional-DETR as a Hugging Face transformers folder: ``model.safetensors`` (hub key names,
which transformers 4.x and 5.x both load), ``config.json`` (the model's sizes, a timm ResNet backbone, the
dataset's class names as ``id2label``) and ``preprocessor_config.json`` (the model's pixel mean / std and
the test resize). ``transformers.ConditionalDetrForObjectDetection.from_pretrained(folder)`` then loads every
tensor. ``auxiliary_loss`` is written as false: with it true, transformers 5.x feeds each decoder layer the
layer-normed output of the previous one, which is not the network detrex (and the official code) runs.
"""

import json
import math
import os
import re
from collections.abc import Mapping

import torch
from torch import nn

from detrex.utils.file_io import atomic_write

from .converters import find_model_family
from .file_formats import safetensors_bytes
from .huggingface import ENCODER_QKV, HUB_BACKBONE, detrex_to_hub, last_stage_dilated, num_heads
from .resnet_keys import find_backbone_layout, to_torchvision_name

TIMM_RESNETS = {  # (blocks per stage, block type) -> timm's (and torchvision's) model name
    ((2, 2, 2, 2), "basic"): "resnet18",
    ((3, 4, 6, 3), "basic"): "resnet34",
    ((3, 4, 6, 3), "bottleneck"): "resnet50",
    ((3, 4, 23, 3), "bottleneck"): "resnet101",
    ((3, 8, 36, 3), "bottleneck"): "resnet152",
}
_IN_PROJ = re.compile(r"^transformer\.encoder\.layers\.(\d+)\.attentions\.0\.attn\.in_proj_(weight|bias)$")


class HFExportError(ValueError):
    """The model cannot be written as a transformers Conditional-DETR (the message says why)."""


def to_hf_state_dict(model_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detrex Conditional-DETR state dict in transformers' hub names (the inverse of ``convert_hf``)."""
    layout = find_backbone_layout(model_state)
    if layout is None:
        raise HFExportError("the model has no ResNet backbone; transformers' Conditional-DETR needs one")
    out = {}
    for key, value in model_state.items():
        if key.startswith(layout.prefix):
            if not key.endswith("num_batches_tracked"):
                out[HUB_BACKBONE + to_torchvision_name(key[len(layout.prefix) :], layout.style)] = value
        elif m := _IN_PROJ.match(key):
            for name, part in zip(ENCODER_QKV, value.chunk(3)):
                out[f"model.encoder.layers.{m[1]}.self_attn.{name}.{m[2]}"] = part
        elif (hub := detrex_to_hub(key)) is not None:
            out[hub] = value
        else:
            raise HFExportError(
                f"{key} has no counterpart in transformers' ConditionalDetrForObjectDetection"
            )
    return out


def timm_backbone_name(model_state: Mapping[str, torch.Tensor]) -> str:
    """timm's name of the model's ResNet ("resnet50" ...), checked against the standard widths."""
    layout = find_backbone_layout(model_state)
    tv = {to_torchvision_name(k[len(layout.prefix) :], layout.style): v.shape for k, v in model_state.items()
          if k.startswith(layout.prefix)}  # fmt: skip
    blocks = tuple(len({k.split(".")[1] for k in tv if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    block = "bottleneck" if "layer1.0.conv3.weight" in tv else "basic"
    name = TIMM_RESNETS.get((blocks, block))
    widths_ok = tv.get("conv1.weight") == (64, 3, 7, 7) and all(
        tv.get(f"layer{i}.0.conv1.weight", (0,))[0] == 64 * 2 ** (i - 1) for i in range(1, 5)
    )
    if name is None or not widths_ok:
        raise HFExportError(
            f"the backbone ({block} blocks {blocks}, stem {tuple(tv.get('conv1.weight', ()))}) is not a standard "
            f"ResNet ({', '.join(sorted(set(TIMM_RESNETS.values())))}): transformers builds its backbone from "
            "timm by name"
        )
    return name


def hf_config(model: nn.Module, class_names: list[str] | None) -> dict:
    """``config.json`` of ``model`` (a ConditionalDETR). ``class_names``: the dataset's, one per class."""
    family = find_model_family(model.state_dict())
    if family is None or family.family != "conditional_detr":
        what = family.name if family is not None else type(model).__name__
        raise HFExportError(
            f"{what} has no Hugging Face transformers model; --to hf exports Conditional-DETR only"
        )
    sd = model.state_dict()
    num_classes = sd["class_embed.weight"].shape[0]
    if class_names is None:
        class_names = [f"LABEL_{i}" for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise HFExportError(
            f"the dataset has {len(class_names)} classes, the model {num_classes} (model.num_classes)"
        )
    _check_exportable(model, sd)
    encoder, decoder = model.transformer.encoder, model.transformer.decoder
    decoder_layer = decoder.layers[0]
    attn_dropout = decoder_layer.attentions[0].attn_drop.p
    ffn_dropout = decoder_layer.ffns[0].layers[-1].p
    criterion = getattr(model, "criterion", None)
    weights = getattr(criterion, "weight_dict", {})
    matcher = getattr(criterion, "matcher", None)
    return {
        "architectures": ["ConditionalDetrForObjectDetection"],
        "model_type": "conditional_detr",
        "use_timm_backbone": True,
        "backbone": timm_backbone_name(sd),
        "use_pretrained_backbone": False,
        "dilation": bool(last_stage_dilated(model)),
        "num_channels": 3,
        "d_model": sd["query_embed.weight"].shape[1],
        "num_queries": sd["query_embed.weight"].shape[0],
        "encoder_layers": len(encoder.layers),
        "decoder_layers": len(decoder.layers),
        "encoder_attention_heads": num_heads(model, "encoder"),
        "decoder_attention_heads": num_heads(model, "decoder"),
        "encoder_ffn_dim": sd["transformer.encoder.layers.0.ffns.0.layers.0.0.weight"].shape[0],
        "decoder_ffn_dim": sd["transformer.decoder.layers.0.ffns.0.layers.0.0.weight"].shape[0],
        "activation_function": _activation(decoder_layer.ffns[0]),
        "position_embedding_type": "sine",
        "dropout": ffn_dropout,  # transformers: after each attention and after the FFN
        "attention_dropout": attn_dropout,  # on attention weights
        "activation_dropout": ffn_dropout,  # after the FFN's activation
        "auxiliary_loss": False,  # True changes inference in transformers 5.x (see the module docstring)
        "id2label": {str(i): name for i, name in enumerate(class_names)},
        "label2id": {name: i for i, name in enumerate(class_names)},
        **_whole_numbers(  # transformers 5.x declares these int; its loss uses 1 for the class loss anyway
            class_cost=getattr(matcher, "cost_class", 2),
            bbox_cost=getattr(matcher, "cost_bbox", 5),
            giou_cost=getattr(matcher, "cost_giou", 2),
            cls_loss_coefficient=weights.get("loss_class", 2),
            bbox_loss_coefficient=weights.get("loss_bbox", 5),
            giou_loss_coefficient=weights.get("loss_giou", 2),
        ),
        "focal_alpha": getattr(criterion, "alpha", 0.25),
        "is_encoder_decoder": True,
    }


def preprocessor_config(model: nn.Module, shortest_edge: int | None, longest_edge: int | None) -> dict:
    """``preprocessor_config.json`` for transformers' ConditionalDetrImageProcessor: the model's pixel mean
    and std (RGB, 0..1 units) and, when given, the test resize."""
    config = {
        "image_processor_type": "ConditionalDetrImageProcessor",
        "format": "coco_detection",
        "do_resize": shortest_edge is not None,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [round(float(v) / 255, 6) for v in model.pixel_mean.flatten()],
        "image_std": [round(float(v) / 255, 6) for v in model.pixel_std.flatten()],
        "do_pad": True,
        "do_convert_annotations": True,
    }
    if shortest_edge is not None:
        config["size"] = {"shortest_edge": int(shortest_edge), "longest_edge": int(longest_edge or 1333)}
    return config


def write_hf_folder(
    folder: str, state_dict: Mapping[str, torch.Tensor], config: dict, preprocessor: dict
) -> None:
    """Write the three files into ``folder`` (created), each atomically."""
    os.makedirs(folder, exist_ok=True)
    data = safetensors_bytes(state_dict, metadata={"format": "pt"})
    atomic_write(os.path.join(folder, "model.safetensors"), lambda f: f.write(data))
    for name, content in (("config.json", config), ("preprocessor_config.json", preprocessor)):
        text = json.dumps(content, indent=2, sort_keys=True) + "\n"
        atomic_write(os.path.join(folder, name), lambda f, text=text: f.write(text), mode="w")


def _check_exportable(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """HFExportError when transformers' Conditional-DETR would compute something else with these weights."""
    problems = []
    for name, module in model.named_modules():
        strided_1x1 = getattr(module, "kernel_size", None) == (1, 1) and module.stride != (1, 1)
        if re.search(r"(^|\.)(res3|layer2)\.0\.conv1$", name) and strided_1x1:
            problems.append("the backbone strides in the 1x1 convolutions (stride_in_1x1); timm's in the 3x3")
    last = max(
        (v.shape[0] for k, v in sd.items() if re.search(r"(res5|layer4)\.\d+\.conv\d\.weight$", k)), default=0
    )
    if sd["input_proj.weight"].shape[1] != last:
        problems.append("model.in_features is not the backbone's last stage, which transformers always uses")
    pos = model.position_embedding
    if not (
        pos.normalize and pos.temperature == 10000 and math.isclose(pos.scale, 2 * math.pi) and not pos.offset
    ):
        problems.append("the position embedding is not transformers' (normalized sine, temperature 10000)")
    if (
        model.transformer.encoder.post_norm_layer is not None
        or model.transformer.decoder.post_norm_layer is None
    ):
        problems.append("transformers has no LayerNorm after the encoder and one after the decoder")
    if problems:
        raise HFExportError("; ".join(problems))


def _whole_numbers(**values) -> dict[str, int]:
    """The values that are whole numbers, as ints (others are left to transformers' defaults)."""
    return {k: int(v) for k, v in values.items() if float(v).is_integer()}


def _activation(ffn: nn.Module) -> str:
    names = {nn.ReLU: "relu", nn.GELU: "gelu", nn.SiLU: "silu"}
    for module in ffn.modules():
        if type(module) in names:
            return names[type(module)]
    raise HFExportError("the FFN's activation is none of ReLU / GELU / SiLU, which transformers offers")
