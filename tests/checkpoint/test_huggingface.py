"""The Hugging Face conversion tables, config reading and export checks, without transformers installed:
key names written out by hand, a round trip through the export, and the refusals."""

import pytest
import torch

from detrex.checkpoint import DetectionCheckpointer, IncompatibleCheckpointError, convert_checkpoint
from detrex.checkpoint.converters import COCO_CLASS_ROWS
from detrex.checkpoint.hf_export import HFExportError, hf_config, timm_backbone_name, to_hf_state_dict
from detrex.checkpoint.huggingface import (
    check_hf_config,
    convert_hf,
    detrex_to_hub,
    hub_to_detrex,
    parse_hf_config,
    to_hub_names,
)
from detrex.checkpoint.resnet_keys import BackboneLayout
from tests.tiny import build_tiny_model

D2 = BackboneLayout("backbone.", "detectron2")
HUB_TO_DETREX = {  # written out independently of the tables
    "model.backbone.conv_encoder.model.conv1.weight": "backbone.stem.conv1.weight",
    "model.backbone.conv_encoder.model.bn1.running_var": "backbone.stem.conv1.norm.running_var",
    "model.backbone.conv_encoder.model.layer1.0.downsample.1.bias": "backbone.res2.0.shortcut.norm.bias",
    "model.backbone.conv_encoder.model.layer4.2.conv3.weight": "backbone.res5.2.conv3.weight",
    "model.input_projection.weight": "input_proj.weight",
    "model.query_position_embeddings.weight": "query_embed.weight",
    "model.encoder.layers.3.self_attn.out_proj.bias": "transformer.encoder.layers.3.attentions.0.attn.out_proj.bias",
    "model.encoder.layers.0.self_attn_layer_norm.weight": "transformer.encoder.layers.0.norms.0.weight",
    "model.encoder.layers.5.fc1.weight": "transformer.encoder.layers.5.ffns.0.layers.0.0.weight",
    "model.encoder.layers.5.fc2.bias": "transformer.encoder.layers.5.ffns.0.layers.1.bias",
    "model.encoder.layers.1.final_layer_norm.bias": "transformer.encoder.layers.1.norms.1.bias",
    "model.decoder.layers.0.sa_qcontent_proj.weight": "transformer.decoder.layers.0.attentions.0.query_content_proj.weight",
    "model.decoder.layers.2.sa_v_proj.bias": "transformer.decoder.layers.2.attentions.0.value_proj.bias",
    "model.decoder.layers.0.ca_qpos_proj.weight": "transformer.decoder.layers.0.attentions.1.query_pos_proj.weight",
    "model.decoder.layers.4.ca_qpos_sine_proj.bias": "transformer.decoder.layers.4.attentions.1.query_pos_sine_proj.bias",
    "model.decoder.layers.4.ca_kpos_proj.weight": "transformer.decoder.layers.4.attentions.1.key_pos_proj.weight",
    "model.decoder.layers.1.encoder_attn.out_proj.weight": "transformer.decoder.layers.1.attentions.1.out_proj.weight",
    "model.decoder.layers.1.encoder_attn_layer_norm.bias": "transformer.decoder.layers.1.norms.1.bias",
    "model.decoder.layers.1.final_layer_norm.weight": "transformer.decoder.layers.1.norms.2.weight",
    "model.decoder.layernorm.weight": "transformer.decoder.post_norm_layer.weight",
    "model.decoder.query_scale.layers.1.bias": "transformer.decoder.query_scale.layers.1.bias",
    "model.decoder.ref_point_head.layers.0.weight": "transformer.decoder.ref_point_head.layers.0.weight",
    "class_labels_classifier.bias": "class_embed.bias",
    "bbox_predictor.layers.2.weight": "bbox_embed.layers.2.weight",
}  # fmt: skip
MEMORY_TO_HUB = {  # transformers 5.x in-memory names -> hub names
    "model.backbone.model.layer2.1.bn2.weight": "model.backbone.conv_encoder.model.layer2.1.bn2.weight",
    "model.encoder.layers.0.self_attn.o_proj.weight": "model.encoder.layers.0.self_attn.out_proj.weight",
    "model.encoder.layers.2.mlp.fc1.bias": "model.encoder.layers.2.fc1.bias",
    "model.decoder.layers.3.mlp.fc2.weight": "model.decoder.layers.3.fc2.weight",
    "model.decoder.layers.0.self_attn.q_content_proj.weight": "model.decoder.layers.0.sa_qcontent_proj.weight",
    "model.decoder.layers.0.self_attn.k_pos_proj.bias": "model.decoder.layers.0.sa_kpos_proj.bias",
    "model.decoder.layers.5.self_attn.v_proj.weight": "model.decoder.layers.5.sa_v_proj.weight",
    "model.decoder.layers.0.encoder_attn.q_pos_proj.weight": "model.decoder.layers.0.ca_qpos_proj.weight",
    "model.decoder.layers.1.encoder_attn.q_pos_sine_proj.bias": "model.decoder.layers.1.ca_qpos_sine_proj.bias",
    "model.decoder.layers.1.encoder_attn.v_proj.bias": "model.decoder.layers.1.ca_v_proj.bias",
    "model.decoder.layers.1.encoder_attn.o_proj.bias": "model.decoder.layers.1.encoder_attn.out_proj.bias",
    "model.encoder.layers.4.self_attn.q_proj.weight": "model.encoder.layers.4.self_attn.q_proj.weight",
}  # fmt: skip


