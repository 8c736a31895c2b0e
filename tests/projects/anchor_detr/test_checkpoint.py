import torch

from detrex.checkpoint import DetectionCheckpointer
from detrex.checkpoint.converters import COCO_CLASS_ROWS, find_converter
from tests.tiny import build_tiny_model, random_inputs


def _official_layout(detrex_sd: dict) -> dict:
    """What the official code would save for the same weights: nested input_proj, 91-row class heads."""
    out = {}
    for key, value in detrex_sd.items():
        key = key.replace("input_proj.0.", "input_proj.0.0.").replace("input_proj.1.", "input_proj.0.1.")
        if key.startswith("transformer.class_embed."):
            full = torch.zeros((91, *value.shape[1:]))
            full[list(COCO_CLASS_ROWS)] = value
            value = full
        out[key] = value
    return out


def _perturbed_state_dict(model, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in model.state_dict().items()}


def _assert_heads_shared(model):
    t = model.transformer
    for modules in (t.class_embed, t.bbox_embed):
        ptrs = {tuple(p.data_ptr() for p in m.parameters()) for m in modules}
        assert len(ptrs) == 1 and len(modules) == len(t.decoder_layers)


def test_official_and_detrex_checkpoints_load_every_tensor_and_keep_heads_shared(tmp_path):
    # official checkpoints hold a torchvision-layout backbone (backbone.body.*) and 80 COCO classes
    source = build_tiny_model("anchor_detr", "model.num_classes=80", backbone="torchvision_resnet18")
    detrex_sd = _perturbed_state_dict(source, seed=0)
    # tied copies must be equal in a real checkpoint: copy layer 0's head into the others
    for key in list(detrex_sd):
        for head in ("class_embed", "bbox_embed"):
            prefix = f"transformer.{head}."
            if key.startswith(prefix) and not key.startswith(prefix + "0."):
                detrex_sd[key] = detrex_sd[prefix + "0." + key[len(prefix) :].split(".", 1)[1]]
    official_sd = _official_layout(detrex_sd)
    assert find_converter(official_sd).family == "anchor_detr" and find_converter(detrex_sd) is None

    for sd in (official_sd, detrex_sd):
        torch.save({"model": sd}, tmp_path / "ckpt.pth")
        model = build_tiny_model(
            "anchor_detr", "model.num_classes=80", seed=1, backbone="torchvision_resnet18"
        )
        DetectionCheckpointer(model).load(str(tmp_path / "ckpt.pth"))
        _assert_heads_shared(model)
        state = model.state_dict()
        assert sorted(state) == sorted(detrex_sd)
        for key, value in detrex_sd.items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)


def test_shared_heads_stay_equal_after_an_optimizer_step():
    model = build_tiny_model("anchor_detr")  # 3 decoder layers
    model.load_state_dict(model.state_dict())
    _assert_heads_shared(model)
    params = [p for p in model.parameters() if p.requires_grad]
    assert len(params) == len({id(p) for p in params})  # parameters() lists each shared tensor once
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    before = model.transformer.class_embed[0].weight.detach().clone()
    losses = model(random_inputs([(64, 96), (64, 96)], with_instances=True))
    sum(losses.values()).backward()
    optimizer.step()
    assert not torch.equal(model.transformer.class_embed[0].weight, before)
    state = model.state_dict()
    for i in (1, 2):
        for name in ("class_embed.{}.weight", "bbox_embed.{}.layers.2.bias"):
            torch.testing.assert_close(
                state["transformer." + name.format(i)], state["transformer." + name.format(0)], rtol=0, atol=0
            )
    _assert_heads_shared(model)
