"""Check a detection dataset before training on it; exits with status 1 when it finds errors.

    python tools/check_dataset.py --config-file projects/anchor_detr/configs/anchor_detr_r50_50ep.py
    python tools/check_dataset.py --dataset my_dataset_train --num-classes 3
    python tools/check_dataset.py --dataset my_dataset_train --verify-images

With --config-file, the train and test datasets of the config are checked against the model's
`num_classes`; --dataset names registered datasets instead (or as well). Errors: class ids outside
[0, num_classes), more classes than num_classes, boxes with no area or outside their image, missing
image files, image files that cannot be decoded or whose size is not the annotation's height x width,
empty datasets. Warnings: images without annotations, boxes past the border, unused class ids. The
class-name list and instance counts per class are printed.

Image files: every one must exist; only {sample} of each dataset, evenly spaced, are decoded unless
--verify-images decodes them all (on up to 8 threads, with a progress bar).
"""

from __future__ import annotations

import argparse
import os
import sys

from omegaconf import OmegaConf

from detrex.config import LazyConfig
from detrex.data import DatasetCatalog, MetadataCatalog
from detrex.utils.dataset_check import DatasetReport, check_dataset_dicts, config_dataset_names

SAMPLE = 10  # image files decoded per dataset without --verify-images (a fraction of a second)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1].format(sample=SAMPLE),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config-file", default=None, metavar="FILE", help="check the datasets of this config"
    )
    parser.add_argument("--dataset", nargs="+", default=[], help="registered dataset name(s) to check")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="default: the config's model.num_classes"
    )
    parser.add_argument(
        "--verify-images",
        action="store_true",
        help="decode every image file and compare its size with the annotation's (default: a sample)",
    )
    parser.add_argument(
        "--skip-files", action="store_true", help="do not check that image files exist or decode"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def check(name: str, num_classes: int | None, check_files: bool, decode_images: int | None) -> DatasetReport:
    dicts = DatasetCatalog.get(name)  # loading sets the metadata's class names for COCO-json datasets
    class_names = MetadataCatalog.get(name).get("thing_classes", None)
    return check_dataset_dicts(
        dicts,
        num_classes,
        class_names,
        name=name,
        check_files=check_files,
        decode_images=decode_images,
        progress=decode_images is None,
    )


def passed_line(args, reports: list[DatasetReport]) -> str:
    """The success line, saying how far the image files were checked."""
    if args.skip_files:
        return "all checks passed (image files were not checked: --skip-files)"
    decoded, total = sum(r.num_decoded for r in reports), sum(r.num_images for r in reports)
    if decoded == total:
        return "all checks passed (every image file exists and decodes at its annotated size)"
    return (
        f"all checks passed (every image file exists; {decoded} of {total} were decoded: "
        "pass --verify-images to decode them all)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not args.config_file and not args.dataset:
        parser.error("give --config-file FILE and/or --dataset NAME [NAME ...]")
    if args.opts and not args.config_file:
        parser.error(f"config overrides {args.opts} need --config-file")
    if args.skip_files and args.verify_images:
        parser.error("--skip-files and --verify-images contradict each other")
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

    shown = (
        num_classes if num_classes is not None else "not given (class ids checked against the class names)"
    )
    print(f"num_classes: {shown}")
    decode_images = 0 if args.skip_files else None if args.verify_images else SAMPLE
    reports = []
    for name in dict.fromkeys(names):
        reports.append(check(name, num_classes, not args.skip_files, decode_images))
        print(reports[-1].format() + "\n")
    ok = all(r.ok for r in reports)
    print(passed_line(args, reports) if ok else "errors found (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
