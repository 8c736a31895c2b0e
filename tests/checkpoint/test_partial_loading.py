"""A checkpoint that fits part of the model loads that part (detectron2's behaviour), names what it did not
load, and exposes it (``last_load``); ``?matching_heuristics=True``; paths and URLs that cannot be read."""

import logging
import os

import pytest
import torch

from detrex.checkpoint import (
    CheckpointDownloadError,
    CheckpointError,
    CheckpointNotFoundError,
    CheckpointPathError,
    DetectionCheckpointer,
    IncompatibleCheckpointError,
)
from detrex.checkpoint.detection_checkpoint import Detectron2Handler
from tests.projects.conditional_detr.test_checkpoint_formats import official_checkpoint
from tests.tiny import FROZEN_NORMS, build_tiny_model

LOGGER = "detrex.checkpoint.detection_checkpoint"
TWO_LAYERS = "model.transformer.decoder.num_layers=2"  # the published model's; variants have 1 or 3


@pytest.fixture(scope="module")
def published():
    """A trained tiny model (2 decoder layers, 5 classes) and its checkpoint's state dict."""
    model = build_tiny_model("conditional_detr", TWO_LAYERS, seed=1)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def _load(tmp_path, sd, *overrides, name="published.pth", caplog=None):
    torch.save({"model": sd}, tmp_path / name)
    model = build_tiny_model("conditional_detr", TWO_LAYERS, *overrides, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(str(tmp_path / name))
    return model, before, checkpointer


def test_variant_with_fewer_decoder_layers_loads_the_rest(published, tmp_path, caplog):
    _, sd = published
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model, _, checkpointer = _load(tmp_path, sd, "model.transformer.decoder.num_layers=1")
    for key, value in model.state_dict().items():
        assert torch.equal(value, sd[key]), key
    plan = checkpointer.last_load
    assert (
        not plan.not_loaded
        and plan.unexpected
        and all(k.startswith("transformer.decoder.layers.1.") for k in plan.unexpected)
    )
    record = caplog.records[-1]
    assert record.levelname == "INFO"  # everything the model has was loaded
    assert (
        f"Checkpoint tensors the model has no place for ({len(plan.unexpected)}): transformer.decoder.layers.1.* ("
        in (record.message)
    )


def test_variant_with_more_decoder_layers_keeps_the_new_layer(published, tmp_path, caplog):
    _, sd = published
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model, before, checkpointer = _load(tmp_path, sd, "model.transformer.decoder.num_layers=3")
    new = [k for k in model.state_dict() if k.startswith("transformer.decoder.layers.2.")]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key] if key in new else sd[key]), key
    assert sorted(checkpointer.last_load.missing) == sorted(new)
    record = caplog.records[-1]
    assert record.levelname == "WARNING"
    assert f"| transformer.decoder.layers.2.* ({len(new)}) | not in the checkpoint |" in record.message


def test_new_head_is_skipped_and_named(published, tmp_path, caplog):
    """A published checkpoint into a model with another number of classes: everything but the class head
    loads; the head is named in the warning and exposed as last_load.unloaded_class_head."""
    _, sd = published
    with caplog.at_level(logging.INFO, logger=LOGGER):
        model, before, checkpointer = _load(tmp_path, sd, "model.num_classes=7")
    plan = checkpointer.last_load
    assert plan.wrong_shape == [("class_embed.weight", (5, 128), (7, 128)), ("class_embed.bias", (5,), (7,))]
    assert plan.unloaded_class_head == ["class_embed.weight", "class_embed.bias"] and not plan.missing
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key] if key.startswith("class_embed.") else sd[key]), key
    record = caplog.records[-1]
    assert record.levelname == "WARNING"
    assert (
        "| class_embed.{weight, bias} | shape (5, 128), (5,) in the checkpoint, (7, 128), (7,) in the model |"
        in (record.message)
    )
    assert (
        "The class head class_embed.{weight, bias} was not loaded: its scores are untrained."
        in record.message
    )


def test_official_release_into_a_variant(published, tmp_path):
    model, _ = published
    torch.save({"model": official_checkpoint(model, num_rows=91)}, tmp_path / "official.pth")
    variant = build_tiny_model(  # frozen norms, as the official models
        "conditional_detr", "model.transformer.decoder.num_layers=1", "model.num_classes=80", *FROZEN_NORMS
    )
    checkpointer = DetectionCheckpointer(variant)
    checkpointer.load(str(tmp_path / "official.pth"))
    assert checkpointer.loaded_format.startswith("official conditional_detr")
    plan = checkpointer.last_load
    assert not plan.not_loaded and plan.converted.sliced == ["class_embed.weight", "class_embed.bias"]
    assert plan.unexpected and all(k.startswith("transformer.decoder.layers.1.") for k in plan.unexpected)
    assert torch.equal(variant.class_embed.weight[:5], model.class_embed.weight)  # rows of COCO ids 1..5
    decoder, source = variant.transformer.decoder.layers[0], model.transformer.decoder.layers[0]
    assert torch.equal(
        decoder.attentions[1].query_pos_sine_proj.weight, source.attentions[1].query_pos_sine_proj.weight
    )


