"""What every detrex training script shares: the command line, the run set-up, DDP, writers and hooks."""

import argparse
import glob
import inspect
import logging
import math
import os
import sys
import tempfile

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from detrex.layers import cpu_kernels
from detrex.utils import comm
from detrex.utils.env import collect_env_info, seed_all_rng
from detrex.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from detrex.utils.logger import setup_logger

from . import hooks

__all__ = [
    "default_argument_parser",
    "default_setup",
    "device_from_args",
    "create_ddp_model",
    "default_writers",
    "default_hooks",
    "resolve_max_iter",
    "TrainLengthError",
    "check_output_dir",
    "fit_loader_workers",
    "remove_stale_checkpoint_temporaries",
]

_EPILOG = """
Examples:

Train on one machine with 8 GPUs:
    $ {prog} --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py --num-gpus 8

Resume the run in train.output_dir after an interruption:
    $ {prog} --config-file CONFIG.py --num-gpus 8 --resume

Evaluate a checkpoint:
    $ {prog} --config-file CONFIG.py --eval-only train.init_checkpoint=/path/to/model_final.pth

Change config values (key=value, as LazyConfig.apply_overrides):
    $ {prog} --config-file CONFIG.py train.max_iter=1000 dataloader.train.total_batch_size=8

Two processes on the CPU (gloo backend; each takes its share of the cores unless OMP_NUM_THREADS is set):
    $ {prog} --config-file CONFIG.py --num-gpus 2 train.device=cpu

Two machines:
    (machine0)$ {prog} --config-file CONFIG.py --num-gpus 8 --num-machines 2 --machine-rank 0 --dist-url tcp://IP0:PORT
    (machine1)$ {prog} --config-file CONFIG.py --num-gpus 8 --num-machines 2 --machine-rank 1 --dist-url tcp://IP0:PORT

Started by torchrun (or SLURM srun, one task per GPU), the process joins the job given by the environment:
    $ torchrun --nproc-per-node 8 {prog} --config-file CONFIG.py
"""


def default_argument_parser(epilog: str | None = None) -> argparse.ArgumentParser:
    """The arguments of tools/train_net.py; ``--help`` shows examples."""
    prog = os.path.basename(sys.argv[0]) or "train_net.py"
    parser = argparse.ArgumentParser(
        description="Train or evaluate a detrex model described by a lazy Python config.",
        epilog=epilog if epilog is not None else _EPILOG.format(prog=prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config-file", default="", metavar="FILE", help="path to the config file (.py/.yaml)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in train.output_dir (model, optimizer, scheduler, "
        "iteration, EMA, grad scaler, data order); train.init_checkpoint is then ignored",
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate train.init_checkpoint")
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine (one per GPU; e.g. 2 with train.device=cpu)",
    )
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's index (0 = master)")
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="tcp://MASTER_IP:PORT of machine 0; 'auto' (default, one machine only) picks a free local port",
    )
    parser.add_argument(
        "opts",
        default=None,
        nargs=argparse.REMAINDER,
        help="config overrides at the end of the command, 'path.key=value', e.g. train.max_iter=1000",
    )
    return parser


def device_from_args(args: argparse.Namespace) -> str:
    """``train.device`` of the config with the command-line overrides applied.

    ``launch`` needs it before any process exists, to pick NCCL or gloo; loading the config here also
    reports a bad config file or override once, before processes are spawned."""
    from detrex.config import LazyConfig

    if not args.config_file:
        raise ValueError("--config-file is required, e.g. --config-file projects/<name>/configs/<config>.py")
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts or [])
    return OmegaConf.select(cfg, "train.device", default=None) or (
        "cuda" if torch.cuda.is_available() else "cpu"
    )


