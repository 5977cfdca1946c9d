"""Start-up: each command imports what it uses (issue 14, point 5), and nothing is lost by it."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("networkx", "numba", "onnxruntime", "torch", "dearpygui", "nodegraph.execute", "nodegraph.batch",
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
    assert "numba" not in loaded  # the kernels import it when they are first called
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


def _node_modules() -> list:
    import importlib
    import pkgutil

    import nodegraph.nodes as package

    return [importlib.import_module(info.name)
            for info in pkgutil.walk_packages(package.__path__, "nodegraph.nodes.")
            if not info.name.startswith("nodegraph.nodes.train")]  # [train] extra, no kernels


def test_importing_every_node_module_leaves_numba_unloaded():
    """Numba takes ~0.2 s to import: the kernels (nodegraph.kernels) import it on first call."""
    import inspect

    code = f"import sys\n{inspect.getsource(_node_modules)}\n_node_modules()\nprint('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_every_numba_kernel_uses_the_on_disk_cache():
    """A kernel without Numba's on-disk cache is compiled again in every process (seconds)."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    from nodegraph.kernels import Kernel

    kernels = {f"{module.__name__}.{name}": value for module in _node_modules()
               for name, value in vars(module).items()
               if isinstance(value, (Kernel, Dispatcher)) and value.__module__ == module.__name__}
    assert len(kernels) >= 10  # the mask, warp and sampling kernels are found
    # a kernel another test has called is bound to its dispatcher already
    dispatchers = {name: value.dispatcher() if isinstance(value, Kernel) else value
                   for name, value in kernels.items()}
    assert [name for name, d in dispatchers.items() if isinstance(d._cache, NullCache)] == []
