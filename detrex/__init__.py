"""detrex: query-design DETR detectors (Anchor-DETR, Conditional-DETR) on lazy Python configs."""

__version__ = "0.1.0"
