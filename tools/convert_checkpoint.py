#!/usr/bin/env python
r"""Convert a checkpoint to this project's layout, to safetensors, or to a Hugging Face transformers folder
(DetectionCheckpointer.load also reads every format below in memory; a converted file is smaller and loads
faster).

    python tools/convert_checkpoint.py --source ConditionalDETR_r50_epoch50.pth --output conditional_detr_r50.pth \
        [--config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py [key=value ...]]
    python tools/convert_checkpoint.py --source output/model_final.pth --output model_final.safetensors
    python tools/convert_checkpoint.py --source output/model_final.pth --output conditional-detr-r50-mydata \
        --to hf --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py [key=value ...]

--source: an official Conditional-DETR / Anchor-DETR release, a detrex checkpoint, a Hugging Face
Conditional-DETR folder or file, ImageNet ResNet weights; pickled or .safetensors; a local path, http(s)://
or detectron2:// URL. With --config-file it is loaded as train_net.py loads train.init_checkpoint
(DetectionCheckpointer: config.json checked against the model, ``path?matching_heuristics=True`` accepted).

--to detrex (default) writes ``{"model": state_dict}`` with torch.save, or the state dict alone as
safetensors when --output ends in .safetensors (no pickle: safe to load from strangers). With --config-file
the result is checked against the config's model (the same checks as loading). Without it the family is
recognised from the keys, and an official ResNet backbone goes to the detectron2 layout
(``backbone.stem`` / ``backbone.res2``..), or to torchvision's (``backbone.body.``) for DC5 checkpoints
(``args.dilation``), unless --backbone-layout says otherwise. A checkpoint already in detrex's layout
(train_net.py's model_final.pth) has nothing to convert: its model weights are written alone, without
optimizer, scheduler and iteration.

--to hf (Conditional-DETR configs only) loads --source into the config's model and writes the folder
--output: model.safetensors, config.json (the model's sizes, the test dataset's class names as id2label)
and preprocessor_config.json, which transformers.ConditionalDetrForObjectDetection.from_pretrained and
AutoImageProcessor.from_pretrained load; publish it with `hf upload <user>/<name> <folder> .`
(huggingface_hub's command line).

A usage error (arguments, config file, overrides) exits with status 2; a checkpoint that cannot be found,
read, converted or exported is one line on stderr and status 1.
"""

import argparse
import logging
import os
import sys

import torch

from detrex.checkpoint import (
    CheckpointError,
    CheckpointFormatError,
    CheckpointNotFoundError,
    DetectionCheckpointer,
    atomic_write,
    convert_official,
    safetensors_bytes,
)
from detrex.checkpoint.conversion import TRAINING_STATE_KEYS, read_checkpoint_file, split_checkpoint
from detrex.checkpoint.converters import CONVERTERS, find_converter, find_model_family
from detrex.checkpoint.detection_checkpoint import split_query
from detrex.checkpoint.hf_export import (
    HFExportError,
    hf_config,
    preprocessor_config,
    to_hf_state_dict,
    write_hf_folder,
)
from detrex.checkpoint.resnet_keys import BackboneLayout
from detrex.config import ConfigOverrideError, LazyConfig, instantiate

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
    parser.add_argument("--source", required=True, help="checkpoint file or Hugging Face folder to convert")
    parser.add_argument(
        "--output", required=True, help="file to write (.pth or .safetensors); a folder for --to hf"
    )
    parser.add_argument(
        "--to", choices=("detrex", "hf"), default="detrex", help="layout to write (default detrex)"
    )
    parser.add_argument("--config-file", default=None, help="config whose model the result must fit")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="config overrides key=value (with --config-file)"
    )
    parser.add_argument(
        "--backbone-layout",
        choices=sorted(LAYOUTS),
        default=None,
        help="without --config-file: layout of the ResNet in the converted checkpoint",
    )
    return parser  # fmt: skip


def load_config(config_file: str, opts: list[str]):
    return LazyConfig.apply_overrides(LazyConfig.load(config_file), opts)


