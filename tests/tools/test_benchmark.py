import json

import pytest

TINY = "tests/tools/configs/tiny_conditional_detr.py"


def test_all_tasks_write_json(tiny_shapes, script, tmp_path, capsys):
    out = tmp_path / "bench" / "bench.json"
    summary = script("tools/benchmark.py").main(
        ["--config-file", TINY, "--task", "all", "--num-iter", "2", "--warmup", "1", "--output", str(out)]
    )
    table = capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["results"].keys() == {"eval", "train", "data"} == summary["results"].keys()
    assert saved["num_iter"] == 2 and saved["warmup"] == 1 and saved["amp"] is None
    for task, res in saved["results"].items():
        assert res["iterations"] == 2
        assert res["mean_s_per_iter"] > 0 and res["iter_per_s"] == pytest.approx(1 / res["mean_s_per_iter"])
        assert res["peak_rss_mb"] > 0 and res["rss_growth_mb"] >= 0
        assert f"| {task}" in table
    assert saved["results"]["train"]["batch_size"] == 2  # total_batch_size of the tiny config
    assert saved["results"]["train"]["images_per_s"] == pytest.approx(
        2 * saved["results"]["train"]["iter_per_s"]
    )
    # eval cycles through the pre-loaded test images, resized to short edge 128 like the test loader
    sizes = saved["results"]["eval"]["input_sizes"]
    assert len(sizes) == 2 and all(min(s) == 128 or max(s) == 160 for s in sizes)


@pytest.mark.parametrize("isolate", [False, True])
def test_a_failing_task_is_reported_and_the_others_still_run(tiny_shapes, script, tmp_path, capsys, isolate):
    """--task all where the train dataset is missing (no COCO folder, a typo): "data" reports the reason,
    "eval" and "train" (on a synthetic batch) are measured, and the JSON holds all three."""
    out = tmp_path / "bench.json"
    argv = ["--config-file", TINY, "--task", "all", "--num-iter", "1", "--warmup", "0"]
    argv += ["--input-size", "64x64", "--train-size", "64x64"]  # eval and train need no dataset
    argv += ["--output", str(out), *(["--isolate"] if isolate else []), "dataloader.train.dataset.names=no_such_set"]
    summary = script("tools/benchmark.py").main(argv)
    results = json.loads(out.read_text())["results"]
    assert results.keys() == summary["results"].keys() == {"eval", "train", "data"}
    assert "no_such_set" in results["data"]["error"]
    assert results["eval"]["iterations"] == 1 and results["train"]["iterations"] == 1
    captured = capsys.readouterr()
    assert "no_such_set" in captured.err and "| data   | error" in captured.out


def test_eval_fixed_input_size_bf16(tiny_shapes, script):
    summary = script("tools/benchmark.py").main(
        [
            "--config-file",
            TINY,
            "--task",
            "eval",
            "--num-iter",
            "1",
            "--warmup",
            "0",
            "--input-size",
            "64x96",
            "--amp",
            "--threads",
            "1",
        ]
    )
    assert summary["amp"] == "bfloat16" and summary["threads"] == 1
    assert summary["results"]["eval"]["input_sizes"] == [(64, 96)]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config-file", TINY, "--task", "speed"], "invalid choice: 'speed'"),
        (["--config-file", TINY, "--task", "eval", "--input-size", "64"], "expected HxW"),
        (["--config-file", TINY, "--task", "eval", "--num-iter", "0"], "--num-iter >= 1"),
        (["--config-file", "nope.py", "--task", "eval"], "no such file"),
        (["--task", "eval"], "--config-file"),
    ],
)
def test_bad_arguments(argv, message, script, capsys):
    with pytest.raises(SystemExit) as e:
        script("tools/benchmark.py").main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
