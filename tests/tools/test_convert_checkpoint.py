import json
import logging

import pytest
import torch

from detrex.checkpoint import DetectionCheckpointer
from detrex.config import LazyConfig, instantiate
from tests.tiny import tiny_model_config

TINY_CONDITIONAL = "tests/configs/tiny_conditional_detr.py"
TINY_ANCHOR = "tests/configs/tiny_anchor_detr.py"


@pytest.fixture(scope="module")
def resnet18_config(tmp_path_factory):
    """The tiny Conditional-DETR test config with an ImageNet-width ResNet-18 backbone instead of the narrow
    quick-start one (--to hf needs a ResNet that timm builds by name), saved as YAML. Returns its path."""
    cfg = LazyConfig.load(TINY_CONDITIONAL)
    cfg.model = tiny_model_config("conditional_detr", backbone="resnet18").model
    path = tmp_path_factory.mktemp("config") / "tiny_conditional_detr_resnet18.yaml"
    LazyConfig.save(cfg, str(path))
    return str(path)


@pytest.fixture(scope="module")
def trained_checkpoint(resnet18_config, tmp_path_factory):
    """model_final.pth as tools/train_net.py writes it (model, optimizer and iteration), of
    ``resnet18_config``'s model. Returns (path, model)."""
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(resnet18_config).model)
    folder = tmp_path_factory.mktemp("trained")
    optimizer = torch.optim.AdamW(model.parameters())
    DetectionCheckpointer(model, save_dir=str(folder), optimizer=optimizer).save("model_final", iteration=19)
    return str(folder / "model_final.pth"), model


def test_detrex_checkpoint_has_nothing_to_convert(trained_checkpoint, script, tmp_path, caplog):
    """A training checkpoint is already in detrex's layout: the tool says so, exits 0 and writes the model
    weights alone."""
    path, model = trained_checkpoint
    caplog.set_level(logging.INFO, logger="detrex.convert_checkpoint")
    rc = script("tools/convert_checkpoint.py").main(["--source", path, "--output", str(tmp_path / "c.pth")])
    assert rc == 0
    assert (
        f"{path}: a detrex Conditional-DETR checkpoint of iteration 19, already in detrex's layout: nothing to "
        f"convert; writing its {len(model.state_dict())} model tensors alone (dropped: iteration, optimizer)"
    ) in caplog.text
    written = torch.load(tmp_path / "c.pth", weights_only=True)
    assert list(written) == ["model"] and written["model"].keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(written["model"][key], value), key


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config-file", "nope.py"], "--config-file 'nope.py': no such file"),
        (["--config-file", TINY_ANCHOR, "model.num_clases=3"], "no key 'num_clases' under 'model'"),
    ],
)
def test_usage_errors_exit_2(trained_checkpoint, script, tmp_path, capsys, argv, message):
    path, _ = trained_checkpoint
    with pytest.raises(SystemExit) as e:
        script("tools/convert_checkpoint.py").main(
            ["--source", path, "--output", str(tmp_path / "c.pth"), *argv]
        )
    err = capsys.readouterr().err
    assert e.value.code == 2 and "error: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "c.pth").exists()


