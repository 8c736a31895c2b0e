import numpy as np
import pytest
import torch

from detrex.config import LazyConfig, instantiate
from detrex.utils.analysis import ExportableDetector

CONFIGS = {
    "conditional": "tests/configs/tiny_conditional_detr.py",
    "anchor": "tests/configs/tiny_anchor_detr.py",
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_padded_input_equals_the_models_own_batching(name, tiny_shapes):
    torch.manual_seed(0)
    model = instantiate(LazyConfig.load(CONFIGS[name]).model).eval()
    big = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    small = torch.randint(0, 256, (3, 80, 100), dtype=torch.uint8)
    images = torch.full((1, 3, 96, 128), 77.0)  # padding values are ignored
    images[0, :, :80, :100] = small
    mask = torch.ones(1, 96, 128, dtype=torch.bool)
    mask[:, :80, :100] = False
    with torch.no_grad():
        # as the second image of a batch, `small` is padded to 96x128 by the model itself
        ref = model(
            [{"image": big, "height": 96, "width": 128}, {"image": small, "height": 80, "width": 100}]
        )
        boxes, scores, classes = ExportableDetector(model)(images, mask)
    ref = ref[1]["instances"]
    k = model.select_box_nums_for_evaluation
    assert boxes.shape == (1, k, 4) and scores.shape == (1, k) and classes.shape == (1, k)
    n = len(ref)  # the model drops empty boxes; with random weights none is empty
    assert n == k
    torch.testing.assert_close(scores[0], ref.scores)
    torch.testing.assert_close(boxes[0], ref.pred_boxes.tensor)
    torch.testing.assert_close(classes[0], ref.pred_classes)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_export_and_check(name, tiny_shapes, script, tmp_path, capsys, recwarn):
    import onnx

    out = tmp_path / f"{name}.onnx"
    rc = script("tools/export_onnx.py").main(
        ["--config-file", CONFIGS[name], "--output", str(out), "--input-size", "128x160", "--topk", "6"]
    )
    assert rc == 0
    traced = [
        w for w in recwarn if issubclass(w.category, torch.jit.TracerWarning) or "ONNX" in str(w.message)
    ]
    assert traced == []  # tracing at a fixed size is intended: torch's notes about it are not shown
    text = capsys.readouterr().out
    assert "input 128x160, top-6 detections" in text
    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["images", "mask"]
    assert [o.name for o in graph.output] == ["boxes", "scores", "classes"]
    dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output]
    assert dims == [[1, 6, 4], [1, 6], [1, 6]]


def test_check_fails_when_outputs_differ(tiny_shapes, script, tmp_path, monkeypatch, capsys):
    tool = script("tools/export_onnx.py")
    run = tool.run_onnx

    def perturbed(session, images, mask):
        boxes, scores, classes = run(session, images, mask)
        return [boxes, scores + 0.01, classes]

    monkeypatch.setattr(tool, "run_onnx", perturbed)
    rc = tool.main(
        [
            "--config-file",
            CONFIGS["conditional"],
            "--output",
            str(tmp_path / "m.onnx"),
            "--input-size",
            "64x64",
            "--num-samples",
            "1",
            "--topk",  # one detection: the shifted score has no near-tie to be paired with instead
            "1",
        ]
    )
    assert rc == 1 and "differ by 0.01" in capsys.readouterr().out


def test_compare_pairs_tied_detections(script):
    tool = script("tools/export_onnx.py")
    boxes = np.array([[[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]]], dtype=np.float32)
    scores = np.array([[0.9, 0.9, 0.1]], dtype=np.float32)
    classes = np.array([[1, 1, 0]])
    swapped = [boxes[:, [1, 0, 2]] + 0.5, scores[:, [1, 0, 2]], classes[:, [1, 0, 2]]]
    diff = tool.compare([boxes, scores, classes], swapped, atol=1e-3)
    assert diff == {"score": 0.0, "box": 0.5}
    wrong_class = [boxes, scores, np.array([[2, 1, 0]])]
    assert tool.compare([boxes, scores, classes], wrong_class, atol=1e-3)["box"] == float("inf")


def test_input_size_and_bad_arguments(script, capsys):
    tool = script("tools/export_onnx.py")
    cfg = LazyConfig.load(CONFIGS["conditional"])
    assert tool.default_input_size(cfg) == (128, 160)
    image, mask = tool.fit(torch.full((3, 40, 300), 9, dtype=torch.uint8), (64, 150))
    assert image.shape == (1, 3, 64, 150) and mask.shape == (1, 64, 150)
    assert (~mask[0]).sum().item() == 20 * 150  # 300 px wide -> halved to 150 x 20
    assert (image[0, :, :20, :] == 9).all() and (image[0, :, 20:] == 0).all()
    for argv, message in [
        (
            ["--config-file", CONFIGS["conditional"], "--output", "x.onnx", "--input-size", "10x10"],
            "at least 32",
        ),
        (["--config-file", CONFIGS["conditional"], "--output", "x.onnx", "--atol", "0"], "--atol > 0"),
        (["--config-file", "missing.py", "--output", "x.onnx"], "no such file"),
        (["--config-file", CONFIGS["conditional"]], "--output"),
    ]:
        with pytest.raises(SystemExit) as e:
            tool.main(argv)
        assert e.value.code == 2 and message in capsys.readouterr().err
