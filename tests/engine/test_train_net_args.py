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
