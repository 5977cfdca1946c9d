"""Batches: one graph run per item, on Dask workers, with isolated failures and resume.

``nodegraph batch PIPELINE.yaml ITEMS --out-dir DIR`` runs the graph once per *item*. An item
is a set of ``NAME=VALUE`` bindings, exactly like ``--set``:

- a **folder of item folders**: in each, a file ``NAME.*`` binds the graph input ``NAME`` of a
  file-reading type (``wide.jpg`` -> ``wide``); an optional ``case.json`` whose ``"settings"``
  object binds more (``{"settings": {"zoom": 2, "blend.smooth_sigma": 4}}``). Every file input
  whose graph default is a file must be given, so an item never silently runs on the
  pipeline's own sample;
- a **CSV file** with a header row: each column is a graph input, each row an item (relative
  paths are taken from the CSV's folder; an empty cell keeps the graph's default; an optional
  ``name`` column names the items, else they are ``row0001``, ``row0002``, ...).

Every graph input that names a file the graph writes is bound to ``DIR/<item>/NAME<ext>`` (the
extension of its default). Command-line ``--set`` bindings apply to every item, after the
item's own.

The runs happen on a ``dask.distributed`` cluster: a ``LocalCluster`` of worker processes
(one thread each; N defaults to the cores) or an existing scheduler. A worker process lives for
the whole batch, so what a node caches per process (compiled kernels, model sessions) stays
warm between items. A failing item is a record with its one-line error, never the end of the
batch; an item whose worker dies (killed, crashed, out of memory) is tried again up to
``retries`` times on another worker, then recorded as failed.

Resume: a finished item leaves ``DIR/<item>/item.json`` holding its *recipe*, the hash of the
recipe keys of every step of its plan (node types and versions, the source code of each
node's package, parameters, settings, the content of every file it reads). A repeated command
skips an item whose recorded recipe is
unchanged and whose outputs are all there, so an interrupted batch continues where it stopped
and an edited input or parameter re-runs just the items it affects. A failure of the graph is
recorded the same way and reported again without running (the same recipe fails the same
way; fix the input, or delete ``DIR/<item>/`` to force a run); an item whose worker died is
not recorded, so it runs again. Outputs are written by
the graph's own (atomic) writers and ``item.json`` after them, atomically.

``DIR/summary.json`` lists every item (status ``ok`` / ``skipped`` / ``failed`` / ``not run``
(interrupted), seconds, peak resident memory of its worker, output paths relative to DIR,
error, attempts, and ``earlier`` when the record is an earlier run's).
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .cli import load_for_run
from .cores import available_cores
from .errors import GraphError, InputError, NodeError
from .execute import plan, recipe_key, run_plan
from .files import write_atomic
from .graph import AUTO, Graph, load_graph, require_loadable
from .registry import Registry, default_registry
from .types import PORT_TYPES
from .validate import apply_settings, validate

ITEM_RECORD = "item.json"
SUMMARY = "summary.json"
CASE_SETTINGS = "case.json"
OK, SKIPPED, FAILED, NOT_RUN = "ok", "skipped", "failed", "not run"
_ERROR_CHARS = 400  # an error is one line of at most this many characters


@dataclass(frozen=True)
class Item:
    """One run of the graph: a name (its output folder) and its ``NAME=VALUE`` bindings."""

    name: str
    settings: tuple[str, ...] = ()
    problem: str | None = None  # why the item cannot run, found while reading it


@dataclass
class ItemRecord:
    """What became of one item (a row of ``summary.json``)."""

    name: str
    status: str = NOT_RUN  # ok, skipped (finished by an earlier run), failed, not run
    seconds: float = 0.0  # the graph run on its worker (for skipped: the earlier run's)
    peak_rss_mb: float = 0.0  # peak resident memory of the worker process while it ran
    outputs: dict[str, str] = field(default_factory=dict)  # graph input -> path relative to DIR
    error: str | None = None
    attempts: int = 0
    recipe: str = ""
    warnings: list[str] = field(default_factory=list)
    earlier: bool = False  # the record of an earlier run of the same recipe, not run again


@dataclass
class BatchResult:
    records: list[ItemRecord]
    out_dir: Path
    seconds: float  # wall time of the whole batch
    run_seconds: float  # wall time from the first item submitted to the last result

    def count(self, status: str) -> int:
        return sum(record.status == status for record in self.records)

    @property
    def failed(self) -> list[ItemRecord]:
        return [record for record in self.records if record.status in (FAILED, NOT_RUN)]


def one_line(text: str) -> str:
    """``text`` on one line, cut to a bounded length."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _ERROR_CHARS else flat[:_ERROR_CHARS - 3] + "..."


