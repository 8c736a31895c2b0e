import logging

import pytest
import torch

from detrex.checkpoint import DetectionCheckpointer
from detrex.config import LazyConfig, instantiate

TINY_CONDITIONAL = "tests/tools/configs/tiny_conditional_detr.py"
TINY_ANCHOR = "tests/tools/configs/tiny_anchor_detr.py"


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """model_final.pth as tools/train_net.py writes it: model, optimizer and iteration. Returns (path, model)."""
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(TINY_CONDITIONAL).model)
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
        (["--config-file", TINY_ANCHOR], "this looks like a detrex Conditional-DETR checkpoint"),
        (["--config-file", "nope.py"], "--config-file 'nope.py': no such file"),
    ],
)
def test_errors_are_one_line_not_a_traceback(trained_checkpoint, script, tmp_path, capsys, argv, message):
    path, _ = trained_checkpoint
    with pytest.raises(SystemExit) as e:
        script("tools/convert_checkpoint.py").main(
            ["--source", path, "--output", str(tmp_path / "c.pth"), *argv]
        )
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "c.pth").exists()


def test_unknown_checkpoint_is_an_argparse_error(script, tmp_path, capsys):
    torch.save({"model": {"head.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    tool = script("tools/convert_checkpoint.py")
    with pytest.raises(SystemExit) as e:
        tool.main(["--source", str(tmp_path / "other.pth"), "--output", str(tmp_path / "c.pth")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "error: " in err and "Traceback" not in err
    assert "neither an official release of Conditional-DETR/Anchor-DETR nor a detrex checkpoint" in err
    with pytest.raises(SystemExit) as e:
        tool.main(["--source", str(tmp_path / "nope.pth"), "--output", str(tmp_path / "c.pth")])
    assert (
        e.value.code == 2 and f"--source '{tmp_path / 'nope.pth'}': no such file" in capsys.readouterr().err
    )
