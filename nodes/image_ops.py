"""Generic image nodes: resize, blur, gray, crop. Small real stages to build graphs with."""
from __future__ import annotations

import cv2
import numpy as np

from nodegraph import Gray, Image, Out, Param, Rect, node
from nodegraph.errors import InputError
from nodegraph.nodes.image_io import DEFAULT_MAX_MEGAPIXELS
from nodegraph.nodes.ops.luminance import luminance

INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR,
                  "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA,
                  "lanczos": cv2.INTER_LANCZOS4}


def target_size(shape: tuple[int, int], scale: float | None, width: int | None,
                height: int | None) -> tuple[int, int]:
    """(width, height) of a resize: explicit width/height win (one given keeps the aspect), else
    scale. InputError for an output over DEFAULT_MAX_MEGAPIXELS (image.read's limit): a
    65535 x 65535 float RGB image would need 51 GB."""
    h, w = shape
    if width and height:
        size = width, height
    elif width:
        size = width, max(1, round(h * width / w))
    elif height:
        size = max(1, round(w * height / h)), height
    elif scale:
        size = max(1, round(w * scale)), max(1, round(h * scale))
    else:
        raise InputError("image.resize needs a scale or a width and/or height")
    if size[0] * size[1] > DEFAULT_MAX_MEGAPIXELS * 1e6:
        raise InputError(f"image.resize: the output {size[0]}x{size[1]} would be "
                         f"{size[0] * size[1] / 1e6:.0f} MP, over the {DEFAULT_MAX_MEGAPIXELS:.0f} MP limit")
    return size


@node("image.resize", version=1)
def resize(image: Image, *,
           scale: float | None = Param(None, range=(0.001, 64.0), doc="size factor (if no width/height)"),
           width: int | None = Param(None, range=(1, 65535), unit="px", doc="output width"),
           height: int | None = Param(None, range=(1, 65535), unit="px", doc="output height"),
           interpolation: str = Param("cubic", choices=tuple(INTERPOLATIONS),
                                      doc="OpenCV interpolation (area is best for shrinking)"),
           ) -> Out(image=Image):
    """Resize to width x height (one of them keeps the aspect ratio) or by a scale factor."""
    size = target_size(image.shape[:2], scale, width, height)
    out = cv2.resize(image, size, interpolation=INTERPOLATIONS[interpolation])
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)  # cubic/lanczos overshoot


@node("image.blur", version=1)
def blur(image: Image, *,
         sigma: float = Param(1.0, range=(0.0, 100.0), unit="px",
                              doc="standard deviation of the Gaussian")) -> Out(image=Image):
    """Gaussian blur of each channel (borders reflected); sigma 0 returns the image unchanged."""
    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)


@node("image.to_gray", version=1)
def to_gray(image: Image) -> Out(gray=Gray):
    """Luminance Y = 0.299 R + 0.587 G + 0.114 B (ops.luminance.luminance)."""
    return luminance(image)


@node("image.crop", version=1)
def crop(image: Image, rect: Rect) -> Out(image=Image):
    """The pixels inside rect (x0, y0, x1, y1), edges rounded to whole pixels and clamped to the image."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (round(float(v)) for v in rect)
    x0, x1 = max(0, min(x0, w)), max(0, min(x1, w))
    y0, y1 = max(0, min(y0, h)), max(0, min(y1, h))
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"crop rectangle {tuple(rect)} holds no pixels of a {w}x{h} image")
    return np.ascontiguousarray(image[y0:y1, x0:x1])
