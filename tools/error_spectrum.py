"""Where in frequency an output's error lies against a case's GT, next to the bicubic baseline's.

    python tools/error_spectrum.py CASE_DIR OUTPUT.png [OUTPUT2.png ...]

CASE_DIR is an eval case with ``gt.png`` (a dev case, or a pseudo-GT case that
``nodegraph eval --pseudo-gt K --out-dir D`` wrote under ``D/pseudo_gt_xK/``); each OUTPUT is
the pipeline's output for it. On the luminance of the largest box inside the T-covered
pixels (``tele_visible_mask.png``, 8 px border left out), Hann-windowed, the error's power
spectrum is summed over rings of radial frequency (a partition of the error energy, by
Parseval), each printed as a percentage of the bicubic baseline's whole error energy.
Frequencies are fractions of the *output* grid's Nyquist; W's own Nyquist lies at 1/zoom.

A row below the bicubic row in a band is the gain there; above it, error the output adds
in a band the baseline already had right. docs/real_pairs.md reads the real pairs this way.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from nodegraph.nodes.ops.metrics import bicubic_crop, luma8

EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5)
BORDER = 8


def read_rgb8(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"error: cannot read {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def scored_box(case_dir: Path, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The bounding box of the T-covered pixels (all of the frame without a mask), less the border."""
    covered = np.ones(shape, bool)
    mask_path = case_dir / "tele_visible_mask.png"
    if mask_path.exists():
        covered = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
    inner = np.zeros(shape, bool)
    inner[BORDER:-BORDER, BORDER:-BORDER] = True
    rows, cols = np.nonzero(covered & inner)
    if len(rows) == 0:
        raise SystemExit(f"error: {case_dir}: no T-covered pixel to score")
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def ring_energy(error: np.ndarray) -> np.ndarray:
    """The Hann-windowed error's power summed over the rings EDGES (fractions of Nyquist)."""
    h, w = error.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2((error - error.mean()) * window)) ** 2
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]) / 0.5
    return np.array([power[(radius >= lo) & (radius < hi)].sum()
                     for lo, hi in zip(EDGES[:-1], EDGES[1:])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case_dir", type=Path)
    parser.add_argument("outputs", type=Path, nargs="+")
    args = parser.parse_args()
    gt8 = read_rgb8(args.case_dir / "gt.png")
    info = json.loads((args.case_dir / "case.json").read_text())
    size = (gt8.shape[1], gt8.shape[0])
    bicubic8 = bicubic_crop(read_rgb8(args.case_dir / "wide.png"), tuple(info["crop_box_in_wide"]), size)
    box = scored_box(args.case_dir, gt8.shape[:2])
    gt = luma8(gt8)[box].astype(np.float64)
    rows = {"bicubic": ring_energy(gt - luma8(bicubic8)[box])}
    for path in args.outputs:
        output8 = read_rgb8(path)
        if output8.shape != gt8.shape:
            raise SystemExit(f"error: {path} is {output8.shape[1::-1]}, gt.png {gt8.shape[1::-1]}")
        rows[str(path)] = ring_energy(gt - luma8(output8)[box])
    total = rows["bicubic"].sum()
    print(f"{args.case_dir.name}: error energy per band, % of bicubic's total "
          f"(W's Nyquist at {1 / float(info['zoom_ratio']):.2f})")
    print("| output | " + " | ".join(f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(EDGES[:-1], EDGES[1:]))
          + " | total |")
    print("|---|" + "---|" * len(EDGES))
    for name, energy in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * e / total:.1f}" for e in energy)
              + f" | {100 * energy.sum() / total:.1f} |")


if __name__ == "__main__":
    main()
