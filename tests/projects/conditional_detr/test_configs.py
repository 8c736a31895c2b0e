"""Every Conditional-DETR config loads, instantiates on CPU, survives save / load, has the reference
hyper-parameters, and agrees with the model table (projects/conditional_detr/model_zoo.py and README.md)."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from detrex.config import LazyConfig, instantiate, target_to_string
from projects.conditional_detr.model_zoo import MODEL_ZOO, markdown_table

REPO = Path(__file__).resolve().parents[3]
CONFIGS = sorted(str(p.relative_to(REPO)) for p in (REPO / "projects/conditional_detr/configs").glob("*.py"))


def test_model_zoo_lists_every_coco_config():
    coco_configs = [c for c in CONFIGS if c.endswith("_50ep.py")]  # others: e.g. the synthetic quickstart
    assert sorted(e.config for e in MODEL_ZOO) == coco_configs
    assert len(coco_configs) == 4


@pytest.mark.parametrize("entry", MODEL_ZOO, ids=lambda e: e.variant)
def test_config_instantiates_with_the_published_parameter_count(entry):
    cfg = LazyConfig.load(entry.config)
    assert set(cfg) == {"model", "dataloader", "optimizer", "lr_multiplier", "train"}
    assert "device" not in cfg.model  # train.device is the only device setting
    model = instantiate(cfg.model)  # on the CPU
    assert sum(p.numel() for p in model.parameters()) == entry.num_params
    assert model.criterion.num_classes == model.num_classes == 80
    assert len(model.transformer.decoder.layers) == 6 and model.query_embed.num_embeddings == 300


def test_reference_hyper_parameters():
    cfg = LazyConfig.load("projects/conditional_detr/configs/conditional_detr_r50_50ep.py")
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (1e-4, 1e-4)
    assert cfg.optimizer.params.lr_factor_func("backbone.res2.0.conv1.weight") == 0.1
    assert cfg.optimizer.params.lr_factor_func("transformer.encoder.layers.0.norms.0.weight") == 1
    assert cfg.train.clip_grad.enabled and cfg.train.clip_grad.params.max_norm == 0.1
    assert cfg.dataloader.train.total_batch_size == 16
    assert cfg.train.max_iter == 375000
    scheduler = instantiate(cfg.lr_multiplier)
    assert scheduler(299999 / 375000) == 1.0 and scheduler(300001 / 375000) == pytest.approx(0.1)
    assert cfg.model.criterion.weight_dict == {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    # unset: tools/train_net.py writes evaluation files to <train.output_dir>/inference (detectron2's layout)
    assert cfg.dataloader.evaluator.get("output_dir") is None


def test_r101_configs_start_from_r101_imagenet_weights():
    for name in ("conditional_detr_r101_50ep", "conditional_detr_r101_dc5_50ep"):
        cfg = LazyConfig.load(f"projects/conditional_detr/configs/{name}.py")
        assert "resnet101" in cfg.train.init_checkpoint or "R-101" in cfg.train.init_checkpoint
        assert cfg.train.output_dir.endswith(name)


def test_values_written_once_follow_overrides():
    cfg = LazyConfig.load("projects/conditional_detr/configs/conditional_detr_r50_50ep.py")
    LazyConfig.apply_overrides(cfg, ["model.num_classes=7", "model.embed_dim=64"])
    assert cfg.model.criterion.num_classes == 7
    assert cfg.model.transformer.encoder.embed_dim == cfg.model.transformer.decoder.embed_dim == 64


def _plain(node):
    """Config tree with _target_ as a dotted string, for comparing a config with its saved copy."""
    if isinstance(node, dict):
        return {k: target_to_string(v) if k == "_target_" and not isinstance(v, str) else _plain(v)
                for k, v in node.items()}  # fmt: skip
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


@pytest.mark.parametrize("config", CONFIGS)
def test_config_survives_save_and_load(config, tmp_path):
    cfg = LazyConfig.load(config)
    LazyConfig.save(cfg, str(tmp_path / "config.yaml"))
    loaded = LazyConfig.load(str(tmp_path / "config.yaml"))
    for key in ("model", "train", "lr_multiplier"):
        assert _plain(OmegaConf.to_container(loaded[key])) == _plain(OmegaConf.to_container(cfg[key]))
    with torch.device("meta"):  # structure only
        num_params = sum(p.numel() for p in instantiate(loaded.model).parameters())
    with torch.device("meta"):
        assert num_params == sum(p.numel() for p in instantiate(cfg.model).parameters())


def test_readme_table_is_the_code_table():
    readme = (REPO / "projects/conditional_detr/README.md").read_text()
    assert markdown_table() in readme


def test_embed_dim_without_the_position_embedding_is_a_clear_error():
    cfg = LazyConfig.load("projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py")
    LazyConfig.apply_overrides(cfg, ["model.embed_dim=64"])
    with pytest.raises(
        Exception, match=r"set model.position_embedding.num_pos_feats=32 together with model.embed_dim"
    ):
        instantiate(cfg.model)
    LazyConfig.apply_overrides(cfg, ["model.position_embedding.num_pos_feats=32"])
    model = instantiate(cfg.model).eval()
    image = torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8)
    with torch.no_grad():
        assert len(model([{"image": image, "height": 64, "width": 80}])) == 1
