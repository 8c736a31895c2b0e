"""Fixtures for the config tests: an importable module of targets, and a tree of config files."""

import sys
import textwrap

import pytest

TARGETS = """
import dataclasses
import enum


@dataclasses.dataclass
class ShapeSpec:
    channels: int | None = None
    height: int | None = None
    width: int | None = None


@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str
    sizes: tuple = (1, 2)
    inner: ShapeSpec | None = None


class Mode(enum.IntEnum):
    FAST = 1
    SLOW = 2


class Encoder:
    def __init__(self, embed_dim: int, num_layers: int = 6, dropout: float = 0.1):
        self.embed_dim, self.num_layers, self.dropout = embed_dim, num_layers, dropout


class Transformer:
    def __init__(self, encoder, decoder, norms=(), extras=None):
        self.encoder, self.decoder, self.norms, self.extras = encoder, decoder, norms, extras


class Broken:
    def __init__(self, x: int):
        raise ValueError(f"x must be positive, got {x}")


def make_scaler(factor: float):
    def scale(value):
        return value * factor

    return scale


def param_groups(base_lr: float, lr_factor_func=None):
    factor = lr_factor_func("backbone.conv1") if lr_factor_func is not None else 1.0
    return {"base_lr": base_lr, "backbone_lr": base_lr * factor}
"""

FILES = {
    # cfgs/common/optim.py is imported from cfgs/proj/*.py as `from ..common.optim import optimizer`
    "common/optim.py": """
        import torch

        from detrex.config import LazyCall as L

        optimizer = L(torch.optim.AdamW)(
            params=L("cfg_test_targets.param_groups")(base_lr="${..lr}"),
            lr=1e-4,
            betas=(0.9, 0.999),
            weight_decay=1e-4,
        )
    """,
    "proj/models/net.py": """
        import torch

        from cfg_test_targets import Encoder, Transformer
        from detrex.config import LazyCall as L

        model = L(Transformer)(
            encoder=L(Encoder)(embed_dim=16, num_layers=2),
            decoder=L("cfg_test_targets.Encoder")(embed_dim="${..encoder.embed_dim}", num_layers=3),
            norms=[L(torch.nn.LayerNorm)(normalized_shape=4), dict(kind="plain", act=torch.nn.ReLU)],
            extras=dict(head=L(Encoder)(embed_dim=8), names=["a", "b"]),
        )
    """,
    "proj/net_base.py": """
        from ..common.optim import optimizer
        from .models.net import model

        train = dict(output_dir="./output/net", max_iter=100, amp=dict(enabled=False), device="cuda")
        optimizer.lr = 2e-4
        NUM_STEPS = 3  # not a config value: left out of the loaded config
        _private = dict(a=1)  # private: left out too
    """,
    "proj/net_variant.py": """
        from .net_base import model, optimizer, train

        model.encoder.num_layers = 4
        optimizer.params.lr_factor_func = lambda module_name: 0.1 if "backbone" in module_name else 1.0
        train.output_dir = "./output/net_variant"
    """,
}


@pytest.fixture(scope="session")
def targets_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("targets")
    (root / "cfg_test_targets.py").write_text(TARGETS)
    return root


@pytest.fixture
def targets(targets_dir, monkeypatch):
    """Puts the module `cfg_test_targets` (importable targets for dotted-path strings) on sys.path."""
    monkeypatch.syspath_prepend(str(targets_dir))
    import cfg_test_targets

    yield cfg_test_targets
    sys.modules.pop("cfg_test_targets", None)


@pytest.fixture
def cfg_tree(tmp_path, targets):
    """A folder of config files that import each other relatively; returns its root."""
    root = tmp_path / "cfgs"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root
