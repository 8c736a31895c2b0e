"""Shared helpers of the parity tests (tests/fixtures/parity/README.md): load a case, regenerate its weights,
build its model through the public API and compare outputs by the README's rules.

    case = load_case("conditional_detr_r50_50ep")
    official_sd = official_state_dict(case)           # OFFICIAL names, 91 class rows (sha256 checked)
    detrex_sd = detrex_state_dict(case, official_sd)   # detrex names, 80 class rows (sha256 checked)
    model = build_model(case)                          # LazyConfig.load + case overrides + instantiate
    torch.save({"model": official_sd}, tmp_path / "official.pth")
    load_and_check_every_tensor(model, tmp_path / "official.pth", detrex_sd)
    for e, inst in run_eval(model, case): compare_eval(inst, e, case["tolerances"])
    compare_losses(run_train(model, case), case["train"]["losses"], case["tolerances"])
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


@functools.cache
def seeded_weights():
    """The fixtures' ``seeded_weights`` module, imported from its file (it is not a package)."""
    spec = importlib.util.spec_from_file_location("parity_seeded_weights", FIXTURES / "seeded_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_case(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def load_spec(case: dict, which: str) -> dict:
    """which: "official" or "detrex"."""
    return seeded_weights().load_spec(str(FIXTURES / case["weights"][f"{which}_spec"]))


def official_state_dict(case: dict) -> dict[str, torch.Tensor]:
    sw = seeded_weights()
    sd = sw.seeded_state_dict_from_spec(load_spec(case, "official"), case["seed"])
    assert sw.state_dict_digest(sd) == case["weights"]["official_sha256"], "seeded weights not reproduced"
    return sd


def detrex_state_dict(case: dict, official_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """detrex-layout weights derived from the official ones, as the README defines them."""
    spec = load_spec(case, "detrex")
    rows = torch.as_tensor(spec["class_rows"])
    sd = {}
    for key, official_key in spec["from_official"].items():
        value = official_sd[official_key]
        sd[key] = value[rows].clone() if key in spec["sliced_keys"] else value.clone()
    assert seeded_weights().state_dict_digest(sd) == case["weights"]["detrex_sha256"], "detrex weights differ"
    return sd


def case_overrides(case: dict) -> list[str]:
    """The case's overrides exactly as recorded (the acceptance check applies them literally).

    They include detrex's "model.device=cpu"; detrex.config maps that old key to train.device."""
    return list(case["overrides"]) + list(case["dropout_overrides"])


def build_model(case: dict) -> torch.nn.Module:
    from detrex.config import LazyConfig, instantiate

    cfg = LazyConfig.load(case["config"])
    cfg = LazyConfig.apply_overrides(cfg, case_overrides(case))
    model = instantiate(cfg.model)
    for name, module in model.named_modules():  # the README requires that no dropout stays active
        if isinstance(module, torch.nn.Dropout):
            assert module.p == 0, f"dropout {module.p} left at {name}"
        if isinstance(module, torch.nn.MultiheadAttention):
            assert module.dropout == 0, f"attention dropout {module.dropout} left at {name}"
    return model


def load_and_check_every_tensor(model, path, expected_sd: dict[str, torch.Tensor]) -> None:
    """``DetectionCheckpointer(model).load(path)``; then every parameter must have changed and every
    state-dict entry must equal ``expected_sd`` (in our names) exactly."""
    from detrex.checkpoint import DetectionCheckpointer

    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    DetectionCheckpointer(model).load(str(path))
    state = model.state_dict()
    assert sorted(state) == sorted(expected_sd), "model keys differ from the expected checkpoint layout"
    unchanged = [k for k, v in model.named_parameters() if torch.equal(v, before[k])]
    assert not unchanged, f"parameters not loaded: {unchanged[:5]}"
    wrong = [k for k, v in state.items() if not torch.equal(v, expected_sd[k])]
    assert not wrong, f"tensors loaded with wrong values: {wrong[:5]}"


def eval_inputs(case: dict, e: dict) -> list[dict]:
    image = case["inputs"]["images"][e["image_index"]]
    return [{"image": image, "height": e["height"], "width": e["width"]}]


def run_eval(model, case: dict) -> list[tuple[dict, object]]:
    """(expected entry, returned Instances) per eval image, one image per call as the fixtures were made."""
    model.eval()
    results = []
    with torch.no_grad():
        for e in case["eval"]:
            results.append((e, model(eval_inputs(case, e))[0]["instances"]))
    return results


def train_inputs(case: dict) -> list[dict]:
    from detrex.structures import Boxes, Instances

    inputs = case["inputs"]
    batch = []
    for i in case["train"]["image_indices"]:
        image = inputs["images"][i]
        h, w = image.shape[-2:]
        gt = Instances((h, w), gt_boxes=Boxes(inputs["gt_boxes"][i]), gt_classes=inputs["gt_classes"][i])
        batch.append({"image": image, "height": inputs["orig_sizes"][i][0], "width": inputs["orig_sizes"][i][1],
                      "instances": gt})  # fmt: skip
    return batch


def run_train(model, case: dict) -> dict[str, float]:
    model.train()
    torch.manual_seed(case["train"]["torch_seed"])
    losses = model(train_inputs(case))
    return {k: float(v.detach()) for k, v in losses.items()}


def compare_eval(instances, e: dict, tolerances: dict) -> dict[str, float]:
    """README rules: same count; each expected detection (by descending score) matches an unused returned
    detection of the same class within score_atol and box_atol_frac * max(H0, W0) px (closest box wins);
    only detections at the top-k boundary may stay unmatched. Returns the largest differences seen."""
    assert tuple(instances.image_size) == (e["height"], e["width"]), instances.image_size
    boxes, scores, classes = instances.pred_boxes.tensor, instances.scores, instances.pred_classes
    exp_boxes, exp_scores, exp_classes = e["pred_boxes"], e["scores"], e["pred_classes"]
    assert len(scores) == len(exp_scores), f"{len(scores)} detections, expected {len(exp_scores)}"
    score_atol = tolerances["score_atol"]
    box_atol = tolerances["box_atol_frac"] * max(e["height"], e["width"])
    used = torch.zeros(len(scores), dtype=torch.bool)
    lowest = float(exp_scores.min())
    max_score_diff = max_box_diff = 0.0
    for i in torch.argsort(exp_scores, descending=True, stable=True).tolist():
        score_diff = (scores - exp_scores[i]).abs()
        box_diff = (boxes - exp_boxes[i]).abs().amax(dim=1)
        ok = (~used) & (classes == exp_classes[i]) & (score_diff <= score_atol) & (box_diff <= box_atol)
        if not ok.any():
            assert float(exp_scores[i]) - lowest <= score_atol, (
                f"expected detection {i} (class {int(exp_classes[i])}, score {float(exp_scores[i]):.6f}, "
                f"box {exp_boxes[i].tolist()}) has no match"
            )
            continue
        j = int(torch.where(ok, box_diff, torch.inf).argmin())
        used[j] = True
        max_score_diff = max(max_score_diff, float(score_diff[j]))
        max_box_diff = max(max_box_diff, float(box_diff[j]))
    return {"max_score_diff": max_score_diff, "max_box_diff_px": max_box_diff, "matched": int(used.sum())}


def compare_losses(losses: dict[str, float], expected: dict[str, float], tolerances: dict) -> float:
    """Same key set; each loss within loss_atol + loss_rtol * |expected|. Returns the max relative diff."""
    assert sorted(losses) == sorted(expected), f"loss keys {sorted(losses)} != {sorted(expected)}"
    worst = 0.0
    for key, value in expected.items():
        diff = abs(losses[key] - value)
        assert diff <= tolerances["loss_atol"] + tolerances["loss_rtol"] * abs(value), (
            f"{key}: {losses[key]:.7f} vs expected {value:.7f}"
        )
        worst = max(worst, diff / max(abs(value), 1e-12))
    return worst