def test_matching_heuristics_load_keys_by_dotted_suffix(published, tmp_path):
    """Keys without the `transformer.` prefix are unrecognised; with ?matching_heuristics=True each goes to the
    model key it is a dotted suffix of, as in detectron2."""
    _, sd = published
    bare = {k[len("transformer.") :]: v for k, v in sd.items() if k.startswith("transformer.")}
    torch.save({"model": bare}, tmp_path / "transformer.pth")
    model = build_tiny_model("conditional_detr", TWO_LAYERS, seed=2)
    with pytest.raises(CheckpointError, match="add \\?matching_heuristics=True to the path"):
        DetectionCheckpointer(model).load(str(tmp_path / "transformer.pth"))
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(f"{tmp_path / 'transformer.pth'}?matching_heuristics=True")
    assert "matched by name suffix (matching_heuristics)" in checkpointer.loaded_format
    assert sorted(checkpointer.last_load.to_load) == sorted(k for k in sd if k.startswith("transformer."))
    for key in checkpointer.last_load.to_load:
        assert torch.equal(model.state_dict()[key], sd[key]), key
    torch.save({"model": {"norms.0.weight": torch.ones(128)}}, tmp_path / "ambiguous.pth")
    with pytest.raises(IncompatibleCheckpointError, match="'norms.0.weight' is the suffix of both"):
        checkpointer.load(f"{tmp_path / 'ambiguous.pth'}?matching_heuristics=True")
    with pytest.raises(CheckpointPathError, match=r"unsupported query 'strict=1'"):
        checkpointer.load(f"{tmp_path / 'transformer.pth'}?strict=1")


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as e:
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load(str(tmp_path / "nope.pth"))
    assert isinstance(e.value, FileNotFoundError)
    assert str(e.value) == (
        f"{tmp_path / 'nope.pth'}: no such file or folder; check the path (train.init_checkpoint=...), or pass "
        "train.init_checkpoint='' to start from the config's initial weights"
    )


def test_hugging_face_model_id_gets_a_download_hint():
    with pytest.raises(CheckpointNotFoundError, match=r"a Hugging Face model id\? download it with `hf download "
                       r"microsoft/conditional-detr-resnet-50 --local-dir DIR`"):  # fmt: skip
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load(
            "microsoft/conditional-detr-resnet-50"
        )
    with pytest.raises(CheckpointNotFoundError) as e:  # a relative checkpoint path gets no such hint
        DetectionCheckpointer(build_tiny_model("conditional_detr")).load("no_such_output/model_final.pth")
    assert "Hugging Face" not in str(e.value)


def test_failed_download_names_url_cache_and_config_keys(tmp_path, monkeypatch):
    """Offline (a refused connection): one line with the URL, the cache file that would be used instead, and
    the config keys; with the file placed there, the same path loads without network."""
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(Detectron2Handler, "URL", "http://127.0.0.1:9/detectron2/")  # port 9: nothing listens
    model = build_tiny_model("conditional_detr")
    for path, cached in (
        ("http://127.0.0.1:9/models/tiny-0123.pth", tmp_path / "cache/models/tiny-0123.pth"),
        (
            "detectron2://ImageNetPretrained/tiny.pkl",
            tmp_path / "cache/detectron2/ImageNetPretrained/tiny.pkl",
        ),
    ):
        with pytest.raises(CheckpointDownloadError) as e:
            DetectionCheckpointer(model).load(path)
        message = str(e.value)
        url = Detectron2Handler.to_url(path)
        assert message.startswith(f"{url}: cannot download {url} (") and "\n" not in message
        assert f"put the file at {cached} (the download cache" in message
        assert "train.init_checkpoint=<local file>, or train.init_checkpoint=''" in message
        assert e.value.cache_path == str(cached) and isinstance(e.value, OSError)
    os.makedirs(tmp_path / "cache/models", exist_ok=True)  # the failed download made the folder
    torch.save({"model": model.state_dict()}, tmp_path / "cache/models/tiny-0123.pth")
    checkpointer = DetectionCheckpointer(build_tiny_model("conditional_detr", seed=4))
    checkpointer.load("http://127.0.0.1:9/models/tiny-0123.pth")
    assert not checkpointer.last_load.not_loaded
