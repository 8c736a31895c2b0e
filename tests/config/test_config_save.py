"""LazyConfig.save / load round trips, the pickle fallback for lambdas, and LazyConfig.to_py."""

import logging

import pytest
import torch
from omegaconf import OmegaConf

from detrex.config import L, LazyConfig, UnsavedValue, instantiate, target_to_string


def _plain(cfg):
    """Container of a config with classes/functions replaced by their dotted paths, for comparisons."""

    def convert(value):
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(convert(v) for v in value)
        return target_to_string(value) if callable(value) else value

    return convert(OmegaConf.to_container(cfg, resolve=False))


def test_save_load_round_trip(cfg_tree, targets, tmp_path, caplog):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    path = tmp_path / "out" / "config.yaml"  # the folder is created
    with caplog.at_level(logging.WARNING, logger="detrex.config"):
        LazyConfig.save(cfg, path)
    assert not caplog.records  # everything here has a YAML form
    assert not (tmp_path / "out" / "config.yaml.pkl").exists()
    text = path.read_text()
    assert "_target_: torch.optim.AdamW" in text
    assert "_target_: cfg_test_targets.Transformer" in text
    assert "base_lr: ${..lr}" in text  # interpolations are kept
    assert "!!python/name:torch.nn.ReLU" in text  # a class that is not a _target_ keeps its type

    loaded = LazyConfig.load(path)
    assert _plain(loaded) == _plain(cfg)
    assert loaded.model.norms[1].act is torch.nn.ReLU
    assert tuple(loaded.optimizer.betas) == (0.9, 0.999)
    # the reload builds the same objects
    ours, theirs = instantiate(cfg.model), instantiate(loaded.model)
    assert vars(ours.encoder) == vars(theirs.encoder)
    assert vars(ours.decoder) == vars(theirs.decoder)
    assert type(theirs.norms[0]) is torch.nn.LayerNorm
    torch.testing.assert_close(theirs.norms[0].weight, ours.norms[0].weight)
    # and interpolations are still live
    LazyConfig.apply_overrides(loaded, ["optimizer.lr=0.25"])
    assert loaded.optimizer.params.base_lr == 0.25


def test_lambda_is_reported_and_pickled(cfg_tree, targets, tmp_path, caplog):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_variant.py")
    path = tmp_path / "config.yaml"
    with caplog.at_level(logging.WARNING, logger="detrex.config"):
        LazyConfig.save(cfg, path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "optimizer.params.lr_factor_func (function <lambda> from " in warnings[0]
    assert "config.yaml.pkl" in warnings[0]
    assert "lr_factor_func: !unserializable" in path.read_text()

    exact = LazyConfig.load(str(path) + ".pkl")  # the pickle has the lambda itself
    assert exact.optimizer.params.lr_factor_func("backbone.res2") == 0.1
    assert instantiate(exact.optimizer.params) == {"base_lr": 2e-4, "backbone_lr": pytest.approx(2e-5)}
    assert instantiate(exact.model).encoder.num_layers == 4

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="detrex.config"):
        approx = LazyConfig.load(path)  # the YAML has a placeholder, and says where the rest is
    assert "could not be saved to YAML: optimizer.params.lr_factor_func; load " in caplog.text
    placeholder = approx.optimizer.params.lr_factor_func
    assert isinstance(placeholder, UnsavedValue)
    with pytest.raises(RuntimeError, match=r"could not be saved to YAML; load the pickle"):
        placeholder("backbone")
    assert approx.model.encoder.num_layers == 4  # everything else is intact

    del cfg.optimizer.params.lr_factor_func
    LazyConfig.save(cfg, path)
    assert not (tmp_path / "config.yaml.pkl").exists()  # a stale pickle would contradict the YAML


def test_local_function_and_object_are_unsaved(tmp_path, caplog):
    def local_fn():
        return 1

    cfg = OmegaConf.create(
        {"a": L(local_fn)(), "b": {"obj": torch.device("cpu"), "ok": [1, (2, 3)]}},
        flags={"allow_objects": True},
    )
    with caplog.at_level(logging.WARNING, logger="detrex.config"):
        LazyConfig.save(cfg, tmp_path / "c.yaml")
    assert "a._target_ (function " in caplog.text and "b.obj (device " in caplog.text
    loaded = LazyConfig.load(tmp_path / "c.yaml.pkl")
    assert loaded.b.obj == torch.device("cpu")
    assert instantiate(loaded.a) == 1
    assert tuple(LazyConfig.load(tmp_path / "c.yaml").b.ok[1]) == (2, 3)


def test_to_py_is_readable_and_loads_back(cfg_tree, targets, tmp_path):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    source = LazyConfig.to_py(cfg)
    assert "from detrex.config import LazyCall as L" in source
    assert "import torch.optim" in source
    assert "model = L(cfg_test_targets.Transformer)(" in source
    assert "encoder=L(cfg_test_targets.Encoder)(embed_dim=16, num_layers=2)" in source
    assert 'decoder=L(cfg_test_targets.Encoder)(embed_dim="${..encoder.embed_dim}", num_layers=3)' in source
    assert (
        'train = dict(output_dir="./output/net", max_iter=100, amp=dict(enabled=False), device="cuda")'
        in source
    )
    assert "betas=(0.9, 0.999)" in source
    path = tmp_path / "from_to_py.py"
    path.write_text(source)
    assert _plain(LazyConfig.load(path)) == _plain(cfg)


def test_to_py_marks_values_without_source(cfg_tree, targets):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_variant.py")
    source = LazyConfig.to_py(cfg, prefix="cfg.")
    assert "lr_factor_func=...," in source or "lr_factor_func=...)" in source
    assert "#   optimizer.params.lr_factor_func = function <lambda> from " in source
    assert "cfg.model = L(" in source
