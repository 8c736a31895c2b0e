import json
import os

import numpy as np
import pytest
from PIL import Image


def _write_run(folder, lines):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        for rec in lines:
            f.write((rec if isinstance(rec, str) else json.dumps(rec)) + "\n")


def test_load_metrics_resume_total_loss_and_partial_line(tmp_path, script):
    pm = script("tools/plot_metrics.py")
    _write_run(
        tmp_path / "a",
        [
            {"iteration": 0, "loss_class": 1.0, "loss_bbox": 0.5, "lr": 1e-4},
            {"iteration": 1, "loss_class": 0.8, "loss_bbox": 0.4, "lr": 1e-4},
            {"iteration": 1, "loss_class": 0.7, "loss_bbox": 0.3, "lr": 1e-4},  # resumed: this one wins
            {"iteration": 1, "bbox/AP": 12.5},
            '{"iteration": 2, "loss_cl',
        ],
    )
    rec = pm.load_metrics(pm.metrics_file(str(tmp_path / "a")))
    assert sorted(rec) == [0, 1]
    assert rec[0]["total_loss"] == pytest.approx(1.5)
    assert rec[1] == pytest.approx(
        {"loss_class": 0.7, "loss_bbox": 0.3, "lr": 1e-4, "total_loss": 1.0, "bbox/AP": 12.5}
    )
    its, vals = pm.series(rec, "loss_class")
    np.testing.assert_array_equal(its, [0, 1])
    np.testing.assert_allclose(vals, [1.0, 0.7])


def test_smooth_is_a_trailing_mean(script):
    pm = script("tools/plot_metrics.py")
    np.testing.assert_allclose(pm.smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(pm.smooth(np.array([1.0, 3.0]), 1), [1.0, 3.0])


def test_plot_two_runs(tmp_path, script, capsys):
    pm = script("tools/plot_metrics.py")
    for name, scale in (("run_a", 1.0), ("run_b", 2.0)):
        _write_run(
            tmp_path / name,
            [{"iteration": i, "loss_class": scale / (i + 1), "lr": 1e-4} for i in range(30)]
            + [{"iteration": 29, "bbox/AP": 10 * scale}],
        )
    out = tmp_path / "plots" / "cmp.png"
    rc = pm.main(
        [
            str(tmp_path / "run_a"),
            str(tmp_path / "run_b" / "metrics.json"),
            "--output",
            str(out),
            "--keys",
            "loss_class",
            "lr",
            "bbox/AP",
            "loss_giou",
            "--smooth",
            "3",
        ]
    )
    assert rc == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (360, 1500, 3)  # 3 panels of 5 x 3.6 inches at 100 dpi; loss_giou had no data
    assert (img != 255).any(axis=2).mean() > 0.02  # something was drawn
    text = capsys.readouterr().out
    assert "skipped): loss_giou" in text and "for 2 run(s)" in text
    assert pm.run_labels([str(tmp_path / "run_a"), str(tmp_path / "run_b" / "metrics.json")]) == [
        "run_a",
        "run_b",
    ]
    assert pm.run_labels(["x/out", "y/out"]) == ["x/out", "y/out"]


def test_bad_arguments_exit_nonzero(tmp_path, script, capsys):
    pm = script("tools/plot_metrics.py")
    with pytest.raises(SystemExit) as e:
        pm.main([str(tmp_path / "nope")])
    assert e.value.code == 2 and "no metrics file" in capsys.readouterr().err
    _write_run(tmp_path / "r", [{"iteration": 0, "loss_class": 1.0}])
    with pytest.raises(SystemExit) as e:
        pm.main([str(tmp_path / "r"), "--keys", "bbox/AP", "--output", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "available: ['loss_class', 'total_loss']" in capsys.readouterr().err
    _write_run(tmp_path / "bad", ["{not json", '{"iteration": 1}'])
    with pytest.raises(SystemExit):
        pm.main([str(tmp_path / "bad")])
    assert "metrics.json:1: not a JSON object" in capsys.readouterr().err
