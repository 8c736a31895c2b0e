"""detrex.utils.testing: the helpers detectron2's tests import, with the same behaviour."""

import pytest
import torch

from detrex.config import L
from detrex.structures import Boxes
from detrex.utils.testing import random_boxes, reload_lazy_config, reload_script_model


def test_random_boxes_are_well_formed():
    torch.manual_seed(0)
    boxes = random_boxes(200, max_coord=60)
    assert boxes.shape == (200, 4) and boxes.dtype == torch.float32
    assert (boxes[:, 2:] >= boxes[:, :2]).all() and boxes.min() >= 1.0 and boxes.max() <= 60.0
    assert Boxes(boxes).nonempty().all()


def test_reload_lazy_config_round_trips(tmp_path):
    cfg = L(torch.nn.Linear)(in_features=3, out_features="${.in_features}")
    again = reload_lazy_config(cfg)
    assert again._target_ == "torch.nn.Linear" and again.out_features == 3  # interpolation kept and resolved


@pytest.mark.skipif(not hasattr(torch.jit, "script"), reason="this torch release removed TorchScript")
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")
def test_reload_script_model_gives_the_same_function():
    def area(x: torch.Tensor):
        return Boxes(x).area()

    reloaded = reload_script_model(torch.jit.script(area))
    boxes = torch.tensor([[0.0, 0.0, 2.0, 3.0]])
    torch.testing.assert_close(reloaded(boxes), torch.tensor([6.0]))
