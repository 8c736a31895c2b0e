"""Hugging Face transformers Conditional-DETR files load through DetectionCheckpointer and give transformers'
detections: folders and files, 5.x and 4.x (hub) key names, timm and transformers ResNets, DC5; the full-size
R50 / R101 / DC5 configs fit every tensor. Skipped without transformers and timm (the `hf` extra)."""

import json

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("timm")

from safetensors.torch import load_file  # noqa: E402
from transformers import ConditionalDetrConfig, ConditionalDetrForObjectDetection  # noqa: E402

from detrex.checkpoint import (
    DetectionCheckpointer,
    IncompatibleCheckpointError,
    convert_checkpoint,
    plan_load,
)  # noqa: E402
from detrex.checkpoint.converters import COCO_CLASS_ROWS  # noqa: E402
from detrex.checkpoint.huggingface import check_hf_config, parse_hf_config  # noqa: E402
from detrex.config import LazyConfig, instantiate  # noqa: E402
from tests.projects.conditional_detr.hf_reference import (  # noqa: E402
    assert_same_detections,
    hf_detections,
    random_images,
    seeded_hf_model,
    tiny_hf_config,
)
from tests.projects.conditional_detr.tiny_conditional_detr import TINY_OVERRIDES, build_tiny_conditional_detr  # noqa: E402

SIZES = [(160, 224), (224, 128)]  # one padded batch: each image is padded along one side
K = 20  # the tiny model's select_box_nums_for_evaluation


@pytest.fixture(scope="module")
def hf_tiny():
    return seeded_hf_model(tiny_hf_config(), seed=0)


@pytest.fixture(scope="module")
def reference(hf_tiny):
    images = random_images(SIZES)
    return images, hf_detections(hf_tiny, images, K, class_rows=COCO_CLASS_ROWS)


def _load(path, *overrides):
    model = build_tiny_conditional_detr("model.num_classes=80", *overrides, seed=3)
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(str(path))
    return model, checkpointer


def test_folder_and_file_with_transformers_5_names(hf_tiny, reference, tmp_path):
    hf_tiny.save_pretrained(tmp_path, save_original_format=False)
    assert any(".mlp.fc1." in k for k in load_file(tmp_path / "model.safetensors"))  # 5.x names on disk
    images, expected = reference
    for path in (tmp_path, tmp_path / "model.safetensors"):
        model, checkpointer = _load(path)
        assert checkpointer.loaded_format.startswith(
            "Hugging Face transformers Conditional-DETR (transformers 5.x"
        )
        plan = checkpointer.last_load
        assert not plan.not_loaded and not plan.unexpected and plan.converted.sliced
        assert len(plan.converted.merged) == 2 * 2  # q/k/v weight and bias of 2 encoder layers
        assert_same_detections(model, images, expected)


def test_hub_layout_files(hf_tiny, reference, tmp_path):
    """save_pretrained's default layout (transformers 4.x names, as on the hub), as safetensors, and as a
    pytorch_model.bin in a folder with its config.json."""
    hf_tiny.save_pretrained(tmp_path / "hub")
    hub = load_file(tmp_path / "hub" / "model.safetensors")
    assert (
        "model.decoder.layers.0.sa_qcontent_proj.weight" in hub and "model.encoder.layers.1.fc1.bias" in hub
    )
    (tmp_path / "bin").mkdir()
    torch.save(hub, tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "hub" / "config.json").read_text())
    images, expected = reference
    for path in (tmp_path / "hub" / "model.safetensors", tmp_path / "bin"):
        model, checkpointer = _load(path)
        assert "(transformers 4.x hub names, timm ResNet)" in checkpointer.loaded_format
        assert not checkpointer.last_load.not_loaded and not checkpointer.last_load.unexpected
        assert_same_detections(model, images, expected)


def test_saved_state_dict_without_config(hf_tiny, reference, tmp_path):
    torch.save(hf_tiny.state_dict(), tmp_path / "hf_state_dict.pth")
    model, checkpointer = _load(tmp_path / "hf_state_dict.pth")
    assert not checkpointer.last_load.not_loaded
    assert_same_detections(model, *reference)


