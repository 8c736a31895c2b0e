"""instantiate: recursion over dicts/lists, callable and string targets, errors that name the config path."""

import collections

import pytest
import torch
from omegaconf import DictConfig

from detrex.config import InstantiationError, L, LazyConfig, instantiate, locate, target_to_string


def test_nested_objects_with_callable_and_string_targets(cfg_tree, targets):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    model = instantiate(cfg.model)
    assert type(model) is targets.Transformer
    assert type(model.encoder) is targets.Encoder  # callable target
    assert (model.encoder.embed_dim, model.encoder.num_layers, model.encoder.dropout) == (16, 2, 0.1)
    assert type(model.decoder) is targets.Encoder  # string target "cfg_test_targets.Encoder"
    assert (model.decoder.embed_dim, model.decoder.num_layers) == (16, 3)  # interpolation resolved
    # a list holding a lazy object and a plain dict
    assert type(model.norms) is list and len(model.norms) == 2
    assert isinstance(model.norms[0], torch.nn.LayerNorm)
    assert tuple(model.norms[0].normalized_shape) == (4,)
    assert model.norms[1] == {"kind": "plain", "act": torch.nn.ReLU}  # non-lazy values left alone
    # a dict holding a lazy object and a list of strings
    assert type(model.extras) is dict
    assert type(model.extras["head"]) is targets.Encoder and model.extras["head"].embed_dim == 8
    assert model.extras["names"] == ["a", "b"]


def test_top_level_containers_and_plain_values():
    out = instantiate([L(collections.OrderedDict)(x=1), 2, (L("builtins.dict")(y=2),)])
    assert out == [collections.OrderedDict(x=1), 2, ({"y": 2},)]
    assert type(out[0]) is collections.OrderedDict and type(out[2]) is tuple
    node = DictConfig({"a": [L(collections.OrderedDict)(x=1), 2], "c": "s"}, flags={"allow_objects": True})
    assert instantiate(node) == {"a": [collections.OrderedDict(x=1), 2], "c": "s"}  # a config node is built
    assert instantiate(3) == 3 and instantiate("torch.nn.Linear") == "torch.nn.Linear"
    obj = collections.Counter("ab")
    assert instantiate(obj) is obj


def test_plain_mapping_without_target_is_returned_unchanged():
    plain = {"xx": "yy", "lazy": L(collections.OrderedDict)(x=1)}
    assert instantiate(plain) is plain  # detectron2's contract: no copy, no recursion
    assert isinstance(plain["lazy"], DictConfig)
    ordered = collections.OrderedDict(a=1)
    assert instantiate(ordered) is ordered
    assert instantiate({"_target_": "builtins.dict", "y": 2}) == {"y": 2}  # with _target_ it is a call


def test_target_may_be_a_lazy_config(targets):
    cfg = L(L(targets.make_scaler)(factor=3))(value=2)  # the target is itself built first
    assert instantiate(cfg) == 6


def test_interpolations_resolve_against_the_whole_config(cfg_tree, targets):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    LazyConfig.apply_overrides(cfg, ["optimizer.lr=0.5"])
    params = instantiate(cfg.optimizer.params)  # a sub-node: ${..lr} still reaches optimizer.lr
    assert params == {"base_lr": 0.5, "backbone_lr": 0.5}


def test_failure_names_the_config_path_and_chains_the_error(cfg_tree, targets):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    cfg.model.extras.head = L(targets.Broken)(x=-1)
    with pytest.raises(InstantiationError) as info:
        instantiate(cfg.model)
    message = str(info.value)
    assert message.startswith("cannot instantiate 'model.extras.head' (_target_=cfg_test_targets.Broken)")
    assert "ValueError: x must be positive, got -1" in message
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.path == "model.extras.head"


def test_misspelt_keyword_names_path_key_and_closest_parameter(cfg_tree, targets):
    cfg = LazyConfig.load(cfg_tree / "proj" / "net_base.py")
    cfg.model.encoder.num_layer = 3
    with pytest.raises(InstantiationError) as info:
        instantiate(cfg.model)
    message = str(info.value)
    assert "cannot instantiate 'model.encoder'" in message
    assert "unexpected key 'model.encoder.num_layer'. Closest: num_layers." in message
    assert "Accepted: embed_dim, num_layers, dropout." in message
    assert isinstance(info.value.__cause__, TypeError)


def test_missing_argument_is_reported(targets):
    with pytest.raises(InstantiationError, match=r"missing required key\(s\) under the top-level config: x"):
        instantiate(L(targets.Broken)())


def test_unknown_string_target_suggests_names():
    cfg = DictConfig({"backbone": L("torch.nn.Linearr")(in_features=1, out_features=1)})
    with pytest.raises(
        InstantiationError, match=r"'backbone': .*no attribute 'Linearr'. Closest: torch\.nn\.Linear"
    ):
        instantiate(cfg.backbone)
    with pytest.raises(InstantiationError, match="_target_ must be a callable"):
        instantiate({"_target_": 3})


def test_locate_and_target_to_string(tmp_path, monkeypatch):
    assert locate("torch.optim.AdamW") is torch.optim.AdamW
    assert locate("builtins.dict") is dict
    assert locate("dict") is dict
    assert target_to_string(torch.optim.AdamW) == "torch.optim.AdamW"  # shortest importable path
    assert target_to_string(collections.OrderedDict) == "collections.OrderedDict"
    with pytest.raises(ValueError, match="no importable name"):
        target_to_string(lambda x: x)
    with pytest.raises(ImportError, match="no module named 'no_such_pkg'"):
        locate("no_such_pkg.X")
    # an import error inside an existing module is not hidden behind "cannot locate"
    (tmp_path / "cfg_test_broken_module.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        locate("cfg_test_broken_module.Thing")


def test_config_package_shares_public_helpers_and_one_set_of_flags():
    """Modules of detrex.config import no private names from each other, and the flags live in one place."""
    import ast
    from pathlib import Path

    import detrex.config

    package = Path(detrex.config.__file__).parent
    private_imports, flag_definitions = [], []
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                private_imports += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
            if isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "allow_objects" for k in node.keys
            ):
                flag_definitions.append(path.name)
    assert private_imports == []
    assert flag_definitions == ["instantiate.py"]
