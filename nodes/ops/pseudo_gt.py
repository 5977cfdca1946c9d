"""Pseudo ground truth for W/T pairs without one (the DCSR protocol, SPEC section 3).

Both views are downsampled by an integer K (area average); W's own full-resolution central
1/K region is the GT of zoom K on the downsampled pair: it has exactly the output's pixel
size and field of view. The pixels T covers are those of the GT grid inside T's footprint.

What such a GT favours: it is W's own optics (W's blur, noise, colour and processing at
full resolution), so it rewards restoring W's band after a K-fold downsampling and T's
detail only as far as W itself resolved it; detail finer than W's, colours that follow T's
processing and T's parallax-shifted view all count as errors. It ranks methods by how well
they recover W-like detail, not by how much of T's detail they transfer.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from nodegraph.errors import InputError
from nodegraph.nodes.ops.geometry import central_rect, working_to_tele_matrix


def pseudo_gt_case(wide: np.ndarray, tele: np.ndarray, k: int, footprint: np.ndarray) -> dict:
    """Arrays of the pseudo-GT case of factor ``k`` (module doc).

    wide (H, W, C), tele (h, w, C) of any dtype; ``footprint`` the 3x3 map of pixel-edge
    coordinates T -> W. W is first trimmed symmetrically to sides that are multiples of 2k,
    so that the downsampling and the central GT region fall on whole pixels. Returns
    ``wide`` (H'/k, W'/k), ``tele`` (h/k, w/k), ``gt`` (H'/k, W'/k) W's full-resolution
    centre, ``tele_mask`` uint8 on the GT grid (255 inside T's footprint, 0 outside) and
    ``crop_box_in_wide`` (the GT's region in the downsampled W: its central 1/k).
    """
    if int(k) != k or k < 2:
        raise InputError(f"--pseudo-gt must be an integer >= 2, got {k!r}")
    k = int(k)
    height, width = wide.shape[:2]
    trimmed_w, trimmed_h = width // (2 * k) * 2 * k, height // (2 * k) * 2 * k
    if trimmed_w < 4 * k or trimmed_h < 4 * k:
        raise InputError(f"wide {width}x{height} is too small for --pseudo-gt {k}")
    x0, y0 = (width - trimmed_w) // 2, (height - trimmed_h) // 2
    wide = wide[y0:y0 + trimmed_h, x0:x0 + trimmed_w]
    to_trimmed = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ footprint
    small_wh = (trimmed_w // k, trimmed_h // k)
    gt_rect = central_rect(trimmed_w, trimmed_h, k)  # whole pixels: sides are multiples of 2k
    gx0, gy0 = int(gt_rect[0]), int(gt_rect[1])
    gt = wide[gy0:gy0 + small_wh[1], gx0:gx0 + small_wh[0]]
    th, tw = tele.shape[:2]
    tele_small = cv2.resize(tele, (max(1, round(tw / k)), max(1, round(th / k))),
                            interpolation=cv2.INTER_AREA)
    to_tele = working_to_tele_matrix(gt_rect, small_wh, to_trimmed)
    inside = cv2.warpPerspective(np.full((th, tw), 255, np.uint8), to_tele, small_wh,
                                 flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return {"wide": cv2.resize(wide, small_wh, interpolation=cv2.INTER_AREA),
            "tele": tele_small, "gt": np.ascontiguousarray(gt), "tele_mask": inside,
            "crop_box_in_wide": list(central_rect(small_wh[0], small_wh[1], k))}


def write_pseudo_gt_case(case_dir: Path, out_root: Path, k: int) -> Path:
    """Build the pseudo-GT case of ``case_dir`` (its wide.png, tele.png) under ``out_root``.

    T's footprint comes from the pipeline's own registration (ops.matching.register_tele)
    on the full-resolution pair. The case folder is in SPEC section 3's format: its
    ``tele_visible_mask.png`` marks the pixels T covers, and ``fov_ratio`` null leaves the
    field-of-view ratio to the pipeline.
    """
    from nodegraph.nodes.ops.matching import register_tele

    def read(name: str) -> np.ndarray:
        image = cv2.imread(str(case_dir / name), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{case_dir / name}: cannot read it")
        return image

    wide, tele = read("wide.png"), read("tele.png")
    found = register_tele(wide.astype(np.float32)[..., ::-1] / 255.0,
                          tele.astype(np.float32)[..., ::-1] / 255.0)
    if not found.agrees:
        raise InputError(f"{case_dir}: cannot register tele.png onto wide.png for the pseudo GT "
                         f"(correlation {found.correlation:.2f})")
    case = pseudo_gt_case(wide, tele, k, found.matrix)
    out = out_root / case_dir.name
    out.mkdir(parents=True, exist_ok=True)
    for name, key in (("wide.png", "wide"), ("tele.png", "tele"), ("gt.png", "gt"),
                      ("tele_visible_mask.png", "tele_mask")):
        cv2.imwrite(str(out / name), case[key])
    gt_h, gt_w = case["gt"].shape[:2]
    (out / "case.json").write_text(json.dumps({
        "name": case_dir.name, "kind": f"pseudo_gt_x{k}", "source": str(case_dir),
        "zoom_ratio": k, "fov_ratio": None, "crop_box_in_wide": case["crop_box_in_wide"],
        "output_size_wh": [gt_w, gt_h], "has_gt": True,
        "notes": "DCSR pseudo GT: W and T downsampled by k, W's full-resolution centre as GT; "
                 "tele_visible_mask = T's footprint (registered) on the GT grid"}, indent=2))
    return out
