#!/usr/bin/env python
r"""Train or evaluate a detrex model described by a lazy config.

    python tools/train_net.py --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py \
        --num-gpus 8
    python tools/train_net.py --config-file CONFIG.py --eval-only train.init_checkpoint=model_final.pth

``--help`` lists every option with examples. The config provides cfg.model, cfg.dataloader.{train, test,
evaluator}, cfg.optimizer, cfg.lr_multiplier and cfg.train (configs/common/train.py).
"""

import copy
import logging
import os

import torch
from omegaconf import OmegaConf

from detrex.checkpoint import DetectionCheckpointer
from detrex.config import ConfigOverrideError, LazyConfig, instantiate
from detrex.engine import (
    ModelEMA,
    Trainer,
    build_lr_scheduler,
    check_device,
    create_ddp_model,
    default_argument_parser,
    default_hooks,
    default_setup,
    device_from_args,
    launch,
    resolve_max_iter,
    unwrap_model,
)
from detrex.evaluation import inference_on_dataset, print_csv_format
from detrex.utils.dataset_check import check_model_classes

logger = logging.getLogger("detrex")


def build_model(cfg) -> torch.nn.Module:
    check_device(cfg.train.device)
    model = instantiate(cfg.model)
    num_params = sum(p.numel() for p in model.parameters())
    logger.info(f"Model: {type(model).__name__}, {num_params / 1e6:.2f} M parameters (its structure: log.txt)")
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
    model = build_model(cfg)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    max_iter = resolve_max_iter(cfg, len(train_loader.dataset))
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
    trainer.register_hooks(default_hooks(cfg, checkpointer, scheduler, lambda: do_test(cfg, model, ema)))
    start_iter = trainer.resume_or_load(checkpointer, cfg.train.init_checkpoint, resume=args.resume)
    trainer.train(start_iter, max_iter)


def do_eval_only(cfg) -> dict:
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


def main(args) -> dict | None:
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    fast_dev_run = OmegaConf.select(cfg, "train.fast_dev_run.enabled", default=False)
    if fast_dev_run:  # a quick pipeline check, in a folder of its own: a real run's outputs stay untouched
        cfg.train.max_iter, cfg.train.eval_period, cfg.train.log_period = 20, 10, 1
        cfg.train.output_dir = os.path.join(cfg.train.output_dir, "fast_dev_run")
    default_setup(cfg, args)
    if fast_dev_run:
        logger.info(
            f"train.fast_dev_run: 20 iterations, evaluations on {cfg.train.fast_dev_run.eval_batches} test batches "
            f"at iterations 10 and 20; outputs in {cfg.train.output_dir}"
        )
    if args.eval_only:
        return do_eval_only(cfg)
    do_train(args, cfg)
    return None


if __name__ == "__main__":
    parser = default_argument_parser()
    args = parser.parse_args()
    if not args.config_file:
        parser.error("--config-file is required, e.g. --config-file projects/<name>/configs/<config>.py")
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    try:
        device = device_from_args(args)  # loads the config and applies the overrides once, up front
    except ConfigOverrideError as e:
        parser.error(str(e))
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
        device=device,
    )
