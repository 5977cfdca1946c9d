"""Local.in_place: a local node's output assembled over an input array that nothing else holds.

The toy mix reads ``over`` at each pixel alone and its weight with a halo, like hzsr.blend:
written over while neighbouring strips still read the rows as context, it must give the
whole-image run's result exactly. Every case where the input is still held elsewhere (a
later reader, a graph output, the cache, a shared buffer, a value the caller passed in) must
leave it untouched.
"""
import sys

import numpy as np
import pytest

from nodegraph import Gray, Local, Out, Param, node
from nodegraph.execute import Cache, plan, run_plan
from nodegraph.graph import parse_graph
from nodegraph.registry import Registry

MADE: dict[int, np.ndarray] = {}  # the array each inplace.source call returned, by seed


def _random(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((41, 13), dtype=np.float32)


@node("inplace.source")
def source(*, seed: int = Param(0, range=(0, 1000))) -> Out(image=Gray):
    """Random float32 (41, 13) in [0, 1); the array is kept in MADE."""
    MADE[seed] = _random(seed)
    return MADE[seed]


@node("inplace.view")
def view(image: Gray) -> Out(image=Gray):
    """The input itself, passed on (a value sharing its buffer with another)."""
    return image


@node("inplace.mix", local=Local(halo=2, in_place={"image": "over"}))
def mix(base: Gray, over: Gray, weight: Gray) -> Out(image=Gray):
    """base + w (over - base), w the 5-row vertical mean of ``weight`` (edge rows replicated)."""
    padded = np.pad(weight, ((2, 2), (0, 0)), mode="edge")
    w = sum(padded[k:k + weight.shape[0]] for k in range(5)) / np.float32(5)
    return base + w * (over - base)


@node("inplace.sum")
def total(a: Gray, b: Gray = None) -> Out(image=Gray):
    """a + b (not local)."""
    return a if b is None else a + b


def registry() -> Registry:
    toys = Registry()
    toys.add_module(sys.modules[__name__], "test")
    return toys


GRAPH = """\
nodes:
  base: {type: inplace.source, params: {seed: 1}}
  over: {type: inplace.source, params: {seed: 2}}
  weight: {type: inplace.source, params: {seed: 3}}
  mix: {type: inplace.mix, in: {base: base.image, over: over.image, weight: weight.image}}
outputs: {image: mix.image}
"""


def _run(text, **options):
    return run_plan(plan(parse_graph(text), registry()), strip_rows=6, workers=3, **options)


def test_the_output_is_assembled_over_the_input_and_equals_the_whole_run():
    whole = run_plan(plan(parse_graph(GRAPH), registry()), keep_all=True)
    np.testing.assert_array_equal(MADE[2], _random(2))  # a run keeping every value: no reuse
    strips = _run(GRAPH)
    assert strips.records["mix"].strips > 3
    assert strips.outputs["image"] is MADE[2]  # assembled over node over's array
    np.testing.assert_array_equal(strips.outputs["image"], whole.outputs["image"])


def _assert_over_kept(result):
    assert result.outputs["image"] is not MADE[2]
    np.testing.assert_array_equal(MADE[2], _random(2))


def test_an_input_read_later_is_not_written_over():
    result = _run(GRAPH.replace("outputs: {image: mix.image}",
                                "  later: {type: inplace.sum, in: {a: mix.image, b: over.image}}\n"
                                "outputs: {image: mix.image, later: later.image}"))
    _assert_over_kept(result)
    np.testing.assert_array_equal(result.outputs["later"], result.outputs["image"] + _random(2))


def test_an_input_that_is_a_graph_output_is_not_written_over():
    _assert_over_kept(_run(GRAPH.replace("outputs: {image: mix.image}",
                                         "outputs: {image: mix.image, over: over.image}")))


def test_a_cached_input_is_not_written_over():
    cache = Cache()
    _assert_over_kept(_run(GRAPH, cache=cache))
    again = _run(GRAPH.replace("seed: 3", "seed: 4"), cache=cache)
    assert again.records["over"].status == "cached" and again.records["mix"].status == "ran"
    _assert_over_kept(again)  # the cache's array, the first run's


def test_an_input_sharing_its_buffer_with_another_value_is_not_written_over():
    text = GRAPH.replace("  mix: {type: inplace.mix, in: {base: base.image, over: over.image,",
                         "  alias: {type: inplace.view, in: {image: over.image}}\n"
                         "  mix: {type: inplace.mix, in: {base: base.image, over: alias.image,")
    result = _run(text.replace("outputs: {image: mix.image}",
                               "  later: {type: inplace.sum, in: {a: over.image}}\n"
                               "outputs: {image: mix.image, later: later.image}"))
    _assert_over_kept(result)
    np.testing.assert_array_equal(result.outputs["later"], _random(2))


def test_in_place_declarations_are_checked():
    def declare(in_place, whole=()):
        def f(image: Gray, ref: Gray = None) -> Out(image=Gray, other=Gray):
            return {"image": image, "other": image}
        node("bad.in_place", local=Local(in_place=in_place, whole=whole))(f)

    with pytest.raises(TypeError, match="in_place"):
        declare({"nothing": "image"})
    with pytest.raises(TypeError, match="in_place"):
        declare({"image": "nothing"})
    with pytest.raises(TypeError, match="in_place"):
        declare({"image": "ref"}, whole=("ref",))
    declare({"image": "image", "other": "ref"})
