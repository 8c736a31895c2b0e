import json
import os

import pytest

from detrex.data import DatasetCatalog, MetadataCatalog, register_coco_instances

TINY = "tests/configs/tiny_conditional_detr.py"


def test_config_datasets_pass(tiny_shapes, script, capsys):
    assert script("tools/check_dataset.py").main(["--config-file", TINY]) == 0
    out = capsys.readouterr().out
    assert "num_classes: 5" in out and "dataset 'tiny_shapes_train': 4 images" in out
    assert "dataset 'tiny_shapes_val': 2 images" in out and "| triangle" in out
    # 4 and 2 images: within the default sample, so every file was decoded
    assert "decoded 4 of 4 image files" in out
    assert out.strip().endswith(
        "all checks passed (every image file exists and decodes at its annotated size)"
    )


def test_success_line_says_how_far_images_were_checked(tiny_shapes, script, capsys):
    tool = script("tools/check_dataset.py")
    tool.SAMPLE = 2  # fewer than the 4 training images
    assert tool.main(["--dataset", "tiny_shapes_train"]) == 0
    out = capsys.readouterr().out
    assert "decoded 2 of 4 image files" in out
    assert out.strip().endswith(
        "all checks passed (every image file exists; 2 of 4 were decoded: pass --verify-images to decode them all)"
    )
    assert tool.main(["--dataset", "tiny_shapes_train", "--verify-images"]) == 0
    assert "decoded 4 of 4 image files" in capsys.readouterr().out
    assert tool.main(["--dataset", "tiny_shapes_train", "--skip-files"]) == 0
    out = capsys.readouterr().out
    assert "decoded" not in out
    assert out.strip().endswith("all checks passed (image files were not checked: --skip-files)")


def test_undecodable_image_is_an_error(corrupt_image_dataset, script, capsys):
    name, broken = corrupt_image_dataset
    assert (
        script("tools/check_dataset.py").main(["--dataset", name, "--num-classes", "5", "--verify-images"])
        == 1
    )
    out = capsys.readouterr().out
    assert (
        f"ERROR: 1 image files that cannot be decoded (training fails when it reaches them): {broken} (OSError: "
        in out
    )
    assert "truncated" in out and out.strip().endswith("errors found (see above)")


def test_class_count_mismatch_fails(tiny_shapes, script, capsys):
    assert script("tools/check_dataset.py").main(["--config-file", TINY, "model.num_classes=3"]) == 1
    out = capsys.readouterr().out
    assert "ERROR: dataset 'tiny_shapes_train' has 5 classes but the model predicts num_classes=3" in out
    assert "class id outside [0, 3)" in out and out.strip().endswith("errors found (see above)")


@pytest.fixture
def broken_dataset(tiny_shapes, tmp_path):
    """tiny_shapes_val's json with a missing image, a zero-width box and an image without boxes."""
    folder = tiny_shapes["tiny_shapes_val"]
    with open(os.path.join(folder, "annotations.json")) as f:
        coco = json.load(f)
    coco["images"].append({"id": 99, "file_name": "gone.jpg", "width": 50, "height": 40})
    coco["annotations"][0]["bbox"][2] = 0.0
    coco["images"].append({"id": 98, "file_name": coco["images"][0]["file_name"], "width": 50, "height": 40})
    json_file = tmp_path / "broken.json"
    json_file.write_text(json.dumps(coco))
    register_coco_instances("tiny_shapes_broken", {}, str(json_file), os.path.join(folder, "images"))
    yield "tiny_shapes_broken"
    DatasetCatalog.remove("tiny_shapes_broken")
    MetadataCatalog.remove("tiny_shapes_broken")


def test_broken_dataset_by_name(broken_dataset, script, capsys):
    tool = script("tools/check_dataset.py")
    assert tool.main(["--dataset", broken_dataset, "--num-classes", "5"]) == 1
    out = capsys.readouterr().out
    assert "ERROR: 1 missing image files: " in out and "gone.jpg" in out
    assert "ERROR: 1 boxes with zero or negative width/height" in out
    assert "WARNING: 2 images without annotations" in out
    # without the file check, the box error remains
    assert tool.main(["--dataset", broken_dataset, "--skip-files"]) == 1
    assert "missing image files" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give --config-file FILE and/or --dataset NAME"),
        (["--dataset", "no_such_dataset"], "are not registered"),
        (["--dataset", "tiny_shapes_val", "model.num_classes=3"], "look like config overrides"),
        (["--config-file", "missing.py"], "no such file"),
        (["--dataset", "tiny_shapes_val", "--skip-files", "--verify-images"], "contradict each other"),
    ],
)
def test_bad_arguments(argv, message, script, capsys):
    with pytest.raises(SystemExit) as e:
        script("tools/check_dataset.py").main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err
