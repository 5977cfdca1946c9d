"""Streaming execution: chains of local nodes run strip by strip (nodegraph/execute.py), with
toy raster nodes. Results are compared with the whole-image run (``keep_all`` never streams)
exactly: the toy nodes do the same float operations in the same order on every pixel, so a
strip can differ from the whole run only through a wrong halo or a misplaced row."""
import sys
import time
import warnings
import weakref

import numpy as np
import pytest

from nodegraph import Gray, Local, Out, Param, Scalar, frame_of, node, output_rows
from nodegraph.errors import NodeError
from nodegraph.execute import Cache, local_chains, plan, run_plan
from nodegraph.graph import parse_graph
from nodegraph.registry import Registry

SEEN_ROWS: list[int] = []  # rows of every call of strips.spy


@node("strips.source")
def source(*, height: int = Param(37, range=(1, 1000)), width: int = Param(23, range=(1, 1000)),
           seed: int = Param(0, range=(0, 1000))) -> Out(image=Gray):
    """Random float32 (height, width) in [0, 1) (not local)."""
    return np.random.default_rng(seed).random((height, width), dtype=np.float32)


def _box_halo(params, frame):
    return params["radius"]


@node("strips.box", local=Local(halo=_box_halo))
def box(image: Gray, *, radius: int = Param(1, range=(0, 50))) -> Out(image=Gray):
    """Vertical box mean over 2 radius + 1 rows, edge rows replicated."""
    padded = np.pad(image, ((radius, radius), (0, 0)), mode="edge")
    total = np.zeros_like(image)
    for k in range(2 * radius + 1):
        total += padded[k:k + image.shape[0]]
    return total / np.float32(2 * radius + 1)


@node("strips.add", local=Local())
def add(a: Gray, b: Gray = None) -> Out(total=Gray):
    """a + b (b optional)."""
    return a if b is None else a + b


@node("strips.scale_by_mean", local=Local(whole=("ref",)))
def scale_by_mean(image: Gray, ref: Gray, gain: Scalar = None) -> Out(image=Gray):
    """image x mean(ref) x gain: ``ref`` is read whole."""
    return image * np.float32(ref.mean() * (gain or 1.0))


@node("strips.plus_height", local=Local())
def plus_height(image: Gray) -> Out(image=Gray):
    """image + the whole frame's height (frame_of)."""
    return image + np.float32(frame_of(image)[0])


@node("strips.centre")
def centre(image: Gray) -> Out(image=Gray):
    """image - its mean (not local: reads every pixel)."""
    return image - image.mean()


@node("strips.spy", local=Local())
def spy(image: Gray) -> Out(image=Gray):
    """A copy; records how many rows each call saw."""
    SEEN_ROWS.append(image.shape[0])
    return image.copy()


STALE_ALIVE: list[bool] = []  # per call of strips.watched*: was the watched array alive
WATCHED: list = []  # a weak reference to an earlier run's output


def _watched(image, gain):
    STALE_ALIVE.append(any(ref() is not None for ref in WATCHED))
    return image * np.float32(gain)


@node("strips.watched", local=Local())
def watched(image: Gray, *, gain: float = Param(1.0, range=(0.0, 10.0))) -> Out(image=Gray):
    """image x gain; records whether the array in WATCHED is still alive when it is called."""
    return _watched(image, gain)


@node("strips.watched_whole")
def watched_whole(image: Gray, *, gain: float = Param(1.0, range=(0.0, 10.0))) -> Out(image=Gray):
    """strips.watched, not local (run on the whole image)."""
    return _watched(image, gain)


@node("strips.sleepy", local=Local())
def sleepy(image: Gray, *, ms: float = Param(1.0, range=(0.0, 1000.0), unit="ms")) -> Out(image=Gray):
    """image + 1, after sleeping ``ms`` per call (a strip's work that leaves the GIL free)."""
    time.sleep(ms / 1000.0)
    return image + np.float32(1.0)


@node("strips.check", local=Local())
def check(image: Gray, *, limit: float = Param(2.0, range=(-100.0, 100.0))) -> Out(image=Gray):
    """Fails on a value above ``limit``; warns once per call on a value above limit / 2."""
    if (image > limit).any():
        raise ValueError(f"a value above {limit}")
    if (image > limit / 2).any():
        warnings.warn(f"values above {limit / 2}", stacklevel=1)
    return image


@node("strips.shrink", local=Local())
def shrink(image: Gray) -> Out(image=Gray):
    """Wrongly drops a row: the executor must refuse it."""
    return image[1:]


