import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from detrex.utils.dataset_check import (
    DatasetCheckError,
    _evenly_spaced,
    check_dataset_dicts,
    check_model_classes,
    check_num_classes,
    config_dataset_names,
)


def _dict(image_id, annos, file_name="missing.jpg", h=100, w=200):
    return {"file_name": file_name, "image_id": image_id, "height": h, "width": w, "annotations": annos}


def _anno(bbox, cid, mode=1, crowd=0):
    return {"bbox": bbox, "bbox_mode": mode, "category_id": cid, "iscrowd": crowd}


def test_clean_dataset_has_no_errors(tmp_path):
    img = tmp_path / "a.jpg"
    img.write_bytes(b"x")
    dicts = [
        _dict(1, [_anno([10, 10, 20, 20], 0), _anno([0, 0, 200, 100], 1)], str(img)),
        _dict(2, [_anno([5, 5, 50, 60], 1, mode=0)], str(img)),
    ]
    report = check_dataset_dicts(dicts, num_classes=2, class_names=["a", "b"], name="toy")
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.num_images == 2 and report.num_instances == 3
    assert dict(report.instances_per_class) == {0: 1, 1: 2}
    text = report.format()
    assert "toy" in text and "| b " in text and text.endswith("OK")


def test_every_problem_is_reported():
    dicts = [
        _dict(1, [_anno([10, 10, 0, 20], 0)]),  # zero width
        _dict(2, [_anno([10, 10, 20, 20], 5)]),  # class id >= num_classes
        _dict(3, [_anno([300, 10, 20, 20], 1)]),  # entirely right of a 200-px-wide image
        _dict(4, [_anno([190, 10, 20, 20], 1)]),  # 10 px past the right border
        _dict(5, []),  # empty
        _dict(6, [_anno([-3, -3, 10, 10], -1)]),  # negative class id
    ]
    report = check_dataset_dicts(dicts, num_classes=3, class_names=["a", "b", "c"], name="bad")
    assert not report.ok
    errors = "\n".join(report.errors)
    assert (
        "2 annotations with a class id outside [0, 3)" in errors and "category_id 5 at image_id 2" in errors
    )
    assert "1 boxes with zero or negative width/height" in errors and "image_id 1" in errors
    assert "1 boxes entirely outside their image" in errors and "image_id 3" in errors
    assert "6 missing image files" in errors
    warnings = "\n".join(report.warnings)
    assert "2 boxes reaching more than 1.0 px past the image border" in warnings and "image_id 4" in warnings
    assert "image_id 6" in warnings
    assert "1 images without annotations" in warnings and "image_id 5" in warnings
    assert "class ids without any instance: 2" in warnings
    assert report.format().endswith("4 error(s)")


def test_decoding_finds_unreadable_files_and_wrong_sizes(tmp_path):
    """decode_images=None decodes every existing file: a truncated JPEG and an image whose dict has the wrong
    size are errors; a missing file is reported once, as missing; decode_images=0 decodes none."""
    Image.fromarray(np.zeros((100, 200, 3), np.uint8)).save(tmp_path / "good.png")
    noise = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_bytes(b"not an image")
    anno = [_anno([10, 10, 20, 20], 0)]
    dicts = [
        _dict(1, anno, str(tmp_path / "good.png")),
        _dict(2, anno, str(tmp_path / "cut.jpg")),
        _dict(3, anno, str(tmp_path / "good.png"), h=200, w=100),  # transposed size
        _dict(4, anno, str(tmp_path / "text.png")),
        _dict(5, anno, str(tmp_path / "gone.png")),
    ]
    report = check_dataset_dicts(dicts, num_classes=1, decode_images=None)
    assert report.num_decoded == 4
    assert report.errors[0] == f"1 missing image files: {tmp_path / 'gone.png'}"
    unreadable, wrong_size = report.errors[1:]
    assert unreadable.startswith(
        "2 image files that cannot be decoded (training fails when it reaches them): "
    )
    assert f"{tmp_path / 'cut.jpg'} (OSError: image file is truncated (" in unreadable
    assert f"{tmp_path / 'text.png'} (UnidentifiedImageError: " in unreadable
    assert wrong_size == (
        "1 images whose decoded size is not their height/width (the mapper refuses them): "
        f"image_id 3 ({tmp_path / 'good.png'}) is 200x100 (w x h), its dict says 100x200"
    )
    assert "decoded 4 of 5 image files" in report.format()
    report = check_dataset_dicts(dicts, num_classes=1)
    assert report.num_decoded == 0 and len(report.errors) == 1 and "decoded" not in report.format()


