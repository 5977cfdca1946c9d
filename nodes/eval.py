"""``nodegraph eval PIPELINE.yaml CASES_DIR [--set ...] [--report FILE.json]`` (SPEC section 3).

Runs the pipeline on every case folder (``wide.png``, ``tele.png``, ``case.json`` and, when a
ground truth exists, ``gt.png`` and often ``tele_visible_mask.png``) with
``ratio = zoom = zoom_ratio``, and reports Y-PSNR and SSIM over all, visible and occluded
pixels for the pipeline and for bicubic upsampling of W's crop measured in the same run, plus
seconds. The pipeline must have the graph inputs ``wide``, ``tele``, ``ratio``, ``zoom``,
``out`` and the graph output ``image``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nodegraph.cli import load_for_run
from nodegraph.errors import InputError
from nodegraph.execute import plan, run_plan
from nodegraph.files import check_output_options
from nodegraph.nodes.ops.metrics import (
    BORDER,
    bicubic_crop,
    inner,
    luma8,
    psnr,
    quantize8,
    ssim,
)
from nodegraph.registry import default_registry

REGIONS = ("all", "visible", "occluded")


def _read_rgb8(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _regions(case_dir: Path, shape: tuple[int, int]) -> dict[str, np.ndarray | None]:
    keep = inner(shape)
    mask_path = case_dir / "tele_visible_mask.png"
    if not mask_path.exists():
        return {"all": keep, "visible": None, "occluded": None}
    visibility = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if visibility is None or visibility.shape != shape:
        raise InputError(f"{mask_path}: unreadable or not the size of gt.png {shape[::-1]}")
    return {"all": keep, "visible": keep & (visibility == 255), "occluded": keep & (visibility == 0)}


def _scores(output8: np.ndarray, gt8: np.ndarray, regions: dict[str, np.ndarray | None]
            ) -> dict[str, dict[str, float | None]]:
    y, y_gt = luma8(output8), luma8(gt8)
    result = {}
    for name, region in regions.items():
        if region is None or not region.any():
            result[name] = {"psnr": None, "ssim": None, "pixels": 0}
        else:
            result[name] = {"psnr": psnr(y, y_gt, region), "ssim": ssim(y, y_gt, region),
                            "pixels": int(region.sum())}
    return result


def evaluate_case(pipeline: str, case_dir: Path, settings: list[str], out_dir: Path) -> dict[str, Any]:
    """Run the pipeline on one case and score it and the bicubic baseline."""
    info = json.loads((case_dir / "case.json").read_text())
    ratio = float(info["zoom_ratio"])
    output_path = out_dir / f"{case_dir.name}.png"
    registry = default_registry()
    graph = load_for_run(pipeline, [f"wide={case_dir / 'wide.png'}", f"tele={case_dir / 'tele.png'}",
                                    f"ratio={ratio}", f"zoom={ratio}", f"out={output_path}",
                                    *settings], registry)
    started = time.perf_counter()
    result = run_plan(plan(graph, registry))
    seconds = time.perf_counter() - started
    output8 = quantize8(result.outputs["image"])
    entry: dict[str, Any] = {"case": case_dir.name, "zoom_ratio": ratio, "seconds": seconds,
                             "output": str(output_path),
                             "warnings": [w for r in result.records.values() for w in r.warnings]}
    gt_path = case_dir / "gt.png"
    if not gt_path.exists():
        entry["reference"] = False
        return entry
    gt8 = _read_rgb8(gt_path)
    if output8.shape != gt8.shape:
        raise InputError(f"{case_dir.name}: pipeline output {output8.shape[1::-1]} is not the size "
                         f"of gt.png {gt8.shape[1::-1]}")
    bicubic8 = bicubic_crop(_read_rgb8(case_dir / "wide.png"), tuple(info["crop_box_in_wide"]),
                            (gt8.shape[1], gt8.shape[0]))
    regions = _regions(case_dir, gt8.shape[:2])
    entry.update(reference=True, pipeline=_scores(output8, gt8, regions),
                 bicubic=_scores(bicubic8, gt8, regions))
    return entry


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def summarize(cases: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [c for c in cases if c.get("reference")]
    summary: dict[str, Any] = {"cases": len(cases), "with_reference": len(scored),
                               "seconds_mean": _mean([c["seconds"] for c in cases])}
    for region in REGIONS:
        for metric in ("psnr", "ssim"):
            pipe = [c["pipeline"][region][metric] for c in scored]
            base = [c["bicubic"][region][metric] for c in scored]
            gains = [p - b if p is not None and b is not None else None for p, b in zip(pipe, base)]
            summary[f"{region}_{metric}"] = {"pipeline": _mean(pipe), "bicubic": _mean(base),
                                             "gain_mean": _mean(gains),
                                             "gain_min": min((g for g in gains if g is not None),
                                                             default=None)}
    return summary


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(cases: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Plain-text (Markdown) table of the results."""
    header = ["case"]
    for region in REGIONS:
        header += [f"PSNR {region} (bic)", "gain"]
    header += ["SSIM vis (bic)", "s"]
    rows = [header]
    for c in cases:
        row = [c["case"]]
        if c.get("reference"):
            for region in REGIONS:
                p, b = c["pipeline"][region]["psnr"], c["bicubic"][region]["psnr"]
                row += [f"{_fmt(p)} ({_fmt(b)})", _fmt(p - b if p is not None else None, 2)]
            vis = "visible" if c["pipeline"]["visible"]["ssim"] is not None else "all"
            row += [f"{_fmt(c['pipeline'][vis]['ssim'], 4)} ({_fmt(c['bicubic'][vis]['ssim'], 4)})"]
        else:
            row += ["no reference", ""] + ["", ""] * 2 + [""]
        rows.append(row + [f"{c['seconds']:.2f}"])
    mean = ["mean"]
    for region in REGIONS:
        s = summary[f"{region}_psnr"]
        mean += [f"{_fmt(s['pipeline'])} ({_fmt(s['bicubic'])})", _fmt(s["gain_mean"])]
    s = summary["visible_ssim"]
    mean += [f"{_fmt(s['pipeline'], 4)} ({_fmt(s['bicubic'], 4)})", _fmt(summary["seconds_mean"])]
    rows.append(mean)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    out_dir = Path(args.out_dir or Path("eval_outputs") / Path(args.pipeline).stem)
    check_output_options({"--out-dir": out_dir, "--report": args.report},
                         folders=("--out-dir",), suffixes={"--report": (".json",)})
    cases_dir = Path(args.cases_dir)
    if not cases_dir.is_dir():
        raise InputError(f"cases folder {cases_dir}: no such folder (the dev cases are not part "
                         "of the package: give a folder of case folders, each with case.json, "
                         "wide.png, tele.png and optionally gt.png)")
    case_dirs = sorted(p for p in cases_dir.iterdir() if (p / "case.json").exists())
    if not case_dirs:
        raise InputError(f"{cases_dir}: no case folders (each needs case.json, wide.png, tele.png)")
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for case_dir in case_dirs:
        print(f"{case_dir.name} ...", file=sys.stderr, flush=True)
        cases.append(evaluate_case(args.pipeline, case_dir, list(args.set), out_dir))
    summary = summarize(cases)
    print(f"pipeline: {args.pipeline}  (Y-PSNR dB, border {BORDER} px; SSIM on visible pixels)")
    print(table(cases, summary))
    if args.report:
        report = {"pipeline": str(args.pipeline), "cases_dir": str(cases_dir),
                  "settings": list(args.set), "cases": cases, "summary": summary}
        Path(args.report).write_text(json.dumps(report, indent=2))
        print(f"report: {args.report}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a pipeline on a folder of cases")
    parser.add_argument("pipeline", help="graph file (YAML) with inputs wide, tele, ratio, zoom, out")
    parser.add_argument("cases_dir", help="folder of case folders (case.json, wide.png, tele.png, "
                                          "optionally gt.png and tele_visible_mask.png)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="bind a graph input or node parameter for every case; repeatable")
    parser.add_argument("--report", metavar="FILE.json", help="write all numbers as JSON")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="where outputs are saved (default: eval_outputs/PIPELINE)")
    parser.set_defaults(handler=cmd_eval)

