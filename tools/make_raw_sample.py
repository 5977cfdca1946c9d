"""Build the bundled raw sample pair nodes/hzsr/sample_raw/{wide,tele}.dng for pipelines/hzsr_raw.yaml.

Source: the bundled sRGB sample pair nodes/hzsr/sample/{wide,tele}.jpg (Middlebury 2014
Motorcycle, see that folder's README), area-downscaled by 2 (185x125, small files), then
*unprocessed* into the raw data of a camera whose colour space is linear sRGB
(nodegraph.nodes.ops.raw.unprocessed_dng_mosaic: inverse sRGB curve, inverse white balance
with gains R 2.0, B 1.6, RGGB mosaic, 12-bit samples over a black level of 256) and written
as DNG (write_dng: AsShotNeutral 1/gains, FocalLengthIn35mmFilm W 26 mm, T 52 mm).

Run from the repository root: python tools/make_raw_sample.py
"""
from __future__ import annotations

import os

import cv2

from nodegraph.nodes.image_io import read_image
from nodegraph.nodes.ops.raw import unprocessed_dng_mosaic, write_dng

SAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "nodes", "hzsr", "sample")
OUT_DIR = os.path.join(os.path.dirname(__file__), os.pardir, "nodes", "hzsr", "sample_raw")
GAINS = (2.0, 1.0, 1.6)
FOCALS_35MM = {"wide": 26, "tele": 52}


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, focal in FOCALS_35MM.items():
        srgb, _ = read_image(os.path.join(SAMPLE, f"{name}.jpg"))
        srgb = cv2.resize(srgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        path = os.path.normpath(os.path.join(OUT_DIR, f"{name}.dng"))
        write_dng(path, unprocessed_dng_mosaic(srgb, wb_gains=GAINS),
                  as_shot_neutral=tuple(1.0 / g for g in GAINS), focal_35mm=focal)
        print(f"{path}: {srgb.shape[1]}x{srgb.shape[0]}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
