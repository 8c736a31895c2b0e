"""Official Conditional-DETR (Atten4Vis/ConditionalDETR) release checkpoints -> this project's names."""

from .base import FamilyConverter

_DEC = r"^(transformer\.decoder\.layers\.\d+)\."
_ENC = r"^(transformer\.encoder\.layers\.\d+)\."
_PROJS = {  # official projection name -> ours (decoder self-attention sa_*, cross-attention ca_*)
    "qcontent": "query_content_proj",
    "qpos": "query_pos_proj",
    "qpos_sine": "query_pos_sine_proj",
    "kcontent": "key_content_proj",
    "kpos": "key_pos_proj",
    "v": "value_proj",
}

CONVERTER = FamilyConverter(
    family="conditional_detr",
    name="Conditional-DETR",
    description="official Conditional-DETR release (github.com/Atten4Vis/ConditionalDETR)",
    signature=(r"\.ca_qpos_sine_proj\.weight$", r"\.sa_qcontent_proj\.weight$", r"^backbone\.0\.body\."),
    model_signature=(
        r"\.attentions\.1\.query_pos_sine_proj\.weight$",
        r"^transformer\.decoder\.ref_point_head\.",
    ),
    renames=(
        (_ENC + r"self_attn\.", r"\1.attentions.0.attn."),
        (_ENC + r"linear1\.", r"\1.ffns.0.layers.0.0."),
        (_ENC + r"linear2\.", r"\1.ffns.0.layers.1."),
        (_ENC + r"norm1\.", r"\1.norms.0."),
        (_ENC + r"norm2\.", r"\1.norms.1."),
        *((_DEC + rf"sa_{old}_proj\.", rf"\1.attentions.0.{new}.") for old, new in _PROJS.items()),
        *((_DEC + rf"ca_{old}_proj\.", rf"\1.attentions.1.{new}.") for old, new in _PROJS.items()),
        (_DEC + r"self_attn\.out_proj\.", r"\1.attentions.0.out_proj."),
        (_DEC + r"cross_attn\.out_proj\.", r"\1.attentions.1.out_proj."),
        (_DEC + r"linear1\.", r"\1.ffns.0.layers.0.0."),
        (_DEC + r"linear2\.", r"\1.ffns.0.layers.1."),
        (_DEC + r"norm1\.", r"\1.norms.0."),
        (_DEC + r"norm2\.", r"\1.norms.1."),
        (_DEC + r"norm3\.", r"\1.norms.2."),
        (r"^transformer\.decoder\.norm\.", "transformer.decoder.post_norm_layer."),
    ),
    class_keys=(r"^class_embed\.(weight|bias)$",),
    backbone_prefix="backbone.0.body.",
)
