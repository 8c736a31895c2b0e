"""Hugging Face transformers Conditional-DETR files load through DetectionCheckpointer and give transformers'
detections: folders and files, 5.x and 4.x (hub) key names, timm and transformers ResNets, DC5; the full-size
R50 / R101 / DC5 configs fit every tensor. Skipped without transformers and timm (the `hf` extra)."""

import json

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("timm")

from safetensors.torch import load_file  # noqa: E402
from transformers import (  # noqa: E402
    ConditionalDetrConfig,
    ConditionalDetrForObjectDetection,
    ConditionalDetrImageProcessor,
)

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
from tests.tiny import build_tiny_model, tiny_model_config  # noqa: E402

SIZES = [(160, 224), (224, 128)]  # one padded batch: each image is padded along one side
K = 20  # detections per image compared: the models' select_box_nums_for_evaluation
TOP_K = f"model.select_box_nums_for_evaluation={K}"


@pytest.fixture(scope="module")
def hf_tiny():
    return seeded_hf_model(tiny_hf_config(), seed=0)


@pytest.fixture(scope="module")
def reference(hf_tiny):
    images = random_images(SIZES)
    return images, hf_detections(hf_tiny, images, K, class_rows=COCO_CLASS_ROWS)


def _load(path, *overrides):
    model = build_tiny_model(
        "conditional_detr", "model.num_classes=80", TOP_K, *overrides, seed=3, backbone="resnet18"
    )
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
    pytorch_model.bin in a folder with a transformers 4.x config.json (read offline)."""
    hf_tiny.save_pretrained(tmp_path / "hub")
    hub = load_file(tmp_path / "hub" / "model.safetensors")
    assert (
        "model.decoder.layers.0.sa_qcontent_proj.weight" in hub and "model.encoder.layers.1.fc1.bias" in hub
    )
    (tmp_path / "bin").mkdir()
    torch.save(hub, tmp_path / "bin" / "pytorch_model.bin")
    config = {  # as transformers 4.x wrote it: the timm backbone by name, downloaded unless told otherwise
        "model_type": "conditional_detr", "use_timm_backbone": True, "backbone": "resnet18",
        "use_pretrained_backbone": True, "backbone_kwargs": {"out_indices": [1, 2, 3, 4], "in_chans": 3},
        "dilation": False, "d_model": 128, "encoder_attention_heads": 8, "decoder_attention_heads": 8,
        "id2label": {str(k): v for k, v in hf_tiny.config.id2label.items()}, "transformers_version": "4.40.0",
    }  # fmt: skip
    (tmp_path / "bin" / "config.json").write_text(json.dumps(config))
    images, expected = reference
    for path in (tmp_path / "hub" / "model.safetensors", tmp_path / "bin"):
        model, checkpointer = _load(path)
        assert "(transformers 4.x hub names, timm ResNet)" in checkpointer.loaded_format
        ignored = "config.json's use_pretrained_backbone is ignored: the backbone comes from the checkpoint"
        assert (ignored in checkpointer.last_load.converted.notes) == (path.name == "bin")
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
    cfg = tiny_model_config("conditional_detr", "model.num_classes=80", TOP_K)
    dc5 = LazyConfig.load("projects/conditional_detr/configs/models/conditional_detr_r50_dc5.py").model
    cfg.model.backbone, cfg.model.in_features, cfg.model.in_channels = dc5.backbone, dc5.in_features, 2048
    model = instantiate(cfg.model)
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


# The differences from transformers listed in projects/conditional_detr/README.md, each shown on transformers
# itself.


def test_transformers_auxiliary_loss_changes_inference(hf_tiny, reference):
    """With auxiliary_loss=True, transformers feeds each decoder layer the layer-normed output of the previous
    one; the official code (and detrex) normalise only the copies given to the auxiliary heads."""
    images, _ = reference
    processor = ConditionalDetrImageProcessor(do_resize=False)
    inputs = processor(images=[image.permute(1, 2, 0).numpy() for image in images], return_tensors="pt")
    aux = seeded_hf_model(tiny_hf_config(auxiliary_loss=True), seed=0)
    with torch.no_grad():
        plain, normed = hf_tiny(**inputs), aux(**inputs)
    assert float((normed.logits - plain.logits).abs().max()) > 0.1
    assert float((normed.pred_boxes - plain.pred_boxes).abs().max()) > 1e-3


def test_transformers_class_loss_weight_is_one(hf_tiny, reference):
    """transformers' Conditional-DETR loss weighs the class loss by 1 whatever cls_loss_coefficient (2) says."""
    images, _ = reference
    processor = ConditionalDetrImageProcessor(do_resize=False)
    inputs = processor(images=[image.permute(1, 2, 0).numpy() for image in images], return_tensors="pt")
    labels = [{"class_labels": torch.tensor([1, 3]), "boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.6, 0.5, 0.3, 0.2]])},
              {"class_labels": torch.tensor([17]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]  # fmt: skip
    with torch.no_grad():
        out = hf_tiny(**inputs, labels=labels)
    parts = out.loss_dict
    assert hf_tiny.config.cls_loss_coefficient == 2
    weighted = parts["loss_ce"] + 5 * parts["loss_bbox"] + 2 * parts["loss_giou"]
    torch.testing.assert_close(out.loss, weighted)


def test_transformers_image_processor_normalises_padded_boxes_by_the_canvas():
    """The same box of a 200x300 image, alone and batched with a 400x500 image: relative to the image, then
    to the padded 400x500 canvas (the model predicts boxes relative to the unpadded image)."""
    image = {
        "image_id": 0,
        "annotations": [{"bbox": [40, 60, 80, 100], "category_id": 1, "area": 8000, "iscrowd": 0}],
    }
    small, large = torch.zeros(200, 300, 3, dtype=torch.uint8), torch.zeros(400, 500, 3, dtype=torch.uint8)
    processor = ConditionalDetrImageProcessor(do_resize=False)
    alone = processor(images=[small.numpy()], annotations=[image], return_tensors="pt")["labels"][0]["boxes"]
    batched = processor(
        images=[small.numpy(), large.numpy()], annotations=[image, image], return_tensors="pt"
    )
    torch.testing.assert_close(alone, torch.tensor([[80 / 300, 110 / 200, 80 / 300, 100 / 200]]))
    torch.testing.assert_close(
        batched["labels"][0]["boxes"], torch.tensor([[80 / 500, 110 / 400, 80 / 500, 100 / 400]])
    )


def test_transformers_dropout_defaults():
    """transformers drops neither attention weights nor FFN activations by default; the official recipe drops
    both with 0.1 (detrex's attn_dropout / ffn_dropout)."""
    config = ConditionalDetrConfig()
    assert (config.dropout, config.attention_dropout, config.activation_dropout, config.auxiliary_loss) == (
        0.1,
        0.0,
        0.0,
        False,
    )
