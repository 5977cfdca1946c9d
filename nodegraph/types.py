"""Port types: what flows along a link, and which links are allowed.

A port type names a kind of value (an RGB image, a mask, a flow field...), says how to
check a value at run time, how to parse one from a command-line string, and which other
types it may feed. Compatibility is an explicit table, not inheritance:

============  ==========================================  ===============================
type          value                                       may also feed
============  ==========================================  ===============================
CompactImage  uint8/uint16 array (H, W, 3), RGB as         Image (converted), Any
              decoded (full scale = 1), or float32
Image         float32 array (H, W, 3), RGB in [0, 1]      CompactImage (as is), Any
Gray          float32 array (H, W)                        Any
CompactMask   uint8 array (H, W), 255 = 1 (a float32      Mask (converted), Gray
              one is quantized when a node outputs it)    (converted), Any
Mask          float32 array (H, W), values in [0, 1]      Gray, CompactMask (quantized), Any
Flow          float32 array (H, W, 2), (dx, dy) in px     CompactFlow (wrapped), Any
CompactFlow   CoarseFlow: a flow field held at the grid   Flow (upsampled), Any
              it was computed on, standing for its
              bilinear upsampling to (H, W)
Rect          tuple (x0, y0, x1, y1) of floats, in px     Any
Shift         tuple (dx, dy) of floats, in px             Any
Scalar        float                                       Any
Path          path of an existing file the graph reads    Any
OutPath       path of a file the graph writes             Any
Text          str                                         Any
Any           anything                                    Any
============  ==========================================  ===============================

A *converting* link (CompactImage -> Image, CompactMask -> Mask, CompactFlow -> Flow) is made
by the executor when the reading node runs (``PortType.convert``): an 8-bit image or mask is
held at a quarter of the float32 size for as long as it lives, a flow computed on a coarse
grid at that grid's size (:class:`CoarseFlow`: 1.5 MB at 384x512 against 96 MB at 12 MP), and
each reader gets the value it declares, for the time of its call. A node that declares
CompactFlow reads the field at full size itself (on the fly, per pixel); a Flow linked into
it arrives wrapped as a CoarseFlow of its own size, which reads back unchanged. A node whose
output port is a CompactMask computes its mask in float32 as any other; ``call_node`` stores
it as 8 bits (``PortType.store``: rint(255 m), an error of at most 1/510).

A port type also owns what differs between kinds of value, so that no other module compares
type names: how a ``--set`` string is parsed (``parse``), how a YAML default becomes a value
(``resolve``: lists to tuples, relative paths to absolute ones), what the cache key hashes
(``cache_token``: the *content* of a file the graph reads), whether it names a file read or
written (``file_role``), how it is previewed (``picture``: a uint8 BGR image, or None), and
what a bypassed node yields for an output of this type when none of its inputs can be passed
through (``bypass_value``): a mask of zeros ("this mask excludes nothing"), a flow of zeros
("nothing moves"), and no value for the other types.

A node may narrow a port's accepted values: ``Scalar.within(1, math.inf)`` (finite numbers in
a range) or ``OutPath.with_suffixes(".png", ".jpg")`` (file extensions it can write). The
narrowed type keeps its name, so links and compatibility are unchanged. Validation checks
constant values given to a port before anything runs (:meth:`PortType.constraint_problem`):
the range, that a file read exists, and that a file written can be (not a folder, a known
extension, its folder creatable and writable).

Numbers (``Scalar``, and each number of a ``Rect`` or ``Shift``) must be finite, and a
command-line number is read strictly (:func:`parse_number`: no ``nan``, ``inf``, ``1_0``).
A graph input of a ``numeric`` type may declare a range that its value must lie in (checked
as the port narrowed ``within`` it, each number of a Rect or Shift).

``Path`` and ``OutPath`` are different types on purpose: the executor hashes the content of
``Path`` files for its cache, and refuses to run a graph that would write over one of them.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path as _FsPath
from typing import Any as _AnyValue

import numpy as np

from .cores import in_row_bands, thread_share
from .errors import brief

# Decimal notation only: Python's float() also takes "nan", "inf", "1_0" and surrounding blanks.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def parse_number(text: str, integer: bool = False) -> float | int:
    """A finite number written in plain decimal notation (``2``, ``-1.5``, ``3e-2``); ValueError
    for anything else (``nan``, ``inf``, ``1e999``, ``1_0``, ``0x10``)."""
    text = text.strip()
    if integer:
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"expected a whole number, got {brief(text)}")
        return int(text)
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"expected a finite number in decimal notation, got {brief(text)}")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{brief(text)} is too large (not a finite number)")
    return value


def non_finite(value: _AnyValue) -> bool:
    """True for a float that is nan or infinite."""
    return isinstance(value, (float, np.floating)) and not math.isfinite(value)


@dataclass(frozen=True)
class PortType:
    """A named kind of value. Instances are used directly as annotations on node functions."""

    name: str
    doc: str
    color: tuple[int, int, int]  # editor colour of ports and links of this type
    check: Callable[[_AnyValue], str | None] = field(repr=False, compare=False)
    parse: Callable[[str], _AnyValue] = field(repr=False, compare=False)
    feeds: frozenset[str] = frozenset()  # other type names this type may be linked into
    file_role: str | None = None  # "read": a file the graph reads; "write": one it writes
    from_yaml: Callable[[_AnyValue], _AnyValue] = field(default=lambda value: value, repr=False,
                                                        compare=False)
    preview: Callable[[_AnyValue], np.ndarray] | None = field(default=None, repr=False, compare=False)
    raster: bool = False  # a value whose shape[:2] is the image's (H, W)
    # a local node may take it in strips (rows of an array; else it reads it whole)
    in_strips: bool = True
    # The value of this type for a bypassed node with no input to pass through, given the
    # (H, W) of the node's inputs; None: no such value.
    bypass_fill: Callable[[tuple[int, int]], _AnyValue] | None = field(default=None, repr=False,
                                                                       compare=False)
    range: tuple[float, float] | None = None  # inclusive bounds of accepted (finite) numbers
    suffixes: tuple[str, ...] = ()  # accepted file extensions (lower case, with the dot)
    numeric: bool = False  # values are numbers, or tuples of them: a graph input may bound them
    # target type name -> function turning a value of this type into one of the target's
    converts: dict[str, Callable[[_AnyValue], _AnyValue]] = field(default_factory=dict, repr=False,
                                                                  compare=False)
    # how a node's output of this type is held once produced (None: as returned)
    store: Callable[[_AnyValue], _AnyValue] | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        return self.name

    def resolve(self, value: _AnyValue, base_dir: _FsPath) -> _AnyValue:
        """The run-time value of a graph input declared as ``value`` in a file in ``base_dir``.

        A file the graph reads is found relative to the graph file (so a pipeline can ship its
        sample); a file it writes lands relative to the current folder, where the user is.
        """
        if value is None:
            return None
        value = self.from_yaml(value)
        if self.file_role == "read":
            return str((base_dir / _FsPath(value).expanduser()).resolve())
        if self.file_role == "write":
            return str(_FsPath(value).expanduser().resolve())
        return value

    def cache_token(self, value: _AnyValue) -> str:
        """What the recipe hash records of a constant value: a read file's content digest."""
        if self.file_role == "read" and value is not None and os.path.isfile(value):
            from .files import file_digest
            return f"file:{value}:{file_digest(value)}"
        return f"value:{value!r}"

    @property
    def previewable(self) -> bool:
        return self.preview is not None

    def picture(self, value: _AnyValue) -> np.ndarray | None:
        """A uint8 BGR picture of ``value`` (H, W, 3), or None when this type has no preview."""
        return None if value is None or self.preview is None else self.preview(value)

    def bypass_value(self, frame: tuple[int, int] | None) -> _AnyValue:
        """What a bypassed node yields for an output of this type with no input to pass through:
        the type's fill at the node's frame size (H, W), or None (no value)."""
        if self.bypass_fill is None or (self.raster and frame is None):
            return None
        return self.bypass_fill(frame)

    @property
    def fills_on_bypass(self) -> bool:
        return self.bypass_fill is not None

    def within(self, low: float, high: float) -> PortType:
        """This type, accepting only finite numbers in [low, high] (``high`` may be inf)."""
        return replace(self, range=(float(low), float(high)))

    def with_suffixes(self, *suffixes: str) -> PortType:
        """This path type, accepting only files with one of these extensions."""
        return replace(self, suffixes=tuple(s.lower() for s in suffixes))

    def constraint_problem(self, value: _AnyValue) -> str | None:
        """Why ``value`` breaks this port's range, or why the file it names cannot be read or
        written (missing, a folder, an unknown extension...); None when it does not."""
        if value is None:
            return None
        numbers = value if isinstance(value, (tuple, list)) else (value,)  # a Rect's, a Shift's
        if self.range is not None and all(isinstance(n, (int, float, np.number)) for n in numbers):
            low, high = self.range
            if not all(math.isfinite(n) and low <= n <= high for n in numbers):
                upper = "" if math.isinf(high) else f" and <= {high:g}"
                what = "a finite number" if len(numbers) == 1 else "finite numbers"
                return f"must be {what} >= {low:g}{upper}, got {brief(value)}"
        if isinstance(value, (str, os.PathLike)) and self.file_role is not None:
            from .files import input_file_problem, output_file_problem
            if self.file_role == "write":
                return output_file_problem(value, self.suffixes)
            return input_file_problem(value)
        return None

    def can_feed(self, target: PortType) -> bool:
        """True when a value of this type may be linked into a port of type ``target``."""
        return (target.name == self.name or target.name == "Any" or target.name in self.feeds
                or target.name in self.converts)

    def convert(self, value: _AnyValue, target: PortType) -> _AnyValue:
        """``value`` as the ``target`` port reads it: converted when the table says so (None
        stays None), else unchanged."""
        conversion = self.converts.get(target.name)
        return value if conversion is None or value is None else conversion(value)

    def problem_with(self, value: _AnyValue) -> str | None:
        """A sentence saying why ``value`` is not of this type, or None when it is."""
        return self.check(value)


