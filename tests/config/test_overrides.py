"""LazyConfig.apply_overrides: literal parsing, interpolations, unknown keys, +new keys."""

import math

import pytest
from omegaconf import OmegaConf

from detrex.config import ConfigOverrideError, LazyConfig, get_config
from detrex.config.overrides import parse_value


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1e-4", 1e-4),
        ("-1", -1),
        ("(0.9, 0.999)", (0.9, 0.999)),
        ("[1,2]", [1, 2]),
        ("True", True),
        ("false", False),
        ("None", None),
        ("null", None),
        ("'cpu'", "cpu"),
        ('"a b"', "a b"),
        ("cpu", "cpu"),
        ("./output/run 1", "./output/run 1"),
        ("${..lr}", "${..lr}"),
        ("", ""),
        ("{'enabled': True}", {"enabled": True}),
    ],
)
def test_parse_value(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_value_inf():
    assert parse_value("inf") == math.inf
    assert math.isnan(parse_value("nan"))


@pytest.fixture
def cfg(cfg_tree):
    return LazyConfig.load(cfg_tree / "proj" / "net_base.py")


def test_overrides_of_nested_keys_and_types(cfg):
    LazyConfig.apply_overrides(
        cfg,
        [
            "optimizer.lr=1e-3",
            "optimizer.betas=(0.8, 0.99)",
            "train.amp.enabled=True",
            "train.output_dir=./output/x",
            "train.device='cpu'",
            "model.extras=None",
            "model.encoder.num_layers=5",
            "model.extras=[1,2]",
        ],
    )
    assert cfg.optimizer.lr == 1e-3 and isinstance(cfg.optimizer.lr, float)
    assert tuple(cfg.optimizer.betas) == (0.8, 0.99)
    assert cfg.train.amp.enabled is True
    assert cfg.train.output_dir == "./output/x"
    assert cfg.train.device == "cpu"
    assert cfg.model.encoder.num_layers == 5
    assert list(cfg.model.extras) == [1, 2]


def test_bare_word_stays_a_string(cfg):
    LazyConfig.apply_overrides(cfg, ["train.device=cpu"])
    assert cfg.train.device == "cpu"


def test_interpolation_follows_an_override_of_its_source(cfg):
    assert cfg.optimizer.params.base_lr == 2e-4
    LazyConfig.apply_overrides(cfg, ["optimizer.lr=5e-4", "model.encoder.embed_dim=32"])
    assert cfg.optimizer.params.base_lr == 5e-4
    assert cfg.model.decoder.embed_dim == 32


def test_override_of_a_key_holding_an_interpolation(cfg):
    LazyConfig.apply_overrides(cfg, ["optimizer.params.base_lr=0.3"])
    assert cfg.optimizer.params.base_lr == 0.3
    assert cfg.optimizer.lr == 2e-4  # the former source is untouched


def test_override_of_a_nested_node(cfg):
    LazyConfig.apply_overrides(cfg, ["train.amp={'enabled': True}"])  # a dict merges into the node
    assert cfg.train.amp.enabled is True
    LazyConfig.apply_overrides(cfg, ["model.decoder=None"])  # a scalar replaces it
    assert cfg.model.decoder is None


def test_override_inside_a_list(cfg):
    LazyConfig.apply_overrides(cfg, ["model.norms.0.normalized_shape=8", "model.extras.names.1=c"])
    assert cfg.model.norms[0].normalized_shape == 8
    assert list(cfg.model.extras.names) == ["a", "c"]


def test_unknown_key_error_suggests_the_closest_key():
    cfg = get_config("common/train.py")
    with pytest.raises(ConfigOverrideError) as info:
        LazyConfig.apply_overrides(cfg, ["train.max_iters=1000"])
    assert str(info.value) == (
        "override 'train.max_iters=1000': no key 'max_iters' under 'train'.\n"
        "  Closest: train.max_iter. To add a new key on purpose, write +train.max_iters=1000."
    )
    assert isinstance(info.value, KeyError)
    assert cfg.train.max_iter == 90000  # nothing changed


def test_unknown_key_error_finds_the_name_elsewhere(cfg):
    with pytest.raises(KeyError, match=r"no key 'lr' under 'train'.\n  Closest: .*optimizer\.lr"):
        LazyConfig.apply_overrides(cfg, ["train.lr=1"])
    with pytest.raises(KeyError, match=r"no key 'trian' at the top level.\n  Closest: train"):
        LazyConfig.apply_overrides(cfg, ["trian.max_iter=1"])


def test_add_force_and_delete(cfg):
    LazyConfig.apply_overrides(
        cfg, ["+new.key=1", "+train.extra=[1, 2]", "++train.max_iter=7", "++train.b=x"]
    )
    assert cfg.new.key == 1
    assert list(cfg.train.extra) == [1, 2]
    assert cfg.train.max_iter == 7
    assert cfg.train.b == "x"
    with pytest.raises(ConfigOverrideError, match="already exists; write train.max_iter=5"):
        LazyConfig.apply_overrides(cfg, ["+train.max_iter=5"])
    LazyConfig.apply_overrides(cfg, ["~train.b"])
    assert "b" not in cfg.train


def test_malformed_and_impossible_overrides(cfg):
    with pytest.raises(ValueError, match="expected key=value"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter"])
    with pytest.raises(ConfigOverrideError, match="'train.max_iter' holds int 100, not a config node"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter.x=1"])


def test_list_items_in_bracket_syntax(cfg):
    LazyConfig.apply_overrides(cfg, ["model.norms[0].normalized_shape=9", "~model.extras.names[1]"])
    assert cfg.model.norms[0].normalized_shape == 9
    assert list(cfg.model.extras.names) == ["a"]


def test_a_word_where_a_number_or_flag_is_expected(cfg):
    with pytest.raises(ConfigOverrideError, match=r"train.max_iter holds int 100, and 'abc' is not one"):
        LazyConfig.apply_overrides(cfg, ["train.max_iter=abc"])
    with pytest.raises(
        ConfigOverrideError, match=r"train.amp.enabled holds bool False, and 'yes' is not one"
    ):
        LazyConfig.apply_overrides(cfg, ["train.amp.enabled=yes"])
    assert cfg.train.max_iter == 100 and cfg.train.amp.enabled is False
    # numbers for numbers, an explicit string (quoted), None, an interpolation and ++ stay possible
    LazyConfig.apply_overrides(
        cfg, ["optimizer.lr=1", "train.max_iter=2000", "model.encoder.num_layers=None"]
    )
    assert cfg.optimizer.lr == 1 and cfg.train.max_iter == 2000 and cfg.model.encoder.num_layers is None
    LazyConfig.apply_overrides(cfg, ["train.max_iter='abc'", "++train.amp.enabled=auto"])
    assert cfg.train.max_iter == "abc" and cfg.train.amp.enabled == "auto"
    LazyConfig.apply_overrides(cfg, ["model.extras.head.embed_dim=${model.encoder.num_layers}"])
    assert cfg.model.extras.head.embed_dim is None  # follows model.encoder.num_layers


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.max_iter=1e3", "train.max_iter holds int 100, and 1e3 is the float 1000.0; write it as a whole "
         "number: train.max_iter=1000"),
        ("model.encoder.num_layers=3.5", "model.encoder.num_layers holds int 2, and 3.5 is not a whole number; "
         "model.encoder.num_layers takes an integer, e.g. model.encoder.num_layers=3"),
        ("train.max_iter=inf", "train.max_iter holds int 100, and inf is not a whole number; train.max_iter "
         "takes an integer"),
        ("train.max_iter=True", "train.max_iter holds int 100, and True is a bool; write a number"),
        ("optimizer.lr=False", "optimizer.lr holds float 0.0002, and False is a bool; write a number"),
        ("train.amp.enabled=1", "train.amp.enabled holds bool False, and 1 is not one; write "
         "train.amp.enabled=True or train.amp.enabled=False"),
    ],
)  # fmt: skip
def test_a_number_of_the_wrong_kind_is_refused(cfg, override, message):
    before = OmegaConf.to_container(cfg)
    with pytest.raises(ConfigOverrideError) as info:
        LazyConfig.apply_overrides(cfg, [override])
    assert str(info.value) == f"override {override!r}: {message}"
    assert OmegaConf.to_container(cfg) == before  # nothing was set


