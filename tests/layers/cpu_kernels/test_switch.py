"""The one switch: DETREX_CPU_KERNELS=0, train.cpu_kernels=False and use_cpu_kernels(False) each turn every
kernel off; the R50 train step then has no custom autograd node."""

import json
import os
import subprocess
import sys

import pytest
import torch

from detrex.layers import cpu_kernels
from detrex.layers.cpu_kernels import switch


@pytest.fixture(autouse=True)
def _restore_switch():
    saved = switch._active
    yield
    switch._active = saved


def test_context_manager_nests_and_restores():
    with cpu_kernels.use_cpu_kernels(True):
        assert cpu_kernels.active_kernels() == frozenset(cpu_kernels.KERNELS)
        with cpu_kernels.use_cpu_kernels(False):
            assert cpu_kernels.active_kernels() == frozenset()
            with cpu_kernels.use_cpu_kernels(["dropout"]):
                assert cpu_kernels.active_kernels() == {"dropout"}
            assert cpu_kernels.active_kernels() == frozenset()
        assert cpu_kernels.active_kernels() == frozenset(cpu_kernels.KERNELS)
    with pytest.raises(ValueError, match="unknown CPU kernel.*'fast_conv'"):
        with cpu_kernels.use_cpu_kernels(["fast_conv"]):
            pass


def test_applies_only_to_float32_cpu_eager_without_autocast():
    x = torch.ones(3)
    with cpu_kernels.use_cpu_kernels(True):
        assert cpu_kernels.applies("dropout", x)
        assert not cpu_kernels.applies("dropout", x.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not cpu_kernels.applies("dropout", x)
        assert not cpu_kernels.applies("dropout", torch.ones(3, device="meta"))
    with cpu_kernels.use_cpu_kernels(False):
        assert not cpu_kernels.applies("dropout", x)


@pytest.mark.parametrize(
    "env, config, expected", [("1", True, True), ("0", True, False), ("1", False, False)]
)
def test_environment_and_config_key(monkeypatch, env, config, expected):
    """train.cpu_kernels=False turns them off; True leaves the environment's setting (either one is an off
    switch)."""
    monkeypatch.setenv(cpu_kernels.ENV_VAR, env)
    switch._active = None
    cpu_kernels.set_cpu_kernels(config)
    assert cpu_kernels.active_kernels() == (frozenset(cpu_kernels.KERNELS) if expected else frozenset())


def test_default_setup_applies_the_config_key(tmp_path):
    from detrex.config import LazyConfig
    from detrex.engine import default_setup
    from detrex.engine.defaults import default_argument_parser

    cfg = LazyConfig.load("tests/configs/tiny_conditional_detr.py")
    cfg = LazyConfig.apply_overrides(cfg, [f"train.output_dir={tmp_path}", "train.cpu_kernels=False"])
    default_setup(cfg, default_argument_parser().parse_args([]))
    assert cpu_kernels.active_kernels() == frozenset()


CHECK_R50 = """
import json
import torch
from detrex.config import LazyConfig, instantiate
from detrex.structures import Boxes, Instances

def custom_nodes(root):
    seen, stack, names = set(), [root.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    return sorted(names)

result = {}
for family in ("anchor_detr", "conditional_detr"):
    torch.manual_seed(0)
    cfg = LazyConfig.load(f"projects/{family}/configs/{family}_r50_50ep.py")
    model = instantiate(cfg.model).train()
    batch = []
    for h, w in ((96, 128), (80, 112)):
        inst = Instances((h, w), gt_boxes=Boxes(torch.tensor([[8.0, 8.0, 60.0, 70.0]])), gt_classes=torch.tensor([3]))
        batch.append({"image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8), "instances": inst})
    result[family] = custom_nodes(sum(model(batch).values()))
print(json.dumps(result))
"""


@pytest.mark.parametrize("value", ["0", "1"])
def test_r50_train_step_has_no_custom_autograd_node_when_off(value):
    """A subprocess with DETREX_CPU_KERNELS set, as a user would run it; "1" is the positive control."""
    env = {**os.environ, cpu_kernels.ENV_VAR: value}
    out = subprocess.run(
        [sys.executable, "-c", CHECK_R50], capture_output=True, text=True, env=env, check=True
    )
    nodes = json.loads(out.stdout.strip().splitlines()[-1])
    if value == "0":
        assert nodes == {"anchor_detr": [], "conditional_detr": []}
    else:  # Conditional-DETR trains with dropout 0.1; Anchor-DETR with dropout 0, where no kernel applies
        assert nodes["anchor_detr"] == []
        assert {"DropoutBackward", "DropoutAttentionBackward"} <= set(nodes["conditional_detr"])