def _array_check(ndim: int, channels: int | None) -> Callable[[_AnyValue], str | None]:
    def check(value: _AnyValue) -> str | None:
        if not isinstance(value, np.ndarray):
            return f"expected a numpy array, got {type(value).__name__}"
        if value.dtype != np.float32:
            return f"expected dtype float32, got {value.dtype}"
        if value.ndim != ndim or (channels is not None and value.shape[-1] != channels):
            want = "(H, W)" if ndim == 2 else f"(H, W, {channels})"
            return f"expected shape {want}, got {value.shape}"
        return None

    return check


def _check_compact_image(value: _AnyValue) -> str | None:
    if not isinstance(value, np.ndarray):
        return f"expected a numpy array, got {type(value).__name__}"
    if value.dtype not in (np.uint8, np.uint16, np.float32):
        return f"expected dtype uint8, uint16 or float32, got {value.dtype}"
    if value.ndim != 3 or value.shape[-1] != 3:
        return f"expected shape (H, W, 3), got {value.shape}"
    return None


def compact_to_float(value: np.ndarray) -> np.ndarray:
    """A CompactImage as an Image: integer samples scaled by 1/full scale, float32 as is."""
    if value.dtype == np.float32:
        return value
    scaled = np.empty(value.shape, np.float32)
    full_scale = np.float32(np.iinfo(value.dtype).max)

    def band(rows: slice) -> None:  # one pass, into the float32 array: no second copy
        np.divide(value[rows], full_scale, out=scaled[rows], dtype=np.float32)

    in_row_bands(value.shape[0], value.shape[1] if value.ndim > 1 else 1, band)
    return scaled