def test_numbers_that_fit_their_key_are_kept(cfg):
    LazyConfig.apply_overrides(
        cfg, ["optimizer.lr=inf", "optimizer.lr=1", "train.max_iter=-3", "++train.max_iter=2.5"]
    )
    assert cfg.optimizer.lr == 1 and cfg.train.max_iter == 2.5  # ++ sets whatever it is given


def test_a_list_with_bare_words_is_refused(cfg):
    with pytest.raises(
        ConfigOverrideError, match=r"'\[a, c\]' looks like a list but is not a Python literal"
    ):
        LazyConfig.apply_overrides(cfg, ["model.extras.names=[a, c]"])
    assert list(cfg.model.extras.names) == ["a", "b"]
    LazyConfig.apply_overrides(cfg, ["model.extras.names=['a', 'c']"])
    assert list(cfg.model.extras.names) == ["a", "c"]


def test_deleting_an_unknown_key_suggests_without_adding(cfg):
    with pytest.raises(ConfigOverrideError) as info:
        LazyConfig.apply_overrides(cfg, ["~train.max_itr"])
    assert str(info.value).endswith("Closest: train.max_iter. Nothing was deleted.")


def test_a_flag_after_the_overrides_is_explained(cfg):
    with pytest.raises(
        ConfigOverrideError, match="looks like a command-line flag: flags go before the first"
    ):
        LazyConfig.apply_overrides(cfg, ["train.max_iter=5", "--eval-only"])


def test_detrex_model_device_override_sets_train_device(caplog):
    cfg = OmegaConf.create({"model": {"num_classes": 80}, "train": {"device": "cuda"}})
    with caplog.at_level("WARNING"):
        LazyConfig.apply_overrides(cfg, ["model.device=cpu"])
    assert cfg.train.device == "cpu" and "device" not in cfg.model
    assert "train.device" in caplog.text
    with pytest.raises(ConfigOverrideError, match="no key 'device' under 'model'"):
        LazyConfig.apply_overrides(OmegaConf.create({"model": {"a": 1}}), ["model.device=cpu"])