def convert_for_config(cfg, source: str) -> dict:
    """The tensors of ``source`` that fit the config's model, loaded as train_net.py loads
    train.init_checkpoint (config.json checks, ``?matching_heuristics=True``, URLs, one report)."""
    checkpointer = DetectionCheckpointer(instantiate(cfg.model))
    checkpointer.load(source)
    return checkpointer.last_load.to_load


def convert_by_keys(path: str, layout: str | None) -> dict:
    path, _ = split_query(path)  # ?matching_heuristics needs a model: refused in main without --config-file
    obj = read_checkpoint_file(DetectionCheckpointer(torch.nn.Module()).local_path(path))
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


def export_hf(cfg, source: str, output: str) -> None:
    """Load ``source`` into the config's model and write it as a transformers folder at ``output``."""
    model = instantiate(cfg.model)
    config = hf_config(model, test_class_names(cfg))  # before loading: a model transformers lacks fails fast
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(source)
    plan = checkpointer.last_load
    if not checkpointer.loaded_full_model or plan.not_loaded:
        raise HFExportError(
            f"{source} left {len(plan.not_loaded)} of the model's tensors at their initial values (e.g. "
            f"{plan.not_loaded[:3]}; see the table above): not a trained model of this config, nothing written"
        )
    write_hf_folder(
        output, to_hf_state_dict(model.state_dict()), config, preprocessor_config(model, *test_resize(cfg))
    )
    logger.info(f"wrote {output}/model.safetensors, config.json ({config['backbone']}, {len(config['id2label'])} "
                "classes), preprocessor_config.json: load it with "
                f"transformers.ConditionalDetrForObjectDetection.from_pretrained({output!r})")  # fmt: skip


def test_class_names(cfg) -> list[str] | None:
    """thing_classes of the config's first test dataset, or None (with a warning) when it has none."""
    from detrex.data import MetadataCatalog
    from detrex.utils.dataset_check import config_dataset_names

    names = config_dataset_names(cfg, "test")
    classes = MetadataCatalog.get(names[0]).get("thing_classes") if names else None
    if classes is None:
        logger.warning(f"no thing_classes for the test dataset {names}: id2label gets LABEL_0 ... names")
    return None if classes is None else list(classes)


def test_resize(cfg) -> tuple[int | None, int | None]:
    """(shortest edge, longest edge) of the test loader's ResizeShortestEdge, or (None, None)."""
    try:
        augmentation = cfg.dataloader.test.mapper.augmentation
    except (AttributeError, KeyError):
        return None, None
    for aug in augmentation:
        edge = aug.get("short_edge_length") if hasattr(aug, "get") else None
        if edge is not None:
            edge = edge if isinstance(edge, int) else (list(edge) + [None])[0]
            return edge, aug.get("max_size")
    return None, None


def main(argv=None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.config_file is not None and not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    if args.to == "hf" and not args.config_file:
        parser.error("--to hf needs --config-file: the model's sizes and class names come from the config")
    if not args.config_file and "matching_heuristics" in args.source and not os.path.exists(args.source):
        parser.error(
            f"--source {args.source!r}: ?matching_heuristics matches names to a model: give --config-file"
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_config(args.config_file, args.opts) if args.config_file else None
    except ConfigOverrideError as e:
        parser.error(str(e))
    try:
        if args.to == "hf":
            export_hf(cfg, args.source, args.output)
            return 0
        if cfg is not None:
            state_dict = convert_for_config(cfg, args.source)
        else:
            state_dict = convert_by_keys(args.source, args.backbone_layout)
    except CheckpointNotFoundError as e:  # its own message names train_net.py's train.init_checkpoint
        print(f"{type(e).__name__}: --source {args.source!r}: no such file or folder", file=sys.stderr)
        return 1
    except (CheckpointError, HFExportError) as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if args.output.endswith(".safetensors"):
        data = safetensors_bytes(state_dict, metadata={"format": "pt"})
        atomic_write(args.output, lambda f: f.write(data))
    else:
        atomic_write(args.output, lambda f: torch.save({"model": state_dict}, f))
    logger.info(f"wrote {len(state_dict)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
