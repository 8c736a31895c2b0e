import io

import numpy as np
import pytest
import torch
from PIL import Image

import detrex.data.transforms as T
from detrex.data import DetrDatasetMapper, ImageReadError, load_coco_json, read_image


def _mapper(is_train=True, crop=None, img_format="RGB"):
    return DetrDatasetMapper(
        augmentation=[T.ResizeShortestEdge(96, max_size=1000)],
        augmentation_with_crop=crop,
        is_train=is_train,
        img_format=img_format,
    )


def test_train_output_contract(tiny_coco):
    json_file, image_root, _ = tiny_coco
    record = load_coco_json(json_file, image_root)[1]  # 40x72 (w x h): a box and a crowd box
    out = _mapper()(record)
    assert set(out) == {"file_name", "image", "height", "width", "image_id", "instances"}
    image = out["image"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 173, 96)  # short edge 40 -> 96
    assert (out["height"], out["width"], out["image_id"]) == (72, 40, 11)
    np.testing.assert_array_equal(
        image.permute(1, 2, 0).numpy(),
        T.ResizeTransform(72, 40, 173, 96).apply_image(read_image(record["file_name"])),
    )
    inst = out["instances"]
    assert inst.image_size == (173, 96)
    scale_x, scale_y = 96 / 40, 173 / 72
    expected = torch.tensor([[1 * scale_x, 2 * scale_y, 31 * scale_x, 42 * scale_y]])  # crowd box dropped
    torch.testing.assert_close(inst.gt_boxes.tensor, expected)
    assert inst.gt_classes.dtype == torch.int64 and inst.gt_classes.tolist() == [2]
    assert record["annotations"][0]["bbox"] == [1.0, 2.0, 30.0, 40.0]  # the input dict is not modified


def test_empty_boxes_dropped_and_test_mode(tiny_coco):
    json_file, image_root, _ = tiny_coco
    record = load_coco_json(json_file, image_root)[0]
    record["annotations"].append(
        {"bbox": [5.0, 5.0, 0.0, 9.0], "bbox_mode": 1, "category_id": 0, "iscrowd": 0}
    )
    out = _mapper()(record)
    assert len(out["instances"]) == 2
    test_out = _mapper(is_train=False)(record)
    assert "instances" not in test_out and "annotations" not in test_out
    assert tuple(test_out["image"].shape) == (3, 96, 128)


def test_crop_branch_chosen_half_the_time_in_training(tiny_coco):
    json_file, image_root, _ = tiny_coco
    record = load_coco_json(json_file, image_root)[2]  # 50x50
    crop = [T.ResizeShortestEdge(40)]
    train, test = _mapper(crop=crop), _mapper(is_train=False, crop=crop)
    np.random.seed(0)
    sizes = [train(record)["image"].shape[1] for _ in range(200)]
    assert set(sizes) == {40, 96} and 70 <= sizes.count(40) <= 130
    assert {test(record)["image"].shape[1] for _ in range(20)} == {96}


def test_read_image_formats_and_exif(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "a.png")), pixels)
    np.testing.assert_array_equal(read_image(str(tmp_path / "a.png"), "BGR"), pixels[:, :, ::-1])
    assert read_image(str(tmp_path / "a.png"), "L").shape == (4, 6, 1)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise for display
    Image.fromarray(pixels).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    assert read_image(str(tmp_path / "rot.jpg")).shape == (6, 4, 3)


def _valid_jpeg_bytes():
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_corrupt_image_error_names_file_and_id(tmp_path, content):
    path = tmp_path / "broken.jpg"
    path.write_bytes(_valid_jpeg_bytes()[:300] if content == "truncated" else content)
    record = {"file_name": str(path), "image_id": 42, "height": 64, "width": 64, "annotations": []}
    with pytest.raises(ImageReadError, match=r"broken\.jpg.*\(image_id 42\)"):
        _mapper()(record)


def test_missing_image_and_size_mismatch(tmp_path):
    record = {"file_name": str(tmp_path / "gone.jpg"), "image_id": 7, "annotations": []}
    with pytest.raises(FileNotFoundError, match=r"gone\.jpg \(image_id 7\)"):
        _mapper()(record)
    (tmp_path / "ok.jpg").write_bytes(_valid_jpeg_bytes())
    record = {
        "file_name": str(tmp_path / "ok.jpg"),
        "image_id": 8,
        "height": 64,
        "width": 60,
        "annotations": [],
    }
    with pytest.raises(ValueError, match=r"ok\.jpg \(image_id 8\) is 64x64"):
        _mapper()(record)


def test_mask_on_not_supported():
    with pytest.raises(NotImplementedError, match="mask_on"):
        DetrDatasetMapper([], None, mask_on=True)