def test_decode_sample_is_evenly_spaced():
    items = list(range(10))
    assert _evenly_spaced(items, 4) == [0, 3, 6, 9]
    assert _evenly_spaced(items, 1) == [0]
    assert _evenly_spaced(items, None) == items == _evenly_spaced(items, 20)


def test_examples_are_capped():
    dicts = [_dict(i, [_anno([1, 1, 5, 5], 9)]) for i in range(8)]
    report = check_dataset_dicts(dicts, num_classes=2, check_files=False, max_examples=2)
    assert report.errors == [
        "8 annotations with a class id outside [0, 2) (expected contiguous ids; remap dataset ids): "
        "category_id 9 at image_id 0 (missing.jpg); category_id 9 at image_id 1 (missing.jpg); ... 6 more"
    ]


def test_no_images_is_an_error():
    assert check_dataset_dicts([], num_classes=2, name="empty").errors == ["'empty' has no images"]


def test_class_count_versus_num_classes():
    assert check_num_classes(80, ["x"] * 80, "coco") == []
    assert check_num_classes(91, ["x"] * 80, "coco") == []  # extra logits are allowed
    (msg,) = check_num_classes(2, ["x"] * 3, "shapes")
    assert "3 classes but the model predicts num_classes=2" in msg and "model.num_classes=3" in msg
    assert check_num_classes(None, ["x"], "a") == [] and check_num_classes(2, None, "a") == []


def _cfg(num_classes, train="toy_ds_train", test="toy_ds_val"):
    return OmegaConf.create(
        {
            "model": {"num_classes": num_classes, "criterion": {"num_classes": "${..num_classes}"}},
            "dataloader": {"train": {"dataset": {"names": train}}, "test": {"dataset": {"names": [test]}}},
        }
    )


def test_config_dataset_names():
    cfg = _cfg(3)
    assert config_dataset_names(cfg, "train") == ["toy_ds_train"]
    assert config_dataset_names(cfg, "test") == ["toy_ds_val"]
    assert config_dataset_names(OmegaConf.create({"dataloader": {}}), "train") == []
    as_names = OmegaConf.create({"dataloader": {"train": {"dataset": ["a", "b"]}, "test": {"dataset": "c"}}})
    assert config_dataset_names(as_names, "train") == ["a", "b"]
    assert config_dataset_names(as_names, "test") == ["c"]


@pytest.fixture
def toy_datasets():
    from detrex.data import DatasetCatalog, MetadataCatalog

    dicts = [_dict(1, [_anno([1, 1, 5, 5], 2)])]
    DatasetCatalog.register("toy_ds_train", lambda: dicts)
    DatasetCatalog.register("toy_ds_val", lambda: dicts)
    MetadataCatalog.get("toy_ds_train").thing_classes = ["a", "b", "c"]
    yield
    for name in ("toy_ds_train", "toy_ds_val"):
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_check_model_classes(toy_datasets):
    check_model_classes(_cfg(3))
    check_model_classes(_cfg(3), scan_annotations=True)
    with pytest.raises(
        DatasetCheckError, match="'toy_ds_train' has 3 classes but the model predicts num_classes=2"
    ):
        check_model_classes(_cfg(2))
    # toy_ds_val has no thing_classes: its annotations are scanned, and id 2 does not fit 2 classes
    with pytest.raises(DatasetCheckError, match=r"'toy_ds_val' has class ids \[2\] outside \[0, 2\)"):
        check_model_classes(_cfg(2))
