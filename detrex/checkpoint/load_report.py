"""Check a converted checkpoint against a model's state dict and describe the load in one report.

What fits (same name, same shape) is loaded; shape mismatches are skipped; everything the model does not get
is listed in a table, as detectron2's checkpointer does. Only a checkpoint that shares almost nothing with the
model (fewer than ``MIN_SHARED`` of its tensors fit) is refused, with what it looks like.
"""

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import torch
from tabulate import tabulate

from .conversion import MIN_SHARED, ConvertedCheckpoint
from .converters import find_model_family
from .errors import IncompatibleCheckpointError

CLASS_HEAD = re.compile(r"(^|\.)class_embed(\.\d+)?\.(weight|bias)$")  # the class heads of both families


@dataclass
class LoadPlan:
    """What loading ``converted`` into a model does: ``to_load`` are the tensors that fit."""

    converted: ConvertedCheckpoint
    to_load: dict[str, torch.Tensor]
    missing: list[str]  # model keys the checkpoint has no tensor for (tied aliases of loaded keys excluded)
    unexpected: list[str]  # checkpoint keys the model does not have
    wrong_shape: list[tuple[str, tuple, tuple]]  # (key, checkpoint shape, model shape), not loaded
    num_model_keys: int
    model_keys: list[str] = field(default_factory=list, repr=False)

    @property
    def not_loaded(self) -> list[str]:
        """Model keys that keep their initial values: missing ones and shape mismatches."""
        return self.missing + [k for k, _, _ in self.wrong_shape]

    @property
    def unloaded_class_head(self) -> list[str]:
        """Class-head tensors (``class_embed``) the checkpoint did not give the model; empty when loaded.
        A full-model checkpoint that leaves them out gives untrained scores: meaningless for evaluation."""
        return [k for k in self.not_loaded if CLASS_HEAD.search(k)]


