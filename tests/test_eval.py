"""nodegraph eval: every usable case is scored, every bad case is a named row, the report is written."""
import importlib.util
import json
from pathlib import Path

import cv2

from nodegraph.cli import main

REPO = Path(__file__).resolve().parent.parent
HZSR = str(REPO / "pipelines" / "hzsr.yaml")


def _make_cases(folder: Path) -> None:
    """Cases from sample-derived pairs: W's central half as gt (the size of the output)."""
    spec = importlib.util.spec_from_file_location("make_pairs", REPO / "tools" / "make_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pairs = module.make_pairs(folder, count=7, corrupt=1)  # pair07's wide.png is cut off
    for pair in pairs:
        wide = cv2.imread(str(pair / "wide.png"))
        if wide is None:
            wide = cv2.imread(str(pairs[0] / "wide.png"))
        height, width = wide.shape[:2]
        box = [width / 4, height / 4, 3 * width / 4, 3 * height / 4]
        gt = cv2.resize(wide[height // 4: 3 * height // 4, width // 4: 3 * width // 4], (width, height),
                        interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(pair / "gt.png"), gt)
        (pair / "case.json").write_text(json.dumps({"zoom_ratio": 2, "crop_box_in_wide": box}))
    cv2.imwrite(str(pairs[2] / "gt.png"), gt[:100, :100])  # pair03: gt of the wrong size
    (pairs[3] / "tele.png").unlink()  # pair04: no tele
    (pairs[4] / "case.json").write_text('{"zoom_ratio": "two"}')  # pair05: non-numeric zoom
    (pairs[5] / "case.json").write_text('{"zoom_ratio": 2,')  # pair06: invalid JSON


def test_eval_scores_good_cases_and_reports_each_bad_one(tmp_path, dask_scheduler, capsys):
    _make_cases(tmp_path / "cases")
    report = tmp_path / "report.json"
    code = main(["eval", HZSR, str(tmp_path / "cases"), "--report", str(report),
                 "--out-dir", str(tmp_path / "out"), "--scheduler", dask_scheduler])
    assert code == 1
    data = json.loads(report.read_text())
    rows = {row["case"]: row for row in data["cases"]}
    assert [name for name, row in rows.items() if row["status"] == "ok"] == ["pair01", "pair02"]
    for name in ("pair01", "pair02"):
        assert rows[name]["reference"] and 15 < rows[name]["pipeline"]["all"]["psnr"] < 60
        assert Path(rows[name]["output"]).is_file()
    assert "not the size of gt.png" in rows["pair03"]["error"]
    assert rows["pair04"]["error"] == "missing tele.png"
    assert "zoom_ratio must be a positive number, got 'two'" in rows["pair05"]["error"]
    assert rows["pair06"]["error"].startswith("case.json: ")
    assert "pair07/wide.png" in rows["pair07"]["error"]
    assert data["summary"]["failed"] == 5 and data["summary"]["with_reference"] == 2
    captured = capsys.readouterr()
    assert "| pair04 | failed: missing tele.png |" in captured.out
    assert "5 of 7 case(s) failed: pair03, pair04, pair05, pair06, pair07" in captured.err
    assert "Traceback" not in captured.err