def test_hub_names_map_to_detrex_names_and_back():
    for hub, ours in HUB_TO_DETREX.items():
        if hub.startswith("model.backbone."):
            converted = convert_hf(
                {hub: torch.zeros(1), "model.decoder.layers.0.ca_qpos_sine_proj.weight": torch.zeros(1)}, D2
            )
            assert ours in converted.state_dict, hub
        else:
            assert hub_to_detrex(hub) == ours, hub
            assert detrex_to_hub(ours) == hub, ours


def test_transformers_5_names_map_to_hub_names():
    memory = {k: torch.zeros(1) for k in MEMORY_TO_HUB}
    hub, layout = to_hub_names(memory)
    assert layout == "transformers 5.x names" and sorted(hub) == sorted(MEMORY_TO_HUB.values())
    assert (
        to_hub_names({v: torch.zeros(1) for v in MEMORY_TO_HUB.values()})[1] == "transformers 4.x hub names"
    )
    bare, _ = to_hub_names(
        {"encoder.layers.0.fc1.bias": torch.zeros(1), "class_labels_classifier.bias": torch.zeros(1)}
    )
    assert sorted(bare) == [
        "class_labels_classifier.bias",
        "model.encoder.layers.0.fc1.bias",
    ]  # ConditionalDetrModel


def test_encoder_qkv_are_stacked_in_order_and_class_rows_follow_coco_ids():
    sd = {f"model.encoder.layers.0.self_attn.{p}_proj.{n}": torch.full((2,) if n == "bias" else (2, 2), float(i))
          for i, p in enumerate("qkv") for n in ("weight", "bias")}  # fmt: skip
    sd["model.decoder.layers.0.ca_qpos_sine_proj.weight"] = torch.zeros(1)
    sd["class_labels_classifier.bias"] = torch.arange(91.0)
    out = convert_hf(sd, None, {"class_embed.bias": (80,)})
    assert out.state_dict["transformer.encoder.layers.0.attentions.0.attn.in_proj_bias"].tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert out.state_dict["transformer.encoder.layers.0.attentions.0.attn.in_proj_weight"][:, 0].tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert out.merged[0][1] == "transformer.encoder.layers.0.attentions.0.attn.in_proj_bias"
    assert out.state_dict["class_embed.bias"].tolist() == [float(r) for r in COCO_CLASS_ROWS]
    assert out.sliced == ["class_embed.bias"]
    kept = convert_hf(sd, None, {"class_embed.bias": (91,)})  # a model with the checkpoint's 91 classes
    assert kept.state_dict["class_embed.bias"].tolist() == list(range(91)) and not kept.sliced


def test_transformers_resnet_names_go_to_torchvision_names():
    prefix = "model.backbone.conv_encoder.model."
    sd = {prefix + k: torch.zeros(1) for k in (
        "embedder.embedder.convolution.weight", "embedder.embedder.normalization.running_mean",
        "encoder.stages.0.layers.0.shortcut.convolution.weight", "encoder.stages.3.layers.1.shortcut.normalization.bias",
        "encoder.stages.1.layers.2.layer.0.convolution.weight", "encoder.stages.2.layers.0.layer.2.normalization.weight",
    )}  # fmt: skip
    sd["model.decoder.layers.0.ca_qpos_sine_proj.weight"] = torch.zeros(1)
    out = convert_hf(sd, BackboneLayout("backbone.body.", "torchvision"))
    assert "transformers ResNet" in out.format
    assert sorted(k for k in out.state_dict if k.startswith("backbone.")) == sorted(
        ["backbone.body.conv1.weight", "backbone.body.bn1.running_mean", "backbone.body.layer1.0.downsample.0.weight",
         "backbone.body.layer4.1.downsample.1.bias", "backbone.body.layer2.2.conv1.weight",
         "backbone.body.layer3.0.bn3.weight"]
    )  # fmt: skip


