#!/usr/bin/env python
r"""Convert an official Conditional-DETR / Anchor-DETR release checkpoint to this project's names
(DetectionCheckpointer.load also does this in memory; a converted file is smaller and loads faster).

    python tools/convert_checkpoint.py --source ConditionalDETR_r50_epoch50.pth --output conditional_detr_r50.pth \
        [--config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py [key=value ...]]

With --config-file the result is checked against the config's model (the same checks as loading). Without
it the family is recognised from the keys, and an official ResNet backbone goes to the detectron2 layout
(``backbone.stem`` / ``backbone.res2``..), or to torchvision's (``backbone.body.``) for DC5 checkpoints
(``args.dilation``), unless --backbone-layout says otherwise. Writes ``{"model": state_dict}``.

A checkpoint already in detrex's layout (tools/train_net.py's model_final.pth, detrex's published files) has
nothing to convert: its model weights are written alone (without optimizer, scheduler and iteration), a
smaller file to publish or to start from with train.init_checkpoint.
"""

import argparse
import logging
import os
import sys

import torch

from detrex.checkpoint import (
    CheckpointFormatError,
    IncompatibleCheckpointError,
    atomic_write,
    convert_checkpoint,
    convert_official,
    format_report,
    plan_load,
)
from detrex.checkpoint.conversion import TRAINING_STATE_KEYS, read_checkpoint_file, split_checkpoint
from detrex.checkpoint.converters import CONVERTERS, find_converter, find_model_family
from detrex.checkpoint.resnet_keys import BackboneLayout

LAYOUTS = {
    "detectron2": BackboneLayout("backbone.", "detectron2"),
    "torchvision": BackboneLayout("backbone.body.", "torchvision"),
}
logger = logging.getLogger("detrex.convert_checkpoint")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", required=True, help="checkpoint to convert (.pth / .pkl)")
    parser.add_argument("--output", required=True, help="where to write {'model': converted state dict}")
    parser.add_argument("--config-file", default=None, help="config whose model the result must fit")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="config overrides key=value (with --config-file)"
    )
    parser.add_argument("--backbone-layout", choices=sorted(LAYOUTS), default=None,
                        help="without --config-file: layout of the ResNet in the converted checkpoint")  # fmt: skip
    return parser


def convert_for_config(obj: dict, config_file: str, opts: list[str], path: str) -> dict:
    from detrex.config import LazyConfig, instantiate

    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), opts)
    model = instantiate(cfg.model)
    plan = plan_load(convert_checkpoint(obj, model.state_dict()), model.state_dict(keep_vars=True))
    logger.info(format_report(plan, path))
    return plan.to_load


def convert_by_keys(obj: dict, layout: str | None, path: str) -> dict:
    sd, extra = split_checkpoint(obj)
    converter = find_converter(sd)
    if converter is None:
        family = find_model_family(sd)
        if family is None and not any(k in extra for k in TRAINING_STATE_KEYS):
            raise CheckpointFormatError(
                f"{path}: neither an official release of {'/'.join(c.name for c in CONVERTERS.values())} "
                f"nor a detrex checkpoint (keys like {list(sd)[:3]}); pass --config-file to convert it "
                "for a given model"
            )
        what = f"a detrex {family.name} checkpoint" if family is not None else "a detrex training checkpoint"
        if "iteration" in extra:
            what += f" of iteration {extra['iteration']}"
        logger.info(f"{path}: {what}, already in detrex's layout: nothing to convert; writing its {len(sd)} "
                    f"model tensors alone (dropped: {', '.join(sorted(extra)) or 'nothing'})")  # fmt: skip
        return sd
    if layout is None:
        layout = "torchvision" if getattr(obj.get("args"), "dilation", False) else "detectron2"
    converted = convert_official(sd, converter, LAYOUTS[layout])
    logger.info(f"{path}: {converted.format}; renamed {len(converted.renamed)} keys, sliced {converted.sliced}, "
                f"backbone layout {layout}")  # fmt: skip
    return converted.state_dict


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    for flag, path in (("--source", args.source), ("--config-file", args.config_file)):
        if path is not None and not os.path.isfile(path):
            parser.error(f"{flag} {path!r}: no such file")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        obj = read_checkpoint_file(args.source)
        if args.config_file:
            state_dict = convert_for_config(obj, args.config_file, args.opts, args.source)
        else:
            state_dict = convert_by_keys(obj, args.backbone_layout, args.source)
    except (CheckpointFormatError, IncompatibleCheckpointError) as e:
        parser.error(str(e))
    atomic_write(args.output, lambda f: torch.save({"model": state_dict}, f))
    logger.info(f"wrote {len(state_dict)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
