"""RigParams.with_overrides (nodegraph.nodes.train.simulate): ``nodegraph train fusion --rig NAME=VALUE``."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from nodegraph.nodes.train.simulate import RigParams, make_sample, simulate_scene, unsharp


def test_overrides_are_typed_like_the_defaults():
    rig = RigParams().with_overrides(["zoom=1.5,5", "occluders=0,5", "occluder_same_photo_p=0.5"])
    assert rig.zoom == (1.5, 5.0) and rig.occluders == (0, 5) and rig.occluder_same_photo_p == 0.5
    assert isinstance(rig.occluders[1], int)
    assert rig.parallax == RigParams().parallax          # untouched fields keep their defaults
    assert RigParams().with_overrides([]) == RigParams()


@pytest.mark.parametrize("setting, message", [
    ("zoom", "expected NAME=VALUE"),
    ("no_such_field=1", "expected NAME=VALUE"),
    ("zoom=2", "needs 2 comma-separated values"),
    ("zoom=1,2,3", "needs 2 comma-separated values"),
    ("occluders=0,2.5", "occluders=0,2.5"),
    ("defocus_p=often", "defocus_p=often"),
])
def test_bad_settings_name_the_setting(setting, message):
    with pytest.raises(ValueError, match=message):
        RigParams().with_overrides([setting])


def _scene(params: RigParams, seed: int = 4):
    rng = np.random.default_rng(seed)
    photo = rng.random((200, 260, 3)).astype(np.float32)
    other = np.full((200, 260, 3), 0.5, np.float32)
    return simulate_scene(photo, [other], np.random.default_rng(seed), params, (64, 96))


def test_occluders_from_the_scene_photo_carry_its_texture():
    # a flat grey "other" photo: with p = 0 every occluder is flat grey patches, with p = 1
    # every occluder is cut from the textured scene photo, so no flat patch appears
    base = RigParams(occluders=(3, 3), highlights_p=0.0, defocus_p=0.0, parallax=(1.0, 1.0))
    flat = _scene(base)[0]
    textured = _scene(base.with_overrides(["occluder_same_photo_p=1"]))[0]
    grey = lambda img: (np.abs(img - 0.5).max(axis=2) < 1e-6).mean()
    assert grey(flat) > 0.02 and grey(textured) == 0.0


def test_boolean_settings_read_true_and_false():
    assert RigParams().with_overrides(["target_w_rendering=true"]).target_w_rendering is True
    assert RigParams().with_overrides(["target_w_rendering=0"]).target_w_rendering is False
    with pytest.raises(ValueError, match="target_w_rendering=yes"):
        RigParams().with_overrides(["target_w_rendering=yes"])


def test_unsharp_is_the_plain_formula():
    rng = np.random.default_rng(3)
    img = rng.uniform(0.2, 0.8, (40, 50)).astype(np.float32)
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)
    expected = np.clip(img + 0.7 * (img - blurred), 0, 1)
    np.testing.assert_allclose(unsharp(img, 0.7, 1.5), expected, atol=1e-6)
    np.testing.assert_allclose(unsharp(img, -0.4, 1.5), np.clip(img - 0.4 * (img - blurred), 0, 1),
                               atol=1e-6)


def test_t_sharpening_changes_only_the_reference():
    base = RigParams(occluders=(0, 0), highlights_p=0.0, defocus_p=0.0)
    target, ref, _, _ = _scene(base)
    target2, ref2, _, _ = _scene(base.with_overrides(["t_sharpen=0.8,0.8"]))
    np.testing.assert_array_equal(target, target2)
    assert np.abs(ref2 - ref).mean() > 0.01


def test_target_takes_w_rendering_only_when_asked():
    photo = np.random.default_rng(5).random((220, 280, 3)).astype(np.float32)
    photo = cv2.GaussianBlur(photo, (0, 0), 2.0)
    rig = RigParams(occluders=(0, 0), highlights_p=0.0, defocus_p=0.0, w_sharpen=(0.6, 0.6))
    plain = make_sample(photo, [], np.random.default_rng(1), rig, (64, 128))
    rendered = make_sample(photo, [], np.random.default_rng(1),
                           rig.with_overrides(["target_w_rendering=true"]), (64, 128))
    np.testing.assert_array_equal(plain["Y_src"], rendered["Y_src"])   # the same random draws
    zoom = plain["info"]["zoom"]
    np.testing.assert_allclose(rendered["target"], unsharp(plain["target"], 0.6, zoom), atol=1e-6)
