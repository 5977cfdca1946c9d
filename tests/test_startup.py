"""Start-up: each command imports what it uses (issue 14, point 5), and nothing is lost by it."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("networkx", "onnxruntime", "torch", "dearpygui", "nodegraph.execute", "nodegraph.batch",
         "nodegraph.nodes.eval", "nodegraph.nodes.train.cli")


def _loaded_after(argv: list[str]) -> tuple[int, set[str], str]:
    """Exit code, the HEAVY modules loaded and the stdout of ``nodegraph ARGV`` in a fresh process."""
    code = ("import contextlib, io, sys\nfrom nodegraph.cli import main\nout = io.StringIO()\n"
            f"with contextlib.redirect_stdout(out):\n    rc = main({argv!r})\n"
            f"print(rc, *sorted(m for m in {HEAVY!r} if m in sys.modules))\nprint(out.getvalue())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, _, output = done.stdout.partition("\n")
    rc, *loaded = first.split()
    return int(rc), set(loaded), output


def test_nodes_lists_every_node_without_loading_the_runner_or_other_commands():
    rc, loaded, output = _loaded_after(["nodes"])
    assert rc == 0 and loaded == set()
    for node_type in ("image.read", "hzsr.align", "hzsr.fusion_unet", "image.write"):
        assert node_type in output


def test_a_command_loads_only_its_own_plugin_module():
    rc, loaded, _ = _loaded_after(["validate", "pipelines/hzsr.yaml"])
    assert rc == 0 and "networkx" in loaded  # validation uses networkx (SPEC), so it is loaded
    assert not loaded & {"nodegraph.batch", "nodegraph.nodes.eval", "nodegraph.nodes.train.cli"}


def test_help_and_an_unknown_command_still_list_every_command():
    done = subprocess.run([sys.executable, "-m", "nodegraph", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0
    for command in ("run", "validate", "nodes", "batch", "eval", "gui", "train"):
        assert f"    {command} " in done.stdout
    typo = subprocess.run([sys.executable, "-m", "nodegraph", "evl"], capture_output=True, text=True,
                          timeout=120)
    assert typo.returncode == 2 and "'eval'" in typo.stderr and "'train'" in typo.stderr


def test_every_numba_kernel_uses_the_on_disk_cache():
    """A kernel without ``cache=True`` is compiled again in every process (seconds at start-up)."""
    import importlib
    import pkgutil

    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    import nodegraph.nodes as package

    kernels = []
    for module_info in pkgutil.walk_packages(package.__path__, "nodegraph.nodes."):
        if module_info.name.startswith("nodegraph.nodes.train"):
            continue  # the trainers need the [train] extra and define no kernels
        module = importlib.import_module(module_info.name)
        kernels += [(module.__name__, name, kernel) for name, kernel in vars(module).items()
                    if isinstance(kernel, Dispatcher) and kernel.__module__ == module.__name__]
    assert len(kernels) >= 10  # the mask, warp and sampling kernels are found
    assert [f"{module}.{name}" for module, name, kernel in kernels if isinstance(kernel._cache, NullCache)] == []
