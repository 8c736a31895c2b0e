import argparse
import logging
import os
import pickle

import pytest
import torch
import torchvision
from torch import nn
from torch.testing import assert_close

from detrex.checkpoint import CheckpointFormatError, DetectionCheckpointer
from detrex.checkpoint.resnet_keys import BackboneLayout
from detrex.modeling import BasicStem, ResNet


class Detector(nn.Module):
    """A detectron2-layout ResNet-18 backbone and a head whose class layer is shared by two names."""

    def __init__(self):
        super().__init__()
        stages = ResNet.make_default_stages(18, norm="FrozenBN")
        self.backbone = ResNet(BasicStem(3, 64, "FrozenBN"), stages, out_features=["res5"], freeze_at=1)
        self.head = nn.Linear(512, 4)
        shared = nn.Linear(4, 3)
        self.class_embed = nn.ModuleList([shared, shared])  # tied, as Anchor-DETR's per-layer heads


@pytest.fixture(scope="module")
def torchvision_r18():
    torch.manual_seed(0)
    return {
        k: v + 0.01 * torch.randn_like(v.float()).to(v.dtype)
        for k, v in torchvision.models.resnet18().state_dict().items()
    }


def _expected_backbone(tv_sd):
    layout = BackboneLayout("backbone.", "detectron2")
    return {layout.name(k): v for k, v in tv_sd.items() if not k.startswith("fc") and "num_batches" not in k}


def _check_backbone(model, tv_sd):
    state = model.state_dict()
    for key, value in _expected_backbone(tv_sd).items():
        assert torch.equal(state[key], value), key


def test_torchvision_imagenet_weights_go_into_detectron2_layout(torchvision_r18, tmp_path, caplog):
    torch.save(torchvision_r18, tmp_path / "resnet18.pth")
    model = Detector()
    checkpointer = DetectionCheckpointer(model)
    assert checkpointer.loaded_format is None and checkpointer.loaded_full_model is None
    with caplog.at_level(logging.INFO, logger="detrex.checkpoint.detection_checkpoint"):
        checkpointer.load(str(tmp_path / "resnet18.pth"))
    _check_backbone(model, torchvision_r18)
    assert checkpointer.loaded_full_model is False  # backbone weights only: --eval-only warns about that
    assert checkpointer.loaded_format == "torchvision ResNet ImageNet weights (backbone only)"
    report = caplog.text
    assert "torchvision ResNet ImageNet weights" in report and "fc.weight" in report
    assert "head.{weight, bias}" in report  # missing in the checkpoint, reported by module


def test_detectron2_and_caffe2_pickles(torchvision_r18, tmp_path):
    d2 = {k[len("backbone.") :]: v.numpy() for k, v in _expected_backbone(torchvision_r18).items()}
    with open(tmp_path / "R-18.pkl", "wb") as f:
        pickle.dump({"model": d2, "__author__": "torchvision", "matching_heuristics": True}, f)
    model = Detector()
    DetectionCheckpointer(model).load(str(tmp_path / "R-18.pkl"))
    _check_backbone(model, torchvision_r18)

    c2 = {"conv1_w": d2["stem.conv1.weight"], "res_conv1_bn_s": d2["stem.conv1.norm.weight"],
          "res2_0_branch2a_w": d2["res2.0.conv1.weight"], "res2_0_branch2a_bn_b": d2["res2.0.conv1.norm.bias"],
          "fc1000_w": d2["stem.conv1.norm.weight"]}  # fmt: skip
    with open(tmp_path / "R-18-c2.pkl", "wb") as f:
        pickle.dump({"blobs": c2}, f)
    model = Detector()
    DetectionCheckpointer(model).load(str(tmp_path / "R-18-c2.pkl"))
    assert torch.equal(model.backbone.stem.conv1.norm.weight, torch.as_tensor(c2["res_conv1_bn_s"]))
    assert torch.equal(model.backbone.res2[0].conv1.weight, torch.as_tensor(c2["res2_0_branch2a_w"]))


def test_pickle_with_code_is_refused(tmp_path):
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"model": {"x": argparse.Namespace(a=1)}}, f)
    with pytest.raises(CheckpointFormatError, match="not allowed"):
        DetectionCheckpointer(Detector()).load(str(tmp_path / "evil.pkl"))