def default_setup(cfg, args: argparse.Namespace, output_dir: str | None = None) -> None:
    """Prepare the run: output dir, per-rank ``log.txt``, environment and config in the log,
    ``config.yaml`` in the output dir, seeds (``train.seed``; -1 random; + rank), cudnn.benchmark.

    output_dir: where log.txt and config.yaml go, default ``train.output_dir`` (an evaluation gives its
    own folder, so that it does not write over the training run's files)."""
    from detrex.config import LazyConfig

    output_dir = cfg.train.output_dir if output_dir is None else output_dir
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    for name in ("fvcore", "projects"):
        setup_logger(output_dir or None, distributed_rank=rank, name=name)
    logger = setup_logger(output_dir or None, distributed_rank=rank, name="detrex")

    logger.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    logger.info("Environment info:\n" + collect_env_info())
    logger.info(f"Command line arguments: {args}")
    if getattr(args, "config_file", ""):
        with open(args.config_file) as f:
            logger.info(f"Contents of args.config_file={args.config_file}:\n{f.read()}")
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        LazyConfig.save(cfg, path)
        logger.info(f"Full config saved to {path}")

    seed = OmegaConf.select(cfg, "train.seed", default=-1)
    seed_all_rng(None if seed is None or seed < 0 else seed + rank)
    torch.backends.cudnn.benchmark = bool(OmegaConf.select(cfg, "train.cudnn_benchmark", default=False))
    cpu_kernels.set_cpu_kernels(bool(OmegaConf.select(cfg, "train.cpu_kernels", default=True)))
    if str(OmegaConf.select(cfg, "train.device", default="cpu") or "cpu").startswith("cpu"):
        cpu_kernels.prepare_cpu_process()
        active = sorted(cpu_kernels.active_kernels())
        logger.info(
            f"CPU kernels: {', '.join(active) if active else 'off'} "
            f"(train.cpu_kernels=False or {cpu_kernels.ENV_VAR}=0 turns them off)"
        )


def create_ddp_model(
    model: nn.Module,
    broadcast_buffers: bool = False,
    find_unused_parameters: bool = False,
    fp16_compression: bool = False,
) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when more than one process runs (else return it).

    fp16_compression: all-reduce gradients in float16 (halves traffic; NCCL only)."""
    if comm.get_world_size() == 1:
        return model
    on_cuda = next(model.parameters()).device.type == "cuda"
    # torch 2.13 renamed broadcast_buffers (deprecated, warns) to forward_sync_buffers
    sync_arg = "forward_sync_buffers" if _ddp_has_arg("forward_sync_buffers") else "broadcast_buffers"
    ddp = DistributedDataParallel(
        model,
        device_ids=[comm.get_local_rank()] if on_cuda else None,
        find_unused_parameters=find_unused_parameters,
        **{sync_arg: broadcast_buffers},
    )
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def _ddp_has_arg(name: str) -> bool:
    return name in inspect.signature(DistributedDataParallel.__init__).parameters


def default_writers(output_dir: str, max_iter: int | None = None) -> list[EventWriter]:
    """Console line, ``output_dir/metrics.json`` and TensorBoard events in ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    return [
        CommonMetricPrinter(max_iter),
        JSONWriter(os.path.join(output_dir, "metrics.json")),
        TensorboardXWriter(output_dir),
    ]


def default_hooks(cfg, checkpointer, scheduler, eval_function) -> list[hooks.HookBase | None]:
    """The training hooks, in the one order they run after each step:
    LR schedule -> checkpoint -> eval -> writers (writers on the main process only)."""
    train = cfg.train
    return [
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler),
        hooks.PeriodicCheckpointer(checkpointer, train.checkpointer.period, train.checkpointer.max_to_keep),
        hooks.EvalHook(train.eval_period, eval_function),
        hooks.PeriodicWriter(default_writers(train.output_dir, train.max_iter), period=train.log_period)
        if comm.is_main_process()
        else None,
    ]


class TrainLengthError(ValueError):
    """``train.max_iter`` / ``train.epochs`` cannot give the number of iterations (the message says which
    key to set)."""


