"""LazyCall and LazyConfig.load: Python configs with relative imports, YAML files, errors."""

import collections
import textwrap

import pytest
import torch
from omegaconf import DictConfig, ListConfig

from detrex.config import L, LazyCall, LazyConfig, instantiate, try_get_key


def test_lazycall_records_the_call():
    cfg = L(torch.nn.Linear)(in_features=4, out_features=2)
    assert isinstance(cfg, DictConfig)
    assert cfg._target_ is torch.nn.Linear
    assert (cfg.in_features, cfg.out_features) == (4, 2)
    cfg.out_features = 3  # still editable before it is built
    layer = instantiate(cfg)
    assert isinstance(layer, torch.nn.Linear)
    assert tuple(layer.weight.shape) == (3, 4)
    assert LazyCall is L


def test_lazycall_rejects_positional_arguments_and_non_callables():
    with pytest.raises(TypeError, match="keyword arguments only"):
        L(torch.nn.Linear)(4, 2)
    with pytest.raises(TypeError, match="callable or a dotted-path string"):
        L(3)


def test_lazycall_accepts_string_target():
    cfg = L("torch.nn.Linear")(in_features=2, out_features=5)
    assert tuple(instantiate(cfg).weight.shape) == (5, 2)


def test_lazycall_of_dict_types():
    # omegaconf cannot hold the class `dict` as a value: LazyCall stores its dotted path instead
    cfg = L(collections.OrderedDict)(a=1, b=2)
    assert cfg._target_ == "collections.OrderedDict"
    assert instantiate(cfg) == collections.OrderedDict(a=1, b=2)
    assert instantiate(L(dict)(x=1)) == {"x": 1}


def test_try_get_key():
    cfg = DictConfig({"a": {"b": 1}, "c": None})
    assert try_get_key(cfg, "a.x", "a.b") == 1
    assert try_get_key(cfg, "c") is None
    assert try_get_key(cfg, "x.y", default=5) == 5


def test_load_follows_relative_imports(cfg_tree, targets):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    assert isinstance(cfg, DictConfig)
    assert cfg._get_flag("allow_objects")
    # only top-level public config values: not the module torch, NUM_STEPS or _private
    assert set(cfg.keys()) == {"model", "optimizer", "train"}
    assert isinstance(cfg.train, DictConfig)  # plain dicts become configs
    assert cfg.model._target_ is targets.Transformer
    assert cfg.model.encoder.num_layers == 2
    assert cfg.model.decoder.embed_dim == 16  # ${..encoder.embed_dim}
    assert isinstance(cfg.model.norms, ListConfig)
    assert cfg.optimizer._target_ is torch.optim.AdamW
    assert cfg.optimizer.lr == 2e-4  # edited in net_base.py after the import
    assert cfg.optimizer.params.base_lr == 2e-4  # ${..lr} follows the edit
    assert tuple(cfg.optimizer.betas) == (0.9, 0.999)


def test_variant_edits_do_not_leak_into_other_loads(cfg_tree):
    variant = LazyConfig.load(cfg_tree / "proj" / "net_variant.py")
    base = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    assert variant.model.encoder.num_layers == 4
    assert base.model.encoder.num_layers == 2
    assert variant.train.output_dir == "./output/net_variant"
    assert base.train.output_dir == "./output/net"
    assert variant.optimizer.params.lr_factor_func("backbone.res2") == 0.1
    assert "lr_factor_func" not in base.optimizer.params
    # a second load is a fresh object too
    again = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    again.model.encoder.num_layers = 7
    assert base.model.encoder.num_layers == 2


def test_load_selected_keys(cfg_tree):
    path = str(cfg_tree / "proj" / "net_base.py")
    model = LazyConfig.load(path, "model")
    assert isinstance(model, DictConfig) and model.encoder.embed_dim == 16
    train, num_steps = LazyConfig.load(path, ("train", "NUM_STEPS"))
    assert train.max_iter == 100
    assert num_steps == 3


def test_load_rel_resolves_against_the_calling_file(cfg_tree):
    (cfg_tree / "proj" / "uses_load_rel.py").write_text(
        textwrap.dedent(
            """
            from detrex.config import LazyConfig

            model = LazyConfig.load_rel("models/net.py", "model")
            model.encoder.dropout = 0.0
            """
        )
    )
    cfg = LazyConfig.load(cfg_tree / "proj" / "uses_load_rel.py")
    assert cfg.model.encoder.dropout == 0.0
    assert cfg.model.encoder.embed_dim == 16


def test_relative_import_errors_name_the_files(cfg_tree):
    proj = cfg_tree / "proj"
    (proj / "missing.py").write_text("from .models.nett import model\n")
    with pytest.raises(ImportError, match=r"nett\.py does not exist"):
        LazyConfig.load(proj / "missing.py")
    (proj / "bad_name.py").write_text("from .models.net import modle\n")
    with pytest.raises(ImportError, match=r"cannot import name 'modle' .* Closest: model"):
        LazyConfig.load(proj / "bad_name.py")
    (proj / "directory.py").write_text("from .models import net\n")
    with pytest.raises(ImportError, match="is a directory"):
        LazyConfig.load(proj / "directory.py")
    (proj / "folder.py").write_text("from . import models\n")
    with pytest.raises(ImportError, match=r"relative import 'from \. import \.\.\.' \(a folder\)"):
        LazyConfig.load(proj / "folder.py")
    (proj / "a.py").write_text("from .b import x\ny = dict(v=1)\n")
    (proj / "b.py").write_text("from .a import y\nx = dict(v=2)\n")
    with pytest.raises(
        ImportError, match=r"circular import between config files: .*a\.py -> .*b\.py -> .*a\.py"
    ):
        LazyConfig.load(proj / "a.py")


def test_error_inside_a_config_file_points_at_it(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("x = dict(a=1)\ny = 1 / 0\n")
    with pytest.raises(ZeroDivisionError) as info:
        LazyConfig.load(path)
    assert any(entry.path == path for entry in info.traceback)


def test_load_yaml_with_tuples_and_names(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        textwrap.dedent(
            """
            model:
              _target_: torch.nn.Linear
              in_features: 3
              out_features: ${..size}
            size: 2
            betas: !!python/tuple [0.9, 0.999]
            act: !!python/name:torch.nn.ReLU ''
            """
        )
    )
    cfg = LazyConfig.load(path)
    assert cfg.act is torch.nn.ReLU
    assert tuple(cfg.betas) == (0.9, 0.999)
    assert tuple(instantiate(cfg.model).weight.shape) == (2, 3)


def test_load_rejects_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.py, \.yaml"):
        LazyConfig.load(tmp_path / "cfg.json")
