"""Training from real pairs: patch-wise registration of the target, the W capture carried
through the rig's geometry, user W/T pairs (self-supervised fine-tuning) and the command.

The fine-tuning smoke run makes tiny W/T pairs from a real photo (scikit-image's astronaut):
T is the photo's centre at full resolution, W the whole photo blurred and halved, so T's
footprint in W is known (the central half: ratio 2, T twice as dense).
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the optional 'train' extra) is not installed")

from nodegraph.nodes.ops.luminance import luminance  # noqa: E402
from nodegraph.nodes.train import cli  # noqa: E402
from nodegraph.nodes.train.data import build_real_cache, load_cache, restrict_reference  # noqa: E402
from nodegraph.nodes.train.export import export_onnx, load_onnx_weights, onnx_widths  # noqa: E402
from nodegraph.nodes.train.model import FusionUNet  # noqa: E402
from nodegraph.nodes.train.real_pairs import (  # noqa: E402
    RealPair,
    load_aligned_pairs,
    load_user_pairs,
    patchwise_flow,
    register_target,
)
from nodegraph.nodes.train.simulate import (  # noqa: E402
    RigParams,
    make_wide_truth_sample,
    resample_w_capture,
    simulate_scene,
)
from nodegraph.nodes.train.train import batch_counts  # noqa: E402


def _photo(name: str = "astronaut") -> np.ndarray:
    import skimage.data
    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3].astype(np.float32) / 255.0)


def _write(path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8),
                                        cv2.COLOR_RGB2BGR))


def _make_pair(folder, photo: np.ndarray) -> None:
    """wide = the photo blurred and halved; tele = its central half at full resolution."""
    h, w = photo.shape[:2]
    folder.mkdir(parents=True)
    wide = cv2.resize(cv2.GaussianBlur(photo, (0, 0), 1.0), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    _write(folder / "wide.png", wide)
    _write(folder / "tele.png", photo[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2])


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    _make_pair(root / "astronaut", _photo())
    _make_pair(root / "astronaut_flipped", _photo()[:, ::-1])
    unrelated = root / "unrelated"   # T shows another scene: registration must refuse it
    unrelated.mkdir()
    _write(unrelated / "wide.png", cv2.resize(_photo(), (256, 256), interpolation=cv2.INTER_AREA))
    _write(unrelated / "tele.png", np.random.default_rng(0).random((256, 256, 3)).astype(np.float32))
    return root


def test_patchwise_flow_recovers_a_known_shift_and_registers_the_target():
    photo = _photo()[100:356, 100:356]
    shift = (3.0, -2.0)   # target(x + shift) = src(x)
    target = cv2.warpAffine(photo, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (256, 256),
                            borderMode=cv2.BORDER_REFLECT)
    flow = patchwise_flow(photo, target, cell=32)
    inner = flow[32:-32, 32:-32].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), shift, atol=0.3)
    registered = register_target(photo, target)
    before = np.abs(target - photo)[32:-32, 32:-32].mean()
    after = np.abs(registered - photo)[32:-32, 32:-32].mean()
    assert after < 0.35 * before


def test_companion_follows_the_scene_geometry_and_leaves_the_random_stream_alone():
    photo = _photo()
    p = RigParams()
    plain = simulate_scene(photo, [], np.random.default_rng(5), p, (192, 256))
    target, ref, _, info = simulate_scene(photo, [], np.random.default_rng(5), p, (192, 256),
                                          companion=photo.copy())
    np.testing.assert_array_equal(target, plain[0])
    np.testing.assert_array_equal(ref, plain[1])
    # the same photo as companion gets the same scaling, crop, flip and highlights as the target
    np.testing.assert_allclose(info["companion"], target, atol=1e-6)


def test_resample_w_capture_is_box_down_then_bicubic_up():
    rng = np.random.default_rng(1)
    capture = rng.random((60, 90, 3)).astype(np.float32)
    out = resample_w_capture(capture, 3.0)
    low = capture.reshape(20, 3, 30, 3, 3).mean(axis=(1, 3))   # 3x3 box means
    expected = np.clip(cv2.resize(low, (90, 60), interpolation=cv2.INTER_CUBIC), 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def _stamped(image: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    out = image.copy()
    out[box] = 1.0
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_wide_truth_sample_labels_with_w_and_references_the_real_t(seed):
    """DCSR-style sample: W's native capture is the label, W box-downsampled by 2 (bicubic back
    to the working grid) the input, the other camera's capture the reference."""
    native = _photo()[:256, :384]
    w_stored = cv2.resize(native, (768, 512), interpolation=cv2.INTER_CUBIC)   # stored 2x denser
    box = (slice(200, 300), slice(300, 420))   # a patch only T's capture shows
    t_stored = _stamped(w_stored, box)
    s = make_wide_truth_sample(w_stored, t_stored, np.random.default_rng(seed), RigParams(), 2.0)
    density = s["info"]["zoom"]
    assert 1.2 <= density <= 2.0 and s["info"]["wide_truth"]
    size = (round(768 * density / 4), round(512 * density / 4))
    assert s["Y_target"].shape == s["Y_src"].shape == s["M_blend"].shape == size[::-1]

    def expected(flip):
        w = w_stored[:, ::-1] if flip else w_stored
        low = cv2.resize(w, (round(size[0] / density), round(size[1] / density)),
                         interpolation=cv2.INTER_AREA)
        return (luminance(cv2.resize(w, size, interpolation=cv2.INTER_AREA)),
                luminance(np.clip(cv2.resize(low, size, interpolation=cv2.INTER_CUBIC), 0, 1)))

    target, src = min((expected(f) for f in (False, True)),
                      key=lambda e: float(np.abs(e[0] - s["Y_target"]).max()))
    np.testing.assert_allclose(s["Y_target"], target, atol=1e-5)
    np.testing.assert_allclose(s["Y_src"], src, atol=1e-5)
    # the input lacks the label's finest detail (W at half its density)
    assert np.abs(s["Y_src"] - s["Y_target"]).mean() > 0.005
    # the reference is T's capture: the stamp is there, in neither the label nor the input
    scale = size[0] / 768
    rows = slice(round(220 * scale), round(280 * scale))
    flipped = np.abs(s["Y_target"] - expected(True)[0]).max() < 1e-5
    cols = slice(round(320 * scale), round(400 * scale))
    if flipped:
        cols = slice(size[0] - cols.stop, size[0] - cols.start)
    assert s["Y_ref"][rows, cols].mean() > s["Y_target"][rows, cols].mean() + 0.2


