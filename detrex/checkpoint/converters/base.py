"""The converter interface: how an official release checkpoint of one model family maps onto our names.

A family plugs in with one module in this package that defines a module-level ``CONVERTER``::

    # detrex/checkpoint/converters/my_family.py
    from .base import COCO_CLASS_ROWS, FamilyConverter

    CONVERTER = FamilyConverter(
        family="my_family",
        name="My-DETR",
        description="official My-DETR release (github.com/org/MyDETR)",
        signature=(r"^transformer\\.pattern\\.weight$", r"^input_proj\\.0\\.0\\.weight$"),
        model_signature=(r"^transformer\\.pattern\\.weight$", r"^input_proj\\.0\\.weight$"),
        renames=(                                   # official -> ours, applied in order, each to the
            (r"^input_proj\\.0\\.0\\.", "input_proj.0."),  # result of the previous one (re.sub)
            (r"^input_proj\\.0\\.1\\.", "input_proj.1."),
        ),
        class_keys=(r"^transformer\\.class_embed\\.\\d+\\.(weight|bias)$",),
        backbone_prefix=None,
    )

and is listed in ``converters/__init__.py`` (imported inside ``try`` so that a family's file may be absent).

* ``signature``: regexes that must ALL match some key of an official checkpoint (``matches``). Use keys that
  only the official layout has: the loader tries the family converters BEFORE assuming the checkpoint
  already has our names, so a signature that also matches our own layout would rename our checkpoints.
* ``name``: how messages name the family ("Anchor-DETR").
* ``model_signature``: regexes that must ALL match some key of detrex's model of this family (its state dict,
  so also its checkpoints). Loading a checkpoint of one family into a model of another is an error that names
  both (``find_model_family``); official releases are recognised first, so this may also match them.
* ``renames``: ``(pattern, replacement)`` pairs; every key goes through all of them in order.
* ``class_keys``: regexes of (renamed) keys whose first dimension indexes the 91 COCO category ids of the
  official heads; when the model's tensor has ``len(class_rows)`` (80) rows, rows ``class_rows`` are kept.
* ``backbone_prefix``: prefix under which the official checkpoint holds a torchvision-layout ResNet
  (``conv1``, ``bn1``, ``layer1`` ..). Those keys are mapped into the layout the model's backbone has
  (detectron2's ``stem``/``res2``.. or torchvision's ``body.``) by ``detrex.checkpoint.resnet_keys``, and
  skip ``renames``. None: no such mapping, backbone keys go through ``renames`` like the rest.

``detrex.checkpoint.conversion.convert_state_dict`` applies a converter and checks the result against the
model's state dict; ``DetectionCheckpointer.load`` does that for every official file it is given.
"""

import re
from dataclasses import dataclass, field

# Row i of an 80-class head = row COCO_CLASS_ROWS[i] of an official 91-row head (indexed by category id).
COCO_CLASS_ROWS: tuple[int, ...] = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83), *range(84, 91),
)  # fmt: skip
NUM_OFFICIAL_CLASS_ROWS = 91


@dataclass(frozen=True)
class FamilyConverter:
    family: str
    name: str
    description: str
    signature: tuple[str, ...]
    model_signature: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    class_keys: tuple[str, ...] = ()
    backbone_prefix: str | None = None
    class_rows: tuple[int, ...] = COCO_CLASS_ROWS
    _compiled: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.signature:
            raise ValueError(f"FamilyConverter {self.family!r}: empty signature would match every checkpoint")
        self._compiled.extend((re.compile(p), r) for p, r in self.renames)

    def matches(self, state_dict) -> bool:
        """Whether the keys of ``state_dict`` look like this family's official checkpoints."""
        return _all_found(self.signature, state_dict)

    def matches_model(self, state_dict) -> bool:
        """Whether the keys of ``state_dict`` look like detrex's model of this family (False without a
        ``model_signature``)."""
        return bool(self.model_signature) and _all_found(self.model_signature, state_dict)

    def rename(self, key: str) -> str:
        """Our name of an official (non-backbone) key."""
        for pattern, replacement in self._compiled:
            key = pattern.sub(replacement, key)
        return key

    def is_class_key(self, key: str) -> bool:
        return any(re.search(p, key) for p in self.class_keys)


def _all_found(patterns: tuple[str, ...], keys) -> bool:
    """Whether every regex of ``patterns`` matches at least one of ``keys``."""
    keys = list(keys)
    return all(any(re.search(p, k) for k in keys) for p in patterns)
