"""Rescale detections from the network's input size to the size the caller asked for."""

from detrex.structures import Instances


def detector_postprocess(results: Instances, output_height: int, output_width: int) -> Instances:
    """Scale ``pred_boxes`` from ``results.image_size`` (the network input, unpadded) to
    (output_height, output_width), clip them to that image and drop empty boxes (width or height <= 0),
    as detectron2 does. Returns new Instances of size (output_height, output_width)."""
    in_h, in_w = results.image_size
    out = Instances((output_height, output_width), **results.get_fields())
    boxes = out.pred_boxes.clone()
    boxes.scale(output_width / in_w, output_height / in_h)
    boxes.clip((output_height, output_width))
    out.pred_boxes = boxes
    return out[boxes.nonempty()]
