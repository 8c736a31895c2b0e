import torch

from projects.anchor_detr.tools.measure_memory import activation_bytes
from tests.projects.anchor_detr.tiny_anchor_detr import build_tiny_anchor_detr, make_input


def test_activation_bytes_counts_saved_activations_once_and_excludes_weights():
    torch.manual_seed(0)
    model = build_tiny_anchor_detr()
    batch = [make_input(64, 96, 0, True)]
    small = activation_bytes(model, batch)
    assert 0 < small["transformer"] < small["saved"]
    # 4x the pixels: more activations, but less than 4x (the decoder part does not grow); no weights
    large = activation_bytes(model, [make_input(128, 192, 0, True)])
    assert 2 * small["saved"] < large["saved"] < 4 * small["saved"]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert small["saved"] < weights
