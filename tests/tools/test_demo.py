import os
import sys
import types

import numpy as np
import pytest
from PIL import Image

from detrex.config import LazyConfig
from detrex.data import read_image
from detrex.engine.predictor import DefaultPredictor
from detrex.utils.visualizer import class_color

TINY = os.path.abspath("tests/configs/tiny_conditional_detr.py")


@pytest.fixture
def demo_setup(tiny_shapes, one_box_checkpoint, tmp_path):
    """Two PNG copies of synthetic images (lossless, so drawn colours can be checked exactly), the
    demo's config overrides, and the expected single detection per image."""
    path, overrides = one_box_checkpoint
    opts = [*overrides, f"train.init_checkpoint={path}"]
    src = os.path.join(tiny_shapes["tiny_shapes_val"], "images")
    (tmp_path / "in" / "sub").mkdir(parents=True)
    inputs = [str(tmp_path / "in" / "a.png"), str(tmp_path / "in" / "sub" / "b.png")]
    for file, dst in zip(sorted(os.listdir(src)), inputs):
        Image.open(os.path.join(src, file)).save(dst)
    predictor = DefaultPredictor(LazyConfig.apply_overrides(LazyConfig.load(TINY), opts))
    expected = {os.path.basename(p): predictor(read_image(p))["instances"] for p in inputs}
    return opts, inputs, expected


def _check_drawn(image, instances, edge_fraction, bgr=False):
    assert len(instances) == 1 and int(instances.pred_classes[0]) == 2
    color = class_color(2)[::-1] if bgr else class_color(2)
    box = instances.pred_boxes.tensor[0].clamp(min=0).tolist()
    h, w = image.shape[:2]
    box = [min(box[0], w - 1), min(box[1], h - 1), min(box[2], w - 1), min(box[3], h - 1)]
    assert edge_fraction(image, box, color, tol=0) > 0.9


def test_images_file_dir_and_glob(demo_setup, script, tmp_path, capsys, edge_fraction):
    opts, inputs, expected = demo_setup
    out_dir = tmp_path / "out"
    pattern = str(tmp_path / "in" / "*.png")
    rc = script("demo/demo.py").main(
        [
            "--config-file",
            TINY,
            "--input",
            inputs[1],
            str(tmp_path / "in"),
            pattern,
            "--output",
            str(out_dir),
            "--confidence-threshold",
            "0.5",
            *opts,
        ]
    )
    assert rc == 0
    assert sorted(os.listdir(out_dir)) == ["a.png", "b.png"]  # a.png named by the folder and the glob: once
    for name, instances in expected.items():
        drawn = np.asarray(Image.open(out_dir / name).convert("RGB"))
        original = read_image(str(tmp_path / "in" / ("sub" if name == "b.png" else "") / name))
        assert drawn.shape == original.shape
        _check_drawn(drawn, instances, edge_fraction)
    text = capsys.readouterr().out
    assert "b.png: 1 detections (score >= 0.5) in" in text and "2 image(s) in" in text


def test_threshold_and_default_output(demo_setup, script, tmp_path, monkeypatch, capsys):
    opts, inputs, _ = demo_setup
    monkeypatch.chdir(tmp_path)
    # score is sigmoid(2) = 0.88: a 0.9 threshold draws nothing, the picture is the input unchanged
    script("demo/demo.py").main(
        ["--config-file", TINY, "--input", inputs[0], "--confidence-threshold", "0.9", *opts]
    )
    out = tmp_path / "output" / "demo" / "a.png"
    np.testing.assert_array_equal(np.asarray(Image.open(out)), read_image(inputs[0]))
    assert f"results written to {out.parent}" in capsys.readouterr().out
    # one input and an output with an image extension: written to that file
    single = tmp_path / "single" / "drawn.png"
    script("demo/demo.py").main(["--config-file", TINY, "--input", inputs[1], "--output", str(single), *opts])
    assert Image.open(single).size == Image.open(inputs[1]).size
    assert f"results written to {single}" in capsys.readouterr().out


