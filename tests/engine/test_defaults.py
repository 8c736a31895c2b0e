import argparse
import logging
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from detrex.config import ConfigOverrideError, LazyConfig
from detrex.engine import (
    TrainLengthError,
    check_device,
    check_output_dir,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    device_from_args,
    fit_loader_workers,
    remove_stale_checkpoint_temporaries,
    resolve_max_iter,
)


def _cfg(**train):
    return OmegaConf.create(
        {"dataloader": {"train": {"total_batch_size": 4}}, "train": {"max_iter": 100, **train}}
    )


@pytest.fixture
def detrex_logs(caplog):
    logger = logging.getLogger("detrex")  # setup_logger stops propagation: listen on it directly
    logger.addHandler(caplog.handler)
    propagate, logger.propagate = logger.propagate, False  # each record once, whatever the set-up
    with caplog.at_level(logging.INFO, logger="detrex"):
        yield caplog
    logger.removeHandler(caplog.handler)
    logger.propagate = propagate


def test_epochs_become_iterations_and_effective_epochs_are_logged(detrex_logs):
    cfg = _cfg(epochs=3, reference_batch_size=None)
    assert resolve_max_iter(cfg, dataset_size=10) == 8  # ceil(3 * 10 / 4)
    assert cfg.train.max_iter == 8
    assert "3.20 epochs" in detrex_logs.text  # 8 iterations x 4 images / 10
    assert "WARNING" not in detrex_logs.text


def test_iterations_kept_without_epochs_and_batch_size_warning(detrex_logs):
    cfg = _cfg(epochs=None, reference_batch_size=16)
    assert resolve_max_iter(cfg, dataset_size=400) == 100
    assert "1.00 epochs" in detrex_logs.text
    warnings = [r.getMessage() for r in detrex_logs.records if r.levelno == logging.WARNING]
    assert (
        len(warnings) == 1
        and "total_batch_size=4" in warnings[0]
        and "reference_batch_size=16" in warnings[0]
    )


def test_a_dataset_of_unknown_size_needs_max_iter_and_refuses_epochs(detrex_logs):
    """dataset_size=None (an iterable dataset without len()): max_iter is used as given, epochs and a
    missing max_iter are one-line errors naming the keys to set."""
    cfg = _cfg(epochs=None, reference_batch_size=None)
    assert resolve_max_iter(cfg, dataset_size=None) == 100
    assert "Training 100 iterations at total batch size 4 (dataset of unknown size)" in detrex_logs.text
    assert "epochs" not in detrex_logs.text
    with pytest.raises(TrainLengthError) as e:
        resolve_max_iter(_cfg(epochs=2), dataset_size=None)
    assert str(e.value) == (
        "train.epochs=2 needs the size of the training dataset, and it has no len() (an iterable dataset): "
        "set train.max_iter=N and train.epochs=None"
    )
    cfg = _cfg(epochs=None)
    cfg.train.max_iter = None
    for size in (None, 10):
        with pytest.raises(TrainLengthError, match=r"^train.max_iter is not set: give train.max_iter=N"):
            resolve_max_iter(cfg, dataset_size=size)


def test_default_setup_writes_config_and_log_and_seeds(tmp_path):
    cfg = LazyConfig.load("configs/common/train.py")
    cfg.train.output_dir = str(tmp_path / "run")
    cfg.train.seed = 123
    args = argparse.Namespace(config_file="configs/common/train.py", resume=False, eval_only=False, opts=[])
    default_setup(cfg, args)
    assert torch.initial_seed() == 123  # rank 0: seed + 0
    assert not torch.backends.cudnn.benchmark
    saved = LazyConfig.load(os.path.join(cfg.train.output_dir, "config.yaml"))
    assert saved.train.seed == 123 and saved.train.output_dir == cfg.train.output_dir
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "World size: 1" in log and "Environment info" in log and "Contents of args.config_file" in log


def test_ddp_is_skipped_on_one_process():
    model = nn.Linear(2, 2)
    assert create_ddp_model(model, broadcast_buffers=False) is model


