"""tools/train_net.py refuses a missing or absent config file as a usage error (exit 2), before any work."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py"


def _run(*argv):
    return subprocess.run(
        [sys.executable, "tools/train_net.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_config_file_that_does_not_exist():
    result = _run("--config-file", "projects/conditional_detr/configs/nope.py")
    assert result.returncode == 2
    assert "error: --config-file 'projects/conditional_detr/configs/nope.py': no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_is_required():
    result = _run("train.max_iter=10")
    assert result.returncode == 2
    assert "error: --config-file is required" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_override_is_a_usage_error():
    result = _run(
        "--config-file",
        "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py",
        "train.max_itr=5",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: override 'train.max_itr=5': no key 'max_itr' under 'train'" in result.stderr
    assert "Closest: train.max_iter" in result.stderr


def test_eval_only_without_a_checkpoint_warns(tmp_path):
    result = _run(
        "--config-file", "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py", "--eval-only",
        "train.device=cpu", f"train.output_dir={tmp_path}", "train.fast_dev_run.enabled=True",
        "train.fast_dev_run.eval_batches=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "--eval-only without train.init_checkpoint: evaluating randomly initialised weights" in log
    assert "Stopped at max_batches=1 (of " in log
    # the model's structure (~200 lines) goes to the evaluation's own log.txt, not to the console
    assert "Model: ConditionalDETR, 2.21 M parameters (its structure: log.txt)" in result.stdout
    assert "ConditionalDETR(" not in result.stdout
    assert "Model:\nConditionalDETR(" in (tmp_path / "fast_dev_run" / "inference" / "log.txt").read_text()
    assert sorted(os.listdir(tmp_path / "fast_dev_run")) == ["inference"]


def test_fast_dev_run_in_its_own_folder_and_ema_predictions_beside_the_others(tmp_path):
    (tmp_path / "model_final.pth").write_bytes(b"a real run's weights")
    result = _run(
        "--config-file", "projects/anchor_detr/configs/anchor_detr_tiny_synthetic.py", "train.device=cpu",
        f"train.output_dir={tmp_path}", "train.fast_dev_run.enabled=True", "train.fast_dev_run.eval_batches=1",
        "train.model_ema.enabled=True",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "model_final.pth").read_bytes() == b"a real run's weights"  # untouched
    run = tmp_path / "fast_dev_run"
    assert (run / "model_final.pth").is_file() and (run / "metrics.json").is_file()
    assert (run / "inference" / "coco_instances_results.json").is_file()
    assert (run / "inference" / "ema" / "coco_instances_results.json").is_file()
    rows = [json.loads(line) for line in (run / "metrics.json").read_text().splitlines()]
    assert max(r["iteration"] for r in rows) == 19
    assert any("bbox/AP" in r for r in rows) and any("ema/bbox/AP" in r for r in rows)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.num_classes=3.5", "model.num_classes holds int 5, and 3.5 is not a whole number; "
         "model.num_classes takes an integer, e.g. model.num_classes=3"),
        ("train.max_iter=1e3", "train.max_iter holds int 2000, and 1e3 is the float 1000.0; write it as a "
         "whole number: train.max_iter=1000"),
    ],
)  # fmt: skip
def test_a_number_of_the_wrong_kind_is_a_usage_error(override, message):
    result = _run("--config-file", QUICKSTART, override)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"train_net.py: error: override {override!r}: {message}"


def test_a_device_torch_does_not_know_is_a_usage_error():
    result = _run("--config-file", QUICKSTART, "train.device=gpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "train_net.py: error: train.device='gpu' is not a device: use cpu, cuda or cuda:N (e.g. train.device=cpu)"
    )


def test_an_output_dir_that_cannot_be_written_is_a_usage_error(tmp_path):
    (tmp_path / "a_file").write_text("")
    result = _run("--config-file", QUICKSTART, f"train.output_dir={tmp_path}/a_file/run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"train_net.py: error: train.output_dir='{tmp_path}/a_file/run': cannot write there ({tmp_path}/a_file "
        "is a file). Set train.output_dir to a folder you can write, e.g. train.output_dir=./output/my_run"
    )
