from pathlib import Path

import pytest
import torch

from detrex.config import LazyConfig, instantiate
from projects.anchor_detr.model_zoo import MODEL_ZOO, markdown_table

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "projects/anchor_detr/configs").glob("*.py"))
TORCHVISION_WEIGHTS = {
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
}


def test_model_zoo_covers_every_coco_config():
    coco_configs = [c for c in CONFIGS if c.endswith("_50ep.py")]  # others: the synthetic quickstart
    assert sorted(e.config for e in MODEL_ZOO) == coco_configs
    assert len(coco_configs) == 4


@pytest.mark.parametrize("entry", MODEL_ZOO, ids=lambda e: e.variant)
def test_config_builds_on_cpu_and_matches_the_model_zoo(entry):
    cfg = LazyConfig.load(str(ROOT / entry.config))
    cfg = LazyConfig.apply_overrides(cfg, ["train.device=cpu"])
    assert "device" not in cfg.model
    assert cfg.model.backbone.name == entry.backbone and cfg.model.backbone.dilation == entry.dilation
    assert cfg.train.init_checkpoint == TORCHVISION_WEIGHTS[entry.backbone]
    assert cfg.train.output_dir == "./output/" + Path(entry.config).stem
    model = instantiate(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == entry.num_params  # shared heads counted once
    assert model.backbone.output_shape()["res5"].stride == (16 if entry.dilation else 32)
    assert model.transformer.class_embed[0] is model.transformer.class_embed[5]
    assert model.select_box_nums_for_evaluation == 100


def test_reference_hyper_parameters():
    cfg = LazyConfig.load(str(ROOT / "projects/anchor_detr/configs/anchor_detr_r50_50ep.py"))
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (1e-4, 1e-4)
    assert cfg.optimizer.params.lr_factor_func("backbone.body.layer2.0.conv1.weight") == 0.1
    assert cfg.optimizer.params.lr_factor_func("transformer.pattern.weight") == 1
    assert cfg.train.clip_grad.enabled and cfg.train.clip_grad.params.max_norm == 0.1
    assert cfg.train.max_iter == 375000 and cfg.dataloader.train.total_batch_size == 16
    assert cfg.model.transformer.dropout == 0.0 and cfg.model.transformer.num_query_position == 300
    assert cfg.model.criterion.weight_dict == {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}


def test_num_classes_and_embed_dim_are_written_once():
    cfg = LazyConfig.load(str(ROOT / "projects/anchor_detr/configs/anchor_detr_r50_50ep.py"))
    cfg = LazyConfig.apply_overrides(cfg, ["model.num_classes=20", "model.embed_dim=128"])
    assert cfg.model.transformer.num_classes == 20 and cfg.model.criterion.num_classes == 20
    assert cfg.model.transformer.embed_dim == 128


def test_config_survives_save_and_load(tmp_path):
    cfg = LazyConfig.load(str(ROOT / "projects/anchor_detr/configs/anchor_detr_r101_dc5_50ep.py"))
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    loaded = LazyConfig.load(str(tmp_path / "config.yaml"))
    LazyConfig.save(loaded, str(tmp_path / "again.yaml"))
    assert (tmp_path / "config.yaml").read_text() == (tmp_path / "again.yaml").read_text()
    model = instantiate(loaded.model)
    assert sum(p.numel() for p in model.parameters()) == MODEL_ZOO[-1].num_params
    assert model.backbone.output_shape()["res5"].stride == 16
    exact = LazyConfig.load(str(tmp_path / "config.yaml.pkl"))  # the lr_factor_func lambda lives here
    assert exact.optimizer.params.lr_factor_func("backbone.x") == 0.1


def test_readme_shows_the_model_zoo_table():
    readme = (ROOT / "projects/anchor_detr/README.md").read_text()
    assert markdown_table() in readme
    for e in MODEL_ZOO:
        assert (ROOT / e.config).is_file()


def test_dropout_override_path_reaches_the_model():
    cfg = LazyConfig.load(str(ROOT / "projects/anchor_detr/configs/models/anchor_detr_r50.py"))
    cfg = LazyConfig.apply_overrides(cfg, ["model.transformer.dropout=0.25", "model.backbone.name=resnet18",
                                           "model.in_channels=512"])  # fmt: skip
    model = instantiate(cfg.model)
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.25}
