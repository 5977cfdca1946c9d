"""Speed and memory of pipelines/hzsr.yaml at 12 MP (SPEC section 8, issue 14). Prints tables.

    python benchmarks/bench_hzsr.py [--runs 3] [--pipeline pipelines/hzsr.yaml] [--size 4000x3000]

W and T are both 4000x3000 JPEGs made from a real photograph (the Middlebury Motorcycle left
view shipped with scikit-image, not a dev case file): W is the whole frame, T the central 1/2
field of view (ratio 2, with a small offset), both resampled to 12 MP. Measured, as medians
of ``--runs`` repetitions interleaved so that load on a shared machine hits all alike:

- wall time and peak resident memory of whole ``nodegraph run ... --profile`` processes
  (start-up, imports and the PNG write included), pinned to 2 cores with ``taskset -c 0,1``
  and, on a machine with more cores, on all of them; their user and system CPU seconds;
  per-node seconds from ``--profile``;
- the same on one core (``--no-one-core`` skips it), and from it and 2 cores, by Amdahl's
  law, the serial fraction of a run and a bound on what 16 cores could give: an estimate
  for a machine that has no 16 cores to measure;
- the system time a new process spends per GB of fresh memory (touching PROBE_MB once, after
  a pause): what the machine charges for memory whatever the program (large and varying on
  a VM that returns freed pages to its host), to read the runs' system time against;
- the bicubic digital zoom of the same frame as its own process on the same cores: decode W,
  bicubic-resize its central 1/2 to 12 MP, write the PNG with the same encoder settings;
- in one process (after a warm-up run): a re-run after changing one blend parameter with the
  cache holding the upstream nodes, against a full run; and framework overhead, the same
  node functions called directly in the same order against the executor;
- with ``--baseline-src DIR`` (another source tree of nodegraph, e.g. ``git archive main``
  unpacked), the same ``nodegraph run`` processes from that tree, interleaved with these.

The processes run without PYTHONDONTWRITEBYTECODE (which some shells and CI images set): as
on a user's machine, the warm-up run writes the bytecode of nodegraph's modules, and the
measured runs read it instead of compiling them again (~0.06 s of start-up, ~0.1-0.2 s of a
12 MP run, measured with the variable set on this project's machines).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nodegraph.execute import Cache, plan, run_plan, step_inputs
from nodegraph.graph import Ref, load_graph
from nodegraph.node import call_node
from nodegraph.registry import default_registry
from nodegraph.validate import apply_settings

REPO = Path(__file__).resolve().parents[1]
PROFILE_ROW = re.compile(r"^(\S+)\s+\S+\s+(ran|cached|bypassed)\s+([\d.]+)\s+\d+$")
# the phone's plain digital zoom: a plain OpenCV script, with image.write's PNG encoder
BICUBIC = """
import sys, cv2
from nodegraph.nodes.image_io import png_parts
wide = cv2.imread(sys.argv[1])
h, w = wide.shape[:2]
crop = wide[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
zoomed = cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)
open(sys.argv[2], "wb").writelines(png_parts(cv2.cvtColor(zoomed, cv2.COLOR_BGR2RGB)))
"""

ONE_CORE = "1 core"
SCALING_CORES = 16  # the many-core target, estimated from 1 and 2 cores where there are 2
PROBE_MB = 512
# Linux's free page reporting hands freed memory back to a VM's host after about 2 s: the
# probe waits longer, so it measures memory as a command started after a pause gets it
REPORTING_DELAY_S = 3.0
FRESH_MEMORY = """
import resource, sys
import numpy as np
before = resource.getrusage(resource.RUSAGE_SELF).ru_stime
touched = np.ones(int(sys.argv[1]) << 20, np.uint8)
print(resource.getrusage(resource.RUSAGE_SELF).ru_stime - before)
"""


def amdahl(one: float, many: float, cores: int, target_cores: int) -> tuple[float, float]:
    """(serial fraction, bound on the speed-up of ``target_cores`` over ``cores``) from the wall
    times on one core and on ``cores``, by Amdahl's law: t(n) = t(1) (s + (1 - s) / n). The
    parallel part is taken to scale perfectly, so the bound is optimistic."""
    speedup = one / many
    serial = min(1.0, max(0.0, (cores / speedup - 1.0) / (cores - 1)))
    at = lambda n: serial + (1.0 - serial) / n  # noqa: E731 - t(n) / t(1)
    return serial, at(cores) / at(target_cores)


def make_pair(folder: Path, width: int, height: int) -> tuple[Path, Path]:
    import skimage
    photo = cv2.imread(str(Path(skimage.__file__).parent / "data" / "motorcycle_left.png"))
    h, w = photo.shape[:2]
    scene = photo[: int(w * height / width)] if w * height / width <= h else photo
    wide = cv2.resize(scene, (width, height), interpolation=cv2.INTER_CUBIC)
    sh, sw = scene.shape[:2]
    x0, y0 = sw / 4 + 3.0, sh / 4 - 2.0  # T's optical axis a little off W's
    to_scene = np.array([[sw / 2 / width, 0, x0], [0, sh / 2 / height, y0]], np.float64)
    tele = cv2.warpAffine(scene, to_scene, (width, height),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    paths = folder / "wide.jpg", folder / "tele.jpg"
    for path, image in zip(paths, (wide, tele)):
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return paths


def timed_process(args: list[str], cores: str | None, shim: Path | None = None
                  ) -> tuple[float, float, str, tuple[float, float]]:
    """(wall seconds, peak RSS in MB, stdout, (user, system) CPU seconds) of one child process,
    optionally pinned to ``cores`` and importing nodegraph through ``shim`` (:func:`source_shim`)."""
    if cores is not None:
        args = ["taskset", "-c", cores, *args]
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    if shim is not None:
        env["PYTHONPATH"] = str(shim)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        # cwd "/": ``python -c`` puts the current folder first on sys.path, ahead of the shim
        child = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env, cwd="/")
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN: the largest child so far);
        # the child cannot print it itself: the nodegraph command ends with os._exit
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise SystemExit(f"benchmark child failed ({child.returncode}): {' '.join(args)}\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, stdout, (usage.ru_utime, usage.ru_stime)


def source_shim(source: Path, folder: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes ``import nodegraph`` load the source tree
    ``source`` (its nodegraph/, and nodes/ as nodegraph.nodes) instead of the installed one."""
    package = folder / "nodegraph"
    package.mkdir(parents=True)
    for entry in (source / "nodegraph").iterdir():
        (package / entry.name).symlink_to(entry)
    (package / "nodes").symlink_to(source / "nodes")
    return folder