def test_unreadable_image_is_skipped_with_a_warning(demo_setup, script, tmp_path, capsys, edge_fraction):
    """A folder with a truncated JPEG among good images: one warning line naming the file, the others are
    drawn, exit status 0; a folder of only unreadable images: exit status 1."""
    opts, inputs, expected = demo_setup
    folder = tmp_path / "in"
    good = read_image(inputs[0])
    Image.fromarray(good).save(folder / "broken.jpg")
    data = (folder / "broken.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 2])  # truncated in the middle of the scan
    out_dir = tmp_path / "out"
    rc = script("demo/demo.py").main(
        ["--config-file", TINY, "--input", str(folder), "--output", str(out_dir), *opts]
    )
    assert rc == 0
    assert sorted(os.listdir(out_dir)) == ["a.png"]
    _check_drawn(np.asarray(Image.open(out_dir / "a.png").convert("RGB")), expected["a.png"], edge_fraction)
    captured = capsys.readouterr()
    (warning,) = [line for line in captured.err.splitlines() if "WARNING" in line]
    assert warning.startswith(f"WARNING: skipped {folder / 'broken.jpg'}: cannot decode image")
    assert "truncated" in warning
    assert "1 image(s) in" in captured.out and "1 of 2 image(s) skipped" in captured.out

    only_broken = tmp_path / "only_broken"
    only_broken.mkdir()
    (only_broken / "broken.jpg").write_bytes(data[: len(data) // 2])
    (only_broken / "empty.png").write_bytes(b"")
    argv = ["--config-file", TINY, "--input", str(only_broken), "--output", str(tmp_path / "out2"), *opts]
    rc = script("demo/demo.py").main(argv)
    assert rc == 1
    assert "none of the 2 input image(s) could be read" in capsys.readouterr().err


def test_video_with_opencv_stand_in(demo_setup, script, tmp_path, monkeypatch, edge_fraction):
    opts, inputs, expected = demo_setup
    frame_rgb = read_image(inputs[0])
    written = {}

    class Capture:
        def __init__(self, path):
            self.frames = [frame_rgb[:, :, ::-1].copy(), frame_rgb[:, :, ::-1].copy()]

        def get(self, prop):
            return {5: 10.0, 7: 2}[prop]

        def read(self):
            return (True, self.frames.pop(0)) if self.frames else (False, None)

        def release(self):
            pass

    class Writer:
        def __init__(self, path, fourcc, fps, size):
            written.update(path=path, fps=fps, size=size, frames=[])

        def write(self, frame):
            written["frames"].append(frame)

        def release(self):
            open(written["path"], "wb").close()

    cv2 = types.SimpleNamespace(
        VideoCapture=Capture,
        VideoWriter=Writer,
        VideoWriter_fourcc=lambda *c: 0,
        CAP_PROP_FPS=5,
        CAP_PROP_FRAME_COUNT=7,
    )
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    video = tmp_path / "clip.avi"
    video.write_bytes(b"")
    script("demo/demo.py").main(
        ["--config-file", TINY, "--video-input", str(video), "--output", str(tmp_path / "v"), *opts]
    )
    assert written["path"] == str(tmp_path / "v" / "clip.mp4") and os.path.isfile(written["path"])
    assert written["fps"] == 10.0 and written["size"] == (frame_rgb.shape[1], frame_rgb.shape[0])
    assert len(written["frames"]) == 2
    for frame in written["frames"]:  # BGR frames in, BGR frames out, same detection as the RGB image
        _check_drawn(frame, expected["a.png"], edge_fraction, bgr=True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config-file", TINY], "give --input IMAGE"),
        (["--config-file", TINY, "--input", "no/such/*.jpg"], "no such file, and no images match it"),
        (["--config-file", "missing.py", "--input", "x.jpg"], "--config-file 'missing.py': no such file"),
        (["--config-file", TINY, "--input", "x.jpg", "--confidence-threshold", "2"], "must be in [0, 1]"),
    ],
)
def test_bad_arguments(argv, message, script, capsys):
    with pytest.raises(SystemExit) as e:
        script("demo/demo.py").main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_video_without_opencv_is_a_clear_error(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        script("demo/demo.py").main(["--config-file", TINY, "--video-input", str(video)])
    assert e.value.code == 2 and "pip install opencv-python" in capsys.readouterr().err