def test_device_from_args_applies_overrides():
    parse = default_argument_parser().parse_args
    config = "configs/common/train.py"
    assert device_from_args(parse(["--config-file", config])) == "cuda"  # the config's value
    assert device_from_args(parse(["--config-file", config, "train.device=cpu"])) == "cpu"
    with pytest.raises(ConfigOverrideError, match="Closest: train.device"):
        device_from_args(parse(["--config-file", config, "train.devise=cpu"]))
    with pytest.raises(ValueError, match="--config-file is required"):
        device_from_args(parse([]))


def test_default_setup_writes_into_the_folder_it_is_given(tmp_path):
    cfg = LazyConfig.load("configs/common/train.py")
    cfg.train.output_dir = str(tmp_path / "run")
    args = argparse.Namespace(config_file="", resume=False, eval_only=True, opts=[])
    default_setup(cfg, args, output_dir=str(tmp_path / "run" / "inference"))  # what --eval-only does
    assert sorted(os.listdir(tmp_path / "run" / "inference")) == ["config.yaml", "log.txt"]
    assert sorted(os.listdir(tmp_path / "run")) == ["inference"]  # the training run's files stay as they are


def test_output_dir_that_cannot_be_written(tmp_path):
    (tmp_path / "a_file").write_text("")
    for output_dir, error in [("a_file", FileExistsError), ("a_file/run", NotADirectoryError)]:
        with pytest.raises(error) as info:
            check_output_dir(str(tmp_path / output_dir))
        assert str(info.value) == (
            f"train.output_dir={str(tmp_path / output_dir)!r}: cannot write there ({tmp_path / 'a_file'} is a "
            "file). Set train.output_dir to a folder you can write, e.g. train.output_dir=./output/my_run"
        )
    check_output_dir(str(tmp_path / "new" / "run"))
    assert (tmp_path / "new" / "run").is_dir() and os.listdir(tmp_path / "new" / "run") == []


def test_a_device_torch_does_not_know_lists_the_choices():
    with pytest.raises(ValueError) as info:
        check_device("gpu")
    assert (
        str(info.value)
        == "train.device='gpu' is not a device: use cpu, cuda or cuda:N (e.g. train.device=cpu)"
    )
    check_device("cpu")


def test_loader_workers_fit_the_cpu_cores(detrex_logs, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    cfg = OmegaConf.create(
        {"dataloader": {"train": {"num_workers": 16}, "test": {"num_workers": 4}, "evaluator": {}}}
    )
    fit_loader_workers(cfg, overrides=[])
    assert cfg.dataloader.train.num_workers == 2 and cfg.dataloader.test.num_workers == 2
    assert [r.getMessage() for r in detrex_logs.records] == [
        "dataloader.train.num_workers=16 and dataloader.test.num_workers=4 lowered to 2: this machine has 2 CPU "
        "cores for 1 training process(es); give num_workers on the command line to choose"
    ]
    cfg = OmegaConf.create({"dataloader": {"train": {"num_workers": 16}, "test": {"num_workers": 1}}})
    fit_loader_workers(cfg, overrides=["dataloader.train.num_workers=16"])  # asked for: kept
    assert cfg.dataloader.train.num_workers == 16 and cfg.dataloader.test.num_workers == 1
    assert len(detrex_logs.records) == 1


def test_stale_checkpoint_temporaries_are_removed(tmp_path, detrex_logs):
    stale = tmp_path / ".model_0000999.pth.k2j3h4.tmp"
    stale.write_bytes(b"x" * 2**20)  # what a save killed before its rename leaves
    kept = ["model_0000999.pth", "last_checkpoint", ".metrics.json.abc.tmp", "notes.tmp"]
    for name in kept:
        (tmp_path / name).write_text("")
    remove_stale_checkpoint_temporaries(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(kept)
    assert detrex_logs.records[-1].getMessage() == (
        f"Removed 1 temporary file(s) of interrupted checkpoint saves in {tmp_path} (1.0 MiB): "
        ".model_0000999.pth.k2j3h4.tmp"
    )