SAMPLE_BLOCK_VALUES = 1 << 17  # doubles per block of float_to_samples: 1 MB, kept in cache


def float_to_samples(value: np.ndarray, bit_depth: int) -> np.ndarray:
    """float32 values -> rint(clip(x, 0, 1) * (2^bit_depth - 1)) as uint8 or uint16 (8 or 16),
    the product in double precision, so a float32 value a hair above a half rounds up.

    Per block of rows, the values are copied to double and one OpenCV multiply writes the
    integer type (SIMD; its saturating cast clips and rounds half to even, as np.rint). The
    copy is what makes the product double: OpenCV 5 multiplies a float32 array by a scalar
    in float32 (4.x did it in double), which rounds 137 of 36 million 8-bit samples the other
    way. Blocks of ~1 MB stay in cache, so no full-size float copy is made (12 MP RGB on one
    thread: 0.017 s, against 0.006 s for the float32 product). OpenCV runs it on one thread,
    so large arrays go to the cores in bands of rows; the blocks are made here, not on the
    band threads (whose glibc arenas would keep them: +25 MB on the run's peak, measured).
    """
    import queue

    import cv2  # loaded with the first conversion, not with the types

    value = np.ascontiguousarray(value, np.float32)
    # one channel of H rows: OpenCV would read a scalar as (s, 0, 0, 0) for 3 channels
    flat = value.reshape(value.shape[0], -1) if value.ndim else value.reshape(1, 1)
    samples = np.empty(value.shape, np.uint8 if bit_depth == 8 else np.uint16)
    flat_samples = samples.reshape(flat.shape)
    block_rows = max(1, SAMPLE_BLOCK_VALUES // max(1, flat.shape[1]))
    full_scale = float(2 ** bit_depth - 1)
    depth = cv2.CV_8U if bit_depth == 8 else cv2.CV_16U

    def new_block() -> np.ndarray:
        return np.empty((min(block_rows, flat.shape[0]), flat.shape[1]), np.float64)

    blocks: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(thread_share()):
        blocks.put(new_block())

    def band(rows: slice) -> None:
        try:
            block = blocks.get_nowait()
        except queue.Empty:   # more bands than cores (never in use): one made on this thread
            block = new_block()
        for start in range(rows.start, rows.stop, block_rows):
            stop = min(start + block_rows, rows.stop)
            exact = block[:stop - start]
            np.copyto(exact, flat[start:stop])
            cv2.multiply(exact, full_scale, dst=flat_samples[start:stop], dtype=depth)
        blocks.put(block)

    in_row_bands(flat.shape[0], value.shape[1] if value.ndim > 1 else 1, band)
    return samples


def _check_compact_mask(value: _AnyValue) -> str | None:
    if not isinstance(value, np.ndarray):
        return f"expected a numpy array, got {type(value).__name__}"
    if value.dtype not in (np.uint8, np.float32):
        return f"expected dtype uint8 or float32, got {value.dtype}"
    if value.ndim != 2:
        return f"expected shape (H, W), got {value.shape}"
    return None


def quantize_mask(value: _AnyValue) -> _AnyValue:
    """A float32 (H, W) mask as uint8 rint(255 m) (product in double precision), saturated to
    0..255; anything else as it is (for the output check to name)."""
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.ndim == 2:
        return float_to_samples(value, 8)
    return value


def compact_mask_to_float(value: np.ndarray) -> np.ndarray:
    """A CompactMask as a Mask: uint8 scaled by 1/255 (as a CompactImage's samples); a float
    mask as float32, unscaled."""
    return compact_to_float(value) if value.dtype == np.uint8 else value.astype(np.float32, copy=False)


@dataclass(frozen=True, eq=False)
class CoarseFlow:
    """A flow field held at the grid it was computed on, standing for its upsampling to
    ``size`` (H, W): bilinear as ``cv2.resize`` (INTER_LINEAR, pixel centres aligned), the
    vectors rescaled from px of the coarse grid to px of the full one (:meth:`full`).

    ``field``: float32 (h, w, 2), (dx, dy) in px of its own grid, h <= H and w <= W. A node
    declaring a CompactFlow input is expected to compute the pixels of :meth:`full` it reads
    from the field itself, so the full-size field is never made; one declaring Flow gets
    :meth:`full`.
    """

    field: np.ndarray
    size: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of the full-size field, (H, W, 2)."""
        return (int(self.size[0]), int(self.size[1]), 2)

    def full(self) -> np.ndarray:
        """The full-size field, float32 (H, W, 2) in px of the full grid."""
        return upsample_flow(self.field, self.size)


def upsample_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resample a flow field (h, w, 2) to ``size`` (H, W) and rescale its vectors
    (px of the old grid) to px of the new one; float32 (H, W, 2)."""
    h, w = int(size[0]), int(size[1])
    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow.astype(np.float32, copy=False)
    import cv2  # loaded with the first flow upsampled, not with the types
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / fw
    out[..., 1] *= h / fh
    return out.astype(np.float32, copy=False)


def _check_coarse_flow(value: _AnyValue) -> str | None:
    if not isinstance(value, CoarseFlow):
        return f"expected a CoarseFlow (a flow field and its full size), got {type(value).__name__}"
    problem = _array_check(3, 2)(value.field)
    if problem is not None:
        return f"its field: {problem}"
    h, w = value.field.shape[:2]
    if not (0 < h <= value.size[0] and 0 < w <= value.size[1]):
        return f"its field {value.field.shape[:2]} must be no larger than its size {tuple(value.size)}"
    return None


def _tuple_check(length: int) -> Callable[[_AnyValue], str | None]:
    def check(value: _AnyValue) -> str | None:
        if not isinstance(value, (tuple, list)) or len(value) != length:
            return f"expected {length} numbers, got {brief(value)}"
        if not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                   for v in value):
            return f"expected {length} numbers, got {brief(value)}"
        if any(non_finite(v) for v in value):
            return f"expected {length} finite numbers, got {brief(value)}"
        return None

    return check


