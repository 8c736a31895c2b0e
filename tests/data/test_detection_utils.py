"""detection_utils as detectron2's: annotation transforms, Instances, and crops around an instance."""

import warnings

import numpy as np
import pytest
import torch

import detrex.data.transforms as T
from detrex.data import detection_utils as utils
from detrex.structures import Boxes, BoxMode


def test_transform_annotation_takes_a_transform_list_or_a_plain_list():
    for transforms in (T.TransformList([T.HFlipTransform(400)]), [T.HFlipTransform(400)]):
        anno = {"bbox": np.asarray([10, 10, 200, 300]), "bbox_mode": BoxMode.XYXY_ABS, "category_id": 3}
        out = utils.transform_instance_annotations(anno, transforms, (400, 400))
        assert out is anno and out["bbox_mode"] == BoxMode.XYXY_ABS
        np.testing.assert_array_equal(out["bbox"], [200, 10, 390, 300])
    instances = utils.annotations_to_instances([out, out], (400, 400))
    assert isinstance(instances.gt_boxes, Boxes) and instances.gt_classes.tolist() == [3, 3]
    assert instances.gt_boxes.tensor.tolist() == [[200, 10, 390, 300]] * 2
    empty = utils.annotations_to_instances([], (400, 400))
    assert len(empty) == 0 and empty.gt_boxes.tensor.shape == (0, 4)


def test_crop_clips_the_box_to_the_cropped_image():
    anno = {"bbox": np.asarray([10, 10, 200, 400]), "bbox_mode": BoxMode.XYXY_ABS}
    out = utils.transform_instance_annotations(
        anno, T.TransformList([T.CropTransform(300, 300, 10, 10)]), (10, 10)
    )
    np.testing.assert_array_equal(out["bbox"], [0, 0, 0, 10])


def test_boxes_given_as_tensors_or_arrays_raise_no_numpy_deprecation_warning():
    annos = [
        {"bbox": torch.tensor([1.0, 2.0, 3.0, 4.0]), "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0},
        {"bbox": np.array([1.0, 2.0, 3.0, 4.0]), "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1},
        {"bbox": [1, 2, 3, 4], "category_id": 2},  # no bbox_mode: COCO's XYWH_ABS
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        instances = utils.annotations_to_instances(annos, (20, 20))
        moved = utils.transform_instance_annotations(dict(annos[0]), [T.NoOpTransform()], (20, 20))
    assert instances.gt_boxes.tensor.tolist() == [[1.0, 2.0, 4.0, 6.0]] * 3
    np.testing.assert_array_equal(moved["bbox"], [1.0, 2.0, 4.0, 6.0])


def test_gen_crop_contains_the_instance_center():
    instance = {"bbox": [10, 10, 100, 100], "bbox_mode": BoxMode.XYXY_ABS}  # center (55, 55)
    np.random.seed(0)
    corners = set()
    for _ in range(200):
        t = utils.gen_crop_transform_with_instance((10, 20), (150, 160), instance)
        assert isinstance(t, T.CropTransform) and (t.h, t.w) == (10, 20)
        assert t.x0 <= 55 <= t.x0 + t.w and t.y0 <= 55 <= t.y0 + t.h  # the center is inside
        assert t.x0 + t.w <= 160 and t.y0 + t.h <= 150  # the crop is inside the image
        corners.add((t.x0, t.y0))
    assert {x for x, _ in corners} == set(range(35, 56)) and {y for _, y in corners} == set(range(45, 56))
    xywh = {"bbox": [100, 0, 20, 20], "bbox_mode": BoxMode.XYWH_ABS}  # near the right edge: center (110, 10)
    t = utils.gen_crop_transform_with_instance((8, 40), (30, 120), xywh)
    assert 70 <= t.x0 <= 80 and 2 <= t.y0 <= 10  # x0 in [110 - 40, 120 - 40], y0 in [10 - 8, 10]


def test_gen_crop_refuses_a_center_outside_or_a_crop_larger_than_the_image():
    instance = {"bbox": [10, 10, 100, 100], "bbox_mode": BoxMode.XYXY_ABS}
    with pytest.raises(utils.CropOutsideImageError, match="outside the 15x15"):
        utils.gen_crop_transform_with_instance((10, 10), (15, 15), instance)
    with pytest.raises(AssertionError):  # detectron2 raises AssertionError: code catching it still works
        utils.gen_crop_transform_with_instance((10, 10), (15, 15), instance)
    with pytest.raises(ValueError, match="larger than the image"):
        utils.gen_crop_transform_with_instance((200, 10), (150, 150), instance)