def test_wide_truth_cache_records_its_settings(tmp_path):
    native = _photo()[:224, :320]
    w_stored = cv2.resize(native, (640, 448), interpolation=cv2.INTER_CUBIC)
    pair = RealPair("p", w_stored, w_stored)   # (target = T's capture, w_capture)
    manifest = build_real_cache(tmp_path, [pair], [], scenes=2, patches_per_scene=3, patch=64,
                                w_upsampled=2.0, progress=False)
    assert manifest["w_upsampled"] == 2.0 and manifest["train_patches"] == 6
    assert all(info["wide_truth"] for info in manifest["train_scenes"])


def test_restrict_reference_keeps_only_the_centre():
    rng = np.random.default_rng(2)
    planes = rng.random((5, 8, 12)).astype(np.float32)
    out = restrict_reference(planes, 0.5)
    inside = np.zeros((8, 12), bool)
    inside[2:6, 3:9] = True
    np.testing.assert_array_equal(out[:, inside], planes[:, inside])
    np.testing.assert_array_equal(out[1][~inside], planes[0][~inside])   # Ỹ_ref = Y_src
    assert (out[2][~inside] == 1).all() and (out[4][~inside] == 0).all()
    np.testing.assert_array_equal(out[[0, 3]], planes[[0, 3]])
    assert restrict_reference(planes, 1.0) is planes


def test_batch_counts():
    assert batch_counts(16, {}) == {"": 16}
    assert batch_counts(16, {"real": 0.5}) == {"real": 8, "": 8}
    assert batch_counts(5, {"real": 0.3}) == {"real": 2, "": 3}
    with pytest.raises(ValueError):
        batch_counts(4, {"a": 0.7, "b": 0.7})


def test_onnx_weights_load_back_into_the_model(tmp_path):
    torch.manual_seed(0)
    model = FusionUNet()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.05)
    export_onnx(model, tmp_path / "m.onnx")
    loaded = FusionUNet()
    load_onnx_weights(loaded, tmp_path / "m.onnx")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    narrow = FusionUNet(widths=(8, 16, 16, 16, 16))
    with pytest.raises(ValueError, match="does not fit"):
        load_onnx_weights(narrow, tmp_path / "m.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot read"):
        load_onnx_weights(loaded, tmp_path / "junk.onnx")
    with pytest.raises(ValueError, match="cannot read"):
        onnx_widths(tmp_path / "junk.onnx")