def _parse_numbers(length: int) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        parts = [p for p in text.replace(" ", "").strip("()[]").split(",") if p]
        if len(parts) != length:
            raise ValueError(f"expected {length} comma-separated numbers, got {brief(text)}")
        return tuple(float(parse_number(p)) for p in parts)

    return parse


def _check_scalar(value: _AnyValue) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return f"expected a number, got {brief(value)}"
    if non_finite(value):
        return f"expected a finite number, got {value!r}"
    return None


def _check_path(value: _AnyValue) -> str | None:
    return None if isinstance(value, (str, os.PathLike)) else f"expected a path, got {brief(value)}"


def _check_text(value: _AnyValue) -> str | None:
    return None if isinstance(value, str) else f"expected text, got {brief(value)}"


def _no_parse(name: str) -> Callable[[str], _AnyValue]:
    def parse(text: str) -> _AnyValue:
        raise ValueError(f"a {name} cannot be given on the command line")

    return parse


def _numbers_from_yaml(value: _AnyValue) -> _AnyValue:
    return tuple(value) if isinstance(value, list) else value


def _scalar_from_yaml(value: _AnyValue) -> _AnyValue:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _picture(kind: str) -> Callable[[_AnyValue], np.ndarray]:
    def draw(value: _AnyValue) -> np.ndarray:
        from . import render  # OpenCV is loaded only when something is drawn
        return getattr(render, kind)(value)

    return draw


