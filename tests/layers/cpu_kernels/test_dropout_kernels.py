"""Kernel "dropout": the same maths as F.dropout with the same mask, the keep
rate of the byte-wise draw, and what it saves for the backward."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from detrex.layers import cpu_kernels
from detrex.layers.cpu_kernels import dropout as dropout_kernel
from detrex.layers.functional import dropout


def test_keep_mask_rate_independence_and_seeding():
    torch.manual_seed(0)
    masks = torch.stack([dropout_kernel.keep_mask(torch.empty(1000), 0.3) for _ in range(400)]).float()
    assert abs(masks.mean().item() - 0.7) < 0.005  # 400k draws: std 0.0007
    even_odd = torch.corrcoef(torch.stack([masks[:, 0::2].flatten(), masks[:, 1::2].flatten()]))
    assert abs(even_odd[0, 1].item()) < 0.01  # the bytes of one random word are independent
    torch.manual_seed(3)  # the masks follow torch's default generator
    first = dropout_kernel.keep_mask(torch.empty(5000), 0.1)
    second = dropout_kernel.keep_mask(torch.empty(5000), 0.1)
    torch.manual_seed(3)
    assert torch.equal(dropout_kernel.keep_mask(torch.empty(5000), 0.1), first)
    assert not torch.equal(first, second)


def test_keep_mask_decides_byte_by_byte_as_one_32_bit_comparison(monkeypatch):
    """Each element's random bytes, read as one big-endian integer, are compared with t = 0x80402010: ties
    on a byte draw the next byte only for the tied elements, and a full tie (equal to t) is dropped."""

    class Bytes:  # stands in for np.random.SFC64: each random_raw call hands out the next list of bytes
        def __init__(self, *draws):
            self.draws = list(draws)

        def random_raw(self, words):
            data = self.draws.pop(0)
            return np.frombuffer(bytes(data + [0] * (8 * words - len(data))), dtype=np.uint64)

    draws = Bytes([0x7F, 0x81, 0x80, 0x80, 0x80, 0x80], [0x3F, 0x41, 0x40, 0x40], [0x20, 0x1F], [0x10])
    monkeypatch.setattr(dropout_kernel.np.random, "SFC64", lambda seed: draws)
    keep = dropout_kernel.keep_mask(torch.empty(6), 1 - 0x80402010 / 2**32)
    # 0x7F.. < t, 0x81.. > t, 0x803F.. < t, 0x8041.. > t, 0x80402010 == t, 0x80401F.. < t
    assert keep.tolist() == [True, False, True, False, False, True]
    assert draws.draws == []  # one draw per digit, each only as long as the ties
    monkeypatch.undo()
    # a keep probability just above 1/256: its second digit matters for the rate (2M draws: std 0.00004)
    rate = dropout_kernel.keep_mask(torch.empty(2_000_000), 1 - 0.0045).double().mean().item()
    assert abs(rate - 0.0045) < 0.0002


def test_dropout_equals_the_plain_maths_with_the_same_mask(fixed_masks):
    x = torch.randn(6, 7, dtype=torch.float32, requires_grad=True)
    with cpu_kernels.use_cpu_kernels(True):
        out = dropout(x, 0.3)
    mask = fixed_masks[x.shape]
    assert_close(out, x * mask / 0.7)
    grad = torch.randn(6, 7)
    assert_close(torch.autograd.grad(out, x, grad)[0], grad * mask / 0.7)
    xd = x.detach().double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: dropout_kernel.Dropout.apply(t, 0.3), (xd,))


def test_the_kernel_saves_a_bool_mask_only():
    """1 byte per element for the backward; F.dropout's CPU path saves a float mask."""
    x = torch.randn(64, 32, requires_grad=True)
    for enabled, dtypes in ((True, [torch.bool]), (False, [torch.float32])):
        saved = []
        with cpu_kernels.use_cpu_kernels(enabled):
            with torch.autograd.graph.saved_tensors_hooks(lambda t, s=saved: s.append(t) or t, lambda t: t):
                dropout(x, 0.3)
        assert [t.dtype for t in saved] == dtypes


def test_plain_path_statistics_when_off():
    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    with cpu_kernels.use_cpu_kernels(False):
        y = dropout(x, 0.25)
    assert not isinstance(y.grad_fn, torch.autograd.function.BackwardCFunction)  # stock autograd
    assert abs((y == 0).float().mean().item() - 0.25) < 0.005
    assert set(y.unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}


def test_probability_checks_and_identity_outside_training():
    x = torch.ones(10)
    assert dropout(x, 0.25, training=False) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros(10)) and torch.equal(dropout(x, 0.0), x)
    for p in (-0.1, 1.5):  # the same error as F.dropout, also where nothing is drawn
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout(x, p, training=False)


@pytest.mark.slow
def test_dropout_compiles_into_one_graph():
    """Under torch.compile the plain F.dropout is traced: no numpy draw, no graph break."""
    torch.manual_seed(0)
    compiled = torch.compile(lambda x: dropout(x, 0.5), fullgraph=True)
    y = compiled(torch.ones(4000))
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert 0.45 < (y == 0).float().mean().item() < 0.55