def test_same_classes_are_kept(tmp_path):
    """A transformers model trained on the model's own 5 classes: the class rows load as they are."""
    names = {i: f"shape_{i}" for i in range(5)}
    hf = seeded_hf_model(tiny_hf_config(id2label=names), seed=4)
    hf.save_pretrained(tmp_path)
    model, checkpointer = _load(tmp_path, "model.num_classes=5")
    assert not checkpointer.last_load.converted.sliced and not checkpointer.last_load.not_loaded
    assert "class rows kept: the checkpoint has the model's 5 classes (shape_0, shape_1, shape_2 ...)" in (
        checkpointer.last_load.converted.notes
    )
    images = random_images(SIZES, seed=5)
    assert_same_detections(model, images, hf_detections(hf, images, K))


def test_transformers_resnet_backbone(tmp_path):
    """use_timm_backbone=False: transformers' own ResNet (embedder / encoder.stages names) is supported."""
    backbone = {"model_type": "resnet", "depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512],
                "layer_type": "basic", "out_features": ["stage4"]}  # fmt: skip
    hf = seeded_hf_model(tiny_hf_config(backbone_config=backbone, backbone=None), seed=6)
    hf.save_pretrained(tmp_path)
    model, checkpointer = _load(tmp_path)
    assert "transformers ResNet" in checkpointer.loaded_format and not checkpointer.last_load.not_loaded
    images = random_images(SIZES, seed=7)
    assert_same_detections(model, images, hf_detections(hf, images, K, class_rows=COCO_CLASS_ROWS))


@pytest.mark.slow
def test_dc5_timm_resnet50(tmp_path):
    """dilation=True (timm's output_stride 16) into the DC5 config's dilated torchvision ResNet-50."""
    hf = seeded_hf_model(tiny_hf_config(backbone="resnet50", dilation=True), seed=8)
    hf.save_pretrained(tmp_path)
    cfg = LazyConfig.load("projects/conditional_detr/configs/models/conditional_detr_r50_dc5.py")
    overrides = [o for o in TINY_OVERRIDES if not o.startswith(("model.backbone", "model.in_channels"))]
    model = instantiate(LazyConfig.apply_overrides(cfg, [*overrides, "model.num_classes=80"]).model)
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(str(tmp_path))
    assert not checkpointer.last_load.not_loaded
    images = random_images([(96, 128), (128, 80)], seed=9)
    assert_same_detections(model, images, hf_detections(hf, images, K, class_rows=COCO_CLASS_ROWS))


@pytest.mark.parametrize(
    "config, backbone, dilation",
    [
        ("conditional_detr_r50_50ep", "resnet50", False),
        ("conditional_detr_r101_50ep", "resnet101", False),
        ("conditional_detr_r50_dc5_50ep", "resnet50", True),
        ("conditional_detr_r101_dc5_50ep", "resnet101", True),
    ],
)
def test_full_size_configs_fit_every_tensor(config, backbone, dilation):
    """transformers' default-size model (meta tensors: shapes only) fits every tensor of each config's model,
    in both key layouts, and its config.json passes the checks; another dilation does not."""
    with torch.device("meta"):
        hf = ConditionalDetrForObjectDetection(
            ConditionalDetrConfig(backbone=backbone, dilation=dilation, num_labels=91)
        )
        model = instantiate(LazyConfig.load(f"projects/conditional_detr/configs/{config}.py").model)
    plan = plan_load(
        convert_checkpoint(hf.state_dict(), model.state_dict()), model.state_dict(keep_vars=True)
    )
    assert not plan.not_loaded and not plan.unexpected and len(plan.to_load) == plan.num_model_keys
    hf_config = parse_hf_config(json.loads(hf.config.to_json_string()))
    check_hf_config(hf_config, model)
    hf_config.dilation = not dilation
    with pytest.raises(IncompatibleCheckpointError, match="config.json has dilation="):
        check_hf_config(hf_config, model)
