"""The tools run as scripts from the repository root (`python tools/x.py`), not only as imported modules."""

import json
import subprocess
import sys


def _run(*argv):
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)


def test_plot_metrics_as_a_script(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(
        "\n".join(json.dumps({"iteration": i, "loss_class": 1 / (i + 1)}) for i in range(5))
    )
    result = _run(
        "tools/plot_metrics.py", str(run), "--output", str(tmp_path / "p.png"), "--keys", "loss_class"
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_exit_2_with_a_message():
    result = _run("tools/check_dataset.py", "--dataset", "no_such_dataset")
    assert result.returncode == 2
    assert "datasets ['no_such_dataset'] are not registered" in result.stderr
    assert "synthetic_shapes_train" in result.stderr  # the registered ones are listed