def resolve_max_iter(cfg, dataset_size: int | None) -> int:
    """Turn ``train.epochs`` (when set) into ``train.max_iter`` for this dataset and batch size; log the
    effective number of epochs; warn when the batch size differs from ``train.reference_batch_size``.

    dataset_size: the number of training images; None for a dataset of unknown size (an IterableDataset
    without ``len``), which needs ``train.max_iter`` and refuses ``train.epochs`` (TrainLengthError).
    The lr schedule (``lr_multiplier``) is a function of iteration / max_iter, so decay and warm-up
    points expressed as fractions of training (e.g. decay at 40 of 50 epochs) follow max_iter."""
    logger = logging.getLogger(__name__)
    batch_size = int(cfg.dataloader.train.total_batch_size)
    epochs = OmegaConf.select(cfg, "train.epochs", default=None)
    if epochs is not None:
        if dataset_size is None:
            raise TrainLengthError(
                f"train.epochs={epochs} needs the size of the training dataset, and it has no len() (an "
                "iterable dataset): set train.max_iter=N and train.epochs=None"
            )
        cfg.train.max_iter = math.ceil(epochs * dataset_size / batch_size)
        logger.info(f"train.epochs={epochs}: max_iter = ceil({epochs} x {dataset_size} / {batch_size})")
    if OmegaConf.select(cfg, "train.max_iter", default=None) is None:
        raise TrainLengthError("train.max_iter is not set: give train.max_iter=N (or train.epochs=N)")
    max_iter = int(cfg.train.max_iter)
    if dataset_size is None:
        logger.info(
            f"Training {max_iter} iterations at total batch size {batch_size} (dataset of unknown size)"
        )
    else:
        logger.info(
            f"Training {max_iter} iterations at total batch size {batch_size} on {dataset_size} images: "
            f"{max_iter * batch_size / dataset_size:.2f} epochs"
        )
    reference = OmegaConf.select(cfg, "train.reference_batch_size", default=None)
    if reference is not None and reference != batch_size:
        logger.warning(
            f"dataloader.train.total_batch_size={batch_size} differs from train.reference_batch_size="
            f"{reference} that the schedule and lr were tuned for; consider scaling the lr and schedule."
        )
    return max_iter


def check_output_dir(output_dir: str, key: str = "train.output_dir") -> None:
    """Create ``output_dir`` and check that files can be written in it, before any work starts.

    Raises an OSError (NotADirectoryError, PermissionError, ...) naming the key, the folder and the reason."""
    if not output_dir:
        return
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as e:
        existing = os.path.abspath(output_dir)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        reason = f"{existing} is a file" if os.path.isfile(existing) else (e.strerror or str(e))
        raise type(e)(
            f"{key}={output_dir!r}: cannot write there ({reason}). Set {key} to a folder you can write, "
            f"e.g. {key}=./output/my_run"
        ) from None


def fit_loader_workers(cfg, overrides: list[str]) -> None:
    """Lower ``dataloader.{train,test}.num_workers`` to this process's share of the CPU cores.

    More loader processes than cores only compete with training (and torch warns for every loader). A
    value given on the command line is kept. One log line says what changed."""
    logger = logging.getLogger(__name__)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = max(1, cores // max(1, comm.get_local_size()))
    lowered = []
    for key in ("dataloader.train.num_workers", "dataloader.test.num_workers"):
        workers = OmegaConf.select(cfg, key, default=None)
        if (
            not isinstance(workers, int)
            or workers <= share
            or any(o.startswith(f"{key}=") for o in overrides)
        ):
            continue
        OmegaConf.update(cfg, key, share)
        lowered.append(f"{key}={workers}")
    if lowered:
        logger.info(
            f"{' and '.join(lowered)} lowered to {share}: this machine has {cores} CPU cores for "
            f"{comm.get_local_size()} training process(es); give num_workers on the command line to choose"
        )


def remove_stale_checkpoint_temporaries(output_dir: str) -> None:
    """Delete the hidden temporary files (``.model_0004999.pth.<random>.tmp``) of checkpoint saves that were
    killed before their final rename: nothing else removes them, and each is as large as a checkpoint.
    Call it before training starts, on the process that saves."""
    stale = sorted(glob.glob(os.path.join(glob.escape(output_dir), ".*.pth.*.tmp")))
    if not stale:
        return
    size = sum(os.path.getsize(path) for path in stale)
    for path in stale:
        os.remove(path)
    logging.getLogger(__name__).info(
        f"Removed {len(stale)} temporary file(s) of interrupted checkpoint saves in {output_dir} "
        f"({size / 2**20:.1f} MiB): {', '.join(os.path.basename(p) for p in stale)}"
    )