def test_config_json_of_both_versions_is_read_offline():
    v4 = {"model_type": "conditional_detr", "use_timm_backbone": True, "backbone": "resnet101", "dilation": False,
          "use_pretrained_backbone": True, "backbone_kwargs": {"out_indices": [1, 2, 3, 4], "output_stride": 16},
          "encoder_attention_heads": 8, "decoder_attention_heads": 8, "id2label": {"0": "N/A", "1": "person"}}  # fmt: skip
    cfg = parse_hf_config(v4)
    assert (cfg.timm_backbone, cfg.backbone, cfg.dilation, cfg.num_labels) == (True, "resnet101", True, 2)
    assert cfg.id2label == {0: "N/A", 1: "person"}
    assert cfg.notes == [
        "config.json's use_pretrained_backbone is ignored: the backbone comes from the checkpoint"
    ]
    v5 = {
        "model_type": "conditional_detr",
        "backbone_config": {"model_type": "resnet", "downsample_in_bottleneck": True},
    }
    cfg = parse_hf_config(v5)
    assert (cfg.timm_backbone, cfg.dilation, cfg.downsample_in_bottleneck) == (False, False, True)
    timm5 = parse_hf_config({"model_type": "conditional_detr", "backbone_config": {
        "model_type": "timm_backbone", "backbone": "resnet50", "output_stride": 16}})  # fmt: skip
    assert (timm5.timm_backbone, timm5.backbone, timm5.dilation) == (True, "resnet50", True)


def test_config_json_that_describes_another_network_is_refused():
    model = build_tiny_model("conditional_detr", backbone="resnet18")  # 8 heads, res5 not dilated
    check_hf_config(parse_hf_config({"model_type": "conditional_detr", "encoder_attention_heads": 8}), model)
    with pytest.raises(IncompatibleCheckpointError) as e:
        check_hf_config(parse_hf_config({"model_type": "conditional_detr", "encoder_attention_heads": 4,
                                         "dilation": True, "activation_function": "gelu"}), model)  # fmt: skip
    message = str(e.value)
    assert "4 encoder attention heads, the model 8: set model.transformer.encoder.num_heads=4" in message
    assert "config.json has dilation=True, the model's backbone does not match: use a DC5 config" in message
    assert "activation_function='gelu'" in message
    with pytest.raises(IncompatibleCheckpointError, match="downsample_in_bottleneck=true"):
        convert_hf({"model.decoder.layers.0.ca_qpos_sine_proj.weight": torch.zeros(1)}, D2,
                   config=parse_hf_config({"model_type": "conditional_detr", "backbone_config": {
                       "model_type": "resnet", "downsample_in_bottleneck": True}}))  # fmt: skip


def test_other_transformers_detectors_and_other_families_are_named(tmp_path):
    model = build_tiny_model("conditional_detr")
    detr = {
        "model.input_projection.weight": torch.zeros(1),
        "model.decoder.layers.0.encoder_attn.q_proj.weight": torch.zeros(1),
    }
    with pytest.raises(
        IncompatibleCheckpointError, match="a Hugging Face transformers DETR-family checkpoint"
    ):
        convert_checkpoint(detr, model.state_dict())
    (tmp_path / "config.json").write_text('{"model_type": "detr"}')
    torch.save(detr, tmp_path / "pytorch_model.bin")
    with pytest.raises(IncompatibleCheckpointError, match="a Hugging Face transformers detr checkpoint"):
        DetectionCheckpointer(model).load(str(tmp_path))
    conditional = to_hf_state_dict(model.state_dict())
    with pytest.raises(IncompatibleCheckpointError, match="the model to load it into is Anchor-DETR"):
        convert_checkpoint(conditional, build_tiny_model("anchor_detr").state_dict())


def test_export_then_import_gives_back_every_tensor():
    # transformers' models have a timm ResNet with frozen norms
    model = build_tiny_model("conditional_detr", "model.num_classes=80", seed=2, backbone="resnet18")
    hub = to_hf_state_dict(model.state_dict())
    assert (
        "model.encoder.layers.1.self_attn.v_proj.weight" in hub
        and "model.decoder.layers.1.ca_qpos_proj.weight" not in hub
    )
    back = convert_checkpoint(hub, model.state_dict())
    assert sorted(back.state_dict) == sorted(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict[key], value), key


def test_export_refuses_what_transformers_cannot_run():
    with pytest.raises(HFExportError, match="Anchor-DETR has no Hugging Face transformers model"):
        hf_config(build_tiny_model("anchor_detr"), None)
    resnet18 = build_tiny_model("conditional_detr", backbone="resnet18")
    assert timm_backbone_name(resnet18.state_dict()) == "resnet18"
    narrow = build_tiny_model("conditional_detr", "model.backbone.stem.out_channels=32", backbone="resnet18")
    with pytest.raises(HFExportError, match="is not a standard ResNet"):
        hf_config(narrow, None)
    res4 = build_tiny_model("conditional_detr", "model.backbone.out_features=['res4']", "model.in_features=['res4']",
                            "model.in_channels=256", backbone="resnet18")  # fmt: skip
    with pytest.raises(HFExportError, match="not the backbone's last stage"):
        hf_config(res4, None)
    with pytest.raises(HFExportError, match="the dataset has 3 classes, the model 5"):
        hf_config(resnet18, ["a", "b", "c"])