def test_own_checkpoint_round_trip_with_training_state(tmp_path):
    model = Detector()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    model.head(torch.ones(1, 512)).sum().backward()
    optimizer.step()
    DetectionCheckpointer(model, str(tmp_path), optimizer=optimizer).save("model_0000009", iteration=9)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]  # no temporary files left
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"

    fresh = Detector()
    fresh_opt = torch.optim.SGD([p for p in fresh.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    checkpointer = DetectionCheckpointer(fresh, str(tmp_path), optimizer=fresh_opt)
    extra = checkpointer.resume_or_load("", resume=True)
    assert extra["iteration"] == 9
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    saved_state, restored_state = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert saved_state and sorted(saved_state) == sorted(restored_state)
    for index, entry in saved_state.items():
        assert_close(restored_state[index]["momentum_buffer"], entry["momentum_buffer"])
    assert fresh.class_embed[0].weight is fresh.class_embed[1].weight  # still tied after loading


def test_tied_parameter_given_once_is_not_missing(tmp_path, caplog):
    model = Detector()
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("class_embed.1.")}
    sd["class_embed.0.weight"] = torch.full((3, 4), 0.5)
    torch.save({"model": sd}, tmp_path / "m.pth")
    fresh = Detector()
    with caplog.at_level(logging.INFO, logger="detrex.checkpoint.detection_checkpoint"):
        DetectionCheckpointer(fresh).load(str(tmp_path / "m.pth"))
    assert fresh.class_embed[1].weight is fresh.class_embed[0].weight
    assert torch.equal(fresh.class_embed[1].weight, torch.full((3, 4), 0.5))
    assert "missing" not in caplog.text


def test_official_style_file_with_args_namespace_loads(tmp_path):
    model = Detector()
    ckpt = {"model": model.state_dict(), "optimizer": {}, "lr_scheduler": {}, "epoch": 49,
            "args": argparse.Namespace(lr=1e-4, dilation=False)}  # fmt: skip
    torch.save(ckpt, tmp_path / "release.pth")
    fresh = Detector()
    optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1)
    extra = DetectionCheckpointer(fresh, optimizer=optimizer).load(str(tmp_path / "release.pth"))
    assert extra == {}  # not our checkpoint: its optimizer / epoch / args are not restored
    assert torch.equal(fresh.head.weight, model.head.weight)


class Unknown:
    pass


def test_arbitrary_objects_are_refused_not_unpickled(tmp_path):
    torch.save({"model": Detector().state_dict(), "extra": Unknown()}, tmp_path / "m.pth")
    with pytest.raises(CheckpointFormatError, match="weights_only"):
        DetectionCheckpointer(Detector()).load(str(tmp_path / "m.pth"))


def test_checkpoint_of_another_model_is_an_error(tmp_path):
    other = {f"transformer.layers.{i}.linear.weight": torch.zeros(2, 2) for i in range(40)}
    other.update({k: v for k, v in list(Detector().state_dict().items())[:10]})
    torch.save({"model": other}, tmp_path / "other.pth")
    with pytest.raises(CheckpointFormatError, match="unrecognised") as e:
        DetectionCheckpointer(Detector()).load(str(tmp_path / "other.pth"))
    assert str(e.value).startswith(f"{tmp_path / 'other.pth'}: ") and "\n" not in str(e.value)


def test_checkpoint_that_fits_part_of_the_model_loads_that_part(tmp_path, caplog):
    """Our names, but only the first 20 of the model's tensors: those load, the rest keep their values and
    a warning table lists them by module."""
    source = Detector()
    partial = dict(list(source.state_dict().items())[:20])
    torch.save({"model": partial}, tmp_path / "partial.pth")
    model = Detector()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checkpointer = DetectionCheckpointer(model)
    with caplog.at_level(logging.INFO, logger="detrex.checkpoint.detection_checkpoint"):
        checkpointer.load(str(tmp_path / "partial.pth"))
    for key, value in model.state_dict().items():
        assert torch.equal(value, partial[key] if key in partial else before[key]), key
    plan = checkpointer.last_load
    assert sorted(plan.to_load) == sorted(partial) and not plan.unexpected and not plan.wrong_shape
    assert sorted(plan.missing) == sorted(set(before) - set(partial)) == sorted(plan.not_loaded)
    assert plan.unloaded_class_head == [f"class_embed.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")]
    record = caplog.records[-1]
    assert record.levelname == "WARNING"
    assert "| backbone.res3.* (25)" in record.message and "| head.{weight, bias}" in record.message


def test_missing_file_and_failed_save_keep_things_intact(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        DetectionCheckpointer(Detector()).load(str(tmp_path / "nope.pth"))
    checkpointer = DetectionCheckpointer(Detector(), str(tmp_path))
    checkpointer.save("model_final")
    before = (tmp_path / "model_final.pth").read_bytes()

    def failing_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        checkpointer.save("model_final")
    assert (tmp_path / "model_final.pth").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        DetectionCheckpointer(Detector(), str(tmp_path)).save("model_0000009")
        os.umask(0o077)
        DetectionCheckpointer(Detector(), str(tmp_path)).save("model_private")
    finally:
        os.umask(old)
    # readable by colleagues as log.txt and metrics.json are (0600 was mkstemp's default), or private on request
    assert (tmp_path / "model_0000009.pth").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model_private.pth").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "last_checkpoint").stat().st_mode & 0o777 == 0o600  # rewritten last under 0o077


def test_detectron2_urls_map_to_the_model_zoo_server():
    from detrex.checkpoint.detection_checkpoint import Detectron2Handler

    class Recorder:
        def get_local_path(self, path, **kwargs):
            return path

    handler = Detectron2Handler(Recorder())
    assert handler._get_local_path("detectron2://ImageNetPretrained/torchvision/R-50.pkl") == (
        "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/torchvision/R-50.pkl"
    )
    assert "detectron2://" in DetectionCheckpointer(Detector()).path_manager._path_handlers