def _ramp_frame(inputs, params):
    if params["height"] > 90:
        raise ValueError("too tall")  # the whole run must report it as the node's failure
    return (params["height"], inputs["ref"].shape[1])


@node("strips.ramp", local=Local(whole=("ref",), frame=_ramp_frame))
def ramp(ref: Gray, *, height: int = Param(30, range=(1, 100))) -> Out(image=Gray):
    """A grid of its own: row index + mean of ``ref``, ``height`` rows of ref's width."""
    if height > 90:
        raise ValueError("too tall")
    top, bottom = output_rows() or (0, height)
    rows = np.arange(top, bottom, dtype=np.float32)[:, None]
    return np.broadcast_to(rows + np.float32(ref.mean()), (bottom - top, ref.shape[1])).copy()


def registry() -> Registry:
    toys = Registry()
    toys.add_module(sys.modules[__name__], "test")
    return toys


CHAIN = """\
nodes:
  src: {type: strips.source}
  blur: {type: strips.box, in: {image: src.image}, params: {radius: 2}}
  blur2: {type: strips.box, in: {image: blur.image}, params: {radius: 3}}
  sum: {type: strips.add, in: {a: blur2.image, b: blur.image}}
  scaled: {type: strips.scale_by_mean, in: {image: sum.total, ref: src.image}}
  tall: {type: strips.plus_height, in: {image: scaled.image}}
outputs:
  out: tall.image
"""


def run(text, **options):
    return run_plan(plan(parse_graph(text), registry()), **options)


def chain_names(text):
    return [[step.name for step in chain] for chain in local_chains(plan(parse_graph(text), registry()).steps)]


