#!/usr/bin/env python
r"""Train or evaluate a detrex model described by a lazy config.

    python tools/train_net.py --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py \
        --num-gpus 8
    python tools/train_net.py --config-file CONFIG.py --eval-only train.init_checkpoint=model_final.pth

``--help`` lists every option with examples. The config provides cfg.model, cfg.dataloader.{train, test,
evaluator}, cfg.optimizer, cfg.lr_multiplier and cfg.train (configs/common/train.py).

A mistake in the command line, the config values, the data or the checkpoint ends in one line on stderr
(the traceback goes to log.txt): a usage error exits with status 2, a fault found while running with 1,
Ctrl-C with 130. Anything else is a bug and keeps its traceback.
"""

import copy
import logging
import os
import sys

import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from detrex.checkpoint import CheckpointError, DetectionCheckpointer
from detrex.config import ConfigOverrideError, LazyConfig, instantiate
from detrex.data.detection_utils import ImageReadError
from detrex.engine import (
    ModelEMA,
    NonFiniteStepError,
    Trainer,
    TrainLengthError,
    build_lr_scheduler,
    check_device,
    check_output_dir,
    create_ddp_model,
    default_argument_parser,
    default_hooks,
    default_setup,
    device_from_args,
    fit_loader_workers,
    launch,
    remove_stale_checkpoint_temporaries,
    resolve_max_iter,
    unwrap_model,
)
from detrex.evaluation import inference_on_dataset, print_csv_format
from detrex.utils import comm
from detrex.utils.dataset_check import DatasetCheckError, check_model_classes

logger = logging.getLogger("detrex")

# Faults a user fixes in the config, the data or the checkpoint: reported in one line
FAULTS = (
    FloatingPointError,  # NaN/Inf loss, gradient, weights or outputs: stopped before the update
    FileNotFoundError,  # a dataset, image or checkpoint file that is not there
    ImageReadError,  # an image file that cannot be decoded
    DatasetCheckError,  # the dataset's classes do not fit model.num_classes
    CheckpointError,  # a checkpoint that cannot be found, downloaded, read or fitted to the model
    TrainLengthError,  # train.epochs for a dataset of unknown size, or no train.max_iter
)


def build_model(cfg) -> torch.nn.Module:
    check_device(cfg.train.device)
    model = instantiate(cfg.model)
    num_params = sum(p.numel() for p in model.parameters())
    logger.info(
        f"Model: {type(model).__name__}, {num_params / 1e6:.2f} M parameters (its structure: log.txt)"
    )
    logger.info(f"Model:\n{model}", extra={"console": False})  # ~200 lines: the log file only
    return model.to(cfg.train.device)  # the one place train.device is applied


def build_ema(cfg, model) -> ModelEMA | None:
    if not cfg.train.model_ema.enabled:
        return None
    device = OmegaConf.select(cfg, "train.model_ema.device", default="") or ""
    return ModelEMA(model, decay=cfg.train.model_ema.decay, device=device)


def do_test(cfg, model, ema: ModelEMA | None = None) -> dict:
    """Evaluate with cfg.dataloader.evaluator; with ``ema``, also the EMA weights (results under "ema")."""
    if "evaluator" not in cfg.dataloader:
        return {}
    if OmegaConf.select(cfg, "dataloader.evaluator.output_dir", default=None) is None:
        cfg.dataloader.evaluator.output_dir = os.path.join(cfg.train.output_dir, "inference")
    model = unwrap_model(model)
    max_batches = None
    if OmegaConf.select(cfg, "train.fast_dev_run.enabled", default=False):
        max_batches = OmegaConf.select(cfg, "train.fast_dev_run.eval_batches", default=4)

    def evaluate(output_subdir=""):
        evaluator_cfg = copy.deepcopy(cfg.dataloader.evaluator)
        if output_subdir and evaluator_cfg.output_dir:  # EMA predictions beside the others, not over them
            evaluator_cfg.output_dir = os.path.join(evaluator_cfg.output_dir, output_subdir)
        return inference_on_dataset(
            model, instantiate(cfg.dataloader.test), instantiate(evaluator_cfg), max_batches=max_batches
        )

    results = evaluate()
    print_csv_format(results)
    if ema is not None:
        logger.info(
            "Evaluating the EMA weights (results under ema/ in metrics.json, predictions in inference/ema)"
        )
        with ema.apply_and_restore():
            ema_results = evaluate("ema")
        print_csv_format(ema_results)
        results = {**results, "ema": ema_results}
    return results


