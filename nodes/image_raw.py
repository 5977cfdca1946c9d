"""Raw sensor files (DNG, ARW, NEF, CR2, ... through LibRaw via rawpy) and rendering linear light.

``image.read_raw`` gives what a raw-domain pipeline needs: the linear image (black and white
levels applied, white-balanced, optionally in sRGB primaries), the Bayer mosaic with its CFA
pattern, and the focal lengths. ``image.render`` turns a linear image into a displayable
sRGB one (exposure, then the sRGB transfer curve).
"""
from __future__ import annotations

import os

import numpy as np

from nodegraph import Gray, Image, Out, Param, Path, Scalar, Text, node
from nodegraph.errors import InputError

# LibRaw prints its own complaint about a bad file on fd 2 ("x.dng: Unexpected end of file"); the
# node raises one InputError instead. fd 2 is process-wide: image_io's redirection holds the lock.
from nodegraph.nodes.image_io import _decoder_messages
from nodegraph.nodes.ops.raw import CFA_PATTERNS, linear_to_srgb

WHITE_BALANCES = ("as_shot", "daylight", "none", "gains")
DEMOSAIC = ("ahd", "linear", "vng", "ppg", "dht", "aahd")
TAG_FOCAL_35MM = 41989  # FocalLengthIn35mmFilm


def _message(error: Exception) -> str:
    text = error.args[0] if error.args else error
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _open_raw(path: str):
    """A rawpy.RawPy with the file unpacked; InputError (one line, naming the file) otherwise."""
    import rawpy

    if not os.path.isfile(path):
        raise InputError(f"cannot read raw file {path!r}: no such file")
    raw = rawpy.RawPy()
    try:
        with _decoder_messages():
            raw.open_file(path)
            raw.unpack()
    except rawpy.LibRawFileUnsupportedError:
        raw.close()
        raise InputError(f"cannot decode raw file {path!r}: not a raw format LibRaw supports "
                         "(DNG, ARW, NEF, CR2, ...)") from None
    except (rawpy.LibRawError, OSError) as error:
        raw.close()
        raise InputError(f"cannot decode raw file {path!r}: corrupt or truncated "
                         f"({_message(error)})") from None
    return raw


def cfa_pattern(raw) -> str:
    """The 2x2 Bayer pattern as four letters ("RGGB"...); InputError for other sensors."""
    desc = raw.color_desc.decode("ascii", "replace")
    pattern = raw.raw_pattern
    if raw.num_colors != 3 or pattern is None or pattern.shape != (2, 2):
        raise InputError(f"sensor layout {desc!r} with pattern {None if pattern is None else pattern.shape} "
                         "is not a 2x2 Bayer mosaic")
    letters = "".join(desc[i] for i in pattern.ravel())
    if letters not in CFA_PATTERNS:
        raise InputError(f"CFA pattern {letters!r} is not a Bayer RGB pattern")
    return letters


def normalized_mosaic(raw) -> np.ndarray:
    """The visible sensor samples as float32 (H, W): (v - black[c]) / (white - black[c]), clipped to [0, 1]."""
    samples = raw.raw_image_visible.astype(np.float32)
    black = np.asarray(raw.black_level_per_channel, dtype=np.float32)[raw.raw_colors_visible]
    span = np.maximum(float(raw.white_level) - black, 1.0)
    return np.clip((samples - black) / span, 0.0, 1.0)