def test_user_pairs_are_registered_and_unrelated_ones_skipped(pairs_dir):
    pairs, skipped = load_user_pairs(str(pairs_dir))
    assert sorted(p.name for p in pairs) == ["astronaut", "astronaut_flipped"]
    assert len(skipped) == 1 and "unrelated" in skipped[0]
    for pair in pairs:
        assert pair.w_density == pytest.approx(2.0, rel=0.03)
        assert pair.target.shape == pair.w_capture.shape
        # the target (T) lines up with W's footprint: its low-pass matches W's
        low_t = cv2.GaussianBlur(pair.target, (0, 0), 3)
        low_w = cv2.GaussianBlur(pair.w_capture, (0, 0), 3)
        assert np.abs(low_t - low_w)[16:-16, 16:-16].mean() < 0.02


def test_real_cache_uses_the_w_capture_and_a_rendered_reference(tmp_path):
    photo = _photo()[:448, :448]
    # a W capture of the same scene: blurred (what W's optics do)
    pair = RealPair("p", photo, cv2.GaussianBlur(photo, (0, 0), 1.5), w_density=2.0)
    manifest = build_real_cache(tmp_path, [pair], [], scenes=2, patches_per_scene=3, patch=64,
                                params=RigParams(highlights_p=0.0), ref_centre=1.0, progress=False)
    assert manifest["train_patches"] == 6 and manifest["train_pairs"] == ["p"]
    x, y = (a.astype(np.float32) for a in load_cache(tmp_path))
    err_src = np.abs(x[:, 0] - y[:, 0]).mean()
    # Y_src is the blurred capture (not the target) ...
    assert 0.005 < err_src < 0.2
    # ... Ỹ_ref another view (not a copy of the label), registered by flow: it carries the
    # target's fine detail, which the blurred capture lacks

    def fine(a):
        return a - np.stack([cv2.GaussianBlur(p, (0, 0), 2) for p in a])

    def corr(a, b):
        return float(np.corrcoef(fine(a).ravel(), fine(b).ravel())[0, 1])

    assert np.abs(x[:, 1] - y[:, 0]).mean() > 0.002
    assert corr(x[:, 1], y[:, 0]) > corr(x[:, 0], y[:, 0]) + 0.1


def test_aligned_pairs_hold_out_the_validation_names(tmp_path):
    photo = _photo()[:320, :320]
    for stem in ("001", "002", "010"):
        _write(tmp_path / f"{stem}H.png", photo)
        _write(tmp_path / f"{stem}L.png", cv2.GaussianBlur(photo, (0, 0), 1.0))
    _write(tmp_path / "003H.png", photo)   # no 003L.png: not a pair
    train, val = load_aligned_pairs(str(tmp_path), ("010",))
    assert [p.name for p in train] == ["001", "002"] and [p.name for p in val] == ["010"]
    assert all(p.w_density is None for p in train + val)


def test_wide_truth_fine_tuning_smoke(tmp_path, capsys):
    """``--aligned-pairs DIR --wide-truth F``: real-pair batches mixed with W-truth ones."""
    photo = _photo()[:320, :320]
    for stem in ("001", "002", "010"):
        _write(tmp_path / f"{stem}H.png", photo)
        _write(tmp_path / f"{stem}L.png", cv2.resize(cv2.resize(photo, (160, 160), interpolation=cv2.INTER_AREA),
                                                     (320, 320), interpolation=cv2.INTER_CUBIC))
    out = tmp_path / "m.onnx"
    args = _parser().parse_args(["train", "fusion", "--aligned-pairs", str(tmp_path), "--aligned-val", "010",
                                 "--wide-truth", "0.5", "--out", str(out), "--init", "bundled",
                                 "--steps", "2", "--batch", "4", "--real-scenes", "2",
                                 "--patches-per-scene", "2", "--patch", "64", "--no-progress"])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "val_wide_truth" in printed and out.exists()
    work = tmp_path / "m_work"
    summary = json.loads((work / "summary.json").read_text())
    assert str(work / "wide_truth_data" / "manifest.json") in summary["data_manifests"]
    assert summary["config"]["mix"] == {"wide_truth": 0.5}
    assert json.loads((work / "wide_truth_data" / "manifest.json").read_text())["w_upsampled"] == 2.0


