"""Raw sensor data: the sRGB transfer curve, Bayer mosaics, and writing a DNG file.

Shared by the raw nodes (``image.read_raw``, ``image.render``), the Zoom-to-Learn trainer
(which *unprocesses* RGB photos into raw mosaics) and the tests (which write DNG files and
read them back through LibRaw).

Conventions: a linear image is float32 (H, W, 3) in [0, 1] proportional to light; a mosaic
is float32 (H, W) in [0, 1] after black and white levels; a CFA pattern is a string of four
letters naming the colours of the 2x2 tile in row order (``"RGGB"``: R at (0, 0), G at
(0, 1) and (1, 0), B at (1, 1)).
"""
from __future__ import annotations

import os

import numpy as np

CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
CHANNEL_OF = {"R": 0, "G": 1, "B": 2}
# XYZ (D65) -> linear sRGB, IEC 61966-2-1. A DNG whose ColorMatrix1 is this matrix declares
# that its camera space *is* linear sRGB, so LibRaw's camera-to-sRGB matrix is the identity.
XYZ_TO_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                        [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]])


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer curve (IEC 61966-2-1): V <= 0.04045 -> V/12.92, else ((V+0.055)/1.055)^2.4."""
    v = np.clip(np.asarray(encoded, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB transfer curve (IEC 61966-2-1): L <= 0.0031308 -> 12.92 L, else 1.055 L^(1/2.4) - 0.055."""
    x = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0)
    return encode_srgb(x).astype(np.float32)


def encode_srgb(x):
    """The sRGB curve on values already in [0, 1], written with operators that numpy arrays
    and torch tensors share, so the Zoom-to-Learn model (torch, exported to ONNX) applies the
    very same curve: 12.92 x below 0.0031308, else 1.055 x^(1/2.4) - 0.055."""
    low = x <= 0.0031308
    return low * (12.92 * x) + ~low * (1.055 * x.clip(0.0031308, None) ** (1 / 2.4) - 0.055)


def cfa_channels(pattern: str) -> np.ndarray:
    """(2, 2) int array: the RGB channel (0, 1, 2) sampled at each position of the CFA tile."""
    if pattern not in CFA_PATTERNS:
        raise ValueError(f"unknown CFA pattern {pattern!r}; expected one of {CFA_PATTERNS}")
    return np.array([CHANNEL_OF[c] for c in pattern]).reshape(2, 2)


def mosaic(rgb: np.ndarray, pattern: str = "RGGB") -> np.ndarray:
    """Sample an (H, W, 3) image through a Bayer CFA: out[y, x] = rgb[y, x, cfa[y % 2, x % 2]]."""
    channels = cfa_channels(pattern)
    h, w = rgb.shape[:2]
    index = np.tile(channels, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
    return np.take_along_axis(rgb, index[:, :, None], axis=2)[:, :, 0].astype(np.float32)


def _rationals(values, denominator: int = 1_000_000) -> list[int]:
    out: list[int] = []
    for value in np.ravel(values):
        out += [int(round(float(value) * denominator)), denominator]
    return out


def write_dng(path: str | os.PathLike, raw: np.ndarray, *, pattern: str = "RGGB",
              black_level: int = 256, white_level: int = 4095,
              as_shot_neutral: tuple[float, float, float] = (1.0, 1.0, 1.0),
              color_matrix: np.ndarray = XYZ_TO_SRGB, focal_mm: float | None = None,
              focal_35mm: float | None = None, make: str = "nodegraph",
              model: str = "unprocessed") -> None:
    """Write a uint16 Bayer mosaic ``raw`` (H, W) as a minimal uncompressed DNG 1.4 file.

    The tags are those LibRaw needs to decode it: CFA layout and pattern, BlackLevel,
    WhiteLevel, ColorMatrix1 (XYZ -> camera, D65), AsShotNeutral (the camera's response to
    white, i.e. the reciprocal white-balance gains), and optionally FocalLength and
    FocalLengthIn35mmFilm in IFD0. Written with tifffile (``extratags``).
    """
    import tifffile  # only writers of DNG files need it at import time

    raw = np.asarray(raw)
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"a DNG mosaic must be uint16 (H, W), got {raw.dtype} {raw.shape}")
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),                      # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),                      # DNGBackwardVersion
        (50708, "s", 0, f"{make} {model}", True),                 # UniqueCameraModel
        (271, "s", 0, make, True),                                # Make
        (272, "s", 0, model, True),                               # Model
        (33421, "H", 2, (2, 2), True),                            # CFARepeatPatternDim
        (33422, "B", 4, tuple(int(c) for c in cfa_channels(pattern).ravel()), True),  # CFAPattern
        (50710, "B", 3, (0, 1, 2), True),                         # CFAPlaneColor: R, G, B
        (50711, "H", 1, 1, True),                                 # CFALayout: rectangular
        (50714, "I", 1, int(black_level), True),                  # BlackLevel
        (50717, "I", 1, int(white_level), True),                  # WhiteLevel
        (50721, "2i", 9, _rationals(color_matrix), True),         # ColorMatrix1
        (50778, "H", 1, 21, True),                                # CalibrationIlluminant1: D65
        (50728, "2I", 3, _rationals(as_shot_neutral), True),      # AsShotNeutral
    ]
    if focal_mm:
        tags.append((37386, "2I", 1, _rationals([focal_mm], 1000), True))  # FocalLength
    if focal_35mm:
        tags.append((41989, "H", 1, int(round(focal_35mm)), True))        # FocalLengthIn35mmFilm
    tifffile.imwrite(os.fspath(path), raw, photometric=32803, subfiletype=0, extratags=tags)


def unprocessed_dng_mosaic(srgb: np.ndarray, *, wb_gains=(2.0, 1.0, 1.6), pattern: str = "RGGB",
                           black_level: int = 256, white_level: int = 4095,
                           noise_sigma: float = 0.0, rng: np.random.Generator | None = None
                           ) -> np.ndarray:
    """uint16 raw samples of an sRGB image as a camera whose colour space is linear sRGB.

    Inverse of the path LibRaw takes back: sRGB curve undone, white balance undone
    (divide by ``wb_gains``, so a white surface reads 1/gains), mosaicked, optional Gaussian
    noise (sigma in units of the white-minus-black range), then scaled to
    ``black + v * (white - black)`` and rounded.
    """
    linear = srgb_to_linear(srgb) / np.asarray(wb_gains, dtype=np.float32)
    samples = mosaic(linear, pattern)
    if noise_sigma > 0:
        samples = samples + (rng or np.random.default_rng(0)).normal(0.0, noise_sigma, samples.shape)
    span = white_level - black_level
    return np.rint(black_level + np.clip(samples, 0.0, 1.0) * span).astype(np.uint16)
