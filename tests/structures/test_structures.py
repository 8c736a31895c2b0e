import pytest
import torch

from detrex.structures import Boxes, ImageList, Instances


def test_boxes_geometry():
    b = Boxes(torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 5.0, 9.0], [-3.0, 2.0, 50.0, 40.0]]))
    torch.testing.assert_close(b.area(), torch.tensor([200.0, 0.0, 2014.0]))
    assert b.nonempty().tolist() == [True, False, True]
    c = b.clone()
    c.clip((30, 40))
    torch.testing.assert_close(c.tensor[2], torch.tensor([0.0, 2.0, 40.0, 30.0]))
    torch.testing.assert_close(b.tensor[2], torch.tensor([-3.0, 2.0, 50.0, 40.0]))  # clone untouched
    c.scale(2.0, 0.5)
    torch.testing.assert_close(c.tensor[0], torch.tensor([0.0, 0.0, 20.0, 10.0]))
    torch.testing.assert_close(b.get_centers()[0], torch.tensor([5.0, 10.0]))


def test_boxes_indexing_cat_and_device():
    b = Boxes(torch.arange(12, dtype=torch.float32).view(3, 4))
    assert len(b[1]) == 1 and b[1].tensor.shape == (1, 4)
    torch.testing.assert_close(b[torch.tensor([True, False, True])].tensor, b.tensor[[0, 2]])
    torch.testing.assert_close(b[1:].tensor, b.tensor[1:])
    merged = Boxes.cat([b, b[0]])
    assert len(merged) == 4
    torch.testing.assert_close(merged.tensor[3], b.tensor[0])
    assert b.to("cpu").device.type == "cpu"
    assert Boxes(torch.zeros(0)).tensor.shape == (0, 4)
    with pytest.raises(ValueError, match="N, 4"):
        Boxes(torch.zeros(3, 5))


def test_instances_fields_and_indexing():
    inst = Instances((20, 30), gt_boxes=Boxes(torch.rand(3, 4)), gt_classes=torch.tensor([3, 1, 2]))
    inst.names = ["a", "b", "c"]
    assert len(inst) == 3 and inst.has("names") and inst.image_size == (20, 30)
    sel = inst[torch.tensor([False, True, True])]
    assert sel.gt_classes.tolist() == [1, 2] and sel.names == ["b", "c"]
    assert inst[torch.tensor([2, 0])].names == ["c", "a"]
    assert inst[-1].gt_classes.tolist() == [2] and inst[0].names == ["a"]
    assert inst[1:].gt_classes.tolist() == [1, 2]
    with pytest.raises(ValueError, match="length"):
        inst.scores = torch.zeros(5)
    with pytest.raises(AttributeError, match="no field 'scores'"):
        _ = inst.scores
    inst.remove("names")
    assert not inst.has("names") and set(inst.get_fields()) == {"gt_boxes", "gt_classes"}
    both = Instances.cat([inst, inst[:1]])
    assert len(both) == 4 and both.gt_classes.tolist() == [3, 1, 2, 3]
    assert len(both.gt_boxes) == 4
    assert "num_instances=3" in repr(inst) and "image_height=20" in repr(inst)
    assert inst.to("cpu").gt_classes.device.type == "cpu"
    assert len(Instances((1, 1))) == 0


def test_image_list_padding():
    a = torch.full((3, 5, 7), 1.0)
    b = torch.full((3, 8, 4), 2.0)
    il = ImageList.from_tensors([a, b], size_divisibility=4, pad_value=-1.0)
    assert il.tensor.shape == (2, 3, 8, 8) and il.image_sizes == [(5, 7), (8, 4)]
    torch.testing.assert_close(il[0], a)
    torch.testing.assert_close(il[1], b)
    assert (il.tensor[0, :, 5:, :] == -1).all() and (il.tensor[1, :, :, 4:] == -1).all()
    mask = il.padding_mask()
    assert mask.shape == (2, 8, 8)
    assert (~mask[0]).sum() == 35 and (~mask[1]).sum() == 32
    single = ImageList.from_tensors([a])
    assert single.tensor.shape == (1, 3, 5, 7)
