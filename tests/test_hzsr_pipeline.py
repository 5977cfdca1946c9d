"""End-to-end runs of pipelines/hzsr.yaml through the command line, including its failure modes."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nodegraph import cli

REPO = Path(__file__).resolve().parents[1]
PIPELINE = str(REPO / "pipelines" / "hzsr.yaml")
SAMPLE = REPO / "nodes" / "hzsr" / "sample"


def run(*args: str) -> int:
    return cli.main(["run", PIPELINE, *args])


def bicubic_of_central(wide: np.ndarray, zoom: float) -> np.ndarray:
    h, w = wide.shape[:2]
    from nodegraph.nodes.ops.metrics import bicubic_crop
    cw, ch = w / zoom, h / zoom
    return bicubic_crop(wide, ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2), (w, h))


def test_default_run_works_offline_on_the_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("--debug-dir", "debug") == 0
    out = cv2.imread("hzsr_out.png")
    wide = cv2.imread(str(SAMPLE / "wide.jpg"))
    assert out.shape == wide.shape
    plain = bicubic_of_central(wide, 2.0).astype(float)
    assert np.abs(out.astype(float) - plain).mean() > 0.5  # T's detail was added somewhere
    names = {p.name for p in Path("debug").iterdir()}
    for expected in ("warp.warped", "flow.forward", "occlusion.M_occ", "defocus.M_defocus",
                     "flow_uncertainty.M_flow", "reject.M_reject", "raw_weight.M_blend_raw",
                     "blend.M_blend"):
        assert any(expected in n for n in names), expected
    assert "contact_sheet.png" in names


def test_unrelated_tele_fails_loudly_with_exit_2_and_no_output(tmp_path, capsys):
    import skimage.data
    unrelated = tmp_path / "unrelated.png"
    cv2.imwrite(str(unrelated), cv2.resize(skimage.data.camera(), (370, 250)))
    out = tmp_path / "out.png"
    assert run("--set", f"tele={unrelated}", "--set", "ratio=2", "--out", str(out)) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("note:")]
    assert len(err) == 1 and "node 'align'" in err[0] and "cannot register tele onto wide" in err[0]
    assert "align.mode=pre_aligned" in err[0] and "Traceback" not in err[0]
    assert not out.exists()  # never a silent upsampled W


def test_tele_at_another_resolution_than_wide_times_ratio(tmp_path):
    tele = cv2.imread(str(SAMPLE / "tele.jpg"))
    small = tmp_path / "tele_small.png"
    cv2.imwrite(str(small), cv2.resize(tele, (280, 189), interpolation=cv2.INTER_AREA))
    out = tmp_path / "out.png"
    assert run("--set", f"tele={small}", "--set", "ratio=2", "--out", str(out)) == 0
    assert cv2.imread(str(out)).shape == cv2.imread(str(SAMPLE / "wide.jpg")).shape


@pytest.mark.parametrize("kind", ["gray", "rgba", "16bit"])
def test_gray_rgba_and_16_bit_inputs(tmp_path, kind):
    wide = cv2.imread(str(SAMPLE / "wide.jpg"))
    tele = cv2.imread(str(SAMPLE / "tele.jpg"))
    convert = {"gray": lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2GRAY),
               "rgba": lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2BGRA),
               "16bit": lambda im: im.astype(np.uint16) * 257}[kind]
    paths = []
    for name, image in (("w", wide), ("t", tele)):
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), convert(image))
        paths.append(path)
    out = tmp_path / "out.png"
    assert run("--set", f"wide={paths[0]}", "--set", f"tele={paths[1]}", "--set", "ratio=2",
               "--out", str(out)) == 0
    assert cv2.imread(str(out)).shape == wide.shape


def test_corrupt_or_missing_file_exits_2_naming_it(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    assert run("--set", f"wide={corrupt}", "--out", str(tmp_path / "o.png")) == 2
    err = capsys.readouterr().err
    assert "corrupt.jpg" in err and "read_wide" in err
    assert run("--set", f"tele={tmp_path / 'missing.jpg'}", "--out", str(tmp_path / "o.png")) == 2
    err = capsys.readouterr().err
    assert "missing.jpg" in err and "file not found" in err
    assert not (tmp_path / "o.png").exists()


def test_output_equal_to_an_input_is_refused_and_the_input_kept(tmp_path, capsys):
    wide = tmp_path / "wide.jpg"
    wide.write_bytes((SAMPLE / "wide.jpg").read_bytes())
    before = wide.read_bytes()
    assert run("--set", f"wide={wide}", "--out", str(wide)) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert wide.read_bytes() == before


def test_zoom_below_and_above_the_ratio(tmp_path):
    for zoom in ("1.4", "3"):
        out = tmp_path / f"z{zoom}.png"
        assert run("--set", f"zoom={zoom}", "--out", str(out)) == 0
        assert cv2.imread(str(out)).shape == cv2.imread(str(SAMPLE / "wide.jpg")).shape


def test_validate_hzsr_and_every_ablation():
    pipelines = [PIPELINE] + sorted(str(p) for p in (REPO / "pipelines" / "ablations").glob("*.yaml"))
    assert len(pipelines) >= 6
    for path in pipelines:
        done = subprocess.run(["nodegraph", "validate", path], capture_output=True, text=True)
        assert done.returncode == 0, (path, done.stderr)


def test_ablation_files_are_generated_from_hzsr_yaml():
    done = subprocess.run([sys.executable, str(REPO / "tools" / "make_ablations.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_blend_written_over_the_fused_image_equals_a_run_that_keeps_it(tmp_path, monkeypatch):
    # hzsr.blend assembles its image over I_fusion (Local.in_place) unless something holds
    # I_fusion: here a cache does, so the second run keeps it and must agree to the bit.
    from nodegraph import execute
    from nodegraph.graph import load_graph
    from nodegraph.registry import default_registry
    from nodegraph.validate import apply_settings

    reused = []
    donor = execute._Run._donor

    def spy(run, step, output, names):
        value = donor(run, step, output, names)
        reused.append((step.name, output, value is not None))
        return value

    monkeypatch.setattr(execute._Run, "_donor", spy)
    registry = default_registry()
    graph = apply_settings(load_graph(PIPELINE), [f"out={tmp_path / 'out.png'}"], registry)
    the_plan = execute.plan(graph, registry)
    written_over = execute.run_plan(the_plan, strip_rows=40)
    assert ("blend", "image", True) in reused and written_over.records["blend"].strips > 1
    reused.clear()
    kept = execute.run_plan(the_plan, strip_rows=40, cache=execute.Cache())
    assert ("blend", "image", False) in reused
    np.testing.assert_array_equal(written_over.outputs["image"], kept.outputs["image"])
    np.testing.assert_array_equal(written_over.outputs["M_blend"], kept.outputs["M_blend"])
