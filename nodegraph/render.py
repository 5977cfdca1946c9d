"""Turning node outputs into pictures: masks as heat maps, flow in colour, a labelled contact sheet.

The port types (:mod:`nodegraph.types`) draw their values with these; ``nodegraph run
--debug-dir`` and the editor's preview use them through ``PortType.picture``. Debug pictures
are written atomically (:func:`nodegraph.files.write_atomic`) under names that are known
before the run (:func:`debug_paths`), so the executor can refuse a run that would write one
over an input file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .files import write_atomic

if TYPE_CHECKING:
    from .types import PortType


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Middlebury-style colour coding: hue = direction, saturation = magnitude. uint8 BGR."""
    dx, dy = flow[..., 0], flow[..., 1]
    magnitude, angle = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    scale = max_magnitude or float(np.percentile(magnitude, 99)) or 1.0
    hsv = np.empty(flow.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)
    hsv[..., 1] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def heat_map(values: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Values in [low, high] mapped through the inferno colour map. uint8 BGR."""
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0, 1)
    return cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)


def rgb_to_bgr8(image: np.ndarray) -> np.ndarray:
    """An RGB image (H, W, 3) in [0, 1] as uint8 BGR."""
    return cv2.cvtColor((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)


def gray_to_bgr8(values: np.ndarray) -> np.ndarray:
    """A single-channel array (H, W) stretched from its minimum to its maximum, as uint8 BGR."""
    low, high = float(np.min(values)), float(np.max(values))
    gray = ((values - low) / max(high - low, 1e-12) * 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def downscaled(picture: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(picture.shape[:2])
    if scale >= 1:
        return picture
    size = (max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale)))
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)


def contact_sheet(tiles: list[tuple[str, np.ndarray]], tile_width: int = 360,
                  columns: int = 4) -> np.ndarray:
    """Pictures side by side, each fitted into a tile of the first picture's aspect and labelled."""
    label_height = 22
    first = tiles[0][1].shape
    tile_height = max(1, round(tile_width * first[0] / first[1]))
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * (tile_height + label_height), columns * tile_width, 3), 32, np.uint8)
    for i, (label, picture) in enumerate(tiles):
        scale = min(tile_width / picture.shape[1], tile_height / picture.shape[0])
        size = (max(1, int(picture.shape[1] * scale)), max(1, int(picture.shape[0] * scale)))
        small = cv2.resize(picture, size, interpolation=cv2.INTER_AREA if scale < 1
                           else cv2.INTER_NEAREST)
        y0 = (i // columns) * (tile_height + label_height)
        x0 = (i % columns) * tile_width
        sheet[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        cv2.putText(sheet, label[:44], (x0 + 4, y0 + tile_height + 16), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (235, 235, 235), 1, cv2.LINE_AA)
    return sheet


CONTACT_SHEET = "contact_sheet.png"


def debug_paths(directory: str | os.PathLike, labels: list[str]) -> list[Path]:
    """The file of each label's picture, ``NN_label.png`` numbered in order, then the contact sheet."""
    directory = Path(directory)
    return ([directory / f"{i:02d}_{label.replace('/', '_')}.png" for i, label in enumerate(labels)]
            + [directory / CONTACT_SHEET])


def _write_png(path: Path, picture: np.ndarray) -> None:
    ok, buffer = cv2.imencode(".png", picture)
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name} as PNG")
    write_atomic(path, buffer.tobytes())


def write_debug_dir(directory: str | os.PathLike, items: list[tuple[str, Any, PortType]]) -> list[Path]:
    """Write the picture of each (label, value, type) at its :func:`debug_paths` path, plus the
    contact sheet of them all; return the files written. Values without a picture (None, or a
    type without a preview) are skipped. OSError when a file cannot be written."""
    written, tiles = [], []
    paths = debug_paths(directory, [label for label, _value, _type in items])
    for (label, value, ptype), path in zip(items, paths):
        picture = ptype.picture(value)
        if picture is None:
            continue
        _write_png(path, picture)
        written.append(path)
        tiles.append((label, picture))
    if tiles:
        _write_png(paths[-1], contact_sheet(tiles))
        written.append(paths[-1])
    return written
