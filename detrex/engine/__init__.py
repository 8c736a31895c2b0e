"""Training engine: command line, launch, run set-up, the Trainer and its hooks, optimizer/lr helpers."""

from . import hooks
from .defaults import (
    TrainLengthError,
    check_output_dir,
    create_ddp_model,
    default_argument_parser,
    default_hooks,
    default_setup,
    default_writers,
    device_from_args,
    fit_loader_workers,
    remove_stale_checkpoint_temporaries,
    resolve_max_iter,
)
from .ema import ModelEMA, unwrap_model
from .launch import DEFAULT_TIMEOUT, check_device, find_free_port, launch
from .lr_scheduler import LRMultiplier, WarmupParamScheduler, build_lr_scheduler
from .optimizer import get_default_optimizer_params, reduce_param_groups
from .predictor import DefaultPredictor
from .train_loop import HookBase, NonFiniteForwardError, NonFiniteStepError, Trainer

__all__ = [
    "hooks",
    "default_argument_parser",
    "default_setup",
    "default_hooks",
    "default_writers",
    "device_from_args",
    "create_ddp_model",
    "resolve_max_iter",
    "TrainLengthError",
    "check_output_dir",
    "fit_loader_workers",
    "remove_stale_checkpoint_temporaries",
    "launch",
    "check_device",
    "find_free_port",
    "DEFAULT_TIMEOUT",
    "DefaultPredictor",
    "HookBase",
    "Trainer",
    "NonFiniteForwardError",
    "NonFiniteStepError",
    "ModelEMA",
    "unwrap_model",
    "get_default_optimizer_params",
    "reduce_param_groups",
    "WarmupParamScheduler",
    "LRMultiplier",
    "build_lr_scheduler",
]
