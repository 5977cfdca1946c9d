"""RigParams.with_overrides (nodegraph.nodes.train.simulate): ``nodegraph train fusion --rig NAME=VALUE``."""
from __future__ import annotations

import numpy as np
import pytest

from nodegraph.nodes.train.simulate import RigParams, simulate_scene


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