def _parser():
    parser = argparse.ArgumentParser(prog="nodegraph")
    cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_fine_tuning_on_user_pairs_smoke(pairs_dir, tmp_path, capsys):
    """``nodegraph train fusion --pairs DIR`` fine-tunes the bundled model; the node runs it."""
    import onnx

    from nodegraph.nodes.hzsr.fusion_unet import BANDS_INPUT, BUNDLED_MODEL, fusion_unet, resolve_model
    from nodegraph.nodes.ops.onnx_sessions import onnx_session
    out = tmp_path / "m.onnx"
    args = _parser().parse_args(["train", "fusion", "--pairs", str(pairs_dir), "--out", str(out),
                                 "--steps", "3", "--batch", "4", "--real-scenes", "2",
                                 "--patches-per-scene", "2", "--patch", "64", "--no-progress",
                                 "--checkpoint-every", "100"])
    assert args.handler(args) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "unrelated" in err
    bundled, tuned = FusionUNet(), FusionUNet()
    load_onnx_weights(bundled, resolve_model(BUNDLED_MODEL))
    load_onnx_weights(tuned, out)
    # started from the bundled model (not from scratch) and moved a little at lr 1e-4
    diffs = [float((tuned.state_dict()[k] - v).abs().max()) for k, v in bundled.state_dict().items()]
    assert 0 < max(diffs) < 0.05
    rng = np.random.default_rng(0)
    src = rng.random((70, 90, 3)).astype(np.float32)
    fused = fusion_unet(src, src, np.zeros((70, 90), np.float32), model=str(out), tile=0, threads=1)
    assert fused.shape == src.shape and np.isfinite(fused).all()
    # written in the layout the node runs fastest: detail bands computed by OpenCV, the pixel
    # unshuffle as SpaceToDepth (whose weights load_onnx_weights read above)
    assert [i.name for i in onnx_session(str(out), 1).get_inputs()] == ["x", BANDS_INPUT]
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "SpaceToDepth" in ops and "Transpose" not in ops


@pytest.mark.parametrize("extra, message", [
    (["--pairs", "/nonexistent/pairs"], "--pairs /nonexistent/pairs: no such folder"),
    (["--init", "/nonexistent/m.onnx"], "--init /nonexistent/m.onnx: no such file"),
    (["--real-fraction", "1.5"], "--real-fraction 1.5"),
    (["--patch", "100"], "--patch 100"),
    (["--ref-centre", "0"], "--ref-centre 0"),
    (["--wide-truth", "0.3"], "--wide-truth needs --aligned-pairs"),
    (["--wide-truth", "1.5", "--aligned-pairs", "."], "--wide-truth 1.5"),
    (["--wide-truth", "0.5", "--real-fraction", "0.5", "--aligned-pairs", ".", "--data", "d"],
     "must leave part of each batch"),
    (["--w-upsampled", "0.5"], "--w-upsampled 0.5"),
    (["--widths", "16", "24", "0", "48", "64"], "--widths 16 24 0 48 64"),
    (["--teacher", "/nonexistent/t.onnx"], "--teacher /nonexistent/t.onnx: no such file"),
    (["--w-distill", "-1"], "--w-distill -1"),
])
def test_bad_options_are_one_line_exit_2(tmp_path, capsys, extra, message):
    args = _parser().parse_args(["train", "fusion", "--out", str(tmp_path / "m.onnx"), *extra])
    assert args.handler(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


def test_pairs_without_a_usable_pair_exit_2(tmp_path, capsys):
    folder = tmp_path / "only_unrelated" / "p"
    folder.mkdir(parents=True)
    _write(folder / "wide.png", cv2.resize(_photo(), (256, 256), interpolation=cv2.INTER_AREA))
    _write(folder / "tele.png", np.random.default_rng(0).random((256, 256, 3)).astype(np.float32))
    args = _parser().parse_args(["train", "fusion", "--pairs", str(tmp_path / "only_unrelated"),
                                 "--out", str(tmp_path / "m.onnx"), "--no-progress"])
    assert args.handler(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --pairs") and "no usable W/T pair" in err[-1]


def test_help_shows_no_empty_defaults(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "fusion", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "--pairs DIR" in text and "fusion.model=" in text.replace("\n", " ").replace("  ", " ")


def test_resume_refuses_a_checkpoint_holding_code(tmp_path, capsys):
    """--resume loads with weights_only=True: a pickled object that is not plain data is refused
    with one line (exit 2) and never unpickled."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    bad = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, bad, pickle_module=pickle)
    data = tmp_path / "data"   # a tiny patch cache, so the run reaches the resume
    data.mkdir()
    np.savez(data / "train.npz", x=np.zeros((2, 3, 64, 64), np.float16),
             y=np.zeros((2, 2, 64, 64), np.float16))
    args = _parser().parse_args(["train", "fusion", "--data", str(data), "--resume", str(bad),
                                 "--out", str(tmp_path / "m.onnx"), "--no-progress"])
    assert args.handler(args) == 2
    out = capsys.readouterr()
    assert "unpickled!" not in out.out
    err = out.err.strip().splitlines()
    assert len(err) == 1 and "evil.pt" in err[0] and "cannot resume from" in err[0]
