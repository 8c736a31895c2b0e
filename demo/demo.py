r"""Run a detector on images (or a video) and write copies with the detections drawn.

    python demo/demo.py --config-file projects/conditional_detr/configs/conditional_detr_r50_50ep.py \
        --input photo.jpg photos/ "more/*.png" --output demo_out/ --confidence-threshold 0.5 \
        train.init_checkpoint=/path/to/model_final.pth train.device=cpu

Inputs are files, folders (their images) or quoted glob patterns. Weights come from
`train.init_checkpoint`; images are resized as the test loader does; class names are the test
dataset's `thing_classes`. Without --output, pictures go to ./output/demo. --video-input needs OpenCV
(`pip install opencv-python`), which detrex itself does not depend on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from detrex.config import LazyConfig
from detrex.data import ImageReadError, read_image
from detrex.engine.predictor import DefaultPredictor, class_metadata
from detrex.utils.image_files import IMAGE_EXTENSIONS, expand_inputs, output_paths
from detrex.utils.visualizer import VisImage, Visualizer

DEFAULT_OUTPUT = os.path.join("output", "demo")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="lazy config (.py/.yaml)")
    parser.add_argument("--input", nargs="+", default=[], help="image files, folders or glob patterns")
    parser.add_argument("--video-input", default=None, help="a video file (needs OpenCV)")
    parser.add_argument(
        "--output",
        default=None,
        help=f"output folder, or a file name for one image (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum score to draw")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides 'path.key=value'")
    return parser


def draw(image_rgb: np.ndarray, predictions: dict, metadata, threshold: float) -> tuple[VisImage, int]:
    """The picture with detections of score >= threshold drawn, and how many there are."""
    instances = predictions["instances"].to("cpu")
    kept = int((instances.scores >= threshold).sum())
    return Visualizer(image_rgb, metadata).draw_instance_predictions(instances, threshold=threshold), kept


def run_images(predictor, inputs: list[str], outputs: list[str], metadata, threshold: float) -> list[str]:
    """Draw the detections on each input; a file that cannot be read is skipped with a warning (the
    others are still processed). Returns the skipped files."""
    total, skipped = 0.0, []
    for path, out in zip(tqdm(inputs, desc="images", disable=len(inputs) < 2), outputs):
        try:
            image = read_image(path, format="RGB")
        except (FileNotFoundError, ImageReadError) as e:
            tqdm.write(f"WARNING: skipped {path}: {e}", file=sys.stderr)
            skipped.append(path)
            continue
        start = time.perf_counter()
        predictions = predictor(image)
        elapsed = time.perf_counter() - start
        total += elapsed
        drawn, kept = draw(image, predictions, metadata, threshold)
        drawn.save(out)
        tqdm.write(f"{path}: {kept} detections (score >= {threshold}) in {elapsed:.3f}s -> {out}")
    done = len(inputs) - len(skipped)
    print(f"{done} image(s) in {total:.2f}s ({total / max(done, 1):.3f}s per image)")
    if skipped:
        print(f"{len(skipped)} of {len(inputs)} image(s) skipped: they could not be read (warnings above)")
    return skipped


def run_video(predictor, video: str, output_dir: str, metadata, threshold: float) -> str:
    """Draw on every frame of `video`; writes output_dir/<video name>.mp4 and returns its path."""
    import cv2

    capture = cv2.VideoCapture(video)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    out_path = os.path.join(output_dir, os.path.splitext(os.path.basename(video))[0] + ".mp4")
    os.makedirs(output_dir, exist_ok=True)
    writer = None
    start = time.perf_counter()
    frames = 0
    try:
        with tqdm(total=num_frames, desc="frames") as bar:
            while True:
                ok, frame_bgr = capture.read()
                if not ok:
                    break
                if writer is None:
                    h, w = frame_bgr.shape[:2]
                    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                drawn, _ = draw(frame_bgr[:, :, ::-1], predictor(frame_bgr), metadata, threshold)
                writer.write(np.ascontiguousarray(drawn.get_image()[:, :, ::-1]))
                frames += 1
                bar.update(1)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        raise ValueError(f"--video-input {video!r}: OpenCV could not read any frame")
    elapsed = time.perf_counter() - start
    print(f"{video}: {frames} frames in {elapsed:.2f}s ({elapsed / frames:.3f}s per frame) -> {out_path}")
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not args.input and not args.video_input:
        parser.error("give --input IMAGE [IMAGE ...] and/or --video-input VIDEO")
    if not 0.0 <= args.confidence_threshold <= 1.0:
        parser.error(f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}")
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r}: no such file")
    if args.video_input:
        if not os.path.isfile(args.video_input):
            parser.error(f"--video-input {args.video_input!r}: no such file")
        try:
            import cv2  # noqa: F401
        except ImportError:
            parser.error(
                "--video-input needs OpenCV, which detrex does not depend on: pip install opencv-python"
            )
    try:
        inputs = expand_inputs(args.input)
    except FileNotFoundError as e:
        parser.error(str(e))
    output = args.output or DEFAULT_OUTPUT
    single_file = len(inputs) == 1 and not args.video_input and output.lower().endswith(IMAGE_EXTENSIONS)
    outputs = [output] if single_file else output_paths(inputs, output)

    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    metadata = class_metadata(cfg)
    predictor = DefaultPredictor(cfg, input_format="RGB")  # read_image gives RGB
    skipped = run_images(predictor, inputs, outputs, metadata, args.confidence_threshold) if inputs else []
    if args.video_input:
        video_predictor = DefaultPredictor(cfg, input_format="BGR", model=predictor.model)  # cv2 frames
        run_video(video_predictor, args.video_input, output, metadata, args.confidence_threshold)
    if inputs and len(skipped) == len(inputs):
        print(f"error: none of the {len(inputs)} input image(s) could be read", file=sys.stderr)
        return 1
    where = outputs[0] if single_file else os.path.abspath(output)
    print(f"results written to {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
