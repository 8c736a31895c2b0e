"""Each speed option runs and stays within a stated tolerance of the default float32 result, on tiny
models: channels-last backbones (default on), bfloat16 autocast, torch.compile, the faster COCO evaluation
backend, and the benchmark's side-by-side protocol options."""

import importlib.util

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tests.projects.anchor_detr.tiny_anchor_detr import build_tiny_anchor_detr, make_input
from tests.projects.conditional_detr.tiny_conditional_detr import build_tiny_conditional_detr, random_inputs

DROPOUT = [
    f"model.transformer.{p}.{k}=0.1" for p in ("encoder", "decoder") for k in ("attn_dropout", "ffn_dropout")
]


def _load_benchmark_script():
    spec = importlib.util.spec_from_file_location("_benchmark_script", "tools/benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conditional(*overrides):
    return build_tiny_conditional_detr(*overrides)


def _raw_conditional(model, inputs) -> torch.Tensor:
    """Last-layer (logits, boxes) of Conditional-DETR, concatenated: (B, Q, K + 4)."""
    out = model.forward_images(model.preprocess_image(inputs))
    return torch.cat([out["pred_logits"], out["pred_boxes"]], dim=-1).float()


def _train_losses(model, batch, seed=0) -> dict:
    torch.manual_seed(seed)
    model.train()
    return model(batch)


def test_channels_last_backbone_matches_contiguous():
    """channels_last=True (default) vs False: same model, other memory layout, float rounding only."""
    models = {cl: _conditional(f"+model.backbone.channels_last={cl}") for cl in (True, False)}
    inputs = random_inputs([(64, 96), (80, 64)], with_instances=True)
    with torch.no_grad():
        raw = {cl: _raw_conditional(m.eval(), inputs) for cl, m in models.items()}
    assert_close(raw[True], raw[False], rtol=1e-4, atol=1e-5)
    losses = {cl: _train_losses(m, inputs) for cl, m in models.items()}
    for key in losses[True]:
        assert_close(losses[True][key], losses[False][key], rtol=1e-4, atol=1e-6)
    sum(losses[True].values()).backward()
    sum(losses[False].values()).backward()
    conv = "backbone.res5.1.conv2.weight"
    grads = {cl: dict(m.named_parameters())[conv].grad for cl, m in models.items()}
    assert_close(grads[True], grads[False], rtol=1e-3, atol=1e-5 * grads[False].abs().max().item())


@pytest.mark.parametrize("family", ["anchor_detr", "conditional_detr"])
def test_bf16_autocast_stays_close_to_fp32(family):
    """bfloat16 autocast (train.amp.enabled=True): float32 losses and detections within a few percent."""
    if family == "anchor_detr":
        torch.manual_seed(0)
        model = build_tiny_anchor_detr()
        batch = [make_input(64, 96, 0, True), make_input(96, 64, 1, True)]
    else:
        model = _conditional(*DROPOUT)
        batch = random_inputs([(64, 96), (96, 64)], with_instances=True)
    fp32 = _train_losses(model, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = _train_losses(model, batch)
    sum(bf16.values()).backward()  # the backward runs too
    assert fp32.keys() == bf16.keys()
    for key in fp32:
        assert bf16[key].dtype == torch.float32, key
        assert_close(bf16[key], fp32[key], rtol=0.05, atol=0.02)  # bf16 keeps 8 bits of mantissa
    model.eval()
    images = [{k: v for k, v in x.items() if k != "instances"} for x in batch[:1]]
    with torch.no_grad():
        ref = model(images)[0]["instances"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(images)[0]["instances"]
    assert out.scores.dtype == torch.float32 and out.pred_boxes.tensor.dtype == torch.float32
    top = min(len(ref), len(out), 5)
    assert_close(out.scores[:top], ref.scores[:top], rtol=0.0, atol=0.02)  # sorted scores, probability units


@pytest.mark.slow
def test_torch_compile_matches_eager():
    """torch.compile (train.compile.enabled / benchmark --compile): same outputs as eager, rounding aside."""
    model = _conditional().eval()
    inputs = random_inputs([(64, 96)])
    with torch.no_grad():
        eager = _raw_conditional(model, inputs)
        compiled_forward = torch.compile(model.forward_images)
        compiled = compiled_forward(model.preprocess_image(inputs))
    compiled = torch.cat([compiled["pred_logits"], compiled["pred_boxes"]], dim=-1)
    assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


def test_fast_coco_eval_backend_gives_the_same_ap():
    pytest.importorskip("faster_coco_eval")
    from detrex.evaluation.coco_evaluation import coco_from_dict, evaluate_predictions_on_coco

    dataset, detections = _load_benchmark_script().synthetic_coco_detections(
        60, num_classes=3, dets_per_image=20
    )
    coco_gt = coco_from_dict(dataset)
    stats = {
        fast: evaluate_predictions_on_coco(coco_gt, detections, use_fast_impl=fast).stats[:12] * 100
        for fast in (False, True)
    }
    assert stats[False][0] > 5  # a non-trivial AP
    np.testing.assert_allclose(stats[True], stats[False], atol=0.01)  # AP points


def test_benchmark_synthetic_train_batch_and_isolated_tasks(tmp_path):
    bench = _load_benchmark_script()
    batch = bench.synthetic_train_batch([(64, 80), (48, 80), (32, 32)])
    assert [tuple(x["image"].shape) for x in batch] == [(3, 64, 80), (3, 48, 80), (3, 32, 32)]
    assert [len(x["instances"]) for x in batch] == [2, 1, 2]
    assert_close(batch[1]["instances"].gt_boxes.tensor, torch.tensor([[20.0, 12.0, 44.0, 26.4]]))
    summary = bench.main(
        ["--config-file", "tests/tools/configs/tiny_anchor_detr.py", "--task", "train", "--isolate",
         "--train-size", "64x80,48x80", "--num-iter", "1", "--warmup", "0", "--threads", "1",
         "--output", str(tmp_path / "b.json")]
    )  # fmt: skip
    train = summary["results"]["train"]
    assert summary["isolated"] and train["batch_size"] == 2 and train["process_peak_rss_mb"] > 0


def test_benchmark_coco_eval_task_compares_both_backends(tmp_path):
    """`--task coco_eval` times both evaluation backends on synthetic COCO-like detections, needs no config
    and reports matching AP."""
    bench = _load_benchmark_script()
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
