from projects.anchor_detr.tools.measure_memory import activation_bytes
from tests.tiny import build_tiny_model, random_inputs


def test_activation_bytes_counts_saved_activations_once_and_excludes_weights():
    model = build_tiny_model("anchor_detr")
    batch = random_inputs([(64, 96)], with_instances=True)
    small = activation_bytes(model, batch)
    assert 0 < small["transformer"] < small["saved"]
    # 4x the pixels: more activations, but less than 4x (the decoder part does not grow); no weights
    large = activation_bytes(model, random_inputs([(128, 192)], with_instances=True))
    assert 2 * small["saved"] < large["saved"] < 4 * small["saved"]
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert small["saved"] < weights
