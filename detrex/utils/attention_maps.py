"""Where the decoder looks: its cross-attention weights, recorded from a forward pass on request.

    from detrex.utils.attention_maps import record_attention

    model.eval()
    with torch.no_grad(), record_attention(model) as maps:
        outputs = model.forward_images(model.preprocess_image(batched_inputs))   # or model(batched_inputs)
    maps[-1]["full"]        # Conditional-DETR, last decoder layer: (B, Q, h, w), summing to 1 over each map
    maps[-1]["product"]     # Anchor-DETR (RCDA): "row" (B, Q, 1, w), "column" (B, Q, h, 1), "product" (B, Q, h, w)

``record_attention`` hooks the cross-attention module of every decoder layer (the detector's
``decoder_cross_attentions()``) for the duration of the ``with`` block and removes the hooks on exit, so the
model's forward does no extra work and keeps nothing outside the block. Each hook recomputes the weights from
the module's own inputs with the module's ``attention_maps`` method (the same projections as its forward),
which costs about one more attention per decoder layer while recording.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["multihead_attention_maps", "record_attention", "resize_to_image", "top_queries"]


def multihead_attention_maps(
    module: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    **unused_forward_kwargs,
) -> dict[str, torch.Tensor]:
    """{"full": the weights of ``module(query, key, value, key_padding_mask=...)``} per head, (B, h, Nq, Nk):
    softmax((query Wq + bq) . (key Wk + bk) / sqrt(d)), exactly zero on the keys marked True in
    ``key_padding_mask`` (B, Nk). Without dropout. ``value`` and the other forward arguments are not needed."""
    if not module._qkv_same_embed_dim or module.bias_k is not None or module.add_zero_attn:
        raise NotImplementedError(
            "multihead_attention_maps: only nn.MultiheadAttention without kdim/vdim, add_bias_kv and "
            "add_zero_attn is supported"
        )
    if not module.batch_first:  # (N, B, E) -> (B, N, E)
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    e, heads = module.embed_dim, module.num_heads
    w_q, w_k, _ = module.in_proj_weight.split(e)
    b_q, b_k, _ = (None, None, None) if module.in_proj_bias is None else module.in_proj_bias.split(e)
    bs, n_q, n_k = query.shape[0], query.shape[1], key.shape[1]
    q = F.linear(query, w_q, b_q).view(bs, n_q, heads, -1).transpose(1, 2)  # (B, h, Nq, d)
    k = F.linear(key, w_k, b_k).view(bs, n_k, heads, -1).transpose(1, 2)  # (B, h, Nk, d)
    logits = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5  # (B, h, Nq, Nk)
    if key_padding_mask is not None:
        logits = logits.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))  # padded keys: 0
    return {"full": logits.softmax(-1)}


def _maps_of(module: nn.Module):
    if hasattr(module, "attention_maps"):
        return module.attention_maps
    if isinstance(module, nn.MultiheadAttention):
        return functools.partial(multihead_attention_maps, module)
    raise TypeError(
        f"record_attention: {type(module).__name__} has no attention_maps method and is not an "
        "nn.MultiheadAttention; give it attention_maps(*forward_args) -> {name: (B, h, Q, keys...)}"
    )


@contextlib.contextmanager
def record_attention(
    model: nn.Module, layers: Sequence[int] | None = None, average_heads: bool = True
) -> Iterator[list[dict[str, torch.Tensor]]]:
    """Record the decoder's cross-attention weights of the forward passes run inside the ``with`` block.

    Args:
        model: a ``detrex.modeling.DETRDetector`` (it names its decoder cross-attentions through
            ``decoder_cross_attentions()``; ``input_proj`` gives the feature map's size).
        layers: decoder layers to record (negative indices count from the last); all by default.
        average_heads: average the weights over the attention heads (as the papers draw them); with False
            every map keeps a head dimension after the batch: (B, h, Q, ...).

    Yields a list that fills during the forward: one dict per recorded decoder layer and forward pass, in
    the order they run, ``{"layer": index, name: (B, Q, h, w) float tensor, ...}``, detached, on the model's
    device; names and meanings are those of the attention module's ``attention_maps``. A map covers the
    batch's padded (h, w) feature map (RCDA's "row" map one row of it, (1, w), and its "column" map one
    column, (h, 1)), is exactly zero on padding and sums to 1 over the rest. A module's map over the
    flattened pixels (batch, heads, queries, pixels) is reshaped to (h, w), the size of ``input_proj``'s
    output. The hooks are removed when the block exits, also on an exception.
    """
    modules = list(model.decoder_cross_attentions())
    chosen = range(len(modules)) if layers is None else layers
    try:
        chosen = sorted({range(len(modules))[i] for i in chosen})
    except IndexError:
        raise IndexError(
            f"record_attention: layers={list(layers)}, but the decoder has {len(modules)} layers "
            f"(0 .. {len(modules) - 1}, or -1 for the last)"
        ) from None
    maps: list[dict[str, torch.Tensor]] = []
    feature_size: list[tuple[int, int]] = []  # (h, w) of the latest feature map

    def remember_size(_module, _args, output):
        feature_size[:] = [tuple(output.shape[-2:])]

    def record(index: int, compute):
        def hook(_module, args, kwargs, _output):
            with torch.no_grad():
                per_head = compute(*args, **kwargs)
            entry = {"layer": index}
            for name, weights in per_head.items():
                if weights.dim() == 4:  # (B, h, Q, HW): attention over the flattened feature map
                    weights = weights.unflatten(-1, feature_size[0])
                entry[name] = weights.mean(1) if average_heads else weights
            maps.append(entry)

        return hook

    handles = [model.input_proj.register_forward_hook(remember_size)]
    try:
        for i in chosen:
            hook = record(i, _maps_of(modules[i]))
            handles.append(modules[i].register_forward_hook(hook, with_kwargs=True))
        yield maps
    finally:
        for handle in handles:
            handle.remove()


def top_queries(
    logits: torch.Tensor, k: int, threshold: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` queries of one image with the highest sigmoid class score, best first, keeping those with a
    score >= ``threshold``. logits (Q, K) -> (query indices, scores, classes), each (n,) with n <= k."""
    scores, classes = logits.sigmoid().max(-1)  # (Q,): each query's best class
    scores, queries = scores.topk(min(k, scores.numel()))
    keep = scores >= threshold
    return queries[keep], scores[keep], classes[queries[keep]]


def resize_to_image(attention: torch.Tensor, valid_size: tuple[int, int], image_size: tuple[int, int]):
    """A map (..., h, w) over a padded feature map -> (..., H, W) over the image: the unpadded top-left
    ``valid_size`` cells (the image's part of the feature map) stretched bilinearly to ``image_size``."""
    h, w = valid_size
    attention = attention[..., :h, :w]  # a (..., 1, w) row or (..., h, 1) column map stays 1 wide
    lead, cells = attention.shape[:-2], attention.shape[-2:]
    attention = attention.reshape(-1, 1, *cells).float()
    resized = F.interpolate(attention, size=tuple(image_size), mode="bilinear", align_corners=False)
    return resized.reshape(*lead, *image_size)