def focal_35mm_from_tags(path: str) -> float | None:
    """FocalLengthIn35mmFilm (IFD0 or Exif sub-IFD) of a TIFF-based raw file, else None."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            tag = tags.get(TAG_FOCAL_35MM)
            value = tag.value if tag is not None else None
            if value is None and tags.get("ExifTag") is not None:
                value = tags["ExifTag"].value.get("FocalLengthIn35mmFilm")
    except Exception:  # noqa: BLE001 - not TIFF-based (CR3, RAF...): the file just has no such tag
        return None
    return float(value) if value else None  # 0 means "unknown" in EXIF


def parse_gains(text: str | None) -> list[float]:
    """"r,g,b" white-balance multipliers -> [r, g, b, g] for LibRaw; InputError if malformed."""
    try:
        gains = [float(v) for v in (text or "").split(",")]
    except ValueError:
        gains = []
    if len(gains) != 3 or not all(g > 0 for g in gains):
        raise InputError(f"white-balance gains must be three positive numbers 'r,g,b', got {text!r}")
    return [gains[0], gains[1], gains[2], gains[1]]


@node("image.read_raw", version=1)
def read_raw(path: Path, *,
             white_balance: str = Param("as_shot", choices=WHITE_BALANCES,
                                        doc="as_shot: the file's AsShotNeutral / camera multipliers; "
                                            "daylight: the camera's daylight multipliers; none: unit "
                                            "gains; gains: the 'gains' parameter"),
             gains: str | None = Param(None, doc="'r,g,b' multipliers for white_balance=gains"),
             to_srgb: bool = Param(True, doc="apply the camera-to-sRGB matrix (else camera RGB)"),
             demosaic: str = Param("ahd", choices=DEMOSAIC, doc="LibRaw demosaicing algorithm"),
             ) -> Out(image=Image, mosaic=Gray, cfa=Text, focal_35mm=Scalar, focal_mm=Scalar):
    """Read a raw file (DNG, ARW, NEF, CR2, ... as LibRaw supports) in linear light.

    ``image`` (H, W, 3) float32 in [0, 1], linear: L = clip(g_c (v - b_c) / (w - b_c)) after
    LibRaw's demosaicing, with v the sample, b_c the black level of its channel, w the white
    level and g_c the white-balance gain of its colour (normalised so the smallest is 1, so
    nothing clips before white), then, with ``to_srgb``, the camera-to-sRGB matrix; no tone
    curve, no auto-brightening, the file's orientation applied.
    ``mosaic`` (H, W) float32: the visible sensor samples after black and white levels, not
    white-balanced, not rotated (sensor order); ``cfa`` its 2x2 pattern ("RGGB", "BGGR",
    "GRBG" or "GBRG"). ``focal_35mm``: EXIF FocalLengthIn35mmFilm in mm (for ``hzsr.ratio``),
    ``focal_mm``: the lens focal length in mm; either is None when the file lacks it.
    Unsupported, missing or corrupt files raise InputError naming the file.
    """
    import rawpy

    path = os.fspath(path)
    user_wb = parse_gains(gains) if white_balance == "gains" else None
    raw = _open_raw(path)
    try:
        pattern = cfa_pattern(raw)
        mosaic = normalized_mosaic(raw)
        with _decoder_messages():
            rgb16 = raw.postprocess(
                demosaic_algorithm=getattr(rawpy.DemosaicAlgorithm, demosaic.upper()),
                use_camera_wb=white_balance == "as_shot",
                use_auto_wb=False,
                user_wb=user_wb if user_wb else ([1.0, 1.0, 1.0, 1.0] if white_balance == "none" else None),
                output_color=rawpy.ColorSpace.sRGB if to_srgb else rawpy.ColorSpace.raw,
                gamma=(1.0, 1.0), no_auto_bright=True, output_bps=16,
                # LibRaw would otherwise treat the brightest sample as white when it is above
                # 75 % of WhiteLevel, changing the scale from file to file.
                adjust_maximum_thr=0.0)
        focal_mm = float(raw.other.focal_length) or None
    except rawpy.LibRawError as error:
        raise InputError(f"cannot decode raw file {path!r}: {_message(error)}") from None
    finally:
        raw.close()
    image = rgb16.astype(np.float32) / 65535.0
    return {"image": image, "mosaic": mosaic, "cfa": pattern,
            "focal_35mm": focal_35mm_from_tags(path), "focal_mm": focal_mm}


@node("image.render", version=1)
def render(image: Image, *,
           exposure: float = Param(0.0, range=(-8.0, 8.0), unit="EV",
                                   doc="gain 2^exposure applied in linear light"),
           curve: str = Param("srgb", choices=("srgb", "gamma"),
                              doc="srgb: the IEC 61966-2-1 curve; gamma: a pure power 1/gamma"),
           gamma: float = Param(2.2, range=(1.0, 4.0), doc="exponent of curve=gamma"),
           ) -> Out(image=Image):
    """Render a linear image for display: E = T(clip(2^exposure L, 0, 1)).

    T is the sRGB transfer curve (12.92 L below 0.0031308, else 1.055 L^(1/2.4) - 0.055) or a
    pure power L^(1/gamma). Input and output (H, W, 3) float32 in [0, 1].
    """
    scaled = np.clip(image * np.float32(2.0 ** exposure), 0.0, 1.0)
    if curve == "srgb":
        return linear_to_srgb(scaled)
    return (scaled ** np.float32(1.0 / gamma)).astype(np.float32)
