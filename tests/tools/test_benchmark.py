import importlib.util
import json

import pytest
import torch
from torch.testing import assert_close

TINY = "tests/configs/tiny_conditional_detr.py"


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
    argv += [
        "--output",
        str(out),
        *(["--isolate"] if isolate else []),
        "dataloader.train.dataset.names=no_such_set",
    ]
    summary = script("tools/benchmark.py").main(argv)
    results = json.loads(out.read_text())["results"]
    assert results.keys() == summary["results"].keys() == {"eval", "train", "data"}
    error = results["data"]["error"]
    assert error.startswith("InstantiationError: cannot instantiate 'dataloader.train.dataset'")
    assert (
        "no_such_set" in error and "Registered: " in error
    )  # the whole message, not its first 100 characters
    assert results["eval"]["iterations"] == 1 and results["train"]["iterations"] == 1
    captured = capsys.readouterr()
    assert "no_such_set" in captured.err
    (row,) = [line for line in captured.out.splitlines() if line.startswith("| data   | error")]
    assert row.rstrip(" |").endswith("... (in full below)")
    assert f"\ntask 'data' failed: {error}\n" in captured.out  # under the table, whole


def test_data_task_alone_on_a_missing_dataset(tiny_shapes, script, tmp_path, capsys, monkeypatch):
    """--task data without the dataset's JSON: no traceback; the reason (with the missing path) is printed
    in full and written to the JSON, as with --task all."""
    monkeypatch.setenv("DETREX_DATASETS", str(tmp_path / "datasets"))
    out = tmp_path / "bench.json"
    argv = ["--config-file", TINY, "--task", "data", "--num-iter", "1", "--output", str(out)]
    summary = script("tools/benchmark.py").main([*argv, "dataloader.train.dataset.names=coco_2017_train"])
    missing = str(tmp_path / "datasets" / "coco" / "annotations" / "instances_train2017.json")
    error = json.loads(out.read_text())["results"]["data"]["error"]
    assert (
        error == summary["results"]["data"]["error"]
        and f"FileNotFoundError: dataset 'coco_2017_train': no {missing}" in error
    )
    assert "Expected layout:" in error  # the following lines of the message too
    assert f"task 'data' failed: {error}" in capsys.readouterr().out


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


def test_benchmark_synthetic_train_batch_and_isolated_tasks(script, tmp_path):
    bench = script("tools/benchmark.py")
    batch = bench.synthetic_train_batch([(64, 80), (48, 80), (32, 32)])
    assert [tuple(x["image"].shape) for x in batch] == [(3, 64, 80), (3, 48, 80), (3, 32, 32)]
    assert [len(x["instances"]) for x in batch] == [2, 1, 2]
    assert_close(batch[1]["instances"].gt_boxes.tensor, torch.tensor([[20.0, 12.0, 44.0, 26.4]]))
    summary = bench.main(
        ["--config-file", "tests/configs/tiny_anchor_detr.py", "--task", "train", "--isolate",
         "--train-size", "64x80,48x80", "--num-iter", "1", "--warmup", "0", "--threads", "1",
         "--output", str(tmp_path / "b.json")]
    )  # fmt: skip
    train = summary["results"]["train"]
    assert summary["isolated"] and train["batch_size"] == 2 and train["process_peak_rss_mb"] > 0


def test_benchmark_coco_eval_task_compares_both_backends(script, tmp_path):
    """`--task coco_eval` times both evaluation backends on synthetic COCO-like detections, needs no config
    and reports matching AP."""
    bench = script("tools/benchmark.py")
    dataset, detections = bench.synthetic_coco_detections(20, dets_per_image=30)
    assert len(dataset["images"]) == 20 and len(detections) == 20 * 30
    assert {d["image_id"] for d in detections} == {im["id"] for im in dataset["images"]}
    summary = bench.main(["--task", "coco_eval", "--num-images", "40", "--output", str(tmp_path / "e.json")])
    result = summary["results"]["coco_eval"]
    assert result["num_images"] == 40 and result["num_detections"] == 40 * 100
    assert 5 < result["pycocotools_AP"] < 95 and result["pycocotools_s"] > 0
    if importlib.util.find_spec("faster_coco_eval") is not None:
        assert result["max_abs_diff_ap_points"] <= 0.01
    with pytest.raises(SystemExit):
        bench.main(["--task", "eval"])  # model tasks still need a config
