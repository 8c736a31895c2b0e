"""Conditional-DETR checkpoints in every format, on the tiny model: official release layout (91 class rows),
detrex layout, the convert tool, and another model's checkpoint (an error)."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from detrex.checkpoint import CheckpointFormatError, DetectionCheckpointer, IncompatibleCheckpointError
from detrex.checkpoint.converters import COCO_CLASS_ROWS
from detrex.checkpoint.resnet_keys import to_torchvision_name
from tests.projects.conditional_detr.tiny_conditional_detr import build_tiny_conditional_detr

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
    return build_tiny_conditional_detr("model.num_classes=80", seed=1)


def _assert_same_state(model, expected):
    state = model.state_dict()
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def test_official_release_layout_loads_into_every_tensor(tiny_80, tmp_path):
    torch.save({"model": official_checkpoint(tiny_80), "epoch": 49}, tmp_path / "official.pth")
    fresh = build_tiny_conditional_detr("model.num_classes=80", seed=2)
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

    from tests.projects.conditional_detr.tiny_conditional_detr import MODEL_CONFIG, TINY_OVERRIDES

    overrides = [*TINY_OVERRIDES, "model.num_classes=80"]
    tool.main(["--source", str(tmp_path / "official.pth"), "--output", str(tmp_path / "c.pth"),
               "--config-file", MODEL_CONFIG, *overrides])  # fmt: skip
    _assert_same_state(tiny_80, torch.load(tmp_path / "c.pth", weights_only=True)["model"])


def test_anchor_detr_release_into_conditional_detr_is_an_error(tmp_path):
    spec = json.loads(
        (REPO / "tests/fixtures/parity/specs/anchor_detr_r50_50ep.official.spec.json").read_text()
    )
    anchor = {key: torch.zeros(1) for key in spec["shapes"]}  # keys are what matters; shapes stay tiny
    torch.save({"model": anchor}, tmp_path / "anchor.pth")
    with pytest.raises((IncompatibleCheckpointError, CheckpointFormatError), match="anchor|another model"):
        DetectionCheckpointer(build_tiny_conditional_detr()).load(str(tmp_path / "anchor.pth"))


def test_conditional_release_of_another_size_is_an_error(tiny_80, tmp_path):
    torch.save({"model": official_checkpoint(tiny_80)}, tmp_path / "official.pth")
    wide = build_tiny_conditional_detr(
        "model.embed_dim=64", "model.position_embedding.num_pos_feats=32", "model.num_classes=80"
    )
    with pytest.raises(IncompatibleCheckpointError, match="official conditional_detr"):
        DetectionCheckpointer(wide).load(str(tmp_path / "official.pth"))
