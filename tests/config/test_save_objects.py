"""LazyConfig.save writes dataclass instances and enum members with PyYAML's python/object tags (as
detectron2 does), LazyConfig.load gives them back, and to_py writes them as constructor calls."""

import logging

import pytest
import yaml

from detrex.config import L, LazyConfig, instantiate


def _reload(cfg, tmp_path, caplog):
    path = tmp_path / "config.yaml"
    with caplog.at_level(logging.WARNING, logger="detrex.config"):
        LazyConfig.save(cfg, path)
    assert not caplog.records, [r.getMessage() for r in caplog.records]  # nothing needed a placeholder
    assert not (tmp_path / "config.yaml.pkl").exists()
    return LazyConfig.load(path), path.read_text()


def test_dataclass_as_a_value_round_trips(targets, tmp_path, caplog):
    cfg = L(targets.Encoder)(embed_dim=4, num_layers=2, dropout=targets.ShapeSpec(channels=1, width=3))
    loaded, text = _reload(cfg, tmp_path, caplog)
    assert "!!python/object:cfg_test_targets.ShapeSpec" in text and "!unserializable" not in text
    for config in (cfg, loaded):
        obj = instantiate(config)
        assert type(obj.dropout) is targets.ShapeSpec
        assert (obj.dropout.channels, obj.dropout.height, obj.dropout.width) == (1, None, 3)


def test_dataclass_target_nested_and_frozen_dataclasses_and_enums(targets, tmp_path, caplog):
    cfg = L(targets.Transformer)(
        encoder=L(targets.ShapeSpec)(channels=1, width=3),  # a dataclass as the target
        decoder=targets.Frozen(name="d", sizes=(3, 4), inner=targets.ShapeSpec(height=5)),
        norms=[targets.Mode.SLOW],
        extras={"mode": targets.Mode.FAST},
    )
    loaded, text = _reload(cfg, tmp_path, caplog)
    assert "!!python/object/apply:cfg_test_targets.Mode" in text
    obj = instantiate(loaded)
    assert obj.encoder == targets.ShapeSpec(channels=1, width=3)
    assert obj.decoder == targets.Frozen(name="d", sizes=(3, 4), inner=targets.ShapeSpec(height=5))
    assert obj.norms == [targets.Mode.SLOW] and type(obj.norms[0]) is targets.Mode
    assert obj.extras == {"mode": targets.Mode.FAST} and type(obj.extras["mode"]) is targets.Mode


def test_pyyaml_reads_the_file_as_detectron2_would(targets, tmp_path, caplog):
    cfg = {"spec": targets.ShapeSpec(channels=2), "mode": targets.Mode.SLOW}
    _, text = _reload(cfg, tmp_path, caplog)
    plain = yaml.unsafe_load(text)  # what detectron2's LazyConfig.load does with a .yaml file
    assert plain == {"spec": targets.ShapeSpec(channels=2), "mode": targets.Mode.SLOW}


def test_loading_refuses_objects_that_are_not_dataclasses_or_enums(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("x: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="not an enum"):
        LazyConfig.load(path)
    path.write_text("x: !!python/object:collections.OrderedDict {}\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="not a dataclass"):
        LazyConfig.load(path)


def test_a_local_dataclass_still_falls_back_to_the_pickle(tmp_path, caplog):
    import dataclasses

    @dataclasses.dataclass
    class Local:
        x: int = 1

    path = tmp_path / "config.yaml"
    with caplog.at_level(logging.WARNING, logger="detrex.config"):
        LazyConfig.save({"value": Local(x=2)}, path)
    assert "!unserializable" in path.read_text() and (tmp_path / "config.yaml.pkl").exists()
    assert instantiate(LazyConfig.load(str(path) + ".pkl").value) == Local(x=2)


def test_to_py_writes_dataclasses_and_enums_as_calls(targets, tmp_path):
    cfg = LazyConfig.load(_write(tmp_path, targets))
    source = LazyConfig.to_py(cfg)
    assert "cfg_test_targets.ShapeSpec(channels=1, height=None, width=3)" in source
    assert "cfg_test_targets.Mode.SLOW" in source
    again = tmp_path / "again.py"
    again.write_text(source)
    obj = instantiate(LazyConfig.load(again).model)
    assert obj.dropout == targets.ShapeSpec(channels=1, width=3) and obj.num_layers is targets.Mode.SLOW


def _write(tmp_path, targets):
    path = tmp_path / "cfg.py"
    path.write_text(
        "from cfg_test_targets import Encoder, Mode, ShapeSpec\n"
        "from detrex.config import LazyCall as L\n\n"
        "model = L(Encoder)(embed_dim=4, num_layers=Mode.SLOW, dropout=ShapeSpec(channels=1, width=3))\n"
    )
    return path
