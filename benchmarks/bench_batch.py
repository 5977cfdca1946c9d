"""Throughput of ``nodegraph batch`` with 1 and 2 workers on small pairs, and the cost of a resume.

    python benchmarks/bench_batch.py [--items 16] [--repeats 3]

Pairs: ``--items`` pairs of 370x250 made from the bundled sample by tools/make_pairs.py.
For each worker count, a cluster like the command's (``nodegraph.batch.local_cluster``) is
started and warmed with one item per worker (compiled kernels and model sessions are loaded once
per worker process for the whole batch, so a long batch runs warm), then the whole batch runs
``--repeats`` times into fresh folders, alternating between the two clusters so that both see
the same load from anything else on the machine; throughput is items per second from the
first item submitted to the last result, median of the repeats. Separately, the command as a user runs it
(``nodegraph batch --workers 2``: cluster start included, cold) and the same command repeated
(every item finished: resume), as wall time of the process.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nodegraph.batch import read_items, run_batch
from nodegraph.graph import load_graph

REPO = Path(__file__).resolve().parent.parent
HZSR = str(REPO / "pipelines" / "hzsr.yaml")


def _make_pairs(folder: Path, count: int) -> None:
    spec = importlib.util.spec_from_file_location("make_pairs", REPO / "tools" / "make_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_pairs(folder, count)


def throughput(items_dir: Path, work: Path, repeats: int) -> dict[int, list[float]]:
    """Items per second for 1 and 2 workers, the runs interleaved so that both see the same load."""
    from nodegraph.batch import local_cluster

    items = read_items(items_dir, load_graph(HZSR))
    clusters = {workers: local_cluster(workers) for workers in (1, 2)}
    try:
        for workers, cluster in clusters.items():
            run_batch(HZSR, items[:workers], work / f"warm{workers}", scheduler=cluster.scheduler_address)
        rates: dict[int, list[float]] = {1: [], 2: []}
        for repeat in range(repeats):
            for workers, cluster in clusters.items():
                result = run_batch(HZSR, items, work / f"w{workers}_{repeat}",
                                   scheduler=cluster.scheduler_address)
                assert result.count("ok") == len(items), result.failed
                rates[workers].append(len(items) / result.run_seconds)
        return rates
    finally:
        for cluster in clusters.values():
            cluster.close()


def command_seconds(items_dir: Path, out_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "nodegraph"), "batch", HZSR, str(items_dir), "--out-dir",
                    str(out_dir), "--workers", "2"], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        _make_pairs(work / "items", args.items)
        rates = throughput(work / "items", work, args.repeats)
        first = command_seconds(work / "items", work / "cli")
        again = command_seconds(work / "items", work / "cli")
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"{args.items} pairs of 370x250, median of {args.repeats} (items/s per run in brackets)\n")
    print("| workers | items/s | vs 1 worker |")
    print("|---|---|---|")
    for workers, rate in ((1, one), (2, two)):
        runs = ", ".join(f"{r:.2f}" for r in rates[workers])
        print(f"| {workers} | {rate:.2f} ({runs}) | {rate / one:.2f}x |")
    print(f"\n`nodegraph batch --workers 2`, cold: {first:.1f} s; repeated (all finished): {again:.1f} s "
          f"= {again / first:.2f} of the first")


if __name__ == "__main__":
    main()
