import numpy as np
import pytest
import torch
from PIL import Image

from detrex.structures import Boxes, Instances
from detrex.utils.visualizer import (
    PALETTE,
    VisImage,
    Visualizer,
    _text_color,
    class_color,
    concat_side_by_side,
)

GRAY = (128, 128, 128)


def gray_image(h=120, w=160):
    return np.full((h, w, 3), GRAY, dtype=np.uint8)


class _Meta:
    thing_classes = ["circle", "square", "triangle"]


def test_predictions_drawn_in_class_colours_and_filtered_by_score(edge_fraction):
    boxes = torch.tensor([[20.0, 40.0, 80.0, 100.0], [90.0, 50.0, 150.0, 110.0], [30.0, 45.0, 60.0, 70.0]])
    inst = Instances(
        (120, 160),
        pred_boxes=Boxes(boxes),
        scores=torch.tensor([0.9, 0.7, 0.2]),
        pred_classes=torch.tensor([0, 2, 1]),
    )
    out = Visualizer(gray_image(), _Meta()).draw_instance_predictions(inst, threshold=0.5).get_image()
    assert out.shape == (120, 160, 3) and out.dtype == np.uint8
    assert edge_fraction(out, boxes[0], class_color(0), tol=0) > 0.95
    assert edge_fraction(out, boxes[1], class_color(2), tol=0) > 0.95
    # the 0.2-score box is below the threshold: its bottom and right edges inside box 0 stay background
    np.testing.assert_array_equal(out[70, 35:59], np.array([GRAY] * 24, dtype=np.uint8))
    np.testing.assert_array_equal(out[50:69, 60], np.array([GRAY] * 19, dtype=np.uint8))


def test_label_tag_sits_above_box_and_moves_inside_at_the_image_border():
    h, w = 120, 160
    vis = Visualizer(gray_image(h, w), _Meta(), line_width=2, font_size=10)
    color = (200, 30, 30)
    vis.draw_box([40, 60, 100, 110], color, "circle 90%")  # room above: tag ends just above the top edge
    vis.draw_box([2, 0, 50, 40], color, "square")  # at the top border: tag inside the box
    vis.draw_box([150, 70, 159, 100], color, "triangle 55%")  # at the right border: tag shifted left
    out = vis.get_output().get_image()
    red = (out == np.array(color, dtype=np.uint8)).all(axis=2)
    # box 1: a tag 10-12 px high ending right above the top edge (y=60), nothing higher up
    assert red[50:60, 40].all() and red[50:60, 40:90].mean() > 0.5
    assert not red[41:48, 40:100].any()
    # box 2 touches the top border: the tag fills the top of the box interior instead
    assert red[0:9, 4:36].mean() > 0.5
    # box 3 touches the right border: the tag runs leftwards from the border over x < 150
    assert red[60:68, 100:150].mean() > 0.5 and red[60:68, w - 1].any()


def test_draw_dataset_dict_converts_xywh_and_skips_crowd(edge_fraction):
    dic = {
        "annotations": [
            {"bbox": [10, 20, 50, 40], "bbox_mode": 1, "category_id": 1, "iscrowd": 0},
            {"bbox": [70, 30, 130, 90], "bbox_mode": 0, "category_id": 2, "iscrowd": 0},
            {"bbox": [5, 5, 100, 100], "bbox_mode": 1, "category_id": 0, "iscrowd": 1},
        ]
    }
    out = Visualizer(gray_image(), _Meta()).draw_dataset_dict(dic).get_image()
    assert edge_fraction(out, [10, 20, 60, 60], class_color(1), tol=0) > 0.95
    assert edge_fraction(out, [70, 30, 130, 90], class_color(2), tol=0) > 0.95
    assert edge_fraction(out, [5, 5, 105, 105], class_color(0), tol=0) == 0.0


def test_draw_ground_truth_single_colour_and_boxes_clipped(edge_fraction):
    inst = Instances(
        (120, 160), gt_boxes=Boxes(torch.tensor([[-10.0, 10.0, 60.0, 200.0]])), gt_classes=torch.tensor([1])
    )
    out = Visualizer(gray_image(), _Meta()).draw_ground_truth(inst, color=(0, 200, 0)).get_image()
    assert edge_fraction(out, [0, 10, 60, 119], (0, 200, 0), tol=0) > 0.95


def test_text_colour_contrast_and_palette():
    assert _text_color((255, 225, 25)) == (0, 0, 0)
    assert _text_color((0, 0, 128)) == (255, 255, 255)
    assert len(set(PALETTE)) == len(PALETTE)
    assert class_color(len(PALETTE) + 3) == PALETTE[3]


def test_visimage_gray_input_and_save_roundtrip(tmp_path):
    vis = VisImage(np.full((10, 12, 1), 7, dtype=np.uint8))
    path = str(tmp_path / "sub" / "x.png")
    vis.save(path)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), np.full((10, 12, 3), 7, dtype=np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        VisImage(np.zeros((4, 4, 4), dtype=np.uint8))


def test_mismatched_labels_raise():
    with pytest.raises(ValueError, match="2 boxes, 1 labels"):
        Visualizer(gray_image()).overlay_instances(np.zeros((2, 4)), ["a"], [(1, 2, 3)] * 2)


def test_concat_side_by_side():
    a = np.zeros((4, 3, 3), dtype=np.uint8)
    b = np.full((6, 2, 3), 9, dtype=np.uint8)
    out = concat_side_by_side(a, b, gap=1)
    assert out.shape == (6, 6, 3)
    np.testing.assert_array_equal(out[:4, :3], a)
    np.testing.assert_array_equal(out[:, 4:], b)
    assert (out[4:, :3] == 255).all() and (out[:, 3] == 255).all()