def test_chains_are_consecutive_linked_local_steps():
    assert chain_names(CHAIN) == [["blur", "blur2", "sum", "scaled", "tall"]]
    broken = """\
nodes:
  src: {type: strips.source}
  a: {type: strips.box, in: {image: src.image}}
  b: {type: strips.box, in: {image: a.image}}
  other: {type: strips.box, in: {image: src.image}}
  mid: {type: strips.centre, in: {image: b.image}}
  c: {type: strips.box, in: {image: mid.image}}
  d: {type: strips.add, in: {a: c.image, b: a.image}}
  skipped: {type: strips.box, in: {image: d.total}, bypass: true}
  e: {type: strips.box, in: {image: skipped.image}}
outputs: {out: e.image}
"""
    # a non-local node (mid) and a bypassed one (skipped) end a chain; unlinked neighbours
    # (other) form their own chain
    assert chain_names(broken) == [["a", "b"], ["other"], ["c", "d"], ["e"]]
    whole_read = """\
nodes:
  src: {type: strips.source}
  a: {type: strips.box, in: {image: src.image}}
  b: {type: strips.scale_by_mean, in: {image: src.image, ref: a.image}}
outputs: {out: b.image}
"""
    # b reads a's image whole: a's chain ends before b, which assembles it
    assert chain_names(whole_read) == [["a"], ["b"]]
    np.testing.assert_array_equal(run(whole_read, strip_rows=3).outputs["out"],
                                  run(whole_read, keep_all=True).outputs["out"])


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("strip_rows", [1, 2, 5, 12, 36, 37, 100])
def test_a_chain_in_strips_equals_the_whole_run(strip_rows, workers):
    whole = run(CHAIN, keep_all=True)
    strips = run(CHAIN, strip_rows=strip_rows, workers=workers)
    assert whole.outputs["out"].shape == (37, 23)
    np.testing.assert_array_equal(strips.outputs["out"], whole.outputs["out"])
    assert strips.records["blur"].strips == -(-37 // strip_rows)
    assert all(strips.records[name].status == "ran" for name in ("blur", "sum", "tall"))


def test_values_inside_a_chain_exist_only_as_strips():
    text = """\
nodes:
  src: {type: strips.source, params: {height: 50}}
  blur: {type: strips.box, in: {image: src.image}, params: {radius: 2}}
  look: {type: strips.spy, in: {image: blur.image}}
  blur2: {type: strips.box, in: {image: look.image}, params: {radius: 3}}
  outside: {type: strips.centre, in: {image: look.image}}
outputs: {out: blur2.image, centred: outside.image}
"""
    SEEN_ROWS.clear()
    result = run(text, strip_rows=8)
    # look's rows: the strip plus blur2's halo (3) on each side
    assert len(SEEN_ROWS) == 7 and max(SEEN_ROWS) == 8 + 2 * 3
    # look's image is read by a non-local node: assembled whole for it (and the chain's
    # output too); blur's image, read only inside the chain, reached look in strips only
    whole = run(text, keep_all=True)
    for name in ("out", "centred"):
        np.testing.assert_array_equal(result.outputs[name], whole.outputs[name])


def test_a_cache_reuses_a_chain_only_when_every_member_is_unchanged():
    graph = parse_graph(CHAIN)
    cache = Cache()
    first = run_plan(plan(graph, registry()), cache=cache, strip_rows=10)
    second = run_plan(plan(graph, registry()), cache=cache, strip_rows=10)
    assert {r.status for r in second.records.values()} == {"cached"}
    np.testing.assert_array_equal(second.outputs["out"], first.outputs["out"])

    graph.nodes["blur2"].params["radius"] = 1
    third = run_plan(plan(graph, registry()), cache=cache, strip_rows=10)
    assert {n: r.status for n, r in third.records.items()} == {
        "src": "cached", "blur": "ran", "blur2": "ran", "sum": "ran", "scaled": "ran", "tall": "ran"}
    np.testing.assert_array_equal(third.outputs["out"],
                                  run_plan(plan(graph, registry()), keep_all=True).outputs["out"])
    # a whole run (the editor's keep_all) finds the chain's members' values incomplete in
    # the cache (only exported ones are stored) and runs them; later strip runs reuse them
    fourth = run_plan(plan(graph, registry()), cache=cache, keep_all=True)
    assert fourth.records["blur"].status == "ran" and fourth.records["tall"].status == "cached"
    fifth = run_plan(plan(graph, registry()), cache=cache, strip_rows=10)
    assert {r.status for r in fifth.records.values()} == {"cached"}


@pytest.mark.parametrize("kind", ["strips.watched", "strips.watched_whole"])
def test_a_node_run_again_replaces_its_cache_entry_before_it_runs(kind):
    """With a cache, a node whose key changed finds its stale entry gone when it runs, so its new
    outputs can take the memory of the old ones (the cache keeps one entry per node)."""
    graph = parse_graph(f"""\
nodes:
  src: {{type: strips.source, params: {{height: 40}}}}
  w: {{type: {kind}, in: {{image: src.image}}}}
outputs: {{out: w.image}}
""")
    cache = Cache()
    first = run_plan(plan(graph, registry()), cache=cache, strip_rows=10)
    WATCHED[:] = [weakref.ref(first.outputs["out"])]
    del first
    assert WATCHED[0]() is not None  # held by the cache alone
    STALE_ALIVE.clear()
    graph.nodes["w"].params["gain"] = 2.0
    second = run_plan(plan(graph, registry()), cache=cache, strip_rows=10)
    assert second.records["w"].status == "ran" and STALE_ALIVE and not any(STALE_ALIVE)
    assert WATCHED[0]() is None
    np.testing.assert_array_equal(second.outputs["out"],
                                  run_plan(plan(graph, registry()), keep_all=True).outputs["out"])


def test_a_chain_on_several_threads_records_its_wall_time_shared_by_busy_time():
    """Strips on 4 threads overlap: each member's seconds are its share of the chain's wall time
    (by the time its strips took), so the members' seconds add up to no more than the run's,
    where summing their strips' times gave ~4x that."""
    graph = parse_graph("""\
nodes:
  src: {type: strips.source, params: {height: 80}}
  light: {type: strips.sleepy, in: {image: src.image}, params: {ms: 10}}
  heavy: {type: strips.sleepy, in: {image: light.image}, params: {ms: 30}}
outputs: {out: heavy.image}
""")
    result = run_plan(plan(graph, registry()), strip_rows=10, workers=4)
    light, heavy = result.records["light"], result.records["heavy"]
    assert light.strips == heavy.strips == 8
    assert light.seconds + heavy.seconds <= result.seconds
    assert light.seconds + heavy.seconds < 0.6 * 8 * 0.040  # the strips' summed sleep: 0.32 s
    assert 2.0 < heavy.seconds / light.seconds < 4.5


@pytest.mark.parametrize("workers", [1, 3])
def test_an_error_in_a_strip_names_the_node_in_one_line(workers):
    text = """\
nodes:
  src: {type: strips.source, params: {height: 40}}
  offset: {type: strips.plus_height, in: {image: src.image}}
  bad: {type: strips.check, in: {image: offset.image}, params: {limit: 40.5}}
outputs: {out: bad.image}
"""
    with pytest.raises(NodeError) as caught:
        run(text, strip_rows=3, workers=workers)
    assert str(caught.value) == "node 'bad' (strips.check) failed: ValueError: a value above 40.5"
    assert caught.value.node == "bad"


def test_warnings_of_strips_are_reported_once_by_the_node_that_raised_them():
    text = """\
nodes:
  src: {type: strips.source, params: {height: 40}}
  warn: {type: strips.check, in: {image: src.image}, params: {limit: 1.5}}
  quiet: {type: strips.box, in: {image: warn.image}}
outputs: {out: quiet.image}
"""
    events = []
    result = run(text, strip_rows=4, workers=3, events=lambda e: events.append((e.kind, e.node)))
    assert result.records["warn"].warnings == ["values above 0.75"]
    assert result.records["quiet"].warnings == []
    assert events.count(("warning", "warn")) == 1


def test_a_local_node_must_return_the_rows_it_was_given():
    text = """\
nodes:
  src: {type: strips.source}
  bad: {type: strips.shrink, in: {image: src.image}}
outputs: {out: bad.image}
"""
    with pytest.raises(NodeError, match=r"node 'bad' \(strips.shrink\).*must return the rows it was given"):
        run(text, strip_rows=10)


def test_inputs_of_different_sizes_run_whole_and_fail_as_the_node_does():
    text = """\
nodes:
  tall: {type: strips.source, params: {height: 30}}
  short: {type: strips.source, params: {height: 20}}
  sum: {type: strips.add, in: {a: tall.image, b: short.image}}
outputs: {out: sum.total}
"""
    with pytest.raises(NodeError, match=r"node 'sum' \(strips.add\) failed: ValueError: operands"):
        run(text, strip_rows=4)


def test_profile_records_time_summed_over_strips():
    result = run(CHAIN, strip_rows=4, workers=2)
    record = result.records["blur2"]
    assert record.strips == 10 and record.seconds > 0 and record.peak_rss_mb > 0


def test_local_declarations_are_checked():
    def declare(local, returns=Out(image=Gray), side_effect=False):
        def f(image: Gray, ref: Gray = None) -> returns:
            return image
        f.__annotations__["return"] = returns
        node("bad.local", local=local, side_effect=side_effect)(f)

    with pytest.raises(TypeError, match="local whole names no input"):
        declare(Local(whole=("nothing",)))
    with pytest.raises(TypeError, match="outputs must all be rasters"):
        declare(Local(), returns=Out(n=Scalar))
    with pytest.raises(TypeError, match="a raster input that is not whole"):
        declare(Local(whole=("image", "ref")))
    with pytest.raises(TypeError, match="side effects"):
        declare(Local(), side_effect=True)
    declare(Local(halo=lambda params, frame: frame[0] // 10, whole=("ref",)))
    assert Local(halo=lambda params, frame: frame[0] // 10).rows({}, (95, 5)) == 9


def test_a_node_with_its_own_grid_computes_the_rows_it_is_given():
    text = """\
nodes:
  src: {type: strips.source}
  grid: {type: strips.ramp, in: {ref: src.image}, params: {height: 50}}
  blur: {type: strips.box, in: {image: grid.image}, params: {radius: 2}}
outputs: {out: blur.image}
"""
    assert chain_names(text) == [["grid", "blur"]]
    whole = run(text, keep_all=True)
    assert whole.outputs["out"].shape == (50, 23)
    for strip_rows in (1, 7, 50):
        result = run(text, strip_rows=strip_rows, workers=2)
        assert result.records["grid"].strips == -(-50 // strip_rows)
        np.testing.assert_array_equal(result.outputs["out"], whole.outputs["out"])


def test_a_frame_that_fails_runs_the_node_whole_and_fails_as_it_does():
    text = """\
nodes:
  src: {type: strips.source}
  grid: {type: strips.ramp, in: {ref: src.image}, params: {height: 95}}
outputs: {out: grid.image}
"""
    with pytest.raises(NodeError, match=r"^node 'grid' \(strips.ramp\) failed: ValueError: too tall$"):
        run(text, strip_rows=4)


@pytest.mark.parametrize("share,pools", [("1", set()), ("3", {3})])
def test_strips_run_on_the_processes_share_of_the_cores(monkeypatch, share, pools):
    """A batch worker (OMP_NUM_THREADS = its share) runs its strips on that many threads (one:
    in its own thread, no pool), not on every core of the machine, which other workers use too."""
    from nodegraph import execute

    monkeypatch.setenv("OMP_NUM_THREADS", share)
    used = []
    monkeypatch.setattr(execute, "_strip_pool", lambda workers: used.append(workers) or
                        execute.ThreadPoolExecutor(workers))
    run(CHAIN, strip_rows=5)
    assert set(used) == pools
