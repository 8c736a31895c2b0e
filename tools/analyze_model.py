r"""Count a model's flops, activations and parameters, or print its structure (fvcore-based).

    python tools/analyze_model.py --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py \
        --tasks flop parameter --num-inputs 10 train.device=cpu

Flops and activations are measured in inference mode on the first --num-inputs images of the test
loader (its real, resized sizes) and averaged; the per-module table is for the first image. fvcore
counts one fused multiply-add as one flop and skips cheap element-wise ops. Counting needs no weights:
train.init_checkpoint is not loaded (nothing is downloaded). Overrides may also follow --tasks.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

import numpy as np
import torch
from omegaconf import OmegaConf
from tabulate import tabulate
from tqdm import tqdm

from detrex.config import ConfigOverrideError, LazyConfig, instantiate
from detrex.engine.launch import check_device
from detrex.utils.analysis import (
    DetectorTensorWrapper,
    activation_count_analysis,
    flop_count_analysis,
    flop_count_table,
    parameter_count_table,
    quiet_tracing,
)

TASKS = ("flop", "activation", "parameter", "structure")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="lazy config (.py/.yaml)")
    parser.add_argument(
        "--tasks", nargs="+", required=True, metavar="TASK", help=f"what to analyze: {', '.join(TASKS)}"
    )
    parser.add_argument("-n", "--num-inputs", type=int, default=10, help="test images to average over")
    parser.add_argument("--max-depth", type=int, default=3, help="module depth of the tables")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def build_model(cfg) -> torch.nn.Module:
    """The model in eval mode on train.device, with its initial weights: the counts do not depend on
    weights (frozen parts are set by the config), so train.init_checkpoint is neither downloaded nor read."""
    device = OmegaConf.select(cfg, "train.device", default="cpu") or "cpu"
    check_device(device)
    return instantiate(cfg.model).to(device).eval()


def sample_test_images(cfg, num_inputs: int):
    """The first `num_inputs` mapped test images: (image uint8 [3, H, W], height, width)."""
    loader = instantiate(cfg.dataloader.test)
    for _, batch in zip(range(num_inputs), loader):
        for x in batch:
            yield x["image"], x["height"], x["width"]


def module_table(analysis, kind: str, max_depth: int) -> str:
    """fvcore's per-module table of `analysis` with a "#flops" or an "#activations" column."""
    if kind == "flop":
        return flop_count_table(analysis, max_depth=max_depth, show_param_shapes=False)
    # flop_count_table labels its main column "#flops" whatever it counted; with activations=analysis it
    # adds the same counts as an "#activations" column, and the mislabelled one is dropped
    table = flop_count_table(analysis, max_depth=max_depth, activations=analysis, show_param_shapes=False)
    rows = [line.split("|") for line in table.splitlines()]  # "| module | #parameters | #flops | #act.. |"
    column = [cell.strip() for cell in rows[0]].index("#flops")
    return "\n".join("|".join(cells[:column] + cells[column + 1 :]) for cells in rows)


def count(cfg, model, num_inputs: int, kind: str, max_depth: int) -> dict:
    """Average total and per-operator counts (flop or activation) over test images; prints tables."""
    analyze = flop_count_analysis if kind == "flop" else activation_count_analysis
    totals, by_operator, first, sizes = [], Counter(), None, []
    with torch.no_grad(), quiet_tracing():
        for image, height, width in tqdm(sample_test_images(cfg, num_inputs), total=num_inputs, desc=kind):
            analysis = analyze(DetectorTensorWrapper(model, height, width), (image,))
            totals.append(analysis.total())
            by_operator.update(analysis.by_operator())
            sizes.append(tuple(image.shape[-2:]))
            first = analysis if first is None else first
    if not totals:
        raise ValueError("the test loader gave no images")
    unit = "GFlops" if kind == "flop" else "M activations"
    scale = 1e9 if kind == "flop" else 1e6
    n = len(totals)
    print(f"{kind} counts per module for the first image ({sizes[0][0]}x{sizes[0][1]}):")
    print(module_table(first, kind, max_depth))
    rows = sorted(((op, v / n / scale) for op, v in by_operator.items()), key=lambda r: -r[1])
    print(f"average {unit} per operator over {n} image(s):")
    print(tabulate(rows, headers=["operator", unit], floatfmt=".4f", tablefmt="pipe"))
    mean, std = float(np.mean(totals)) / scale, float(np.std(totals)) / scale
    print(f"total {unit}: {mean:.4f} ± {std:.4f} over {n} image(s), sizes {sorted(set(sizes))}")
    return {"mean": mean, "std": std, "num_images": n, "unit": unit}


def main(argv: list[str] | None = None) -> dict:
    parser = get_parser()
    args = parser.parse_args(argv)
    # overrides may follow the tasks: --tasks flop parameter train.device=cpu
    args.opts = [t for t in args.tasks if "=" in t] + args.opts
    args.tasks = [t for t in args.tasks if "=" not in t]
    for task in args.tasks or [""]:
        if task not in TASKS:
            parser.error(f"--tasks: invalid choice: {task!r} (choose from {', '.join(TASKS)})")
    if args.num_inputs < 1:
        parser.error(f"--num-inputs must be >= 1, got {args.num_inputs}")
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    try:
        cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    except ConfigOverrideError as e:
        parser.error(str(e))
    model = build_model(cfg)
    results = {}
    for task in dict.fromkeys(args.tasks):
        if task in ("flop", "activation"):
            results[task] = count(cfg, model, args.num_inputs, task, args.max_depth)
        elif task == "parameter":
            print(parameter_count_table(model, max_depth=args.max_depth))
            total = sum(p.numel() for p in model.parameters())
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            print(f"parameters: {total / 1e6:.3f} M, trainable {trainable / 1e6:.3f} M")
            results[task] = {"total": total, "trainable": trainable}
        else:
            print(str(model))
            results[task] = str(model)
    return results


if __name__ == "__main__":
    main()
