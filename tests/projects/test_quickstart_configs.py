"""The quickstart configs (the README's default command): tiny Conditional-DETR / Anchor-DETR models that
train from scratch on the synthetic shapes dataset on a CPU and evaluate on its held-out split.

Fast tests: each config loads, survives save / load, builds on the CPU with a fully trainable backbone,
takes one optimizer step on two generated images and predicts on two more. The slow test runs
tools/train_net.py for a shortened schedule and checks that box AP rises well above zero.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from detrex.config import LazyConfig, instantiate
from detrex.data import generate_synthetic_shapes, load_coco_json
from detrex.data.datasets.synthetic import SHAPE_CLASSES
from detrex.layers import FrozenBatchNorm2d

REPO = Path(__file__).resolve().parents[2]
CONDITIONAL = "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py"
ANCHOR = "projects/anchor_detr/configs/anchor_detr_tiny_synthetic.py"
CONFIGS = [CONDITIONAL, ANCHOR]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> list[dict]:
    """Four synthetic-shapes images (the quickstart's generator, written to a temporary folder)."""
    folder = tmp_path_factory.mktemp("shapes")
    json_file = generate_synthetic_shapes(str(folder), num_images=4, seed=3)
    return load_coco_json(json_file, str(folder / "images"))


def num_queries(model: nn.Module) -> int:
    if hasattr(model, "query_embed"):  # Conditional-DETR
        return model.query_embed.num_embeddings
    return model.transformer.num_position * model.transformer.num_pattern  # Anchor-DETR


@pytest.mark.parametrize("config", CONFIGS)
def test_quickstart_config_settings(config):
    cfg = LazyConfig.load(config)
    name = Path(config).stem
    assert cfg.train.device == "cpu"  # runs with no arguments on a machine without a GPU
    assert cfg.train.init_checkpoint == ""  # from scratch: no download
    assert cfg.train.output_dir == f"./output/{name}"
    assert cfg.dataloader.evaluator.get("output_dir") is None  # train_net: <output_dir>/inference
    assert 0 < cfg.train.eval_period < cfg.train.max_iter  # evaluations during training, and at the end
    assert cfg.dataloader.train.dataset.names == "synthetic_shapes_train"
    assert cfg.dataloader.test.dataset.names == "synthetic_shapes_val"
    assert cfg.model.num_classes == len(SHAPE_CLASSES)
    assert cfg.model.criterion.num_classes == cfg.model.num_classes
    schedule = instantiate(cfg.lr_multiplier)
    assert schedule(0.0) < 0.1 and schedule(0.2) == pytest.approx(1.0, abs=0.1) and schedule(1.0) < 0.1


@pytest.mark.parametrize("config", CONFIGS)
def test_quickstart_config_survives_save_and_load(config, tmp_path):
    cfg = LazyConfig.load(config)
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    assert not (tmp_path / "config.yaml.pkl").exists()  # every value (block classes included) is plain YAML
    loaded = LazyConfig.load(str(tmp_path / "config.yaml"))
    torch.manual_seed(0)
    original = instantiate(cfg.model).state_dict()
    torch.manual_seed(0)
    reloaded = instantiate(loaded.model).state_dict()
    assert list(reloaded) == list(original)
    for key, value in original.items():
        torch.testing.assert_close(reloaded[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("config", CONFIGS)
def test_quickstart_model_trains_one_step_and_predicts(config, shapes):
    cfg = LazyConfig.load(config)
    torch.manual_seed(0)
    model = instantiate(cfg.model).to(cfg.train.device)
    assert num_queries(model) * model.num_classes >= cfg.model.select_box_nums_for_evaluation
    # from scratch: every backbone weight trains and its BatchNorms learn their statistics
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    norms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms

    train_mapper = instantiate(cfg.dataloader.train.mapper)
    batch = [train_mapper(d) for d in shapes[:2]]
    for x in batch:  # the quickstart's small inputs: short edge at most 144, long edge at most 224
        assert min(x["image"].shape[1:]) <= 144 and max(x["image"].shape[1:]) <= 224
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    running_var = norms[0].running_var.clone()
    model.train()
    losses = model(batch)
    suffixes = ["", "_0", "_1"]  # 3 decoder layers: the last one and 2 auxiliary ones
    assert set(losses) == {f"loss_{k}{s}" for k in ("class", "bbox", "giou") for s in suffixes}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    assert not torch.equal(norms[0].running_var, running_var)  # BN statistics follow the data
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert not [n for n in unchanged if n.startswith("backbone.")]

    test_mapper = instantiate(cfg.dataloader.test.mapper)
    inputs = [test_mapper(d) for d in shapes[2:]]
    for x in inputs:  # short edge 128 unless the long edge would pass 224
        short, long = sorted(x["image"].shape[1:])
        assert (short == 128 and long <= 224) or (short < 128 and long == 224)
    model.eval()
    with torch.no_grad():
        outputs = model(inputs)
    for x, out in zip(inputs, outputs):
        inst = out["instances"]
        height, width = x["height"], x["width"]
        assert inst.image_size == (height, width)  # boxes in the original image's pixels
        assert 0 < len(inst) <= cfg.model.select_box_nums_for_evaluation
        boxes = inst.pred_boxes.tensor
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= height).all()
        assert ((inst.scores >= 0) & (inst.scores <= 1)).all()
        assert ((inst.pred_classes >= 0) & (inst.pred_classes < len(SHAPE_CLASSES))).all()


def final_box_ap(output_dir: Path) -> dict[int, float]:
    """{iteration: bbox/AP} from a run's metrics.json."""
    records = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    return {r["iteration"]: r["bbox/AP"] for r in records if "bbox/AP" in r}


@pytest.mark.slow
def test_quickstart_learns_in_a_short_schedule(tmp_path):
    """A shortened quickstart (`short_iters` iterations, the same schedule shape) on the real synthetic
    splits (generated under ./datasets if missing): box AP on the held-out images goes from ~0 to > 5."""
    short_iters = 400
    out = tmp_path / "out"
    cmd = [
        sys.executable, "tools/train_net.py", "--config-file", CONDITIONAL,
        f"train.max_iter={short_iters}", f"train.eval_period={short_iters}",
        f"train.checkpointer.period={short_iters}", f"train.output_dir={out}", "train.seed=0",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ap = final_box_ap(out)
    assert list(ap) == [short_iters - 1]  # one evaluation, at the end
    assert ap[short_iters - 1] > 5.0, ap
    assert (out / "model_final.pth").is_file()
