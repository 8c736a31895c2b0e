"""Hugging Face transformers Conditional-DETR checkpoints (``ConditionalDetrForObjectDetection``) in detrex's
Conditional-DETR names. Needs neither transformers nor timm: the tables below are the whole conversion.

Key layouts of transformers' files:
* hub names (transformers 4.x; what ``save_pretrained`` still writes by default in 5.x):
  ``model.backbone.conv_encoder.model.layer1.0.conv1.weight``, ``model.encoder.layers.N.fc1``,
  ``model.encoder.layers.N.self_attn.{q,k,v,out}_proj``, ``model.decoder.layers.N.sa_qcontent_proj``,
  ``.ca_qpos_sine_proj``, ``.self_attn.out_proj``, ``.encoder_attn.out_proj`` ...
* transformers 5.x in-memory names (``state_dict()``, ``save_pretrained(save_original_format=False)``):
  ``model.backbone.model.*``, ``mlp.fc1``, ``o_proj``, ``self_attn.q_content_proj``,
  ``encoder_attn.q_pos_sine_proj`` ...; ``MEMORY_TO_HUB`` maps them to hub names first.
Backbones: timm's ResNet (``use_timm_backbone``, torchvision's parameter names) or transformers' own ResNet
(``embedder.embedder.convolution`` ...; ``HF_RESNET_TO_TORCHVISION``), both mapped into the model's ResNet
layout. The encoder's separate q / k / v projections are stacked into ``nn.MultiheadAttention``'s
``in_proj``; a 91-row class head (COCO category ids) gives the 80 rows of an 80-class model.
``config.json`` is read as plain JSON (no download, ``use_pretrained_backbone`` ignored) to check what the
weights cannot show: attention heads, a dilated last stage (DC5), the backbone's stride placement.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .converted import ConvertedCheckpoint
from .converters import COCO_CLASS_ROWS, NUM_OFFICIAL_CLASS_ROWS
from .errors import IncompatibleCheckpointError
from .resnet_keys import BackboneLayout

HUB_BACKBONE = "model.backbone.conv_encoder.model."
MEMORY_TO_HUB = (  # transformers 5.x in-memory name -> hub name, applied in order (inverse of its conversion map)
    (r"^model\.backbone\.model\.", HUB_BACKBONE),
    (r"\.(self_attn|encoder_attn)\.o_proj\.", r".\1.out_proj."),
    (r"\.layers\.(\d+)\.mlp\.(fc\d)\.", r".layers.\1.\2."),
    (r"^(model\.decoder\.layers\.\d+)\.self_attn\.(q|k)_(content|pos)_proj\.", r"\1.sa_\2\3_proj."),
    (r"^(model\.decoder\.layers\.\d+)\.self_attn\.v_proj\.", r"\1.sa_v_proj."),
    (r"^(model\.decoder\.layers\.\d+)\.encoder_attn\.(q|k)_(content|pos)_proj\.", r"\1.ca_\2\3_proj."),
    (r"^(model\.decoder\.layers\.\d+)\.encoder_attn\.q_pos_sine_proj\.", r"\1.ca_qpos_sine_proj."),
    (r"^(model\.decoder\.layers\.\d+)\.encoder_attn\.v_proj\.", r"\1.ca_v_proj."),
)
TOP_LEVEL = (  # hub module -> detrex module; parameter names and deeper indices stay
    ("model.input_projection", "input_proj"),
    ("model.query_position_embeddings", "query_embed"),
    ("model.decoder.layernorm", "transformer.decoder.post_norm_layer"),
    ("model.decoder.query_scale", "transformer.decoder.query_scale"),
    ("model.decoder.ref_point_head", "transformer.decoder.ref_point_head"),
    ("class_labels_classifier", "class_embed"),
    ("bbox_predictor", "bbox_embed"),
)
_PROJECTIONS = {"qcontent": "query_content", "qpos": "query_pos", "kcontent": "key_content", "kpos": "key_pos",
                "v": "value"}  # fmt: skip
ENCODER_LAYER = {  # hub module under model.encoder.layers.N -> detrex module under transformer.encoder.layers.N
    "self_attn.out_proj": "attentions.0.attn.out_proj",
    "self_attn_layer_norm": "norms.0",
    "fc1": "ffns.0.layers.0.0",
    "fc2": "ffns.0.layers.1",
    "final_layer_norm": "norms.1",
}
DECODER_LAYER = {  # the same for model.decoder.layers.N -> transformer.decoder.layers.N
    **{f"sa_{hf}_proj": f"attentions.0.{ours}_proj" for hf, ours in _PROJECTIONS.items()},
    "self_attn.out_proj": "attentions.0.out_proj",
    "self_attn_layer_norm": "norms.0",
    **{f"ca_{hf}_proj": f"attentions.1.{ours}_proj" for hf, ours in _PROJECTIONS.items()},
    "ca_qpos_sine_proj": "attentions.1.query_pos_sine_proj",
    "encoder_attn.out_proj": "attentions.1.out_proj",
    "encoder_attn_layer_norm": "norms.1",
    "fc1": "ffns.0.layers.0.0",
    "fc2": "ffns.0.layers.1",
    "final_layer_norm": "norms.2",
}
ENCODER_QKV = ("q_proj", "k_proj", "v_proj")  # stacked in this order: nn.MultiheadAttention's in_proj rows
_ENCODER_QKV_KEY = re.compile(r"^model\.encoder\.layers\.(\d+)\.self_attn\.([qkv]_proj)\.(weight|bias)$")
HF_RESNET_TO_TORCHVISION = (  # transformers' ResNet (use_timm_backbone=False) -> torchvision names
    (r"^embedder\.embedder\.convolution\.", "conv1."),
    (r"^embedder\.embedder\.normalization\.", "bn1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d)\.convolution\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d)\.normalization\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}."),
)  # fmt: skip
_DETR_FAMILY = re.compile(
    r"(^|\.)(input_projection\.weight|backbone\.conv_encoder\.|class_labels_classifier\.)"
)
_CONDITIONAL = re.compile(r"decoder\.layers\.\d+\.(ca_qpos_sine_proj|encoder_attn\.q_pos_sine_proj)\.weight$")
_MEMORY_NAMES = re.compile(r"(^model\.backbone\.model\.|\.o_proj\.|\.mlp\.fc\d\.|\.q_content_proj\.)")


def is_hf_detection_checkpoint(keys) -> bool:
    """Whether ``keys`` are those of a transformers DETR-family detector (Conditional-DETR or another)."""
    return any(_DETR_FAMILY.search(k) for k in keys)


def is_hf_conditional_detr(keys) -> bool:
    return any(_CONDITIONAL.search(k) for k in keys)


def to_hub_names(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """``sd`` in hub names, and which layout it came in ("transformers 4.x hub names" or "transformers 5.x
    names"). A bare ``ConditionalDetrModel`` (no ``model.`` prefix) or a segmentation model's detector
    (``conditional_detr.`` prefix) is brought to ``ConditionalDetrForObjectDetection``'s names too."""
    sd = {k.removeprefix("conditional_detr."): v for k, v in sd.items()}
    if not any(k.startswith("model.") for k in sd):
        heads = ("class_labels_classifier.", "bbox_predictor.")
        sd = {(k if k.startswith(heads) else "model." + k): v for k, v in sd.items()}
    if not any(_MEMORY_NAMES.search(k) for k in sd):
        return sd, "transformers 4.x hub names"
    out = {}
    for key, value in sd.items():
        for pattern, replacement in MEMORY_TO_HUB:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out, "transformers 5.x names"


def hub_to_detrex(key: str) -> str | None:
    """detrex's name of a non-backbone hub key (None: no counterpart; encoder q/k/v are merged elsewhere)."""
    m = re.match(r"^model\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.([^.]+)$", key)
    if m:
        part, index, module, param = m.groups()
        new = (ENCODER_LAYER if part == "encoder" else DECODER_LAYER).get(module)
        return None if new is None else f"transformer.{part}.layers.{index}.{new}.{param}"
    for hub, ours in TOP_LEVEL:
        if key.startswith(hub + "."):
            return ours + key[len(hub) :]
    return None


def detrex_to_hub(key: str) -> str | None:
    """The hub name of a non-backbone detrex key (the inverse of ``hub_to_detrex``)."""
    m = re.match(r"^transformer\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.([^.]+)$", key)
    if m:
        part, index, module, param = m.groups()
        table = ENCODER_LAYER if part == "encoder" else DECODER_LAYER
        hub = next((h for h, ours in table.items() if ours == module), None)
        return None if hub is None else f"model.{part}.layers.{index}.{hub}.{param}"
    for hub, ours in TOP_LEVEL:
        if key.startswith(ours + "."):
            return hub + key[len(ours) :]
    return None


@dataclass
class HFConfig:
    """What detrex needs from a transformers Conditional-DETR ``config.json``."""

    model_type: str
    timm_backbone: bool = True
    backbone: str = "resnet50"
    dilation: bool = False
    downsample_in_bottleneck: bool = False
    num_labels: int | None = None
    id2label: dict[int, str] = field(default_factory=dict)
    encoder_heads: int | None = None
    decoder_heads: int | None = None
    activation: str = "relu"
    position_embedding_type: str = "sine"
    notes: list[str] = field(default_factory=list)


def parse_hf_config(data: Mapping) -> HFConfig:
    """Read a transformers 4.x or 5.x ``config.json`` (its backbone as ``backbone`` / ``backbone_kwargs`` /
    ``use_timm_backbone`` (4.x) or ``backbone_config`` (5.x)). Never downloads anything."""
    cfg = HFConfig(model_type=str(data.get("model_type", "?")))
    cfg.id2label = {int(k): str(v) for k, v in (data.get("id2label") or {}).items()}
    cfg.num_labels = len(cfg.id2label) or data.get("num_labels")
    cfg.encoder_heads = data.get("encoder_attention_heads")
    cfg.decoder_heads = data.get("decoder_attention_heads")
    cfg.activation = str(data.get("activation_function", "relu"))
    cfg.position_embedding_type = str(data.get("position_embedding_type", "sine"))
    kwargs = data.get("backbone_kwargs") or {}
    backbone_config = data.get("backbone_config") or {}
    cfg.dilation = bool(data.get("dilation")) or kwargs.get("output_stride") == 16
    if backbone_config:  # 5.x always, 4.x for transformers' own backbones
        cfg.timm_backbone = backbone_config.get("model_type") == "timm_backbone"
        cfg.backbone = str(backbone_config.get("backbone") or backbone_config.get("model_type", "?"))
        cfg.dilation = cfg.dilation or backbone_config.get("output_stride") == 16
        cfg.downsample_in_bottleneck = bool(backbone_config.get("downsample_in_bottleneck", False))
    else:
        cfg.timm_backbone = bool(data.get("use_timm_backbone", True))
        cfg.backbone = str(data.get("backbone") or "resnet50")
    if data.get("use_pretrained_backbone"):
        cfg.notes.append(
            "config.json's use_pretrained_backbone is ignored: the backbone comes from the checkpoint"
        )
    return cfg


def convert_hf(
    sd: Mapping[str, torch.Tensor],
    backbone: BackboneLayout | None,
    model_shapes: Mapping[str, tuple] | None = None,
    config: HFConfig | None = None,
) -> ConvertedCheckpoint:
    """A transformers Conditional-DETR state dict (either layout) in detrex's names. ``backbone``: where the
    model keeps its ResNet; ``model_shapes``: the model's tensor shapes (for the class rows)."""
    hub, layout = to_hub_names(sd)
    hf_resnet = any(k.startswith(HUB_BACKBONE + "embedder.") for k in hub)
    kind = "transformers ResNet" if hf_resnet else "timm ResNet"
    out = ConvertedCheckpoint({}, f"Hugging Face transformers Conditional-DETR ({layout}, {kind})", True)
    if config is not None:
        flavour = "timm" if config.timm_backbone else "transformers"
        dc5 = ", dilated last stage (DC5)" if config.dilation else ""
        out.notes.append(f"config.json: {config.backbone} ({flavour}){dc5}, {config.num_labels} labels")
        out.notes.extend(config.notes)
        if config.downsample_in_bottleneck:
            raise IncompatibleCheckpointError(
                "its transformers ResNet strides in the first 1x1 convolution of each stage "
                "(downsample_in_bottleneck=true in config.json); detrex's ResNet configs stride in the 3x3 "
                "convolution, as timm and torchvision do, so the weights would compute something else"
            )
    qkv: dict[tuple[str, str], dict[str, tuple[str, torch.Tensor]]] = {}
    for key, value in hub.items():
        if key.startswith(HUB_BACKBONE):
            name = key[len(HUB_BACKBONE) :]
            if hf_resnet:
                for pattern, replacement in HF_RESNET_TO_TORCHVISION:
                    name = re.sub(pattern, replacement, name)
            if name.endswith("num_batches_tracked"):
                out.dropped.append(key)
                continue
            if backbone is None:
                raise IncompatibleCheckpointError(f"{out.format}: the model has no ResNet backbone for {key}")
            new_key = backbone.name(name)
        elif m := _ENCODER_QKV_KEY.match(key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = (key, value)
            continue
        else:
            new_key = hub_to_detrex(key) or key  # no counterpart: reported as unexpected
        if new_key.startswith("class_embed."):
            value = _class_rows(new_key, value, model_shapes, config, out)
        out.renamed.append((key, new_key))
        out.state_dict[new_key] = value
    for (layer, param), parts in sorted(qkv.items()):
        if len(parts) < len(ENCODER_QKV):  # an incomplete set cannot be stacked: left as they are
            out.state_dict.update({key: value for key, value in parts.values()})
            continue
        new_key = f"transformer.encoder.layers.{layer}.attentions.0.attn.in_proj_{param}"
        out.state_dict[new_key] = torch.cat([parts[p][1] for p in ENCODER_QKV])
        out.merged.append((tuple(parts[p][0] for p in ENCODER_QKV), new_key))
    return out


def _class_rows(key, value, model_shapes, config: HFConfig | None, out: ConvertedCheckpoint) -> torch.Tensor:
    """The class head's rows for the model: 91 COCO-id rows -> 80 classes, or the same rows when they fit."""
    rows = value.shape[0]
    target = None if model_shapes is None else model_shapes.get(key)
    labels = config.id2label if config is not None else {}
    if target is not None and target[0] == rows:
        if key.endswith(".bias"):
            names = ", ".join(labels[i] for i in sorted(labels)[:3]) if labels else "no config.json"
            out.notes.append(f"class rows kept: the checkpoint has the model's {rows} classes ({names} ...)")
        return value
    if rows == NUM_OFFICIAL_CLASS_ROWS and (target is None or target[0] == len(COCO_CLASS_ROWS)):
        out.sliced.append(key)
        if key.endswith(".bias") and labels and labels.get(1) != "person":
            out.notes.append(f"id2label[1] is {labels.get(1)!r}, not 'person': rows taken by COCO id anyway")
        return value[torch.as_tensor(COCO_CLASS_ROWS)]
    return value  # another number of classes: a shape mismatch, reported and not loaded


def check_hf_config(config: HFConfig, model: nn.Module) -> None:
    """IncompatibleCheckpointError when ``config.json`` describes a network the model's weights would load
    into but compute differently in: other head counts, dilation, activation or position embedding."""
    problems = []
    if config.model_type != "conditional_detr":
        problems.append(f"config.json says model_type={config.model_type!r}; detrex loads conditional_detr")
    for part, heads in (("encoder", config.encoder_heads), ("decoder", config.decoder_heads)):
        ours = num_heads(model, part)
        if heads is not None and ours is not None and heads != ours:
            problems.append(
                f"{heads} {part} attention heads, the model {ours}: set model.transformer.{part}.num_heads={heads}"
            )
        # fmt: skip
    dilated = last_stage_dilated(model)
    if dilated is not None and dilated != config.dilation:
        want = "a DC5 config (dilated last stage)" if config.dilation else "a config without DC5"
        problems.append(
            f"config.json has dilation={config.dilation}, the model's backbone does not match: use {want}"
        )
    if config.activation != "relu":
        problems.append(f"activation_function={config.activation!r}; detrex's Conditional-DETR uses ReLU")
    if config.position_embedding_type != "sine":
        problems.append(f"position_embedding_type={config.position_embedding_type!r}; detrex's uses sine")
    if problems:
        raise IncompatibleCheckpointError(
            "a Hugging Face checkpoint for another network: " + "; ".join(problems)
        )


def num_heads(model: nn.Module, part: str) -> int | None:
    prefix = f"transformer.{part}.layers.0."
    for name, module in model.named_modules():
        if name.startswith(prefix) and isinstance(getattr(module, "num_heads", None), int):
            return module.num_heads
    return None


def last_stage_dilated(model: nn.Module) -> bool | None:
    """Whether the ResNet's last stage is dilated (DC5), from its second block's 3x3 convolution."""
    for name, module in model.named_modules():
        if re.search(r"(^|\.)(layer4|res5)\.1\.conv2$", name) and isinstance(module, nn.Conv2d):
            return module.dilation[0] > 1
    return None