def test_checkpoint_faults_are_one_line_exit_1(trained_checkpoint, script, tmp_path, capsys):
    """A checkpoint that is missing, unknown or for another model: one line on stderr, status 1 (as
    train_net.py reports checkpoint faults), nothing written."""
    path, _ = trained_checkpoint
    torch.save({"model": {"head.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    tool = script("tools/convert_checkpoint.py")
    cases = [
        (["--source", path, "--config-file", TINY_ANCHOR],
         "IncompatibleCheckpointError: ", "this looks like a detrex Conditional-DETR checkpoint"),
        (["--source", str(tmp_path / "other.pth")], "CheckpointFormatError: ",
         "neither an official release of Conditional-DETR/Anchor-DETR nor a detrex checkpoint"),
        (["--source", str(tmp_path / "nope.pth")], "CheckpointNotFoundError: ",
         f"--source '{tmp_path / 'nope.pth'}': no such file or folder"),
        (["--source", str(tmp_path / "nope.pth"), "--config-file", TINY_CONDITIONAL],
         "CheckpointNotFoundError: ", f"--source '{tmp_path / 'nope.pth'}': no such file or folder"),
    ]  # fmt: skip
    for argv, kind, message in cases:
        assert tool.main([*argv, "--output", str(tmp_path / "c.pth")]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith(kind) and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "c.pth").exists()


def test_config_file_loads_the_source_as_train_net_does(
    trained_checkpoint, resnet18_config, script, tmp_path, capsys, tiny_shapes
):
    """With --config-file the source goes through DetectionCheckpointer: a Hugging Face folder's config.json
    is checked against the model, and ``?matching_heuristics=True`` matches names by suffix."""
    path, model = trained_checkpoint
    tool = script("tools/convert_checkpoint.py")
    hf = tmp_path / "hf"
    to_hf = ["--to", "hf", "--config-file", resnet18_config]
    assert tool.main(["--source", path, "--output", str(hf), *to_hf]) == 0
    back = ["--output", str(tmp_path / "back.pth"), "--config-file", resnet18_config]
    assert tool.main(["--source", str(hf), *back]) == 0
    _assert_written(tmp_path / "back.pth", model)

    config = json.loads((hf / "config.json").read_text())
    config["encoder_attention_heads"] = 4  # the model has 8: the weights would load and compute else
    (hf / "config.json").write_text(json.dumps(config))
    (tmp_path / "back.pth").unlink()
    assert tool.main(["--source", str(hf), *back]) == 1
    err = capsys.readouterr().err
    assert err.startswith("IncompatibleCheckpointError: ") and not (tmp_path / "back.pth").exists()
    assert "4 encoder attention heads, the model 8: set model.transformer.encoder.num_heads=4" in err

    # backbone keys without their "backbone." prefix: matched to the model's keys by suffix
    state = {k.removeprefix("backbone."): v for k, v in model.state_dict().items()}
    torch.save({"model": state}, tmp_path / "bare.pth")
    source = f"{tmp_path / 'bare.pth'}?matching_heuristics=True"
    assert tool.main(["--source", source, *back]) == 0
    _assert_written(tmp_path / "back.pth", model)
    with pytest.raises(SystemExit) as e:  # without a model there is nothing to match the names to
        tool.main(["--source", source, "--output", str(tmp_path / "c.pth")])
    assert e.value.code == 2 and "?matching_heuristics matches names to a model" in capsys.readouterr().err


def _assert_written(path, model):
    written = torch.load(path, weights_only=True)["model"]
    assert written.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(written[key], value), key


def test_own_layout_as_safetensors(trained_checkpoint, resnet18_config, script, tmp_path):
    """--output *.safetensors: the model weights alone, without pickle; they load back key for key."""
    from safetensors.torch import load_file

    path, model = trained_checkpoint
    assert (
        script("tools/convert_checkpoint.py").main(
            ["--source", path, "--output", str(tmp_path / "m.safetensors")]
        )
        == 0
    )
    written = load_file(tmp_path / "m.safetensors")
    assert written.keys() == model.state_dict().keys()
    fresh = instantiate(LazyConfig.load(resnet18_config).model)
    checkpointer = DetectionCheckpointer(fresh)
    checkpointer.load(str(tmp_path / "m.safetensors"))
    assert checkpointer.loaded_format == "detrex layout" and not checkpointer.last_load.not_loaded
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


@pytest.mark.parametrize(
    "config, opts, status, message",
    [
        (None, [], 2, "--to hf needs --config-file"),
        ("anchor", [], 1, "Anchor-DETR has no Hugging Face transformers model"),
        ("conditional", ["model.num_classes=7"], 1, "the dataset has 5 classes, the model 7 (model.num_classes)"),
        ("resnet18", ["model.num_queries=12"], 1,
         "left 1 of the model's tensors at their initial values (e.g. ['query_embed.weight']"),
    ],
)  # fmt: skip
def test_hf_export_refusals_are_one_line(
    trained_checkpoint, resnet18_config, script, tmp_path, capsys, config, opts, status, message, tiny_shapes
):
    """A usage error exits 2 (argparse); a model that cannot be exported is one line, status 1."""
    path, _ = trained_checkpoint
    configs = {"anchor": TINY_ANCHOR, "conditional": TINY_CONDITIONAL, "resnet18": resnet18_config}
    argv = ["--to", "hf", *(["--config-file", configs[config]] if config else []), *opts]
    argv = ["--source", path, "--output", str(tmp_path / "hf"), *argv]
    if status == 2:
        with pytest.raises(SystemExit) as e:
            script("tools/convert_checkpoint.py").main(argv)
        assert e.value.code == 2
    else:
        assert script("tools/convert_checkpoint.py").main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "hf").exists()


def test_hf_export_round_trip(resnet18_config, script, tmp_path, tiny_shapes, caplog):
    """A trained model -> --to hf -> transformers loads every tensor (no missing, unexpected or mismatched
    key), its config has the model's sizes and the dataset's class names, its image processor the test
    resize, and its detections are detrex's on a padded two-image batch."""
    pytest.importorskip("transformers")
    pytest.importorskip("timm")
    from transformers import AutoImageProcessor, ConditionalDetrForObjectDetection

    from detrex.data import MetadataCatalog
    from tests.projects.conditional_detr.hf_reference import (
        assert_same_detections,
        hf_detections,
        random_images,
    )

    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(resnet18_config).model)
    with torch.no_grad():  # trained-looking heads: boxes off the reference points, classes apart
        torch.nn.init.normal_(model.bbox_embed.layers[-1].weight, std=0.2)
        model.class_embed.bias.normal_(-2.0, 0.5)
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_final", iteration=9)
    caplog.set_level(logging.INFO, logger="detrex.convert_checkpoint")
    rc = script("tools/convert_checkpoint.py").main(
        ["--source", str(tmp_path / "model_final.pth"), "--output", str(tmp_path / "hf"), "--to", "hf",
         "--config-file", resnet18_config]
    )  # fmt: skip
    assert (
        rc == 0
        and f"wrote {tmp_path / 'hf'}/model.safetensors, config.json (resnet18, 5 classes)" in caplog.text
    )
    hf, info = ConditionalDetrForObjectDetection.from_pretrained(
        str(tmp_path / "hf"), output_loading_info=True
    )
    assert info["missing_keys"] == info["unexpected_keys"] == info["mismatched_keys"] == set()
    config = hf.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers, config.num_queries) == (
        128,
        2,
        3,
        30,
    )
    assert (config.encoder_attention_heads, config.decoder_ffn_dim, config.auxiliary_loss) == (8, 512, False)
    classes = MetadataCatalog.get("tiny_shapes_val").thing_classes
    assert [config.id2label[i] for i in range(len(classes))] == list(classes) and config.num_labels == 5
    processor = AutoImageProcessor.from_pretrained(str(tmp_path / "hf"))
    assert (processor.size.shortest_edge, processor.size.longest_edge) == (128, 160)
    images = random_images([(128, 160), (160, 96)], seed=3)
    assert_same_detections(model, images, hf_detections(hf.eval(), images, k=100))
