"""Numbers and figures for the model card: validation Y-PSNR, 12 MP speed, example triplets.

``python -m nodegraph.nodes.train.report --data CACHE --work WORKDIR --model MODEL.onnx --docs docs/fusion``
(run from the repository root). Validation patches come from the held-out photos only.
With ``--cases DIR --classical-out DIR --learned-out DIR`` (the ``--out-dir`` folders of two
``nodegraph eval`` runs) it also redraws the side-by-side crops of the dev cases; those are
only looked at, never used to choose anything.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from nodegraph.node import spec_of
from nodegraph.nodes.hzsr import fusion_unet as fu
from nodegraph.nodes.hzsr.fusion_classical import (
    classical_fusion_luminance,
    fusion_classical,
)
from nodegraph.nodes.ops.metrics import psnr
from nodegraph.nodes.ops.onnx_sessions import onnx_session

from .data import load_cache


def classical_fusion(x: np.ndarray) -> np.ndarray:
    """``hzsr.fusion_classical`` with its defaults on cached patches (N, 3, P, P) -> (N, 1, P, P)."""
    defaults = spec_of(fusion_classical).default_params()
    return np.stack([classical_fusion_luminance(p[0], p[1], p[2], defaults["sigma"], defaults["gain"])
                     for p in x])[:, None]


def validation_psnr(model_path: str, data_dir: str | Path) -> dict:
    """Y-PSNR on the validation patches: W upsampled (identity), Ỹ_ref copied, the classical
    fusion and the network; mean over patches, and pooled over the pixels with M_occ < 0.5
    ("visible") and >= 0.5 ("occluded"). Where the cache holds M_blend, also the pipeline's
    output M_blend Y_fusion + (1 - M_blend) Y_src ("blended") for both fusions."""
    x, y = load_cache(data_dir, "val")
    x, y = x.astype(np.float32), y.astype(np.float32)
    session = onnx_session(str(Path(model_path).resolve()), 0)
    fused = {"fusion": session.run(None, fu.network_feed(session)(x))[0],
             "classical": classical_fusion(x)}
    if y.shape[1] > 1:
        m_blend = y[:, 1:2]
        for name in list(fused):
            fused[name + "_blended"] = m_blend * fused[name] + (1 - m_blend) * x[:, :1]
    occ = x[:, 2] > 0.5
    target = y[:, 0].astype(np.float64)

    def mean_psnr(out: np.ndarray) -> float:
        return float(np.mean([psnr(out[i], target[i]) for i in range(len(x))]))

    result = {"patches": len(x),
              "psnr_src": mean_psnr(x[:, 0]),
              "psnr_ref_warped": mean_psnr(x[:, 1]),
              "pooled_psnr_src_visible": psnr(x[:, 0], target, ~occ),
              "pooled_psnr_src_occluded": psnr(x[:, 0], target, occ)}
    for name, out in fused.items():
        result[f"psnr_{name}"] = mean_psnr(out[:, 0])
        result[f"pooled_psnr_{name}_visible"] = psnr(out[:, 0], target, ~occ)
        result[f"pooled_psnr_{name}_occluded"] = psnr(out[:, 0], target, occ)
    return result


def speed_12mp(model_path: str, runs: int = 3, tile: int = 2048, overlap: int = 256,
               threads: int = 0) -> dict:
    """Wall time of the hzsr.fusion_unet node on a 4000 x 3000 image (median of ``runs`` after
    one warm-up), the process's RSS once the inputs exist, and its peak RSS."""
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.random((375, 500, 3), dtype=np.float32), (4000, 3000),
                      interpolation=cv2.INTER_CUBIC)
    src = np.clip(base, 0, 1)
    ref = np.clip(base + 0.05 * rng.standard_normal(base.shape, dtype=np.float32), 0, 1)
    m_occ = (rng.random((3000, 4000), dtype=np.float32) < 0.1).astype(np.float32)
    rss_before_mb = _vm_kb("VmRSS") / 1024
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        fu.fusion_unet(src, ref, m_occ, model=str(model_path), tile=tile, overlap=overlap,
                       threads=threads)
        if i:
            times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "runs_s": times, "tile": tile, "overlap": overlap,
            "rss_with_inputs_mb": rss_before_mb,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _vm_kb(field: str) -> float:
    """A field of /proc/self/status in kB (Linux; 0 elsewhere)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def loss_curve(work_dir: str | Path, out_png: str | Path) -> None:
    """Training L1 (smoothed) and validation L1 vs the identity's, drawn with OpenCV. The
    validation curve is the L1 of the blended output where the log has it (the training L1 is
    then weighted by M_blend), else the plain L1."""
    rows = [json.loads(line) for line in Path(work_dir, "log.jsonl").read_text().splitlines()]
    l1 = np.array([r["l1"] for r in rows])
    smooth = np.convolve(l1, np.ones(101) / 101, mode="valid")
    val = [(r["step"], r["val"].get("l1_blended", r["val"]["l1"]), r["val"]["l1_identity"])
           for r in rows if "val" in r]
    w, h, pad = 800, 400, 40
    img = np.full((h, w, 3), 255, np.uint8)
    lo, hi = min(smooth.min(), min(v[1] for v in val)) * 0.9, max(smooth.max(), val[0][2]) * 1.05
    fx = lambda s: int(pad + (w - 2 * pad) * s / len(rows))  # noqa: E731
    fy = lambda v: int(h - pad - (h - 2 * pad) * (v - lo) / (hi - lo))  # noqa: E731
    pts = np.array([[fx(i + 50), fy(v)] for i, v in enumerate(smooth)], np.int32)
    cv2.polylines(img, [pts], False, (200, 120, 0), 2)
    cv2.polylines(img, [np.array([[fx(s), fy(v)] for s, v, _ in val], np.int32)], False, (0, 0, 220), 2)
    cv2.line(img, (pad, fy(val[0][2])), (w - pad, fy(val[0][2])), (120, 120, 120), 1)
    cv2.putText(img, "train L1 (blue), val L1 of the output (red), of Y_src (grey)", (pad, 25),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    cv2.putText(img, f"steps 0..{len(rows)}; L1 {hi:.4f} (top) .. {lo:.4f}", (pad, h - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.imwrite(str(out_png), img)


def example_figure(model_path: str, data_dir: str | Path, out_png: str | Path, count: int = 4) -> None:
    """Validation patches side by side: Y_src | Ỹ_ref | M_occ | Y_fusion | Y_target."""
    x, y = load_cache(data_dir, "val")
    idx = np.linspace(0, len(x) - 1, count).astype(int)
    x, y = x[idx].astype(np.float32), y[idx].astype(np.float32)
    session = onnx_session(str(Path(model_path).resolve()), 0)
    out = session.run(None, fu.network_feed(session)(x))[0]
    rows = [np.hstack([x[i, 0], x[i, 1], x[i, 2], out[i, 0], y[i, 0]]) for i in range(count)]
    grid = np.clip(np.vstack(rows), 0, 1)
    grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(out_png), (grid * 255 + 0.5).astype(np.uint8))


def dev_case_crops(cases_dir: str | Path, classical_dir: str | Path, learned_dir: str | Path,
                   docs: str | Path, size: int = 192) -> list[Path]:
    """Side-by-side crops (bicubic | classical | learned | ground truth) of every case with a
    gt.png, from the outputs that ``nodegraph eval --out-dir`` saved; the crop is the window
    of the ground truth with the most gradient energy (a textured, informative region)."""
    from nodegraph.nodes.eval import saved_output
    from nodegraph.nodes.ops.geometry import resample_region

    written = []
    for case in sorted(Path(cases_dir).iterdir()):
        if not (case / "gt.png").exists():
            continue
        meta = json.loads((case / "case.json").read_text())
        read = lambda p: cv2.imread(str(p), cv2.IMREAD_COLOR)  # noqa: E731
        gt = read(case / "gt.png")
        wide = read(case / "wide.png").astype(np.float32) / 255
        bicubic = (np.clip(resample_region(wide, meta["crop_box_in_wide"], tuple(meta["output_size_wh"])),
                           0, 1) * 255 + 0.5).astype(np.uint8)
        panels = [bicubic, read(saved_output(classical_dir, case.name)),
                  read(saved_output(learned_dir, case.name)), gt]
        g = cv2.cvtColor(gt, cv2.COLOR_BGR2GRAY).astype(np.float32)
        side = min(size, *g.shape)  # small cases are shown whole along their short side
        energy = cv2.boxFilter(np.abs(cv2.Laplacian(g, cv2.CV_32F)), -1, (side, side), normalize=True)
        half = side // 2
        # window centres that keep the whole window inside the image; top-left = centre - half
        centres = energy[half:g.shape[0] - side + half + 1, half:g.shape[1] - side + half + 1]
        y, x = np.unravel_index(np.argmax(centres), centres.shape)
        crops = [p[y:y + side, x:x + side] for p in panels]
        strip = np.hstack([np.pad(c, ((0, 0), (0, 4), (0, 0)), constant_values=255) for c in crops])
        strip = cv2.resize(strip, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
        out = Path(docs) / f"devcase_{case.name}.png"
        cv2.imwrite(str(out), strip)
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--docs", default="docs/fusion")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", help="evaluation cases folder, for the side-by-side crops")
    ap.add_argument("--classical-out", help="nodegraph eval --out-dir of the classical pipeline")
    ap.add_argument("--learned-out", help="nodegraph eval --out-dir of the learned pipeline")
    args = ap.parse_args(argv)
    if args.cases and not (args.classical_out and args.learned_out):
        ap.error("--cases needs --classical-out and --learned-out")
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    result = {"validation": validation_psnr(args.model, args.data)}
    loss_curve(args.work, docs / "loss_curve.png")
    example_figure(args.model, args.data, docs / "val_examples.png")
    if args.cases:
        result["dev_case_crops"] = [str(p) for p in dev_case_crops(
            args.cases, args.classical_out, args.learned_out, docs)]
    result["speed_12mp"] = speed_12mp(args.model, args.runs)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