def nodegraph_run(pipeline: str, settings: list[str], cores: str | None,
                  shim: Path | None = None) -> tuple[float, float, dict, tuple[float, float]]:
    # what the nodegraph command runs (console; main in a tree from before it existed)
    code = ("import sys\nfrom nodegraph import cli\n"
            "cli.console() if hasattr(cli, 'console') else sys.exit(cli.main(sys.argv[1:]))")
    args = [sys.executable, "-c", code, "run", pipeline, "--profile"]
    for setting in settings:
        args += ["--set", setting]
    seconds, peak, out, cpu = timed_process(args, cores, shim)
    per_node = {m.group(1): float(m.group(3))
                for m in map(PROFILE_ROW.match, out.splitlines()) if m}
    return seconds, peak, per_node, cpu


def bicubic_zoom(wide: Path, out: Path, cores: str | None) -> tuple[float, float]:
    seconds, peak, _, _ = timed_process([sys.executable, "-c", BICUBIC, str(wide), str(out)], cores)
    return seconds, peak


def fresh_memory_seconds(megabytes: float, cores: str | None) -> float:
    """System CPU seconds a new process spends having ``megabytes`` of fresh memory handed to
    it (allocated and touched once): on a VM that returns freed pages to its host (Linux
    free page reporting) this is a large, varying share of every run's system time, which a
    phone or a workstation does not pay."""
    _, _, out, _ = timed_process([sys.executable, "-c", FRESH_MEMORY, str(int(megabytes))], cores)
    return float(out)


def direct_call(the_plan) -> float:
    """The same node functions, called in order without the executor; like careful hand-written
    code (and like the executor), each value is dropped after the last call that reads it, and
    compact images are converted for the ports that read them, so both do the same work."""
    last_reader = {}
    for index, step in enumerate(the_plan.steps):
        for source in step.sources.values():
            if isinstance(source, Ref):
                last_reader[(source.node, source.port)] = index
    output_types = {(s.name, p): t for s in the_plan.steps for p, t in s.spec.outputs.items()}
    values = {}
    started = time.perf_counter()
    for index, step in enumerate(the_plan.steps):
        inputs = step_inputs(step, values, output_types)
        for port in step.spec.inputs:
            inputs.setdefault(port, None)
        for port, value in call_node(step.spec, inputs, step.params).items():
            values[(step.name, port)] = value
        del inputs
        for key in [k for k in values if last_reader.get(k, -1) <= index]:
            del values[key]
    return time.perf_counter() - started


