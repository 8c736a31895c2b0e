import pytest
import torch
from torch import nn

from detrex.engine import ModelEMA, unwrap_model


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)


def test_ema_update_math():
    torch.manual_seed(0)
    model = Net()
    ema = ModelEMA(model, decay=0.9)
    ema.update()  # first call: starts at the current weights
    w0 = model.lin.weight.detach().clone()
    torch.testing.assert_close(ema.state["lin.weight"], w0, rtol=0, atol=0)
    with torch.no_grad():
        model.lin.weight.add_(1.0)
        model.bn.num_batches_tracked.fill_(7)
    ema.update()
    torch.testing.assert_close(ema.state["lin.weight"], 0.9 * w0 + 0.1 * (w0 + 1.0))
    assert ema.state["bn.num_batches_tracked"].item() == 7  # integers are copied, not averaged
    with torch.no_grad():
        model.lin.weight.add_(1.0)
    ema.update()
    expected = 0.9 * (0.9 * w0 + 0.1 * (w0 + 1.0)) + 0.1 * (w0 + 2.0)
    torch.testing.assert_close(ema.state["lin.weight"], expected)


def test_ema_apply_and_restore_and_state_dict():
    model = Net()
    ema = ModelEMA(model, decay=0.5)
    ema.reset()
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.lin.bias.add_(2.0)
    ema.update()
    with ema.apply_and_restore():
        torch.testing.assert_close(model.lin.bias, trained["lin.bias"] + 1.0)
    torch.testing.assert_close(model.lin.bias, trained["lin.bias"] + 2.0)

    other = ModelEMA(Net(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    torch.testing.assert_close(other.state["lin.bias"], ema.state["lin.bias"], rtol=0, atol=0)
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({"lin.weight": torch.zeros(2, 3)})


def test_unwrap_model_removes_compile_and_data_parallel_wrappers():
    """The EMA and the checkpoints see the model's own parameter names under any wrapper: a compiled model's
    state dict would have "_orig_mod." before every key."""
    model = nn.Linear(2, 2)
    wrapped = torch.compile(nn.DataParallel(torch.compile(model)))  # compiled lazily: nothing runs here
    assert unwrap_model(wrapped) is model and unwrap_model(model) is model
    ema = ModelEMA(wrapped, decay=0.5)
    ema.reset()
    assert list(ema.state_dict()) == list(model.state_dict()) == ["weight", "bias"]
