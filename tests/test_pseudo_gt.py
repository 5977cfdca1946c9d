"""Pseudo ground truth (DCSR protocol): geometry of the case, and `nodegraph eval --pseudo-gt`."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data

from nodegraph.errors import InputError
from nodegraph.nodes.ops.geometry import rect_to_edge_matrix
from nodegraph.nodes.ops.pseudo_gt import pseudo_gt_case


def test_case_geometry_gt_is_wides_own_centre_and_mask_is_teles_footprint():
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (203, 307, 3), np.uint8)  # odd sides: trimmed to 200 x 304
    tele = rng.integers(0, 256, (120, 160, 3), np.uint8)
    footprint = rect_to_edge_matrix((100.0, 60.0, 180.0, 120.0), (160, 120))  # T over W px
    case = pseudo_gt_case(wide, tele, 2, footprint)
    # trimmed symmetrically to multiples of 2k = 4: x0 = 1, y0 = 1
    assert case["wide"].shape == (100, 152, 3) and case["gt"].shape == (100, 152, 3)
    np.testing.assert_array_equal(case["gt"], wide[1 + 50:1 + 150, 1 + 76:1 + 228])
    np.testing.assert_array_equal(
        case["wide"], cv2.resize(wide[1:201, 1:305], (152, 100), interpolation=cv2.INTER_AREA))
    assert case["tele"].shape == (60, 80, 3)
    assert case["crop_box_in_wide"] == [38.0, 25.0, 114.0, 75.0]  # the central 1/2 of W/2
    # T covers W px x 100..180, y 60..120 -> GT px (W px - 1 - offset) inside those edges
    mask = case["tele_mask"] == 255
    expected = np.zeros((100, 152), bool)
    expected[60 - 51:120 - 51, 100 - 77:180 - 77] = True
    np.testing.assert_array_equal(mask, expected)


def test_factor_must_be_an_integer_of_two_or_more():
    wide = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="integer >= 2"):
        pseudo_gt_case(wide, wide, 1, np.eye(3))
    with pytest.raises(InputError, match="integer >= 2"):
        pseudo_gt_case(wide, wide, 2.5, np.eye(3))


def test_eval_pseudo_gt_scores_all_and_tele_covered_pixels(tmp_path):
    from nodegraph import cli
    scene = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)  # 600 x 400
    case = tmp_path / "pairs" / "coffee"
    case.mkdir(parents=True)
    cv2.imwrite(str(case / "wide.png"), cv2.resize(scene, (300, 200), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(case / "tele.png"), scene[100:300, 150:450])  # ratio 2, density 2
    (case / "case.json").write_text(json.dumps({"zoom_ratio": 2}))
    report = tmp_path / "report.json"
    assert cli.main(["eval", "pipelines/hzsr.yaml", str(tmp_path / "pairs"), "--pseudo-gt", "2",
                     "--out-dir", str(tmp_path / "out"), "--report", str(report)]) == 0
    scored = json.loads(report.read_text())["cases"][0]
    assert scored["reference"] and scored["pipeline"]["all"]["psnr"] > 20
    # T covers W's central half, i.e. all of the GT (its central half): every pixel scored
    assert scored["pipeline"]["visible"]["pixels"] == scored["pipeline"]["all"]["pixels"]
