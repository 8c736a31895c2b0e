"""BoxMode, Boxes and the pairwise functions behave as detectron2's (values, types, dtypes, refusals, TorchScript)."""

import json
import math

import numpy as np
import pytest
import torch

import detrex.data
from detrex.structures import (
    Boxes,
    BoxMode,
    matched_pairwise_iou,
    pairwise_intersection,
    pairwise_ioa,
    pairwise_iou,
    pairwise_point_box_distance,
)
from detrex.utils.testing import reload_script_model


def test_box_mode_members_values_and_json_round_trip():
    assert [(m.name, int(m)) for m in BoxMode] == [
        ("XYXY_ABS", 0),
        ("XYWH_ABS", 1),
        ("XYXY_REL", 2),
        ("XYWH_REL", 3),
        ("XYWHA_ABS", 4),
    ]
    assert detrex.data.BoxMode is BoxMode and detrex.data.detection_utils.BoxMode is BoxMode
    text = json.dumps({"bbox_mode": BoxMode.XYWH_REL})
    assert text == '{"bbox_mode": 3}'
    assert BoxMode(json.loads(text)["bbox_mode"]) is BoxMode.XYWH_REL


@pytest.mark.parametrize("kind", [list, tuple])
def test_convert_one_box_keeps_its_type(kind):
    out = BoxMode.convert(kind([5.0, 5.0, 10.0, 10.0]), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    assert type(out) is kind and out == kind([5.0, 5.0, 5.0, 5.0]) and type(out[0]) is float
    out = BoxMode.convert(kind([1, 2, 3, 4]), 1, 0)  # plain ints as modes; int coordinates stay int
    assert out == kind([1, 2, 4, 6]) and type(out[0]) is int
    with pytest.raises(ValueError, match="one box of 4 or 5 numbers"):
        BoxMode.convert([kind([5.0, 5.0, 10.0, 10.0])], BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)


def test_convert_arrays_and_tensors_keep_dtype_and_leave_the_input_alone():
    box = np.asarray([[5, 5, 10, 10], [1, 1, 2, 3]])
    out = BoxMode.convert(box, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    assert isinstance(out, np.ndarray) and out.dtype == box.dtype and out.shape == (2, 4)
    assert out.tolist() == [[5, 5, 5, 5], [1, 1, 1, 2]]
    assert box.tolist() == [[5, 5, 10, 10], [1, 1, 2, 3]]
    for dtype in (torch.int64, torch.float32, torch.float64):
        t = torch.tensor([[5, 5, 10, 10], [1, 1, 2, 3]], dtype=dtype)
        out = BoxMode.convert(t, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype
        assert out.tolist() == [[5, 5, 5, 5], [1, 1, 1, 2]]
        back = BoxMode.convert(out, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
        assert torch.equal(back, t) and back is not t
    same = np.zeros((1, 4))
    assert BoxMode.convert(same, BoxMode.XYXY_ABS, BoxMode.XYXY_ABS) is same


def test_convert_rotated_boxes():
    rotated = [[50, 50, 30, 20, 0], [50, 50, 30, 20, 90], [1, 1, math.sqrt(2), math.sqrt(2), -45]]
    enclosing = [[35, 40, 65, 60], [40, 35, 60, 65], [0, 0, 2, 2]]
    for dtype in (np.float32, np.float64):
        out = BoxMode.convert(np.asarray(rotated, dtype=dtype), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, np.asarray(enclosing, dtype=dtype), atol=1e-5)
    out = BoxMode.convert(torch.tensor(rotated, dtype=torch.float64), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    torch.testing.assert_close(out, torch.tensor(enclosing, dtype=torch.float64), atol=1e-12, rtol=0)
    assert BoxMode.convert((50, 50, 30, 20, 0), 4, 0) == (35, 40, 65, 60)
    xywh = [[30, 40, 70, 60], [30, 40, 60, 70], [-1, -1, 2, 2]]
    expected = [[65, 70, 70, 60, 0], [60, 75, 60, 70, 0], [0, 0, 2, 2, 0]]
    out = BoxMode.convert(torch.tensor(xywh, dtype=torch.float32), BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
    assert out.dtype == torch.float32 and out.tolist() == expected
    assert BoxMode.convert([50, 50, 30, 20], 1, 4) == [65, 60, 30, 20, 0]


def test_convert_refusals():
    with pytest.raises(ValueError, match=r"\(N, 4\) or \(N, 5\)"):
        BoxMode.convert(np.zeros(4), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)  # 1-D: detectron2 refuses it too
    with pytest.raises(ValueError, match=r"\(N, 4\) or \(N, 5\)"):
        BoxMode.convert(torch.zeros(2, 3), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(ValueError, match="XYWHA_ABS boxes have 5 numbers"):
        BoxMode.convert(np.zeros((2, 4)), BoxMode.XYWHA_ABS, BoxMode.XYXY_ABS)
    with pytest.raises(NotImplementedError, match="relative modes"):
        BoxMode.convert([0.1, 0.1, 0.5, 0.5], BoxMode.XYXY_REL, BoxMode.XYXY_ABS)
    with pytest.raises(NotImplementedError, match="XYXY_ABS -> XYWHA_ABS"):
        BoxMode.convert([0, 0, 1, 1], BoxMode.XYXY_ABS, BoxMode.XYWHA_ABS)
    with pytest.raises(TypeError, match="list, tuple, numpy array or torch tensor"):
        BoxMode.convert({"x": 1}, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    with pytest.raises(ValueError, match="is not a valid BoxMode"):
        BoxMode.convert([0, 0, 1, 1], 7, 0)


def _iou_boxes():
    boxes1 = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    boxes2 = torch.tensor(
        [
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 0.5, 1.0],
            [0.0, 0.0, 1.0, 0.5],
            [0.0, 0.0, 0.5, 0.5],
            [0.5, 0.5, 1.0, 1.0],
            [0.5, 0.5, 1.5, 1.5],
            [2.0, 2.0, 2.0, 2.0],  # empty and disjoint: 0, not NaN
        ]
    )
    return Boxes(boxes1), Boxes(boxes2)


def test_pairwise_iou_ioa_and_intersection():
    b1, b2 = _iou_boxes()
    row_iou = [1.0, 0.5, 0.5, 0.25, 0.25, 0.25 / 1.75, 0.0]
    torch.testing.assert_close(pairwise_iou(b1, b2), torch.tensor([row_iou, row_iou]))
    row_ioa = [1.0, 1.0, 1.0, 1.0, 1.0, 0.25, 0.0]
    torch.testing.assert_close(pairwise_ioa(b1, b2), torch.tensor([row_ioa, row_ioa]))
    row_inter = [1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.0]
    torch.testing.assert_close(pairwise_intersection(b1, b2), torch.tensor([row_inter, row_inter]))
    torch.testing.assert_close(matched_pairwise_iou(b2[:2], b2[1:3]), torch.tensor([0.5, 1.0 / 3.0]))
    distances = pairwise_point_box_distance(torch.tensor([[0.25, 0.75]]), b2[:1])
    torch.testing.assert_close(distances, torch.tensor([[[0.25, 0.75, 0.75, 0.25]]]))


def test_boxes_are_float32_and_move_by_device():
    assert Boxes(torch.tensor([[1, 2, 3, 4]])).tensor.dtype == torch.float32
    assert Boxes(torch.zeros(2, 4, dtype=torch.float64)).tensor.dtype == torch.float32
    assert Boxes([[1, 2, 3, 4]]).tensor.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert Boxes.cat([]).tensor.shape == (0, 4)
    moved = Boxes(torch.rand(3, 4)).to(device="cpu")
    assert moved.tensor.device.type == "cpu" and moved.tensor.dtype == torch.float32
    assert [b.tolist() for b in Boxes(torch.eye(4))] == torch.eye(4).tolist()
    with pytest.raises(ValueError, match="inf or NaN"):
        Boxes(torch.tensor([[0.0, 0.0, float("nan"), 1.0]])).clip((5, 5))


requires_torchscript = pytest.mark.skipif(
    not hasattr(torch.jit, "script"),
    reason="this torch release removed TorchScript (torch.jit.script), which detectron2's contract uses",
)


@requires_torchscript
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")
def test_boxes_script_save_and_load():
    def area_and_moved(x):
        boxes = Boxes(x)
        return boxes.area(), boxes.to(torch.device("cpu")).tensor

    scripted = reload_script_model(torch.jit.script(area_and_moved))
    data = torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 2.0, 5.0]])
    area, moved = scripted(data)
    torch.testing.assert_close(area, torch.tensor([6.0, 4.0]))
    torch.testing.assert_close(moved, data)

    def cat_clip_iou(x: torch.Tensor):
        boxes = Boxes(x)
        both = boxes.cat([boxes, boxes])
        both.clip((2, 2))
        return both.tensor, pairwise_iou(boxes, both), pairwise_ioa(boxes, both), both.nonempty()

    scripted = torch.jit.script(cat_clip_iou)
    for got, want in zip(scripted(data), cat_clip_iou(data)):
        torch.testing.assert_close(got, want)