def _describe_error(error: BaseException) -> str:
    if isinstance(error, GraphError):
        return one_line("; ".join(str(problem) for problem in error.problems))
    if isinstance(error, InputError | NodeError):
        return one_line(str(error))
    return one_line(f"{type(error).__name__}: {error}")


# ---------------------------------------------------------------- reading items

def _file_inputs(graph: Graph, role: str) -> dict[str, Any]:
    """Graph inputs of a file-reading (``role="read"``) or file-writing type, with defaults."""
    return {name: gi.default for name, gi in graph.inputs.items()
            if gi.type in PORT_TYPES and PORT_TYPES[gi.type].file_role == role}


def _check_name(name: str, where: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or name == SUMMARY:
        raise InputError(f"{where}: {name!r} cannot be an item name (it names the output folder)")


def items_from_folder(folder: Path, graph: Graph) -> list[Item]:
    """One item per sub-folder of ``folder`` (see the module doc)."""
    read_inputs = _file_inputs(graph, "read")
    required = [name for name, default in read_inputs.items() if default not in (None, AUTO)]
    items = []
    for item_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        _check_name(item_dir.name, str(item_dir))
        settings: list[str] = []
        problems: list[str] = []
        for name in read_inputs:
            found = sorted(p for p in item_dir.glob(f"{name}.*") if p.is_file())
            if len(found) > 1:
                problems.append(f"more than one {name}.* file ({', '.join(p.name for p in found)})")
            elif found:
                settings.append(f"{name}={found[0]}")
        case_file = item_dir / CASE_SETTINGS
        if case_file.exists():
            try:
                extra = json.loads(case_file.read_text()).get("settings", {})
                if not isinstance(extra, dict):
                    raise ValueError('"settings" must be an object of NAME: VALUE')
                settings += [f"{key}={_setting_text(value)}" for key, value in extra.items()]
            except (ValueError, AttributeError, OSError, UnicodeDecodeError) as error:
                problems.append(f"{case_file}: {error}")
        bound = {setting.split("=", 1)[0] for setting in settings}
        problems += [f"no {name}.* file" for name in required if name not in bound]
        items.append(Item(item_dir.name, tuple(settings),
                          one_line("; ".join(problems)) if problems else None))
    return items


def _setting_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def items_from_csv(path: Path, graph: Graph) -> list[Item]:
    """One item per row of the CSV file ``path`` (see the module doc)."""
    read_inputs = _file_inputs(graph, "read")
    written = _file_inputs(graph, "write")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: cannot read the CSV file: {error}") from error
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise InputError(f"{path}: no header row (its columns must be graph inputs)")
    header = [cell.strip() for cell in rows[0]]
    for column in header:
        if column == "name":
            continue
        if column in written:
            raise InputError(f"{path}: column {column!r} is an output; outputs go to --out-dir")
        if column not in graph.inputs:
            raise InputError(f"{path}: column {column!r} is not a graph input (graph inputs: "
                             f"{', '.join(sorted(graph.inputs))})")
    if len(set(header)) != len(header):
        raise InputError(f"{path}: a column name appears twice in the header")
    items = []
    for number, row in enumerate(rows[1:], start=1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{path}:{number + 1}: {len(row)} cells, the header has {len(header)}")
        cells = dict(zip(header, (cell.strip() for cell in row)))
        name = cells.pop("name", "") or f"row{number:04d}"
        _check_name(name, f"{path}:{number + 1}")
        settings = []
        for column, value in cells.items():
            if not value:
                continue
            if column in read_inputs:
                value = str((path.parent / Path(value).expanduser()).resolve())
            settings.append(f"{column}={value}")
        items.append(Item(name, tuple(settings)))
    return items


def read_items(path: str | os.PathLike, graph: Graph) -> list[Item]:
    """The items of ``ITEMS`` (a folder of item folders or a CSV file); InputError if unusable."""
    source = Path(path)
    if source.is_dir():
        items = items_from_folder(source, graph)
    elif source.is_file():
        items = items_from_csv(source, graph)
    else:
        raise InputError(f"{source}: no such folder or CSV file")
    if not items:
        raise InputError(f"{source}: no items (a folder of item folders, or a CSV with rows)")
    names = [item.name for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"{source}: item names must be unique; repeated: {', '.join(duplicates)}")
    return items


# ---------------------------------------------------------------- preparing

@dataclass(frozen=True)
class _Task:
    """Everything a worker needs to run one item (pickled to it)."""

    name: str
    pipeline: str
    settings: tuple[str, ...]
    item_dir: str
    out_dir: str
    outputs: dict[str, str]  # graph input -> absolute output path
    recipe: str
    registry_factory: Callable[[], Registry]


_parsed: dict[tuple[str, int, int], Graph] = {}


def parsed_graph(pipeline: str) -> Graph:
    """The graph file ``pipeline`` as loaded (GraphError if it has structural problems), parsed
    once per process and file version: a batch binds it once per item."""
    try:
        stat = os.stat(pipeline)
    except OSError:
        return require_loadable(load_graph(pipeline))  # raises GraphError naming the file
    key = (os.path.realpath(pipeline), stat.st_mtime_ns, stat.st_size)
    if key not in _parsed:
        _parsed[key] = require_loadable(load_graph(pipeline))
    return _parsed[key]


def load_pipeline(pipeline: str, settings: Sequence[str], registry: Registry) -> Graph:
    """The graph with the batch-wide settings applied; GraphError or InputError if unusable.

    Outputs are bound per item, so a setting that binds one is refused. The files of the
    graph's own defaults are not checked here: items bind their files, each item is checked
    with them (a missing file fails that item only).
    """
    graph = parsed_graph(pipeline)
    written = _file_inputs(graph, "write")
    for setting in settings:
        name = setting.partition("=")[0].strip()
        if name in written:
            raise InputError(f"--set {name}: outputs go to --out-dir/<item>/, one folder per item")
    graph = apply_settings(graph, list(settings), registry)
    per_item = (set(written) | set(_file_inputs(graph, "read"))) - set(graph.bound)
    problems = [problem for problem in validate(graph, registry) if problem.port not in per_item]
    if problems:
        raise GraphError(problems)
    return graph


def plan_recipe(graph: Graph, registry: Registry) -> str:
    """Hash of the recipe keys of every step and output of ``graph``'s plan."""
    the_plan = plan(graph, registry)
    keys: dict[str, str] = {}
    for step in the_plan.steps:
        keys[step.name] = recipe_key(step, keys)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps([sorted(keys.items()), sorted(the_plan.outputs)], default=repr).encode())
    return digest.hexdigest()


def _output_bindings(graph: Graph, item_dir: Path) -> dict[str, str]:
    bindings = {}
    for name, default in _file_inputs(graph, "write").items():
        suffix = Path(str(default)).suffix if default not in (None, AUTO) else ""
        bindings[name] = str((item_dir / f"{name}{suffix}").resolve())
    return bindings


def _earlier_record(item_dir: Path, recipe: str, out_dir: Path) -> ItemRecord | None:
    """The record of an earlier run of the same recipe, if it need not run again, else None.

    A success counts while its outputs all exist; a failure of the graph counts too, since the
    same recipe fails the same way (a worker that died is never recorded here: it runs again).
    """
    try:
        record = ItemRecord(**json.loads((item_dir / ITEM_RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if record.recipe != recipe or record.status not in (OK, FAILED):
        return None
    if not all((out_dir / path).is_file() for path in record.outputs.values()):
        return None
    record.status = SKIPPED if record.status == OK else FAILED
    record.earlier, record.attempts = True, 0
    return record


# ---------------------------------------------------------------- running (on a worker)

def run_item(task: _Task) -> ItemRecord:
    """Run one item in this process; never raises for a failure of the item itself."""
    record = ItemRecord(task.name, recipe=task.recipe)
    started = time.perf_counter()
    try:
        registry = task.registry_factory()
        Path(task.item_dir).mkdir(parents=True, exist_ok=True)
        settings = [*task.settings, *(f"{name}={path}" for name, path in task.outputs.items())]
        result = run_plan(plan(load_for_run(parsed_graph(task.pipeline), settings, registry), registry))
        record.seconds = time.perf_counter() - started
        record.peak_rss_mb = max((r.peak_rss_mb for r in result.records.values()), default=0.0)
        record.warnings = [f"{r.name}: {w}" for r in result.records.values() for w in r.warnings]
        record.outputs = {name: os.path.relpath(path, task.out_dir)
                          for name, path in task.outputs.items() if os.path.isfile(path)}
        record.status = OK
    except Exception as error:  # the item fails, the batch goes on
        record.status, record.error = FAILED, _describe_error(error)
        record.seconds = time.perf_counter() - started
    try:  # after the outputs: its presence means the item finished
        write_atomic(Path(task.item_dir) / ITEM_RECORD, json.dumps(asdict(record), indent=2).encode())
    except OSError as error:
        record.status, record.error = FAILED, _describe_error(error)
    return record


# ---------------------------------------------------------------- the cluster

def local_cluster(workers: int | None = None) -> Any:
    """The ``LocalCluster`` that ``nodegraph batch`` starts: ``workers`` processes (default: the
    cores) of one thread each, whose kernels' own threads share the cores between them."""
    import dask
    from dask.distributed import LocalCluster

    count = workers or available_cores()
    threads = str(max(1, available_cores() // count))
    # Set in each worker process before it imports a kernel: compiled kernels, OpenCV and
    # onnxruntime sessions (nodes/ops/onnx_sessions.py) use the worker's share of the cores.
    # Passed to the nannies (``env``: set in the worker process only, and over any value this
    # process has), not as ``distributed.nanny.pre-spawn-environ``, which each nanny writes
    # into *this* process's environment at every worker (re)start: Numba here would then see
    # another NUMBA_NUM_THREADS than its threads were launched with and refuse to compile.
    environ = {"NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "OPENCV_FOR_THREADS_NUM": threads}
    # Worker deaths are retried by this module (so --retries counts them), not by the
    # scheduler; a worker holds only the item it runs, so its death takes no queued item.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        return LocalCluster(n_workers=count, threads_per_worker=1, processes=True, env=environ,
                            silence_logs=logging.CRITICAL, dashboard_address=":0")


def _connect(workers: int | None, scheduler: str | None) -> tuple[Any, Any]:
    """A dask Client and the LocalCluster it owns (None for an existing scheduler)."""
    from dask.distributed import Client

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as error:
            raise InputError(f"--scheduler {scheduler}: cannot connect: {one_line(str(error))}") from error
    cluster = local_cluster(workers)
    return Client(cluster), cluster


class _Progress:
    """A tqdm bar of items (done, failed, rate, time left) on a terminal; silent otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        self.failed = 0
        if enabled and total:
            from tqdm import tqdm
            self._bar = tqdm(total=total, unit="item", file=sys.stderr, dynamic_ncols=True)

    def update(self, record: ItemRecord) -> None:
        self.failed += record.status == FAILED
        if self._bar is not None:
            self._bar.set_postfix(failed=self.failed, refresh=False)
            self._bar.update(1)
            if record.status == FAILED:
                self._bar.write(f"failed: {record.name}: {record.error}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _run_on_cluster(tasks: list[_Task], records: dict[str, ItemRecord], *, workers: int | None,
                    scheduler: str | None, retries: int, progress: bool) -> float:
    """Run ``tasks``, filling ``records``; returns the seconds from first submit to last result."""
    from dask.distributed import as_completed
    from distributed.scheduler import KilledWorker

    client, cluster = _connect(workers, scheduler)
    if progress and importlib.util.find_spec("bokeh") is not None:  # the dashboard needs bokeh
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
    bar = _Progress(len(tasks), progress)
    try:
        started = time.perf_counter()
        by_future = {}
        for task in tasks:
            future = client.submit(run_item, task, key=f"nodegraph-item-{task.name}-{task.recipe}-1",
                                   pure=False)
            by_future[future] = task
            records[task.name].attempts = 1
        queue = as_completed(list(by_future))
        for future in queue:
            task = by_future.pop(future)
            record = records[task.name]
            try:
                result: ItemRecord = future.result()
                result.attempts = record.attempts
                records[task.name] = record = result
            except KilledWorker:
                if record.attempts <= retries:
                    record.attempts += 1
                    again = client.submit(run_item, task, pure=False,
                                          key=f"nodegraph-item-{task.name}-{task.recipe}-{record.attempts}")
                    by_future[again] = task
                    queue.add(again)
                    continue
                record.status = FAILED
                record.error = (f"its worker died while running it ({record.attempts} attempt(s)): "
                                "killed, crashed or out of memory")
            except Exception as error:  # e.g. the scheduler went away: this item cannot finish
                record.status, record.error = FAILED, _describe_error(error)
            finally:
                future.release()
            bar.update(record)
        return time.perf_counter() - started
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------- the batch

def run_batch(pipeline: str, items: Sequence[Item], out_dir: str | os.PathLike, *,
              settings: Sequence[str] = (), workers: int | None = None, scheduler: str | None = None,
              retries: int = 1, progress: bool = False,
              registry_factory: Callable[[], Registry] = default_registry) -> BatchResult:
    """Run ``pipeline`` once per item; writes ``out_dir/summary.json`` and returns the records.

    Raises GraphError / InputError (exit 2) for an invalid pipeline, settings or options,
    before any item runs; a failing item is a record, never an exception.
    ``registry_factory`` (a picklable function) gives the node registry in each worker.
    """
    started = time.perf_counter()
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    if workers is not None and scheduler is not None:
        raise InputError("--workers sizes the local cluster; with --scheduler the cluster's own "
                         "workers run the items")
    if retries < 0:
        raise InputError(f"--retries {retries}: must be 0 or more")
    registry = registry_factory()
    graph = load_pipeline(pipeline, settings, registry)  # the whole batch is refused if this fails
    base = Path(out_dir)
    records = {item.name: ItemRecord(item.name) for item in items}
    tasks = []
    for item in items:
        record = records[item.name]
        if item.problem is not None:
            record.status, record.error = FAILED, item.problem
            continue
        item_dir = base / item.name
        outputs = _output_bindings(graph, item_dir)
        try:
            # Item settings first, --set last: the command line has the final word.
            bindings = [*item.settings, *settings, *(f"{k}={v}" for k, v in outputs.items())]
            record.recipe = plan_recipe(load_for_run(parsed_graph(pipeline), bindings, registry), registry)
        except (GraphError, InputError) as error:
            record.status, record.error = FAILED, _describe_error(error)
            continue
        earlier = _earlier_record(item_dir, record.recipe, base)
        if earlier is not None:
            records[item.name] = earlier
            continue
        tasks.append(_Task(item.name, str(pipeline), (*item.settings, *settings), str(item_dir),
                           str(base.resolve()), outputs, record.recipe, registry_factory))
    run_seconds = 0.0
    try:
        if tasks:
            run_seconds = _run_on_cluster(tasks, records, workers=workers, scheduler=scheduler,
                                          retries=retries, progress=progress)
    finally:
        result = BatchResult([records[item.name] for item in items], base,
                             time.perf_counter() - started, run_seconds)
        write_summary(result, pipeline, settings)
    return result


def write_summary(result: BatchResult, pipeline: str, settings: Sequence[str]) -> None:
    summary = {
        "pipeline": str(pipeline), "settings": list(settings), "items": len(result.records),
        "ok": result.count(OK), "skipped": result.count(SKIPPED), "failed": result.count(FAILED),
        "not_run": result.count(NOT_RUN), "seconds": round(result.seconds, 3),
        "run_seconds": round(result.run_seconds, 3),
        "records": [asdict(record) for record in result.records],
    }
    write_atomic(result.out_dir / SUMMARY, json.dumps(summary, indent=2).encode())


def summary_table(result: BatchResult, max_rows: int = 40) -> str:
    """A plain-text table: every item when there are few, else the failed ones; then totals."""
    shown = result.records if len(result.records) <= max_rows else result.failed
    rows = [("item", "status", "seconds", "peak MB", "output / error")]
    for record in shown:
        detail = record.error or ", ".join(record.outputs.values())
        status = f"{record.status} (earlier run)" if record.earlier and record.status == FAILED \
            else record.status
        rows.append((record.name, status, f"{record.seconds:.2f}",
                     f"{record.peak_rss_mb:.0f}", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join([cell.ljust(w) if i < 2 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row[:4], widths))] + [row[4]]) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 14)
    hidden = len(result.records) - len(shown)
    if hidden:
        lines.append(f"({hidden} finished items not listed; see {result.out_dir / SUMMARY})")
    lines.append(f"{len(result.records)} items: {result.count(OK)} ok, {result.count(SKIPPED)} "
                 f"skipped (finished earlier), {result.count(FAILED)} failed"
                 + (f", {result.count(NOT_RUN)} not run" if result.count(NOT_RUN) else "")
                 + f"; {result.seconds:.1f} s")
    return "\n".join(lines)


# ---------------------------------------------------------------- the command

def add_batch_options(parser: Any) -> None:
    """The options of ``nodegraph batch`` that say where and how items run (also ``eval``'s)."""
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes of the local Dask cluster (default: the cores)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on an existing Dask cluster instead, e.g. tcp://host:8786")
    parser.add_argument("--retries", type=int, default=1, metavar="K",
                        help="times an item whose worker died is tried again (default 1)")


def batch_options(args: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`run_batch` from the parsed options of :func:`add_batch_options`."""
    return {"workers": args.workers, "scheduler": args.scheduler, "retries": args.retries,
            "progress": sys.stderr.isatty()}


def cmd_batch(args: Any) -> int:
    registry = default_registry()
    graph = load_pipeline(args.pipeline, args.set, registry)
    items = read_items(args.items, graph)
    result = run_batch(args.pipeline, items, args.out_dir, settings=args.set, **batch_options(args))
    print(summary_table(result))
    return 1 if result.failed else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("batch", help="run a pipeline on many items (Dask), with resume")
    parser.add_argument("pipeline")
    parser.add_argument("items", help="a folder of item folders, or a CSV whose columns are graph inputs")
    parser.add_argument("--out-dir", required=True, metavar="DIR",
                        help="outputs go to DIR/<item>/, plus DIR/summary.json")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="bind a graph input or node parameter for every item")
    add_batch_options(parser)
    parser.set_defaults(handler=cmd_batch)
