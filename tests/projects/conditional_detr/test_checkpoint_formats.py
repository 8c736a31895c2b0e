"""Conditional-DETR checkpoints in every format, on the tiny model: official release layout (91 class rows),
detrex layout, the convert tool, and another model's checkpoint (an error)."""

import importlib.util
import json
import logging
import re
from pathlib import Path

import pytest
import torch

from detrex.checkpoint import CheckpointFormatError, DetectionCheckpointer, IncompatibleCheckpointError
from detrex.checkpoint.converters import COCO_CLASS_ROWS
from detrex.checkpoint.resnet_keys import to_torchvision_name
from detrex.config import LazyConfig, instantiate
from tests.tiny import FROZEN_NORMS, MODEL_CONFIGS, build_tiny_model, tiny_model_config

REPO = Path(__file__).resolve().parents[3]
_PROJ = {"query_content": "qcontent", "query_pos": "qpos", "query_pos_sine": "qpos_sine", "key_content": "kcontent",
         "key_pos": "kpos", "value": "v"}  # fmt: skip


def to_official_key(key: str) -> str:
    """Our key -> the official code's name (the inverse of the converter table, written independently)."""
    if key.startswith("backbone."):
        return "backbone.0.body." + to_torchvision_name(key[len("backbone.") :], "detectron2")
    key = key.replace("attentions.0.attn.", "self_attn.").replace("ffns.0.layers.0.0.", "linear1.")
    key = key.replace("ffns.0.layers.1.", "linear2.").replace("decoder.post_norm_layer.", "decoder.norm.")
    key = re.sub(r"\.norms\.(\d)\.", lambda m: f".norm{int(m[1]) + 1}.", key)
    key = key.replace("attentions.0.out_proj.", "self_attn.out_proj.").replace(
        "attentions.1.out_proj.", "cross_attn.out_proj."
    )
    key = re.sub(r"attentions\.0\.(\w+)_proj\.", lambda m: f"sa_{_PROJ[m[1]]}_proj.", key)
    return re.sub(r"attentions\.1\.(\w+)_proj\.", lambda m: f"ca_{_PROJ[m[1]]}_proj.", key)


def official_checkpoint(model, num_rows=91):
    """The model's weights as the official code would store them: official names, 91 class rows."""
    sd = {}
    for key, value in model.state_dict().items():
        if key.startswith("class_embed."):
            full = torch.randn(num_rows, *value.shape[1:])
            full[list(COCO_CLASS_ROWS[: value.shape[0]])] = value
            value = full
        sd[to_official_key(key)] = value.clone()
    return sd


@pytest.fixture(scope="module")
def tiny_80():
    """80 classes and frozen norms, as the official models."""
    return build_tiny_model("conditional_detr", "model.num_classes=80", *FROZEN_NORMS, seed=1)


def _assert_same_state(model, expected):
    state = model.state_dict()
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def test_official_release_layout_loads_into_every_tensor(tiny_80, tmp_path):
    torch.save({"model": official_checkpoint(tiny_80), "epoch": 49}, tmp_path / "official.pth")
    fresh = build_tiny_model("conditional_detr", "model.num_classes=80", *FROZEN_NORMS, seed=2)
    DetectionCheckpointer(fresh).load(str(tmp_path / "official.pth"))
    _assert_same_state(fresh, tiny_80.state_dict())