def do_train(args, cfg) -> None:
    check_model_classes(cfg)  # a class-count mismatch fails here, not as AP = 0 after training
    # the data before the model: a missing dataset folder is reported before a long model build
    train_loader = instantiate(cfg.dataloader.train)
    max_iter = resolve_max_iter(cfg, dataset_size(train_loader))
    model = build_model(cfg)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    ema = build_ema(cfg, model)
    ddp_model = create_ddp_model(model, **cfg.train.ddp)
    if OmegaConf.select(cfg, "train.compile.enabled", default=False):
        ddp_model = torch.compile(ddp_model)

    trainer = Trainer(
        ddp_model,
        train_loader,
        optimizer,
        amp_enabled=cfg.train.amp.enabled,
        amp_dtype=cfg.train.amp.dtype,
        clip_grad_params=cfg.train.clip_grad.params if cfg.train.clip_grad.enabled else None,
        ema=ema,
    )
    scheduler = build_lr_scheduler(optimizer, instantiate(cfg.lr_multiplier), max_iter)
    extra = {"ema_state": ema} if ema is not None else {}
    checkpointer = DetectionCheckpointer(
        model, cfg.train.output_dir, trainer=trainer, scheduler=scheduler, **extra
    )
    if comm.is_main_process():
        remove_stale_checkpoint_temporaries(cfg.train.output_dir)
    trainer.register_hooks(default_hooks(cfg, checkpointer, scheduler, lambda: do_test(cfg, model, ema)))
    start_iter = trainer.resume_or_load(checkpointer, cfg.train.init_checkpoint, resume=args.resume)
    try:
        trainer.train(start_iter, max_iter)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"during iteration {trainer.iter}") from None


def dataset_size(loader) -> int | None:
    """The number of training images; None for an iterable dataset without ``len``."""
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return None


def do_eval_only(cfg) -> dict:
    check_model_classes(cfg, splits=("test",))  # a class-count mismatch would give a meaningless AP
    model = build_model(cfg)
    ema = build_ema(cfg, model)
    extra = {"ema_state": ema} if ema is not None else {}
    checkpointer = DetectionCheckpointer(model, cfg.train.output_dir, **extra)
    checkpointer.load(cfg.train.init_checkpoint)
    if not cfg.train.init_checkpoint:
        logger.warning(
            "--eval-only without train.init_checkpoint: evaluating randomly initialised weights. "
            "Pass train.init_checkpoint=/path/to/model.pth to evaluate a trained model."
        )
    elif checkpointer.loaded_full_model is False:
        logger.warning(
            f"--eval-only: train.init_checkpoint={cfg.train.init_checkpoint!r} holds {checkpointer.loaded_format}, "
            "not a trained detector: the transformer and heads are random and the AP will be near 0. "
            "Pass train.init_checkpoint=/path/to/model.pth."
        )
    if ema is not None and cfg.train.model_ema.use_ema_weights_for_eval_only:
        if not ema.initialized:
            raise KeyError(
                f"train.model_ema.use_ema_weights_for_eval_only=True but {cfg.train.init_checkpoint!r} has "
                "no 'ema_state'; set train.model_ema.enabled=False to evaluate its plain weights"
            )
        logger.info("Evaluating with the EMA weights")
        ema.copy_to(model)
    return do_test(cfg, model)