def in_process(pipeline: str, settings: list[str], blend_param: str, runs: int) -> dict[str, Any]:
    """Full run, direct calls and cached re-run after one blend parameter, medians (seconds),
    and the overhead of each full run over the direct calls next to it (fractions).

    The full run and the direct calls alternate which goes first, and the overhead is the
    median of the per-pair ratios: on a shared machine the load drifts between pairs, so the
    ratio of two medians taken from different moments mixes that drift into a 3 % figure."""
    registry = default_registry()
    graph = apply_settings(load_graph(pipeline), settings, registry)
    the_plan = plan(graph, registry)
    run_plan(the_plan)  # warm-up: Numba's cache, onnxruntime session
    node_name, _, param = blend_param.partition(".")
    spec = registry.get(graph.nodes[node_name].type)
    default = graph.nodes[node_name].params.get(param, spec.params[param].default)
    full, direct, rerun = [], [], []
    for i in range(runs):
        if i % 2 == 0:
            full.append(run_plan(the_plan).seconds)
            direct.append(direct_call(the_plan))
        else:
            direct.append(direct_call(the_plan))
            full.append(run_plan(the_plan).seconds)
        cache = Cache()
        run_plan(the_plan, cache=cache)
        changed = graph.copy()
        changed.nodes[node_name].params[param] = default * (1.5 if i % 2 == 0 else 0.75)
        rerun.append(run_plan(plan(changed, registry), cache=cache).seconds)
    med = statistics.median
    overheads = sorted(f / d - 1.0 for f, d in zip(full, direct))
    return {"full": med(full), "direct": med(direct), "rerun": med(rerun),
            "overhead": med(overheads), "overhead_range": (overheads[0], overheads[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="processes per configuration")
    parser.add_argument("--inproc-runs", type=int, default=3,
                        help="repetitions of the in-process measurements (re-run, overhead)")
    parser.add_argument("--pipeline", default=str(REPO / "pipelines" / "hzsr.yaml"))
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--blend-param", default="blend.smooth_sigma",
                        help="the parameter changed for the cached re-run")
    parser.add_argument("--no-one-core", dest="one_core", action="store_false",
                        help="skip the runs on one core (the scaling estimate)")
    parser.add_argument("--baseline-src", type=Path, metavar="DIR",
                        help="also time `nodegraph run` from this source tree, same settings")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin runs to 2 cores")
    cores = {"2 cores": "0,1"}
    if (os.cpu_count() or 1) > 2:
        cores[f"all {os.cpu_count()} cores"] = None
    if args.one_core:
        cores[ONE_CORE] = "0"
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        wide, tele = make_pair(Path(tmp), width, height)
        # A phone writes the focal lengths in EXIF; the ratio is given here as EXIF would give it.
        settings = [f"wide={wide}", f"tele={tele}", "ratio=2", f"out={Path(tmp) / 'out.png'}"]
        nodegraph_run(args.pipeline, settings, "0,1")  # warm-up: Numba's on-disk cache, files
        shim = baseline_pipeline = None
        if args.baseline_src is not None:
            shim = source_shim(args.baseline_src.resolve(), Path(tmp) / "shim")
            baseline_pipeline = str(args.baseline_src.resolve() / "pipelines" / "hzsr.yaml")
            nodegraph_run(baseline_pipeline, settings, "0,1", shim)  # its warm-up
        runs: dict[str, dict[str, list]] = {
            name: {"hzsr": [], "bicubic": [], "baseline": [], "fresh_memory": []} for name in cores}
        for round_index in range(args.runs):
            for name, pinned in cores.items():
                time.sleep(REPORTING_DELAY_S)
                runs[name]["fresh_memory"].append(fresh_memory_seconds(PROBE_MB, pinned))
                if name == ONE_CORE:  # only for the scaling estimate
                    runs[name]["hzsr"].append(nodegraph_run(args.pipeline, settings, pinned))
                    continue
                runs[name]["bicubic"].append(bicubic_zoom(wide, Path(tmp) / "bicubic.png", pinned))
                trees = [("hzsr", args.pipeline, None), ("baseline", baseline_pipeline, shim)]
                # a process started right after another gets the pages it freed still backed
                # by the host: the two trees take turns at going first
                for key, pipeline, tree in trees[::-1] if round_index % 2 else trees:
                    if key == "hzsr" or tree is not None:
                        runs[name][key].append(nodegraph_run(pipeline, settings, pinned, tree))
        inproc = in_process(args.pipeline, settings, args.blend_param, args.inproc_runs)
    load = max(load, os.getloadavg()[0])

    med = statistics.median
    print(f"HZSR at {width}x{height} ({width * height / 1e6:.0f} MP), {args.pipeline}; medians of "
          f"{args.runs} processes per row; load average up to {load:.1f} on {os.cpu_count()} cores")
    print()
    names = list(cores)
    node_names = list(runs[names[0]]["hzsr"][0][2])
    print("| node | " + " | ".join(f"s ({n})" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for node_name in node_names:
        cells = [f"{med(r[2].get(node_name, 0.0) for r in runs[n]['hzsr']):.3f}" for n in names]
        print(f"| {node_name} | " + " | ".join(cells) + " |")
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    two = runs[names[0]]
    total2 = med(r[0] for r in two["hzsr"])
    for name in [n for n in names if n != ONE_CORE]:
        total = med(r[0] for r in runs[name]["hzsr"])
        peak = med(r[1] for r in runs[name]["hzsr"])
        bicubic = med(r[0] for r in runs[name]["bicubic"])
        print(f"| `nodegraph run` wall time, {name} | {total:.2f} s | <= 3.0 s (stretch 1.5 s) |")
        print(f"| peak resident memory, {name} | {peak:.0f} MB | <= 1000 MB (stretch 500 MB) |")
        user, system = (med(r[3][i] for r in runs[name]["hzsr"]) for i in (0, 1))
        print(f"| CPU of `nodegraph run`, {name} | user {user:.2f} s, system {system:.2f} s | |")
        print(f"| system time per GB of fresh memory, a new process touching {PROBE_MB} MB "
              f"(the machine, not nodegraph), {name} | "
              f"{med(runs[name]['fresh_memory']) * 1024 / PROBE_MB:.2f} s/GB | |")
        print(f"| bicubic digital zoom (decode, resize, PNG write), {name} | {bicubic:.2f} s; "
              f"HZSR is {total / bicubic:.1f}x | <= 2x |")
        if name != names[0]:
            print(f"| speed-up of {name} over 2 cores | {total2 / total:.2f}x | >= 3x |")
        if runs[name]["baseline"]:
            base_total = med(r[0] for r in runs[name]["baseline"])
            base_peak = med(r[1] for r in runs[name]["baseline"])
            print(f"| baseline ({args.baseline_src}), {name} | {base_total:.2f} s, {base_peak:.0f} MB; "
                  f"this tree {total / base_total:.2f}x the time, {peak / base_peak:.2f}x the memory | |")
    if ONE_CORE in runs:
        total1 = med(r[0] for r in runs[ONE_CORE]["hzsr"])
        serial, bound = amdahl(total1, total2, 2, SCALING_CORES)
        print(f"| `nodegraph run` wall time, 1 core | {total1:.2f} s: 2 cores {total1 / total2:.2f}x "
              f"faster; Amdahl's law with that serial fraction ({100 * serial:.0f} %) bounds "
              f"{SCALING_CORES} cores at {bound:.2f}x faster than 2 (an estimate, not a measurement) "
              f"| 16 cores >= 3x faster than 2 |")
    low, high = (100 * v for v in inproc["overhead_range"])
    print(f"| in-process full run / same node functions called directly (medians) | "
          f"{inproc['full']:.2f} s / {inproc['direct']:.2f} s; framework overhead, median of "
          f"{args.inproc_runs} adjacent pairs: {100 * inproc['overhead']:+.1f} % "
          f"(pairs {low:+.1f} % to {high:+.1f} %) | <= 3 % |")
    print(f"| re-run after changing {args.blend_param} (cached upstream) | {inproc['rerun']:.2f} s = "
          f"{100 * inproc['rerun'] / inproc['full']:.1f} % of a full run | <= 15 % (stretch 5 %) |")


if __name__ == "__main__":
    main()
