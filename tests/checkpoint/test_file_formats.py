"""Container formats: safetensors files of every layout load like their pickled twins; truncated files and
files that are no checkpoint end in one line that names the file and what to do."""

import logging
import zipfile

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from detrex.checkpoint import (
    CheckpointError,
    CheckpointFormatError,
    DetectionCheckpointer,
    NotACheckpointError,
    TruncatedCheckpointError,
    read_checkpoint_file,
    safetensors_bytes,
)
from detrex.checkpoint.resnet_keys import BackboneLayout, to_torchvision_name
from tests.tiny import build_tiny_model


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return {
        k: v + 0.01 * torch.randn_like(v.float()).to(v.dtype)
        for k, v in torchvision.models.resnet18().state_dict().items()
    }


def _caffe2_names(tv: dict) -> dict:
    """A few torchvision keys in caffe2's names (the inverse of resnet_keys' table, for the test)."""
    names = {"conv1.weight": "conv1_w", "bn1.weight": "res_conv1_bn_s", "layer1.0.conv1.weight": "res2_0_branch2a_w",
             "layer2.0.downsample.1.bias": "res3_0_branch1_bn_b"}  # fmt: skip
    return {c2: tv[k] for k, c2 in names.items()}


@pytest.mark.parametrize("layout", ["torchvision", "detectron2", "caffe2"])
def test_imagenet_resnet_as_safetensors(resnet18, layout, tmp_path):
    if layout == "torchvision":
        sd = resnet18
    elif layout == "detectron2":
        d2 = BackboneLayout("", "detectron2")
        sd = {d2.name(k): v for k, v in resnet18.items() if "num_batches" not in k and not k.startswith("fc")}
    else:
        sd = _caffe2_names(resnet18)
    save_file(sd, tmp_path / "resnet18.safetensors")
    model = build_tiny_model("conditional_detr", backbone="resnet18")  # ImageNet ResNet-18 widths
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(str(tmp_path / "resnet18.safetensors"))
    assert checkpointer.loaded_format.startswith(f"{layout} ResNet ImageNet weights")
    state = model.state_dict()
    for key in checkpointer.last_load.to_load:
        tv_key = to_torchvision_name(key[len("backbone.") :], "detectron2")
        assert torch.equal(state[key], resnet18[tv_key]), key
    backbone = [k for k in resnet18 if not k.startswith("fc") and "num_batches" not in k]
    assert len(checkpointer.last_load.to_load) == (4 if layout == "caffe2" else len(backbone))


def test_own_layout_as_safetensors_keeps_tied_tensors(tmp_path):
    model = build_tiny_model("anchor_detr")
    (tmp_path / "anchor.safetensors").write_bytes(safetensors_bytes(model.state_dict()))
    assert sorted(read_checkpoint_file(str(tmp_path / "anchor.safetensors"))) == sorted(model.state_dict())
    fresh = build_tiny_model("anchor_detr", seed=1)
    torch.manual_seed(5)
    fresh.load_state_dict(
        {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in fresh.state_dict().items()}
    )
    checkpointer = DetectionCheckpointer(fresh)
    checkpointer.load(str(tmp_path / "anchor.safetensors"))
    assert checkpointer.loaded_format == "detrex layout" and not checkpointer.last_load.not_loaded
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    heads = fresh.transformer.class_embed
    assert all(h.weight is heads[0].weight for h in heads)  # loading kept the tied heads tied


def _saved(tmp_path, name, **kwargs) -> bytes:
    torch.save({"model": build_tiny_model("conditional_detr").state_dict()}, tmp_path / name, **kwargs)
    return (tmp_path / name).read_bytes()


@pytest.mark.parametrize("kind", ["zip", "legacy pickle", "safetensors", "empty"])
def test_truncated_checkpoints_say_so_in_one_line(kind, tmp_path):
    if kind == "zip":
        data = _saved(tmp_path, "full.pth")
    elif kind == "legacy pickle":
        data = _saved(tmp_path, "full.pth", _use_new_zipfile_serialization=False)
    elif kind == "safetensors":
        data = safetensors_bytes(build_tiny_model("conditional_detr").state_dict())
    else:
        data = b""
    path = tmp_path / ("cut.safetensors" if kind == "safetensors" else "cut.pth")
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedCheckpointError) as e:
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load(str(path))
    message = str(e.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert (
        "truncated or corrupt" in message and "Download or copy it again" in message
    ) or "empty" in message
    assert isinstance(e.value, CheckpointFormatError) and isinstance(e.value, CheckpointError)


@pytest.mark.parametrize(
    "content, looks_like",
    [
        (b"model: conditional_detr\nlr: 1e-4\n", "text starting with 'model: conditional_detr"),
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "an HTML / XML page"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(200), "a JPEG image"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n", "a Git LFS pointer"),
    ],
)
def test_files_that_are_no_checkpoint_say_what_they_look_like(content, looks_like, tmp_path):
    path = tmp_path / "model_final.pth"
    path.write_bytes(content)
    with pytest.raises(NotACheckpointError) as e:
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load(str(path))
    message = str(e.value)
    assert message.startswith(f"{path}: not a checkpoint: {looks_like}") and "\n" not in message
    assert "re-save" not in message and message.endswith(".safetensors files and Hugging Face model folders")
    assert ". Is the path right? detrex reads .pth" in message


def test_other_containers_that_are_no_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "weights.pth", "w") as z:
        z.writestr("readme.txt", "not torch")
    with pytest.raises(NotACheckpointError, match="a zip archive that torch.save did not write"):
        read_checkpoint_file(str(tmp_path / "weights.pth"))
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(NotACheckpointError, match=r"holds a Tensor, not a checkpoint"):
        read_checkpoint_file(str(tmp_path / "tensor.pth"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last_checkpoint").write_text("model_final.pth")
    with pytest.raises(NotACheckpointError, match=r"a training output folder: pass its model_final.pth"):
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load(str(tmp_path / "run"))


def test_report_is_logged_once_at_info_for_a_complete_load(tmp_path, caplog):
    model = build_tiny_model("conditional_detr")
    (tmp_path / "m.safetensors").write_bytes(safetensors_bytes(model.state_dict()))
    with caplog.at_level(logging.INFO, logger="detrex.checkpoint.detection_checkpoint"):
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load(str(tmp_path / "m.safetensors"))
    (record,) = [r for r in caplog.records if r.message.startswith("Loading")]
    assert record.levelname == "INFO" and "Not loaded" not in record.message
