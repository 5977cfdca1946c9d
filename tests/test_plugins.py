import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from nodegraph.registry import load_registry

REPO = Path(__file__).resolve().parents[1]


def _fake_distribution(root: Path, name: str, module: str, source: str) -> None:
    """An installed distribution with a nodegraph.nodes entry point, as pip would leave it."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[nodegraph.nodes]\n{name} = {module}\n")


GOOD = ("from nodegraph import node, Out, Scalar\n"
        "@node('good.double')\n"
        "def double(x: Scalar) -> Out(y=Scalar):\n"
        "    '''Twice x.'''\n"
        "    return 2 * x\n")


def test_plugins_load_and_a_broken_one_is_reported_by_name(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "goodplugin", "good_plugin_mod", GOOD)
    _fake_distribution(tmp_path, "brokenplugin", "broken_plugin_mod",
                       "import a_module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning, match="plugin 'brokenplugin'.*failed to load"):
        registry = load_registry()
    assert "good.double" in registry and registry.get("good.double").source == "plugin goodplugin"
    assert "image.read" in registry  # built-ins still load
    assert [f.name for f in registry.failures] == ["brokenplugin"]
    assert "ModuleNotFoundError" in registry.failures[0].error

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    listing = subprocess.run([sys.executable, "-m", "nodegraph.cli", "nodes"], env=env,
                             capture_output=True, text=True)
    assert listing.returncode == 0
    assert "good.double v1 [plugin goodplugin]" in listing.stdout
    assert "FAILED plugin brokenplugin (broken_plugin_mod): ModuleNotFoundError" in listing.stdout


def test_example_plugin_package_installs_lists_and_runs(tmp_path):
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(REPO / "examples" / "plugin")],
        capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    listing = subprocess.run(["nodegraph", "nodes"], env=env, capture_output=True, text=True)
    assert "example.posterize v1 [plugin example]" in listing.stdout

    photo = tmp_path / "photo.png"
    gradient = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (16, 1))
    cv2.imwrite(str(photo), cv2.merge([gradient] * 3))
    out = tmp_path / "poster.png"
    run = subprocess.run(["nodegraph", "run", str(REPO / "examples" / "plugin" / "posterize.yaml"),
                          "--set", f"photo={photo}", "--out", str(out)],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    levels = np.unique(cv2.imread(str(out))[..., 0])
    assert levels.tolist() == [0, 128, 255]
