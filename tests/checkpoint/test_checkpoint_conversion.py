"""Format detection and key conversion, checked key by key against the parity specs (no weights needed)."""

import json
from pathlib import Path

import pytest
import torch

from detrex.checkpoint import (
    CheckpointFormatError,
    IncompatibleCheckpointError,
    convert_checkpoint,
    convert_official,
)
from detrex.checkpoint.converters import COCO_CLASS_ROWS, CONVERTERS, find_converter, find_model_family
from detrex.checkpoint.resnet_keys import BackboneLayout, detect_resnet_layout, find_backbone_layout

SPECS = Path(__file__).resolve().parents[1] / "fixtures/parity/specs"


def _spec(name):
    return json.loads((SPECS / f"{name}.spec.json").read_text())


def _meta(shapes):
    return {k: torch.empty(v, device="meta") for k, v in shapes.items()}


def test_conditional_official_to_detrex_equals_the_spec_map():
    official, detrex = _spec("conditional_detr_r50_50ep.official"), _spec("conditional_detr_r50_50ep.detrex")
    converter = find_converter(official["shapes"])
    assert converter is CONVERTERS["conditional_detr"]
    layout = find_backbone_layout(detrex["shapes"])
    assert layout == BackboneLayout("backbone.", "detectron2")
    out = convert_official(_meta(official["shapes"]), converter, layout, detrex["shapes"])
    renamed = dict(out.renamed)
    for new_key, old_key in detrex["from_official"].items():
        assert renamed.get(old_key, old_key) == new_key
    assert {k: list(v.shape) for k, v in out.state_dict.items()} == detrex["shapes"]
    assert sorted(out.sliced) == sorted(detrex["sliced_keys"])
    assert list(COCO_CLASS_ROWS) == detrex["class_rows"]


def test_dc5_official_backbone_goes_to_torchvision_layout():
    official = _spec("conditional_detr_r50_50ep.official")["shapes"]
    out = convert_official(
        _meta(official), CONVERTERS["conditional_detr"], BackboneLayout("backbone.body.", "torchvision")
    )
    assert "backbone.body.layer4.2.bn3.running_var" in out.state_dict
    assert "backbone.body.conv1.weight" in out.state_dict
    assert not any(k.startswith("backbone.0.") for k in out.state_dict)
    assert out.state_dict["class_embed.weight"].shape == (80, 256)  # sliced without a model to compare with


def test_class_rows_are_taken_by_coco_category_id():
    official = {
        "class_embed.weight": torch.arange(91.0)[:, None].repeat(1, 3),
        "class_embed.bias": torch.arange(91.0),
    }
    official.update({"transformer.decoder.layers.0.ca_qpos_sine_proj.weight": torch.zeros(1)})
    out = convert_official(official, CONVERTERS["conditional_detr"], None, {"class_embed.bias": (80,)})
    assert out.state_dict["class_embed.bias"].tolist() == [float(r) for r in COCO_CLASS_ROWS]
    assert out.state_dict["class_embed.weight"][:, 0].tolist() == [float(r) for r in COCO_CLASS_ROWS]


def test_detrex_layouts_match_no_official_signature():
    assert find_converter(_spec("conditional_detr_r50_50ep.detrex")["shapes"]) is None
    assert find_converter(_spec("anchor_detr_r50_50ep.detrex")["shapes"]) is None
    assert (
        find_converter(_spec("anchor_detr_r50_50ep.official")["shapes"]) is not CONVERTERS["conditional_detr"]
    )


def test_resnet_layout_detection():
    assert (
        detect_resnet_layout(["conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "fc.weight"])
        == "torchvision"
    )
    assert detect_resnet_layout(["stem.conv1.weight", "res2.0.conv1.weight"]) == "detectron2"
    assert detect_resnet_layout(["conv1_w", "res_conv1_bn_s", "res2_0_branch2a_w"]) == "caffe2"
    assert detect_resnet_layout(["transformer.x", "backbone.stem.conv1.weight"]) is None


def test_model_family_from_keys():
    assert (
        find_model_family(_spec("conditional_detr_r50_50ep.detrex")["shapes"])
        is CONVERTERS["conditional_detr"]
    )
    assert find_model_family(_spec("anchor_detr_r50_50ep.detrex")["shapes"]) is CONVERTERS["anchor_detr"]
    assert find_model_family(_spec("conditional_detr_r50_50ep.official")["shapes"]) is None
    assert find_model_family(["backbone.stem.conv1.weight", "head.weight"]) is None


def test_checkpoint_of_the_other_family_is_named():
    """A detrex checkpoint (or official release) of one family given to a model of the other: the error says
    which family the checkpoint is and which the model is."""
    conditional = _meta(_spec("conditional_detr_r50_50ep.detrex")["shapes"])
    anchor = _meta(_spec("anchor_detr_r50_50ep.detrex")["shapes"])
    with pytest.raises(IncompatibleCheckpointError) as e:
        convert_checkpoint({"model": conditional, "iteration": 5}, anchor)
    assert str(e.value).startswith("this looks like a detrex Conditional-DETR checkpoint (564 tensors, with ")
    assert str(e.value).endswith(
        "the model to load it into is Anchor-DETR: it goes with Conditional-DETR configs "
        "(projects/conditional_detr/configs)"
    )
    with pytest.raises(
        IncompatibleCheckpointError, match="a detrex Anchor-DETR checkpoint .* is Conditional-DETR"
    ):
        convert_checkpoint({"model": anchor}, conditional)
    official_anchor = _meta(_spec("anchor_detr_r50_50ep.official")["shapes"])
    with pytest.raises(
        IncompatibleCheckpointError, match="an official Anchor-DETR release .* is Conditional-DETR"
    ):
        convert_checkpoint({"model": official_anchor}, conditional)
    # the same family still loads; a model of no registered family gets the general error, naming the family
    assert convert_checkpoint({"model": conditional}, conditional).format == "detrex layout"
    other = {"head.weight": torch.empty(2, 2, device="meta")}
    with pytest.raises(
        CheckpointFormatError, match="It has the keys of a detrex Conditional-DETR checkpoint"
    ):
        convert_checkpoint({"model": conditional}, other)