def setup(args):
    """The config with the command line applied, and the folder of this run's log.txt and config.yaml."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    if OmegaConf.select(cfg, "train.fast_dev_run.enabled", default=False):
        # a quick pipeline check, in a folder of its own: a real run's outputs stay untouched
        cfg.train.max_iter, cfg.train.eval_period, cfg.train.log_period = 20, 10, 1
        cfg.train.output_dir = os.path.join(cfg.train.output_dir, "fast_dev_run")
    if not args.eval_only:
        return cfg, cfg.train.output_dir
    # an evaluation logs into its own folder: the training run's log.txt and config.yaml stay as they are
    eval_dir = OmegaConf.select(cfg, "dataloader.evaluator.output_dir", default=None)
    if eval_dir is None:
        eval_dir = os.path.join(cfg.train.output_dir, "inference")  # where do_test puts predictions too
        if "evaluator" in cfg.dataloader:
            cfg.dataloader.evaluator.output_dir = eval_dir
    return cfg, eval_dir


def main(args) -> dict | None:
    cfg, run_dir = setup(args)
    default_setup(cfg, args, output_dir=run_dir)
    if OmegaConf.select(cfg, "train.fast_dev_run.enabled", default=False):
        logger.info(
            f"train.fast_dev_run: 20 iterations, evaluations on {cfg.train.fast_dev_run.eval_batches} test batches "
            f"at iterations 10 and 20; outputs in {cfg.train.output_dir}"
        )
    fit_loader_workers(cfg, args.opts)
    try:
        if args.eval_only:
            return do_eval_only(cfg)
        do_train(args, cfg)
    except KeyboardInterrupt as e:
        where = f" {e}" if str(e) else ""
        resume = "" if args.eval_only else f" {resume_hint(cfg.train.output_dir)}"
        if comm.get_rank() == 0:  # every process got Ctrl-C
            stop(f"Interrupted{where}.{resume}", 130)
        sys.exit(130)
    except Exception as e:
        fault = user_fault(e)
        if fault is None:
            raise
        logger.error("Stopped by:", exc_info=fault, extra={"console": False})  # the traceback, for log.txt
        report_fault(fault, args, cfg.train.output_dir)
    return None


def report_fault(fault: BaseException, args, output_dir: str) -> None:
    """Stop with one line for ``fault`` (one of FAULTS), and status 1."""
    message = f"{type(fault).__name__}: {fault_message(fault)}"
    if isinstance(fault, FloatingPointError):
        resume = "" if args.eval_only else f" {resume_hint(output_dir, non_finite=True)}"
        # only the Trainer's all-reduced checks and the weights' check are met by every rank at once; the
        # matcher's, a forward pass's or user code's may be this rank's alone, and a barrier would hang
        stop(message + resume, 1, together=isinstance(fault, NonFiniteStepError))
    if isinstance(fault, ImageReadError) or fault_message(fault).startswith("image file not found"):
        check = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_dataset.py"))
        message += (
            f". Find every such file with: python {check} --config-file {args.config_file} --verify-images"
        )
    stop(message, 1)


def user_fault(error: BaseException) -> BaseException | None:
    """``error``, or the error it wraps (``instantiate`` chains the original), when it is one of FAULTS."""
    while error is not None:
        if isinstance(error, FAULTS):
            return error
        error = error.__cause__
    return None


def fault_message(error: BaseException) -> str:
    """The error's own message. A DataLoader worker's error comes back as the worker's whole traceback,
    whose last "<Type>: <message>" line is the message."""
    text = str(error)
    marker = f"{type(error).__name__}: "
    if "Original Traceback" in text and marker in text:
        text = text[text.rindex(marker) + len(marker) :]
    return text.strip()


def resume_hint(output_dir: str, non_finite: bool = False) -> str:
    """What --resume would do now. After a NaN/Inf stop the last checkpoint is the last finite one; with
    weights already blown up, resuming stops again, and starting afresh with a lower lr is the way."""
    tag = os.path.join(output_dir, "last_checkpoint")
    if not os.path.isfile(tag):
        return f"No checkpoint was written to {output_dir} yet: --resume would start from the beginning."
    with open(tag) as f:
        path = os.path.join(output_dir, f.read().strip())
    if not non_finite:
        return f"--resume continues from {path}."
    return (
        f"The last checkpoint, {path}, holds finite weights: --resume continues from it (with the "
        "optimizer.lr of the command line); if it stops again, start afresh without --resume."
    )


def stop(message: str, status: int, together: bool = False) -> None:
    """Print ``message`` on stderr and exit with ``status``. ``together``: every rank stopped at the same
    point; rank 0 prints while the others wait for it (the launcher ends the job when the first process
    exits). Otherwise the fault may be this rank's alone, and it prints."""
    rank, world_size = comm.get_rank(), comm.get_world_size()
    if rank == 0 or not together:
        print((f"[rank {rank}] " if world_size > 1 else "") + message, file=sys.stderr, flush=True)
    if together and world_size > 1:
        comm.synchronize()
    sys.exit(status)


if __name__ == "__main__":
    parser = default_argument_parser()
    args = parser.parse_args()
    if not args.config_file:
        parser.error("--config-file is required, e.g. --config-file projects/<name>/configs/<config>.py")
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    try:
        device = device_from_args(args)
        cfg, run_dir = setup(args)
    except ConfigOverrideError as e:
        parser.error(str(e))
    try:  # the device and the output folders are checked once, before any process starts
        check_device(device, args.num_gpus)
        check_output_dir(cfg.train.output_dir, "train.output_dir")
        check_output_dir(run_dir, "dataloader.evaluator.output_dir")  # --eval-only's own folder
    except (ValueError, RuntimeError, OSError) as e:
        parser.error(str(e))
    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
            device=device,
        )
    except mp.ProcessExitedException as e:  # a worker reported its fault and exited: nothing to add
        sys.exit(e.exit_code or 1)
    except KeyboardInterrupt:  # the workers say where they stopped
        sys.exit(130)
