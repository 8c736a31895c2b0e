"""Check a converted checkpoint against a model's state dict and describe the load in one report."""

from collections import defaultdict
from dataclasses import dataclass

import torch

from .conversion import MIN_FULL_MODEL_MATCH, ConvertedCheckpoint, IncompatibleCheckpointError


@dataclass
class LoadPlan:
    """What loading ``converted`` into a model does: ``to_load`` are the tensors that fit."""

    converted: ConvertedCheckpoint
    to_load: dict[str, torch.Tensor]
    missing: list[str]  # model keys that get no value (tied aliases of loaded keys excluded)
    unexpected: list[str]  # checkpoint keys the model does not have
    wrong_shape: list[tuple[str, tuple, tuple]]  # (key, checkpoint shape, model shape), not loaded
    num_model_keys: int


def _aliases(model_state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Every key -> all keys of the same tensor (parameters registered under several names)."""
    groups = defaultdict(list)
    for key, value in model_state.items():
        identity = (value.data_ptr(), value.shape, value.stride(), value.dtype) if value.numel() else key
        groups[identity].append(key)
    return {key: keys for keys in groups.values() for key in keys}


def plan_load(converted: ConvertedCheckpoint, model_state: dict[str, torch.Tensor]) -> LoadPlan:
    """Compare with ``model_state`` (``model.state_dict(keep_vars=True)``). A full-model checkpoint must
    provide at least MIN_FULL_MODEL_MATCH of the model's tensors; backbone weights at least one backbone
    tensor. Otherwise IncompatibleCheckpointError."""
    sd = converted.state_dict
    to_load, wrong_shape = {}, []
    for key, value in sd.items():
        if key in model_state:
            if tuple(value.shape) == tuple(model_state[key].shape):
                to_load[key] = value
            else:
                wrong_shape.append((key, tuple(value.shape), tuple(model_state[key].shape)))
    aliases = _aliases(model_state)
    missing = [k for k in model_state if not any(a in to_load for a in aliases[k])]
    unexpected = [k for k in sd if k not in model_state]
    plan = LoadPlan(converted, to_load, missing, unexpected, wrong_shape, len(model_state))

    loaded = len(model_state) - len(missing)
    if converted.full_model and loaded < MIN_FULL_MODEL_MATCH * len(model_state):
        raise IncompatibleCheckpointError(
            f"checkpoint looks like {converted.format} with {len(sd)} tensors, but it fits only {loaded} of the "
            f"model's {len(model_state)} tensors: it is probably a checkpoint of a different model or variant.\n"
            f"  model keys it lacks: {_examples(missing)}\n  its keys the model lacks: {_examples(unexpected)}\n"
            f"  shape mismatches: {_examples([f'{k} {a} vs {b}' for k, a, b in wrong_shape])}"
        )
    if not converted.full_model and not to_load:
        raise IncompatibleCheckpointError(
            f"checkpoint looks like {converted.format}, but none of its {len(sd)} tensors fits the model's "
            f"backbone (e.g. {_examples(unexpected)}; shape mismatches: {_examples(wrong_shape)})"
        )
    return plan


def format_report(plan: LoadPlan, path: str) -> str:
    c = plan.converted
    lines = [
        f"Loading {path}: {c.format}; {len(plan.to_load)} tensors loaded into {plan.num_model_keys} model keys"
    ]
    if c.renamed:
        shown = ", ".join(f"{a} -> {b}" for a, b in c.renamed[:3])
        lines.append(f"  renamed {len(c.renamed)} keys, e.g. {shown}")
    if c.sliced:
        lines.append(
            f"  class rows 91 -> 80 (COCO category ids -> contiguous classes): {', '.join(c.sliced)}"
        )
    counters = [k for k in c.dropped if k.endswith(("num_batches_tracked", "_momentum"))]
    others = [k for k in c.dropped if k not in counters]
    if others:
        lines.append(f"  dropped {len(others)} keys not used by detection models: {_examples(others)}")
    if counters:
        lines.append(
            f"  dropped {len(counters)} batch-norm counters / optimizer blobs (num_batches_tracked, _momentum)"
        )
    if plan.wrong_shape:
        lines.append(
            f"  NOT loaded, shape mismatch: {_examples([f'{k} {a} vs {b}' for k, a, b in plan.wrong_shape])}"
        )
    if plan.missing:
        lines.append(f"  missing in the checkpoint ({len(plan.missing)}): {_grouped(plan.missing)}")
    if plan.unexpected:
        lines.append(f"  unexpected, not loaded ({len(plan.unexpected)}): {_grouped(plan.unexpected)}")
    return "\n".join(lines)


def _examples(items, n: int = 4) -> str:
    items = list(items)
    if not items:
        return "none"
    more = f" ... (+{len(items) - n})" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more


def _grouped(keys: list[str], n: int = 8) -> str:
    """Keys grouped by module: "a.b.{weight, bias}"."""
    groups = defaultdict(list)
    for key in keys:
        module, _, name = key.rpartition(".")
        groups[module].append(name)
    parts = [f"{m}.{{{', '.join(v)}}}" if m else ", ".join(v) for m, v in groups.items()]
    more = f" ... (+{len(parts) - n} modules)" if len(parts) > n else ""
    return "; ".join(parts[:n]) + more
