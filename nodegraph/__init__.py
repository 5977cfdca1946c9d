"""nodegraph: typed node graphs for image-processing pipelines.

Declare nodes as typed functions (:func:`node`), wire them in YAML graph files, validate,
run with a recipe-hash cache, and edit them in the visual editor (``nodegraph gui``).
"""
from .node import Local, Out, Param, frame_of, node, note, output_rows, wrote
from .types import (
    Any,
    CompactFlow,
    CompactImage,
    CompactMask,
    Flow,
    Gray,
    Image,
    Mask,
    OutPath,
    Path,
    Rect,
    Scalar,
    Shift,
    Text,
)

__all__ = ["node", "note", "wrote", "Param", "Out", "Local", "frame_of", "output_rows", "CompactImage", "Image",
           "Gray", "CompactMask", "Mask", "Flow", "CompactFlow", "Rect", "Shift", "Scalar", "Path", "OutPath", "Text",
           "Any"]
__version__ = "0.1.0"
