"""get_config and the shipped configs/common/train.py, from the repository and from an installed wheel."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from detrex.config import LazyConfig, get_config

REPO = Path(__file__).resolve().parents[2]

TRAIN = dict(
    output_dir="./output",
    init_checkpoint="",
    max_iter=90000,
    amp=dict(enabled=False, dtype="auto"),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=100),
    eval_period=5000,
    log_period=20,
    device="cuda",
    seed=-1,
    clip_grad=dict(enabled=False, params=dict(max_norm=0.1, norm_type=2.0)),
    model_ema=dict(enabled=False, decay=0.999, use_ema_weights_for_eval_only=False),
    fast_dev_run=dict(enabled=False, eval_batches=4),
    epochs=None,
    reference_batch_size=None,
    compile=dict(enabled=False),
    cpu_kernels=True,
)

CHECK = "from detrex.config import get_config; import detrex; print(detrex.__file__); print(get_config('common/train.py').train.max_iter)"


def test_common_train_values():
    cfg = get_config("common/train.py")
    assert isinstance(cfg, DictConfig) and list(cfg.keys()) == ["train"]
    assert OmegaConf.to_container(cfg.train) == TRAIN


def test_get_config_returns_a_fresh_copy():
    first = get_config("common/train.py")
    first.train.max_iter = 1
    assert get_config("common/train.py").train.max_iter == 90000


def test_get_config_survives_save_and_load(tmp_path):
    cfg = get_config("common/train.py")
    LazyConfig.save(cfg, tmp_path / "config.yaml")
    assert OmegaConf.to_container(LazyConfig.load(tmp_path / "config.yaml")) == {"train": TRAIN}


def test_unknown_config_names_the_closest():
    with pytest.raises(FileNotFoundError, match=r"get_config\('common/trian.py'\).*Closest: common/train.py"):
        get_config("common/trian.py")


def test_get_config_from_another_working_directory(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(REPO / "detrex" / "__init__.py"), "90000"]


def test_installed_wheel_ships_the_configs(tmp_path):
    """A plain (non-editable) install carries configs/ inside the package as detrex/config/configs."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("detrex", "projects", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for path in REPO.iterdir():
        if path.is_file():
            shutil.copy(path, src / path.name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("detrex-*.whl")
    site = tmp_path / "site"
    install = subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], capture_output=True
    )
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(site / "detrex" / "__init__.py"), "90000"]
    assert (site / "detrex" / "config" / "configs" / "common" / "train.py").is_file()
