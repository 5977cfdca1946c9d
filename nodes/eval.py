"""``nodegraph eval PIPELINE.yaml CASES_DIR [--set ...] [--report FILE.json] [--out-dir DIR]
[--workers N] [--scheduler ADDRESS] [--retries K]`` (SPEC section 3).

Runs the pipeline on every case folder (``wide.png``, ``tele.png``, ``case.json`` and, when a
ground truth exists, ``gt.png`` and often ``tele_visible_mask.png``) with
``ratio = zoom = zoom_ratio``, and reports Y-PSNR and SSIM over all, visible and occluded
pixels for the pipeline and for bicubic upsampling of W's crop measured in the same run, plus
seconds. The pipeline must have the graph inputs ``wide``, ``tele``, ``ratio``, ``zoom`` and
``out`` (the written output is what is scored).

The cases run through the batch machinery (:mod:`nodegraph.batch`: Dask workers, resume, the
same options as ``nodegraph batch``). A case that cannot be used (invalid ``case.json``, a
missing or non-numeric ``zoom_ratio``, a missing image) or whose run or scoring fails (a
corrupt image, a gt.png of the wrong size) is a report row with its reason; the other cases
are still scored, and the exit code is 1.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nodegraph.batch import OK, SKIPPED, Item, add_batch_options, batch_options, load_pipeline, one_line, run_batch
from nodegraph.errors import InputError
from nodegraph.files import check_output_options, write_atomic
from nodegraph.nodes.ops.metrics import BORDER, bicubic_crop, inner, luma8, psnr, ssim
from nodegraph.nodes.ops.pseudo_gt import write_pseudo_gt_case
from nodegraph.registry import default_registry

REGIONS = ("all", "visible", "occluded")


def saved_output(out_dir: str | Path, case: str) -> Path:
    """Where ``nodegraph eval --out-dir OUT_DIR`` saved a case's output (the batch layout:
    OUT_DIR/<case>/out.png, for a pipeline whose ``out`` is a PNG as in hzsr.yaml)."""
    return Path(out_dir) / case / "out.png"


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


@dataclass(frozen=True)
class EvalCase:
    """One evaluated pair: the settings the pipeline runs with and how its output is scored.

    ``score`` takes the 8-bit RGB output and returns the fields of the case's report entry
    (``reference`` and, when there is one, ``pipeline`` and ``bicubic`` scores); it raises
    InputError when the case cannot be scored. ``problem`` says why the case cannot run at
    all. Other ways to build cases (another protocol, another folder layout) make their own
    EvalCase objects and go through :func:`evaluate` the same way.
    """

    name: str
    settings: tuple[str, ...]
    zoom_ratio: float | None
    score: Callable[[np.ndarray], dict[str, Any]]
    problem: str | None = None


def _no_score(output8: np.ndarray) -> dict[str, Any]:
    raise InputError("no score for a case that did not run")


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite JSON number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def reference_case(case_dir: Path) -> EvalCase:
    """The case in ``case_dir`` (SPEC section 3), or one whose ``problem`` says why it is unusable."""
    def broken(problem: str, ratio: float | None = None) -> EvalCase:
        return EvalCase(case_dir.name, (), ratio, _no_score, problem)

    try:
        info = json.loads((case_dir / "case.json").read_text())
    except (OSError, ValueError) as error:
        return broken(f"case.json: {one_line(str(error))}")
    if not isinstance(info, dict):
        return broken("case.json: not a JSON object")
    ratio = _finite(info.get("zoom_ratio"))
    if ratio is None or ratio <= 0:
        return broken(f"case.json: zoom_ratio must be a positive number, got {info.get('zoom_ratio')!r:.40}")
    missing = [name for name in ("wide.png", "tele.png") if not (case_dir / name).is_file()]
    if missing:
        return broken(f"missing {' and '.join(missing)}", ratio)
    has_gt = (case_dir / "gt.png").exists()
    box = info.get("crop_box_in_wide")
    if has_gt and not (isinstance(box, list) and len(box) == 4 and all(_finite(v) is not None for v in box)):
        return broken("case.json: crop_box_in_wide must be [x0, y0, x1, y1] (needed with gt.png)", ratio)
    # the field-of-view prior: the zoom unless case.json says otherwise (null = unknown)
    fov_ratio = _finite(info["fov_ratio"]) if "fov_ratio" in info else ratio
    settings = (f"wide={case_dir / 'wide.png'}", f"tele={case_dir / 'tele.png'}",
                *([f"ratio={fov_ratio}"] if fov_ratio is not None else []), f"zoom={ratio}")
    score = (lambda output8: _score_against_gt(case_dir, tuple(box), output8)) if has_gt \
        else (lambda output8: {"reference": False})
    return EvalCase(case_dir.name, settings, ratio, score)


def _score_against_gt(case_dir: Path, box: tuple[float, float, float, float],
                      output8: np.ndarray) -> dict[str, Any]:
    """Scores of the output and of the bicubic baseline against ``gt.png`` (SPEC section 3)."""
    gt8 = _read_rgb8(case_dir / "gt.png")
    if output8.shape != gt8.shape:
        raise InputError(f"{case_dir.name}: pipeline output {output8.shape[1::-1]} is not the size "
                         f"of gt.png {gt8.shape[1::-1]}")
    bicubic8 = bicubic_crop(_read_rgb8(case_dir / "wide.png"), box, (gt8.shape[1], gt8.shape[0]))
    regions = _regions(case_dir, gt8.shape[:2])
    return {"reference": True, "pipeline": _scores(output8, gt8, regions),
            "bicubic": _scores(bicubic8, gt8, regions)}


def evaluate(pipeline: str, cases: list[EvalCase], out_dir: Path, settings: list[str],
             **batch: Any) -> list[dict[str, Any]]:
    """Run every usable case through :func:`nodegraph.batch.run_batch` and score it.

    One report entry per case, in order: ``status`` "ok" with the scores, or "failed" with
    ``error`` (the case could not run, the run failed, or the output could not be scored).
    ``batch`` are run_batch's options (workers, scheduler, retries, progress).
    """
    items = [Item(case.name, case.settings, case.problem) for case in cases]
    result = run_batch(pipeline, items, out_dir, settings=settings, **batch)
    entries = []
    for case, record in zip(cases, result.records):
        entry: dict[str, Any] = {"case": case.name, "zoom_ratio": case.zoom_ratio,
                                 "seconds": record.seconds, "status": "ok"}
        try:
            if record.status not in (OK, SKIPPED):
                raise InputError(record.error or record.status)
            if "out" not in record.outputs:
                raise InputError("the pipeline wrote no output")
            output_path = result.out_dir / record.outputs["out"]
            entry.update(output=str(output_path), warnings=record.warnings)
            entry.update(case.score(_read_rgb8(output_path)))
        except InputError as error:
            entry.update(status="failed", error=one_line(str(error)))
        except Exception as error:  # a case that cannot be scored is its own row, not the end
            entry.update(status="failed", error=one_line(f"scoring failed: {type(error).__name__}: {error}"))
        entries.append(entry)
    return entries


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def summarize(cases: list[dict[str, Any]]) -> dict[str, Any]:
    ran = [c for c in cases if c["status"] == "ok"]
    scored = [c for c in ran if c.get("reference")]
    summary: dict[str, Any] = {"cases": len(cases), "failed": len(cases) - len(ran),
                               "with_reference": len(scored),
                               "seconds_mean": _mean([c["seconds"] for c in ran])}
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
        if c["status"] != "ok":
            rows.append(row + [f"failed: {c['error']}"] + [""] * (len(header) - 2))
            continue
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
    if args.pseudo_gt:
        case_dirs = [write_pseudo_gt_case(d, out_dir / f"pseudo_gt_x{args.pseudo_gt}", args.pseudo_gt)
                     for d in case_dirs]
        print(f"pseudo GT x{args.pseudo_gt} (DCSR): 'visible' = pixels T covers, 'occluded' = "
              "pixels it does not", file=sys.stderr)
    graph = load_pipeline(args.pipeline, args.set, default_registry())
    missing = sorted({"wide", "tele", "ratio", "zoom", "out"} - set(graph.inputs))
    if missing:
        raise InputError(f"{args.pipeline}: nodegraph eval needs the graph inputs wide, tele, ratio, "
                         f"zoom and out; missing: {', '.join(missing)}")
    cases = evaluate(args.pipeline, [reference_case(d) for d in case_dirs], out_dir, list(args.set),
                     **batch_options(args))
    summary = summarize(cases)
    print(f"pipeline: {args.pipeline}  (Y-PSNR dB, border {BORDER} px; SSIM on visible pixels)")
    print(table(cases, summary))
    if args.report:
        report = {"pipeline": str(args.pipeline), "cases_dir": str(cases_dir),
                  "settings": list(args.set), "cases": cases, "summary": summary}
        write_atomic(args.report, json.dumps(report, indent=2).encode())
        print(f"report: {args.report}", file=sys.stderr)
    failed = [c["case"] for c in cases if c["status"] != "ok"]
    if failed:
        print(f"{len(failed)} of {len(cases)} case(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a pipeline on a folder of cases")
    parser.add_argument("pipeline", help="graph file (YAML) with inputs wide, tele, ratio, zoom, out")
    parser.add_argument("cases_dir", help="folder of case folders (case.json, wide.png, tele.png, "
                                          "optionally gt.png and tele_visible_mask.png)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="bind a graph input or node parameter for every case; repeatable")
    parser.add_argument("--report", metavar="FILE.json", help="write all numbers as JSON")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="where outputs are saved, one folder per case, with summary.json "
                             "(default: eval_outputs/PIPELINE); a repeated command reuses the "
                             "outputs of unchanged cases")
    parser.add_argument("--pseudo-gt", type=int, metavar="K",
                        help="score every pair by the DCSR protocol: W and T downsampled by K, "
                             "W's full-resolution centre as GT, zoom K")
    add_batch_options(parser)
    parser.set_defaults(handler=cmd_eval)
