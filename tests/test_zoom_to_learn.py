"""Zoom to Learn: the unprocessing recipe, the node (tiling, colour spaces), the trainer's CLI
(a seconds-long smoke run) and the shipped model on held-out City100 pairs."""
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nodegraph import cli  # noqa: E402
from nodegraph.nodes.hzsr.zoom_to_learn import BUNDLED_MODEL, zoom_to_learn  # noqa: E402
from nodegraph.nodes.ops.raw import encode_srgb, linear_to_srgb, srgb_to_linear  # noqa: E402
from nodegraph.nodes.train import zoom_to_learn as trainer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CITY100 = REPO / trainer.DEFAULT_DATA  # ../shared/data/... next to the checkout
needs_city100 = pytest.mark.skipif(not CITY100.is_dir(), reason="City100 training pairs not available")


def smooth_srgb(seed=0, h=40, w=56):
    img = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w, 3)).astype(np.float32), (0, 0), 5)
    return 0.1 + 0.8 * (img - img.min()) / (img.max() - img.min())


@pytest.mark.parametrize("camera", ["fixed", "random"])
def test_unprocessing_without_noise_gives_back_the_linear_image(camera):
    rng = np.random.default_rng(3)
    base = trainer.Camera.fixed() if camera == "fixed" else trainer.Camera.random(rng)
    noiseless = trainer.Camera(base.cam_from_srgb, base.gains, 0.0, 0.0)
    srgb = smooth_srgb()
    linear = trainer.unprocess_to_linear(srgb, noiseless, rng)
    error = np.abs(linear - srgb_to_linear(srgb))[2:-2, 2:-2]
    # a swapped CFA layout or colour matrix would be off by ~0.1; demosaicing and 12 bits ~1e-3
    assert error.max() < 0.02 and error.mean() < 0.002


def test_noise_follows_the_shot_and_read_model():
    flat = np.full((64, 64, 3), 0.5, np.float32)
    camera = trainer.Camera(np.eye(3), np.ones(3), 1e-3, 2e-3)
    linear = trainer.unprocess_to_linear(flat, camera, np.random.default_rng(0))
    level = float(srgb_to_linear(np.float32(0.5)))
    # demosaicing averages neighbours, so the per-pixel std is below the sensor's, but of its order
    sensor_std = np.sqrt(1e-3 * level + 2e-3 ** 2)
    assert 0.3 * sensor_std < linear[4:-4, 4:-4, 1].std() < 1.2 * sensor_std


def test_encode_srgb_is_the_same_curve_in_torch_and_numpy():
    x = np.linspace(0, 1, 257, dtype=np.float32)
    assert np.allclose(encode_srgb(torch.from_numpy(x)).numpy(), linear_to_srgb(x), atol=1e-6)


def test_untrained_network_is_bicubic_of_the_encoded_input():
    model = trainer.build_model().eval()  # the last layer starts at zero: residual 0
    linear = srgb_to_linear(smooth_srgb(1))
    with torch.no_grad():
        out = model(torch.from_numpy(linear.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    assert out.shape == (120, 168, 3)
    encoded = torch.from_numpy(linear_to_srgb(linear).transpose(2, 0, 1)[None].copy())
    reference = torch.nn.functional.interpolate(encoded, scale_factor=3, mode="bicubic", align_corners=False)
    assert np.allclose(out, reference[0].numpy().transpose(1, 2, 0), atol=1e-5)


def test_node_tiles_without_seams_and_keeps_the_colour_space():
    srgb = smooth_srgb(2, 70, 90)
    whole = zoom_to_learn(srgb, tile=4096)
    tiled = zoom_to_learn(srgb, tile=32)
    assert whole.shape == (210, 270, 3) and whole.dtype == np.float32
    assert np.abs(whole - tiled).max() < 1e-4
    linear_out = zoom_to_learn(srgb_to_linear(srgb), space="linear", tile=4096)
    assert np.abs(linear_to_srgb(linear_out) - whole).max() < 2e-3


def test_self_ensemble_is_the_mean_of_the_eight_turned_passes_and_so_turn_equivariant():
    rng = np.random.default_rng(4)
    srgb = np.clip(smooth_srgb(3, 36, 50) + 0.05 * rng.standard_normal((36, 50, 3)), 0, 1).astype(np.float32)
    def one_pass(image):
        return zoom_to_learn(np.ascontiguousarray(image), self_ensemble=False)

    reference = np.mean([np.rot90(one_pass(np.rot90(srgb, k)), -k) for k in range(4)]
                        + [np.rot90(one_pass(np.rot90(srgb[:, ::-1], k)), -k)[:, ::-1] for k in range(4)],
                        axis=0)
    ensembled = zoom_to_learn(srgb)
    assert np.abs(ensembled - reference).max() < 1e-5
    # one pass is not equivariant (the network's filters are not symmetric); the ensemble is
    turned = zoom_to_learn(np.ascontiguousarray(np.rot90(srgb)))
    assert np.abs(np.rot90(turned, -1) - ensembled).max() < 1e-5
    assert np.abs(np.rot90(one_pass(np.rot90(srgb)), -1) - one_pass(srgb)).max() > 1e-3


def test_node_reports_a_missing_model_as_an_input_error(tmp_path):
    from nodegraph.errors import InputError
    with pytest.raises(InputError, match="cannot read ONNX model"):
        zoom_to_learn(smooth_srgb(), model=str(tmp_path / "none.onnx"))


@needs_city100
def test_train_zoom_smoke_run_writes_a_usable_model(tmp_path):
    data = tmp_path / "pairs"
    data.mkdir()
    for pair in ("002", "003"):
        for side in "LH":
            shutil.copy(CITY100 / f"{pair}{side}.png", data / f"{pair}{side}.png")
    out = tmp_path / "z.onnx"
    assert cli.main(["train", "zoom", "--data", str(data), "--out", str(out), "--minutes", "0.02",
                     "--batch", "2", "--channels", "8", "--depth", "2", "--eval", "none"]) == 0
    assert out.exists() and (tmp_path / "z_work" / "checkpoint.pt").exists()
    assert zoom_to_learn(smooth_srgb(), model=str(out)).shape == (120, 168, 3)
    assert cli.main(["train", "zoom", "--data", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert cli.main(["train", "zoom", "--data", str(data), "--out", str(tmp_path / "z.png")]) == 2
    # a receptive field wider than the node's tile context would make seams
    assert cli.main(["train", "zoom", "--data", str(data), "--out", str(out), "--depth", "12"]) == 2


@needs_city100
def test_training_never_sees_held_out_pairs_and_validation_only_in_the_final_run():
    every = set(trainer.pair_ids(CITY100))
    assert set(trainer.HELD_OUT) <= every and set(trainer.VALIDATION) <= every
    assert not set(trainer.HELD_OUT) & set(trainer.VALIDATION)
    assert set(trainer.training_ids(CITY100)) == every - set(trainer.HELD_OUT) - set(trainer.VALIDATION)
    assert set(trainer.training_ids(CITY100, with_validation=True)) == every - set(trainer.HELD_OUT)


@needs_city100
def test_shipped_model_beats_bicubic_on_held_out_city100_pairs():
    report = trainer.evaluate(BUNDLED_MODEL, CITY100, trainer.HELD_OUT[:3])
    assert report["mean"]["zoom_to_learn"] > report["mean"]["bicubic"] + 0.3, report
    assert report["mean"]["zoom_to_learn"] > report["mean"]["bicubic_of_raw"] + 0.3, report