def _aliases(model_state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Every key -> all keys of the same tensor (parameters registered under several names)."""
    groups = defaultdict(list)
    for key, value in model_state.items():
        identity = (value.data_ptr(), value.shape, value.stride(), value.dtype) if value.numel() else key
        groups[identity].append(key)
    return {key: keys for keys in groups.values() for key in keys}


def plan_load(converted: ConvertedCheckpoint, model_state: dict[str, torch.Tensor]) -> LoadPlan:
    """Compare with ``model_state`` (``model.state_dict(keep_vars=True)``). IncompatibleCheckpointError when
    nothing fits, or fewer than MIN_SHARED of the checkpoint's tensors (except for name-suffix matching,
    which loads whatever matched)."""
    sd = converted.state_dict
    to_load, wrong_shape = {}, []
    for key, value in sd.items():
        if key in model_state:
            if tuple(value.shape) == tuple(model_state[key].shape):
                to_load[key] = value
            else:
                wrong_shape.append((key, tuple(value.shape), tuple(model_state[key].shape)))
    aliases = _aliases(model_state)
    mismatched = {a for k, _, _ in wrong_shape for a in aliases[k]}
    missing = [k for k in model_state if k not in mismatched and not any(a in to_load for a in aliases[k])]
    wrong_shape = [(k, a, b) for k, a, b in wrong_shape if not any(x in to_load for x in aliases[k])]
    unexpected = [k for k in sd if k not in model_state]
    plan = LoadPlan(converted, to_load, missing, unexpected, wrong_shape, len(model_state), list(model_state))

    heuristic = "matching_heuristics" in converted.format
    if not to_load or (not heuristic and len(to_load) < MIN_SHARED * len(sd)):
        family = find_model_family(sd)
        looks = f"; its keys are those of a {family.name} model of another size or variant" if family else ""
        where = "the model's backbone" if not converted.full_model else "the model"
        raise IncompatibleCheckpointError(
            f"the checkpoint ({converted.format}, {len(sd)} tensors) shares almost nothing with the model: "
            f"{len(to_load)} of its tensors fit {where} ({len(model_state)} tensors){looks}. Is the config for "
            f"another model or variant? Shape mismatches: {_examples([f'{k} {a} vs {b}' for k, a, b in wrong_shape])}; "
            f"its keys the model lacks: {_examples(unexpected)}; model keys it lacks: {_examples(missing)}"
        )
    return plan


def format_report(plan: LoadPlan, path: str) -> str:
    """The load in a few lines, and a table of what the model did not get."""
    c = plan.converted
    lines = [
        f"Loading {path}: {c.format}; {len(plan.to_load)} tensors loaded into {plan.num_model_keys} model keys"
    ]
    if c.renamed:  # the first, middle and last renames: usually backbone, transformer and heads
        picks = sorted({0, len(c.renamed) // 2, len(c.renamed) - 1})
        shown = ", ".join(f"{c.renamed[i][0]} -> {c.renamed[i][1]}" for i in picks)
        lines.append(f"  renamed {len(c.renamed)} keys, e.g. {shown}")
    if c.merged:
        sources, target = c.merged[0]
        lines.append(
            f"  stacked {len(c.merged)} groups of tensors into one each, e.g. {' + '.join(sources)} -> {target}"
        )
    if c.sliced:
        lines.append(
            f"  class rows 91 -> 80 (COCO category ids -> contiguous classes): {', '.join(c.sliced)}"
        )
    lines.extend(f"  {note}" for note in c.notes)
    counters = [k for k in c.dropped if k.endswith(("num_batches_tracked", "_momentum"))]
    others = [k for k in c.dropped if k not in counters]
    if others:
        lines.append(f"  dropped {len(others)} keys not used by detection models: {_examples(others)}")
    if counters:
        lines.append(
            f"  dropped {len(counters)} batch-norm counters / optimizer blobs (num_batches_tracked, _momentum)"
        )
    rows = _not_loaded_rows(plan)
    if rows:
        lines.append("Not loaded (these model tensors keep their initial values):")
        lines.append(tabulate(rows, headers=["model tensors", "why"], tablefmt="pipe"))
    if plan.unloaded_class_head and c.full_model:
        head = ", ".join(label for label, _ in _collapse(plan.unloaded_class_head, plan.model_keys))
        lines.append(
            f"The class head {head} was not loaded: its scores are untrained. Expected before fine-tuning on "
            "other classes; an evaluation now would mean nothing."
        )
    if plan.unexpected:
        groups = [label for label, _ in _collapse(plan.unexpected, list(c.state_dict))]
        lines.append(
            f"Checkpoint tensors the model has no place for ({len(plan.unexpected)}): {_examples(groups, 8)}"
        )
    return "\n".join(lines)  # fmt: skip


def needs_attention(plan: LoadPlan) -> bool:
    """Whether the report should be a warning: a detector checkpoint that left model tensors out, or any
    shape mismatch (backbone weights leave the transformer out by design)."""
    return bool(plan.wrong_shape) or (plan.converted.full_model and bool(plan.missing))


def _not_loaded_rows(plan: LoadPlan) -> list[tuple[str, str]]:
    shapes = {k: (a, b) for k, a, b in plan.wrong_shape}
    rows = []
    for label, keys in _collapse(list(shapes), plan.model_keys):
        if label.endswith(")"):  # a whole module: one example is enough
            rows.append((label, f"shapes differ, e.g. {keys[0]}: {shapes[keys[0]][0]} in the checkpoint, "
                                f"{shapes[keys[0]][1]} in the model"))  # fmt: skip
        else:
            ckpt = ", ".join(str(shapes[k][0]) for k in keys)
            ours = ", ".join(str(shapes[k][1]) for k in keys)
            rows.append((label, f"shape {ckpt} in the checkpoint, {ours} in the model"))
    rows.extend((label, "not in the checkpoint") for label, _ in _collapse(plan.missing, plan.model_keys))
    return rows


def _collapse(keys: list[str], all_keys: list[str]) -> list[tuple[str, list[str]]]:
    """``keys`` as few (label, keys) groups: under the outermost module all of whose keys (among ``all_keys``)
    are in ``keys``; labelled ``module.{a, b}`` when they are its own tensors, else ``module.* (n)``."""
    under = Counter(p for k in all_keys for p in _prefixes(k))
    covered = Counter(p for k in keys for p in _prefixes(k))
    groups: dict[str, list[str]] = {}
    for key in keys:
        module = next((p for p in _prefixes(key) if covered[p] == under[p]), key.rpartition(".")[0])
        groups.setdefault(module, []).append(key)
    out = []
    for module, members in groups.items():
        names = [k[len(module) + 1 :] if module else k for k in members]
        if not module:  # top-level tensors
            out.extend((k, [k]) for k in members)
        elif any("." in n for n in names):
            out.append((f"{module}.* ({len(names)})", members))
        else:
            out.append(
                (f"{module}.{{{', '.join(names)}}}" if len(names) > 1 else f"{module}.{names[0]}", members)
            )
    return out


def _prefixes(key: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``: the modules a key is under, outermost first."""
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _examples(items, n: int = 4) -> str:
    items = list(items)
    if not items:
        return "none"
    more = f" ... (+{len(items) - n})" if len(items) > n else ""
    return ", ".join(str(i) for i in items[:n]) + more
