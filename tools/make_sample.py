"""Build the bundled HZSR sample pair nodes/hzsr/sample/{wide,tele}.jpg.

Source: the Middlebury 2014 'Motorcycle' rectified stereo pair as shipped (4x downsampled,
741x500) in scikit-image (skimage/data/motorcycle_left.png, motorcycle_right.png).

* W (wide.jpg): the left view's whole frame (740x500, the odd column dropped), blurred
  (Gaussian sigma 0.6 px) and 2x2 box-downsampled to 370x250, plus Gaussian noise of
  sigma 2 (8-bit levels): a wide camera with half the resolution.
* T (tele.jpg): the right view's central 370x250 region at full resolution, covering W's
  central 1/2 field of view (zoom ratio 2), seen from the second camera position, so the
  pair has real parallax and occlusions like a phone's W/T pair.

Both carry EXIF FocalLengthIn35mmFilm (W 26 mm, T 52 mm) so hzsr.ratio reads ratio 2.
Run from the repository root: python tools/make_sample.py
"""
from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image
from skimage import data

OUT_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "nodes", "hzsr", "sample")
RATIO = 2
FOCAL_WIDE_MM, FOCAL_TELE_MM = 26, 52
JPEG_QUALITY = 92
SEED = 2014


def make_pair() -> tuple[np.ndarray, np.ndarray]:
    """(wide, tele) uint8 RGB arrays as described in the module doc."""
    left, right, _ = data.stereo_motorcycle()
    h, w = left.shape[:2]
    h, w = h - h % RATIO, w - w % RATIO
    frame = cv2.GaussianBlur(left[:h, :w].astype(np.float32), (0, 0), 0.6,
                             borderType=cv2.BORDER_REFLECT_101)
    wide = frame.reshape(h // RATIO, RATIO, w // RATIO, RATIO, 3).mean(axis=(1, 3))
    wide += np.random.default_rng(SEED).normal(0.0, 2.0, wide.shape)
    th, tw = h // RATIO, w // RATIO
    y0, x0 = (h - th) // 2, (w - tw) // 2
    tele = right[y0:y0 + th, x0:x0 + tw]
    return np.clip(np.rint(wide), 0, 255).astype(np.uint8), np.ascontiguousarray(tele)


def save_jpeg(pixels: np.ndarray, path: str, focal_35mm: int) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = focal_35mm  # Exif sub-IFD: FocalLengthIn35mmFilm
    Image.fromarray(pixels).save(path, quality=JPEG_QUALITY, exif=exif)


def main() -> None:
    wide, tele = make_pair()
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, pixels, focal in (("wide.jpg", wide, FOCAL_WIDE_MM), ("tele.jpg", tele, FOCAL_TELE_MM)):
        path = os.path.normpath(os.path.join(OUT_DIR, name))
        save_jpeg(pixels, path, focal)
        print(f"{path}: {pixels.shape[1]}x{pixels.shape[0]}, {os.path.getsize(path)} bytes, "
              f"FocalLengthIn35mmFilm {focal} mm")


if __name__ == "__main__":
    main()