def _zeros(*channels: int, dtype: type = np.float32) -> Callable[[tuple[int, int]], np.ndarray]:
    def fill(frame: tuple[int, int]) -> np.ndarray:
        return np.zeros((*frame, *channels), dtype)

    return fill


CompactImage = PortType("CompactImage", "RGB image (H, W, 3) as decoded: uint8 or uint16 "
                        "(full scale = 1), or float32 in [0, 1]", (70, 130, 190),
                        _check_compact_image, _no_parse("CompactImage"),
                        preview=lambda value: _picture("rgb_to_bgr8")(compact_to_float(value)),
                        converts={"Image": compact_to_float}, raster=True)
Image = PortType("Image", "float32 RGB image (H, W, 3) in [0, 1]", (86, 156, 214),
                 _array_check(3, 3), _no_parse("Image"), feeds=frozenset({"CompactImage"}),
                 preview=_picture("rgb_to_bgr8"), raster=True)
Gray = PortType("Gray", "float32 single-channel image (H, W)", (160, 160, 160),
                _array_check(2, None), _no_parse("Gray"), preview=_picture("gray_to_bgr8"),
                raster=True)
CompactMask = PortType("CompactMask", "weight map (H, W) in [0, 1] held as uint8 (255 = 1), "
                       "or float32", (230, 200, 110), _check_compact_mask, _no_parse("CompactMask"),
                       preview=lambda value: _picture("heat_map")(compact_mask_to_float(value)),
                       raster=True, bypass_fill=_zeros(dtype=np.uint8),
                       converts={"Mask": compact_mask_to_float, "Gray": compact_mask_to_float},
                       store=quantize_mask)
