"""Check a detection dataset before training on it; exits with status 1 when it finds errors.

    python tools/check_dataset.py --config-file projects/anchor_detr/configs/anchor_detr_r50_50ep.py
    python tools/check_dataset.py --dataset my_dataset_train --num-classes 3

With --config-file, the train and test datasets of the config are checked against the model's
`num_classes`; --dataset names registered datasets instead (or as well). Errors: class ids outside
[0, num_classes), more classes than num_classes, boxes with no area or outside their image, missing
image files, empty datasets. Warnings: images without annotations, boxes past the border, unused
class ids. The class-name list and instance counts per class are printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from omegaconf import OmegaConf

from detrex.config import LazyConfig
from detrex.data import DatasetCatalog, MetadataCatalog
from detrex.utils.dataset_check import DatasetReport, check_dataset_dicts, config_dataset_names


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config-file", default=None, metavar="FILE", help="check the datasets of this config"
    )
    parser.add_argument("--dataset", nargs="+", default=[], help="registered dataset name(s) to check")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="default: the config's model.num_classes"
    )
    parser.add_argument("--skip-files", action="store_true", help="do not check that image files exist")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def check(name: str, num_classes: int | None, check_files: bool) -> DatasetReport:
    dicts = DatasetCatalog.get(name)  # loading sets the metadata's class names for COCO-json datasets
    class_names = MetadataCatalog.get(name).get("thing_classes", None)
    return check_dataset_dicts(dicts, num_classes, class_names, name=name, check_files=check_files)


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not args.config_file and not args.dataset:
        parser.error("give --config-file FILE and/or --dataset NAME [NAME ...]")
    if args.opts and not args.config_file:
        parser.error(f"config overrides {args.opts} need --config-file")
    names, num_classes = list(args.dataset), args.num_classes
    if args.config_file:
        if not os.path.isfile(args.config_file):
            parser.error(f"--config-file {args.config_file!r}: no such file")
        cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
        names = names or config_dataset_names(cfg, "train") + config_dataset_names(cfg, "test")
        if num_classes is None:
            num_classes = OmegaConf.select(cfg, "model.num_classes", default=None)
    overrides = [n for n in names if "=" in n]
    if overrides:
        parser.error(f"{overrides} look like config overrides: they need --config-file and go after it")
    unknown = [n for n in names if n not in DatasetCatalog.list()]
    if unknown:
        parser.error(f"datasets {unknown} are not registered; registered: {', '.join(DatasetCatalog.list())}")

    print(
        f"num_classes: {num_classes if num_classes is not None else 'not given (class ids checked against the class names)'}"
    )
    ok = True
    for name in dict.fromkeys(names):
        report = check(name, num_classes, check_files=not args.skip_files)
        print(report.format() + "\n")
        ok = ok and report.ok
    print("all checks passed" if ok else "errors found (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
