"""image.read_raw / image.render and nodes/ops/raw.py, on DNG files the tests write (tifffile)
and read back through LibRaw (rawpy); pipelines/hzsr_raw.yaml end to end."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nodegraph import cli
from nodegraph.errors import InputError
from nodegraph.nodes.image_io import read_image
from nodegraph.nodes.image_raw import read_raw, render
from nodegraph.nodes.ops.metrics import bicubic_crop
from nodegraph.nodes.ops.raw import (
    CFA_PATTERNS,
    XYZ_TO_SRGB,
    linear_to_srgb,
    mosaic,
    srgb_to_linear,
    unprocessed_dng_mosaic,
    write_dng,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "nodes" / "hzsr" / "sample"
GAINS = np.array([2.0, 1.0, 1.6], np.float32)
NEUTRAL = tuple(1.0 / GAINS)
SRGB_TO_XYZ = np.linalg.inv(XYZ_TO_SRGB)


def smooth_photo(seed=0, h=48, w=64) -> np.ndarray:
    """A smooth sRGB image in [0.1, 0.9]: every demosaicing method reconstructs it closely."""
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), 6)
    return 0.1 + 0.8 * (img - img.min()) / (img.max() - img.min())


def write_photo_dng(path, srgb, pattern="RGGB", **tags) -> None:
    write_dng(path, unprocessed_dng_mosaic(srgb, wb_gains=GAINS, pattern=pattern),
              pattern=pattern, as_shot_neutral=NEUTRAL, **tags)


def test_srgb_curves_match_the_standard_and_invert_each_other():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    reference = np.array([12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055 for v in x])
    assert np.allclose(linear_to_srgb(x), reference, atol=1e-6)
    assert np.allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-5)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-5)


@pytest.mark.parametrize("pattern", CFA_PATTERNS)
def test_mosaic_matches_a_per_pixel_loop(pattern):
    rgb = np.random.default_rng(1).random((5, 7, 3)).astype(np.float32)
    out = mosaic(rgb, pattern)
    for y in range(5):
        for x in range(7):
            assert out[y, x] == rgb[y, x, "RGB".index(pattern[(y % 2) * 2 + x % 2])]


@pytest.mark.parametrize("pattern", CFA_PATTERNS)
def test_dng_round_trip_through_libraw(tmp_path, pattern):
    srgb = smooth_photo()
    path = tmp_path / "shot.dng"
    write_photo_dng(path, srgb, pattern, focal_mm=4.25, focal_35mm=26)
    out = read_raw(str(path))
    assert out["cfa"] == pattern
    assert out["focal_35mm"] == 26.0 and out["focal_mm"] == pytest.approx(4.25)
    # the mosaic is the sensor data after black/white levels: 12-bit quantisation only
    expected = mosaic(srgb_to_linear(srgb) / GAINS, pattern)
    assert np.abs(out["mosaic"] - expected).max() < 1.0 / (4095 - 256)
    # the image is white-balanced linear light: the unprocessed photo comes back
    error = np.abs(out["image"] - srgb_to_linear(srgb))[3:-3, 3:-3]
    assert out["image"].dtype == np.float32 and out["image"].shape == srgb.shape
    assert error.mean() < 0.004 and error.max() < 0.05


def test_white_balance_choices(tmp_path):
    srgb = smooth_photo(2)
    path = tmp_path / "wb.dng"
    write_photo_dng(path, srgb)
    means = {wb: read_raw(str(path), white_balance=wb)["image"].reshape(-1, 3).mean(axis=0)
             for wb in ("as_shot", "none")}
    assert np.allclose(means["as_shot"] / means["none"], GAINS, rtol=0.01)
    given = read_raw(str(path), white_balance="gains", gains="4,1,1")["image"].reshape(-1, 3).mean(axis=0)
    assert np.allclose(given / means["none"], [4.0, 1.0, 1.0], rtol=0.01)
    with pytest.raises(InputError, match="three positive numbers"):
        read_raw(str(path), white_balance="gains", gains="4,1")


def test_camera_to_srgb_matrix_follows_the_dng_colour_matrix(tmp_path):
    # A camera whose primaries differ from sRGB's: ColorMatrix1 (XYZ -> camera) = C XYZ_TO_SRGB.
    mix = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    srgb = smooth_photo(3)
    path = tmp_path / "cam.dng"
    write_dng(path, unprocessed_dng_mosaic(srgb), color_matrix=mix @ XYZ_TO_SRGB)
    camera = read_raw(str(path), to_srgb=False)["image"]
    converted = read_raw(str(path), to_srgb=True)["image"]
    # DNG/LibRaw convention: rows of camera-from-sRGB normalised to sum 1, then inverted.
    cam_from_srgb = mix @ XYZ_TO_SRGB @ SRGB_TO_XYZ
    cam_from_srgb /= cam_from_srgb.sum(axis=1, keepdims=True)
    expected = np.clip(camera @ np.linalg.inv(cam_from_srgb).T, 0, 1)
    assert np.abs(converted - expected)[2:-2, 2:-2].max() < 2e-3


@pytest.mark.parametrize("method", ["linear", "ahd", "dht"])
def test_demosaic_methods_run(tmp_path, method):
    path = tmp_path / "d.dng"
    write_photo_dng(path, smooth_photo(4))
    assert read_raw(str(path), demosaic=method)["image"].shape == (48, 64, 3)


def test_unreadable_files_raise_one_line_input_errors(tmp_path):
    png = tmp_path / "photo.png"
    cv2.imwrite(str(png), np.zeros((8, 8, 3), np.uint8))
    good = tmp_path / "good.dng"
    write_photo_dng(good, smooth_photo(5))
    truncated = tmp_path / "cut.dng"
    truncated.write_bytes(good.read_bytes()[:2000])
    for path, words in ((tmp_path / "none.dng", "no such file"), (png, "not a raw format"),
                        (truncated, "corrupt or truncated")):
        with pytest.raises(InputError, match=words) as caught:
            read_raw(str(path))
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_render_applies_exposure_then_the_curve():
    lin = np.random.default_rng(6).random((4, 5, 3)).astype(np.float32) * 0.6
    assert np.allclose(render(lin, exposure=1.0), linear_to_srgb(np.clip(2 * lin, 0, 1)), atol=1e-6)
    assert np.allclose(render(lin, curve="gamma", gamma=2.0), np.sqrt(lin), atol=1e-6)


def sample_dngs(folder: Path) -> tuple[Path, Path]:
    """W and T raw files unprocessed from the bundled sample pair (half size, 35 mm focal lengths)."""
    paths = []
    for name, focal in (("wide", 26), ("tele", 52)):
        srgb, _ = read_image(SAMPLE / f"{name}.jpg")
        srgb = cv2.resize(srgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        path = folder / f"{name[0].upper()}.dng"
        write_photo_dng(path, srgb, focal_35mm=focal)
        paths.append(path)
    return paths[0], paths[1]


def test_hzsr_raw_pipeline_runs_on_dngs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    wide, tele = sample_dngs(tmp_path)
    pipeline = str(REPO / "pipelines" / "hzsr_raw.yaml")
    assert cli.main(["run", pipeline, "--set", f"wide={wide}", "--set", f"tele={tele}"]) == 0
    out = cv2.imread("hzsr_raw_out.png")[:, :, ::-1].astype(np.float32) / 255
    srgb_wide, _ = read_image(SAMPLE / "wide.jpg")
    srgb_wide = cv2.resize(srgb_wide, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    assert out.shape == srgb_wide.shape
    # rendered back to sRGB, the zoomed view is W's centre, upsampled, plus T's detail
    h, w = srgb_wide.shape[:2]
    plain = bicubic_crop(srgb_wide, (w / 4, h / 4, 3 * w / 4, 3 * h / 4), (w, h))
    assert abs(out.mean() - plain.mean()) < 0.01
    assert 0.005 < np.abs(out - plain).mean() < 0.05
    assert "52 mm / 26 mm" in capsys.readouterr().err  # the ratio came from the DNG tags
    assert cli.main(["run", pipeline, "--set", f"wide={tmp_path}", "--set", f"tele={tele}"]) == 2
    assert cli.main(["run", pipeline]) == 0  # the bundled raw sample pair


def test_hzsr_core_subgraph_is_up_to_date_with_hzsr_yaml():
    done = subprocess.run([sys.executable, str(REPO / "tools" / "make_hzsr_core.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