Mask = PortType("Mask", "float32 weight map (H, W) in [0, 1]", (230, 180, 60),
                _array_check(2, None), _no_parse("Mask"), frozenset({"Gray", "CompactMask"}),
                preview=_picture("heat_map"), raster=True, bypass_fill=_zeros())
Flow = PortType("Flow", "float32 displacement field (H, W, 2): (dx, dy) in pixels", (200, 90, 200),
                _array_check(3, 2), _no_parse("Flow"), preview=_picture("flow_to_color"),
                raster=True, bypass_fill=_zeros(2),
                converts={"CompactFlow": lambda flow: CoarseFlow(flow, flow.shape[:2])})
CompactFlow = PortType("CompactFlow", "displacement field held at the grid it was computed on "
                       "(CoarseFlow), read as its bilinear upsampling to (H, W)", (200, 120, 220),
                       _check_coarse_flow, _no_parse("CompactFlow"),
                       preview=lambda value: _picture("flow_to_color")(value.full()),
                       raster=True, in_strips=False,
                       bypass_fill=lambda frame: CoarseFlow(np.zeros((1, 1, 2), np.float32), frame),
                       converts={"Flow": lambda value: value.full()})
Rect = PortType("Rect", "rectangle (x0, y0, x1, y1) in pixels", (110, 200, 120),
                _tuple_check(4), _parse_numbers(4), from_yaml=_numbers_from_yaml, numeric=True)
Shift = PortType("Shift", "translation (dx, dy) in pixels", (120, 200, 200),
                 _tuple_check(2), _parse_numbers(2), from_yaml=_numbers_from_yaml, numeric=True)
Scalar = PortType("Scalar", "a number", (230, 230, 230), _check_scalar, parse_number,
                  from_yaml=_scalar_from_yaml, numeric=True)
Path = PortType("Path", "path of an existing file that the graph reads", (240, 120, 80),
                _check_path, str, file_role="read")
OutPath = PortType("OutPath", "path of a file that the graph writes", (240, 80, 120),
                   _check_path, str, file_role="write")
Text = PortType("Text", "a string", (200, 200, 140), _check_text, str)
Any = PortType("Any", "any value", (255, 255, 255), lambda value: None, str)

PORT_TYPES: dict[str, PortType] = {
    t.name: t for t in (CompactImage, Image, Gray, CompactMask, Mask, Flow, CompactFlow, Rect, Shift,
                        Scalar, Path, OutPath, Text, Any)
}


def port_type(name: str) -> PortType:
    """The port type called ``name``; KeyError listing the known names otherwise."""
    try:
        return PORT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown type {name!r}; known types: {', '.join(PORT_TYPES)}") from None
