"""tools/train_net.py refuses a missing or absent config file as a usage error (exit 2), before any work."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*argv):
    return subprocess.run(
        [sys.executable, "tools/train_net.py", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
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
