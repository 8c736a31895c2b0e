import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detrex.config import LazyConfig, instantiate

TINY = "tests/configs/tiny_conditional_detr.py"
REPO = Path(__file__).resolve().parents[2]


def test_flops_averaged_over_test_images(tiny_shapes, script, capsys):
    tool = script("tools/analyze_model.py")
    flops = tool.main(["--config-file", TINY, "--tasks", "flop", "--num-inputs", "2"])["flop"]
    out = capsys.readouterr().out
    assert flops["num_images"] == 2 and flops["unit"] == "GFlops"
    # test images are resized to short edge 128 (max 160); the 7x7 stem conv alone costs
    # (H/2)(W/2) * 32 * 3 * 49 multiply-adds, and the whole tiny model is ~11x its stem
    stem = 64 * 64 * 32 * 3 * 49 / 1e9
    assert 4 * stem < flops["mean"] < 40 * stem
    assert "conv" in out and "scaled_dot_product_attention" in out  # fused attention is counted
    assert "backbone.res4" in out and "over 2 image(s)" in out


def test_parameters_activations_structure(tiny_shapes, script, capsys):
    tool = script("tools/analyze_model.py")
    results = tool.main(
        ["--config-file", TINY, "--tasks", "parameter", "activation", "structure", "--num-inputs", "1"]
    )
    out = capsys.readouterr().out
    model = instantiate(LazyConfig.load(TINY).model)
    assert results["parameter"]["total"] == sum(p.numel() for p in model.parameters())
    assert results["parameter"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert "transformer.decoder" in out
    assert "#flops" not in out  # only parameters and activations were asked for
    assert results["activation"]["mean"] > 0 and results["activation"]["unit"] == "M activations"
    assert results["structure"].startswith("ConditionalDETR(")


def test_activation_table_is_labelled_activations(tiny_shapes, script, capsys):
    """The per-module table of the activation task says #activations (fvcore's table says #flops), and its
    model row is the first image's total."""
    results = script("tools/analyze_model.py").main(
        ["--config-file", TINY, "--tasks", "activation", "-n", "1"]
    )
    lines = capsys.readouterr().out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("| module")))
    assert [c.strip() for c in lines[header].split("|")] == ["", "module", "#parameters", "#activations", ""]
    model_row = [c.strip() for c in lines[header + 2].split("|")]
    assert model_row[1] == "model" and model_row[3].endswith("M")
    assert float(model_row[3][:-1]) == pytest.approx(results["activation"]["mean"], rel=0.01)


def test_sdpa_flop_handle():
    from detrex.utils.analysis import _sdpa_flop

    class _Val:  # stands in for a traced value: fvcore's get_shape reads .type().sizes()
        def __init__(self, shape):
            self.shape = shape

        def type(self):
            return self

        def sizes(self):
            return list(self.shape)

        def isCompleteTensor(self):  # noqa: N802 (torch's name)
            return True

    counts = _sdpa_flop([_Val((2, 4, 10, 8)), _Val((2, 4, 30, 8)), _Val((2, 4, 30, 8))], [])
    assert counts["scaled_dot_product_attention"] == 2 * 4 * 10 * 30 * (8 + 8)


def test_wrapper_matches_model_output(tiny_shapes):
    from detrex.utils.analysis import DetectorTensorWrapper

    model = instantiate(LazyConfig.load(TINY).model).eval()
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    with torch.no_grad():
        ref = model([{"image": image, "height": 48, "width": 64}])[0]["instances"]
        boxes, scores, classes = DetectorTensorWrapper(model, 48, 64)(image)
    torch.testing.assert_close(boxes, ref.pred_boxes.tensor)
    torch.testing.assert_close(scores, ref.scores)
    torch.testing.assert_close(classes, ref.pred_classes)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config-file", TINY, "--tasks", "speed"], "invalid choice: 'speed'"),
        (["--tasks", "flop"], "--config-file"),
        (["--config-file", TINY, "--tasks", "flop", "-n", "0"], "--num-inputs must be >= 1"),
        (["--config-file", "nope.py", "--tasks", "flop"], "--config-file 'nope.py': no such file"),
    ],
)
def test_bad_arguments(argv, message, script, capsys):
    with pytest.raises(SystemExit) as e:
        script("tools/analyze_model.py").main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("grad", [True, False])
def test_flop_count_sees_trainable_frozen_norm_convs(grad):
    """A trainable conv + FrozenBN (the norm folded into the weights) is counted as one convolution when
    traced, with and without autograd: one multiply-add per weight per output pixel."""
    from fvcore.nn import FlopCountAnalysis

    from detrex.layers import Conv2d, FrozenBatchNorm2d

    conv = Conv2d(8, 16, 3, padding=1, bias=False, norm=FrozenBatchNorm2d(16))
    x = torch.randn(1, 8, 12, 10)
    with torch.set_grad_enabled(grad):
        flops = FlopCountAnalysis(conv, (x,))
        flops.unsupported_ops_warnings(False)
        assert flops.by_operator()["conv"] == 16 * 8 * 9 * 12 * 10
        assert not any("PythonOp" in op for op in flops.unsupported_ops())


def test_counting_downloads_nothing_and_takes_overrides_after_the_tasks(tmp_path):
    """The R50 configs name an ImageNet URL in train.init_checkpoint: counting must not fetch it (offline
    machines). Run as a user would; torch's FutureWarning about fvcore's import is not shown either."""
    unreachable = "http://127.0.0.1:9/resnet50.pth"  # nothing listens on port 9: a download would fail
    result = subprocess.run(
        [sys.executable, "tools/analyze_model.py", "--config-file",
         "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py", "--tasks", "parameter",
         f"train.init_checkpoint={unreachable}", "model.num_queries=7"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    assert "| query_embed.weight                  | (7, 128)" in result.stdout  # the override took effect
    assert "parameters: 2.206 M, trainable 2.206 M" in result.stdout


def test_flop_counting_shows_no_tracer_warnings(tiny_shapes, script, capsys, recwarn):
    script("tools/analyze_model.py").main(["--config-file", TINY, "--tasks", "flop", "-n", "1"])
    assert [w for w in recwarn if issubclass(w.category, torch.jit.TracerWarning)] == []
