"""CompactMask: masks held as 8 bits between nodes (issue 14, point 2), quantized when a node
outputs one and converted back to float32 for each Mask reader, whole or strip by strip."""
import sys

import numpy as np
import pytest

from nodegraph import CompactMask, Gray, Local, Mask, Out, node
from nodegraph.execute import plan, run_plan
from nodegraph.graph import parse_graph
from nodegraph.node import call_node, spec_of
from nodegraph.registry import Registry
from nodegraph.types import compact_mask_to_float, quantize_mask


@node("masks.random")
def random_plane() -> Out(image=Gray):
    """Random float32 (37, 23), some of it outside [0, 1]."""
    return np.random.default_rng(3).uniform(-0.2, 1.2, (37, 23)).astype(np.float32)


@node("masks.weight", local=Local())
def weight(image: Gray) -> Out(weight=CompactMask):
    """The plane clipped to [0, 1], stored compact."""
    return np.clip(image, 0.0, 1.0)


@node("masks.apply", local=Local())
def apply(image: Gray, weight: Mask) -> Out(image=Gray):
    """image x weight: ``weight`` arrives as float32 whatever it is stored as."""
    assert weight.dtype == np.float32
    return image * weight


GRAPH = """\
nodes:
  plane: {type: masks.random}
  weight: {type: masks.weight, in: {image: plane.image}}
  applied: {type: masks.apply, in: {image: plane.image, weight: weight.weight}}
outputs:
  weight: weight.weight
  out: applied.image
"""


def run(**options):
    toys = Registry()
    toys.add_module(sys.modules[__name__], "test")
    return run_plan(plan(parse_graph(GRAPH), toys), **options)


def test_quantize_is_rint_of_255_m_saturated_and_round_trips_within_half_a_step():
    m = np.random.default_rng(0).uniform(-0.3, 1.3, (600, 400)).astype(np.float32)
    m[0, :3] = [0.5 / 255, 1.5 / 255, 254.5 / 255]  # float32 a hair above a half: rounds up
    stored = quantize_mask(m)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, np.rint(np.clip(m, 0, 1).astype(np.float64) * 255).astype(np.uint8))
    inside = (m >= 0) & (m <= 1)
    assert np.abs(compact_mask_to_float(stored)[inside] - m[inside]).max() <= 0.5 / 255 + 1e-7
    wrong = m.astype(np.float64)
    assert quantize_mask(wrong) is wrong and "dtype" in CompactMask.problem_with(wrong)


def test_the_type_table_converts_compact_masks_for_mask_and_gray_readers():
    stored = np.array([[0, 128, 255]], np.uint8)
    assert CompactMask.can_feed(Mask) and CompactMask.can_feed(Gray)
    np.testing.assert_allclose(CompactMask.convert(stored, Mask), [[0.0, 128 / 255, 1.0]], atol=1e-7)
    as_float = np.array([[0.25]], np.float32)
    assert Mask.can_feed(CompactMask) and Mask.convert(as_float, CompactMask) is as_float
    assert CompactMask.problem_with(as_float) is None  # a float32 mask is a valid one
    assert "shape" in CompactMask.problem_with(np.zeros((2, 2, 3), np.uint8))
    # a float mask handed to a node directly (not through a link) is never scaled
    assert compact_mask_to_float(np.array([[0.5]], np.float64)).tolist() == [[0.5]]


def test_a_compact_mask_output_is_stored_as_8_bits_by_call_node():
    plane = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    stored = call_node(spec_of(weight), {"image": plane}, {})["weight"]
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, quantize_mask(plane))


@pytest.mark.parametrize("strip_rows", [None, 1, 5, 36])
def test_readers_get_float32_whole_and_in_strips(strip_rows):
    whole = run(keep_all=True)
    streamed = run(strip_rows=strip_rows) if strip_rows else run()
    plane = random_plane()
    expected_weight = compact_mask_to_float(quantize_mask(np.clip(plane, 0, 1)))
    for result in (whole, streamed):
        assert result.outputs["weight"].dtype == np.uint8  # what lives between nodes is 8-bit
        np.testing.assert_array_equal(result.outputs["out"], plane * expected_weight)
