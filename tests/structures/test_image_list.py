"""ImageList.from_tensors: padding, constraints, TorchScript and tracing as detectron2's."""

import pytest
import torch

from detrex.structures import ImageList

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")
requires_torchscript = pytest.mark.skipif(
    not (hasattr(torch.jit, "script") and hasattr(torch.jit, "trace")),
    reason="this torch release removed TorchScript (torch.jit.script / trace), which detectron2's contract uses",
)


def test_padding_constraints_square_and_divisibility():
    a, b = torch.ones(3, 5, 7), torch.full((3, 8, 4), 2.0)
    il = ImageList.from_tensors([a, b], padding_constraints={"square_size": 12})
    assert il.tensor.shape == (2, 3, 12, 12) and il.image_sizes == [(5, 7), (8, 4)]
    il = ImageList.from_tensors([a, b], 4, padding_constraints={"size_divisibility": 5})
    assert il.tensor.shape == (2, 3, 10, 10)  # the constraint overrides the argument
    assert torch.equal(il[1], b) and il.tensor[1, :, 8:].abs().sum() == 0
    single = torch.rand(3, 8, 8)
    assert ImageList.from_tensors([single], 4).tensor.data_ptr() == single.data_ptr()  # no copy when no pad
    with pytest.raises(ValueError, match="at least one tensor"):
        ImageList.from_tensors([])
    with pytest.raises(ValueError, match="leading dims differ"):
        ImageList.from_tensors([torch.ones(3, 4, 4), torch.ones(1, 4, 4)])


def _ones(*shape):
    return torch.ones(shape)


def _to_image_list(tensors):
    image_list = ImageList.from_tensors(tensors, 4)
    return image_list.tensor, image_list.image_sizes


@requires_torchscript
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_trace_records_sizes_not_constants():
    for shape in [(3, 10, 10), (3, 12, 12)]:  # traced with and without padding
        traced = torch.jit.trace(_to_image_list, ([_ones(*shape)],))
        tensor, sizes = traced([_ones(3, 15, 20)])
        assert tensor.shape == (1, 3, 16, 20) and sizes[0].tolist() == [15, 20]
    traced = torch.jit.trace(_to_image_list, ([_ones(10, 10)],))  # (H, W) images
    tensor, sizes = traced([_ones(15, 20)])
    assert tensor.shape == (1, 16, 20) and sizes[0].tolist() == [15, 20]
    traced = torch.jit.trace(_to_image_list, ([_ones(3, 16, 10), _ones(3, 13, 11)],))
    first, second = torch.rand(3, 25, 20), torch.rand(3, 10, 10)
    tensor, sizes = traced([first, second])
    assert tensor.shape == (2, 3, 28, 20)
    assert [s.tolist() for s in sizes] == [[25, 20], [10, 10]]
    assert torch.equal(tensor[0, :, :25], first) and tensor[0, :, 25:].abs().sum() == 0
    assert torch.equal(tensor[1, :, :10, :10], second)
    assert tensor[1, :, 10:].abs().sum() == 0 and tensor[1, :, :, 10:].abs().sum() == 0


@requires_torchscript
def test_script_constructor_and_from_tensors():
    def build(image_tensor, image_shape: list[tuple[int, int]]):
        return ImageList(image_tensor, image_shape)

    images = torch.randn(2, 10, 20)
    scripted = torch.jit.script(build)(images, [(10, 20), (7, 9)])
    assert len(scripted) == 2
    assert torch.equal(scripted[0], images[0]) and torch.equal(scripted[1], images[1, :7, :9])

    def pad(tensors: list[torch.Tensor]):
        image_list = ImageList.from_tensors(tensors, 10)
        return image_list.tensor, image_list.padding_mask()

    inputs = [torch.randn(10, 20), torch.randn(12, 22)]
    eager_tensor, eager_mask = pad(inputs)
    script_tensor, script_mask = torch.jit.script(pad)(inputs)
    assert torch.equal(script_tensor, eager_tensor) and script_tensor.shape == (2, 20, 30)
    assert torch.equal(script_mask, eager_mask)
    assert (
        eager_mask[0, :10, :20].logical_not().all()
        and eager_mask[0, 10:].all()
        and eager_mask[0, :, 20:].all()
    )