def test_convert_tool_with_and_without_config(tiny_80, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "convert_checkpoint_tool", REPO / "tools/convert_checkpoint.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    torch.save({"model": official_checkpoint(tiny_80)}, tmp_path / "official.pth")
    tool.main(["--source", str(tmp_path / "official.pth"), "--output", str(tmp_path / "by_keys.pth")])
    by_keys = torch.load(tmp_path / "by_keys.pth", weights_only=True)["model"]
    _assert_same_state(tiny_80, by_keys)

    tool.main(["--source", str(tmp_path / "official.pth"), "--output", str(tmp_path / "c.pth"),
               "--config-file", MODEL_CONFIGS["conditional_detr"], "model.num_classes=80", *FROZEN_NORMS])  # fmt: skip
    _assert_same_state(tiny_80, torch.load(tmp_path / "c.pth", weights_only=True)["model"])


def test_anchor_detr_release_into_conditional_detr_is_an_error(tmp_path):
    spec = json.loads(
        (REPO / "tests/fixtures/parity/specs/anchor_detr_r50_50ep.official.spec.json").read_text()
    )
    anchor = {key: torch.zeros(1) for key in spec["shapes"]}  # keys are what matters; shapes stay tiny
    torch.save({"model": anchor}, tmp_path / "anchor.pth")
    with pytest.raises((IncompatibleCheckpointError, CheckpointFormatError), match="anchor|another model"):
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load(str(tmp_path / "anchor.pth"))


def test_conditional_release_of_another_size_loads_its_backbone(tiny_80, tmp_path, caplog):
    """An official release of another width shares only its backbone with the model: that loads, the
    transformer and heads keep their values, and the warning table names the mismatched modules."""
    torch.save({"model": official_checkpoint(tiny_80)}, tmp_path / "official.pth")
    narrow = build_tiny_model(
        "conditional_detr",
        "model.embed_dim=64",
        "model.position_embedding.num_pos_feats=32",
        "model.num_classes=80",
        *FROZEN_NORMS,
    )
    before = {k: v.clone() for k, v in narrow.state_dict().items()}
    checkpointer = DetectionCheckpointer(narrow)
    with caplog.at_level(logging.WARNING, logger="detrex.checkpoint.detection_checkpoint"):
        checkpointer.load(str(tmp_path / "official.pth"))
    source = tiny_80.state_dict()
    for key, value in narrow.state_dict().items():  # loaded where the shapes agree: all of the backbone
        loaded = source[key].shape == value.shape
        assert torch.equal(value, source[key] if loaded else before[key]), key
        assert loaded or not key.startswith("backbone."), key
    assert checkpointer.last_load.unloaded_class_head == ["class_embed.weight"]  # its bias has 80 rows too
    report = caplog.records[-1].message
    assert "| input_proj.{weight, bias} " in report
    assert "shape (128, 128, 1, 1), (128,) in the checkpoint, (64, 128, 1, 1), (64,) in the model" in report
    assert "| transformer.encoder.layers.0.attentions.* (4) " in report
    assert (
        "e.g. transformer.encoder.layers.0.attentions.0.attn.in_proj_weight: (384, 128) in the checkpoint"
        in report
    )
    assert "The class head class_embed.weight was not loaded" in report


def test_checkpoint_that_shares_almost_nothing_is_an_error(tiny_80, tmp_path):
    """A detrex checkpoint of the tiny model into a DC5 model of another width: the backbone names differ and
    only a few bias vectors have equal shapes, so it is refused, naming what it looks like."""
    torch.save({"model": tiny_80.state_dict()}, tmp_path / "tiny.pth")
    cfg = tiny_model_config("conditional_detr", "model.embed_dim=64", "model.num_classes=80",
                            "model.position_embedding.num_pos_feats=32")  # fmt: skip
    dc5 = LazyConfig.load("projects/conditional_detr/configs/models/conditional_detr_r50_dc5.py").model
    cfg.model.backbone, cfg.model.in_features, cfg.model.in_channels = dc5.backbone, dc5.in_features, 2048
    with pytest.raises(IncompatibleCheckpointError) as e:
        DetectionCheckpointer(instantiate(cfg.model)).load(str(tmp_path / "tiny.pth"))
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'tiny.pth'}: the checkpoint (detrex layout, ")
    assert "shares almost nothing with the model" in message and "\n" not in message
    assert "its keys are those of a Conditional-DETR model of another size or variant" in message
