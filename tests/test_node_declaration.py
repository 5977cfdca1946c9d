import numpy as np
import pytest

from nodegraph import Flow, Gray, Image, Mask, Out, Param, Scalar, node
from nodegraph.node import call_node, spec_of
from nodegraph.types import PORT_TYPES, Any, OutPath, Path, Rect, Shift, port_type


def test_declaration_reads_inputs_params_outputs():
    @node("t.blend", version=3)
    def blend(a: Image, b: Image, weight: Mask = None, *,
              strength: float = Param(0.5, range=(0.0, 1.0), unit="", doc="mix"),
              steps: int = 3, label: str | None = None) -> Out(image=Image, weight=Mask):
        """Mix two images."""
        return a, weight

    spec = spec_of(blend)
    assert spec.id == "t.blend" and spec.version == 3
    assert [(i.name, i.type.name, i.optional) for i in spec.inputs.values()] == [
        ("a", "Image", False), ("b", "Image", False), ("weight", "Mask", True)]
    assert spec.params["strength"].range == (0.0, 1.0) and spec.params["strength"].type is float
    assert spec.params["steps"].type is int and spec.params["steps"].default == 3
    assert spec.params["label"].optional
    assert list(spec.outputs) == ["image", "weight"]
    assert spec.summary == "Mix two images."
    assert blend(1, 2, 3) == (1, 3)  # still a plain function

    @node("t.plain")
    def plain(a: Scalar, *, k: float = Param(2.0, range=(0, 5))) -> Out(y=Scalar):
        return a * k

    assert plain(3.0) == 6.0 and plain(3.0, k=1.0) == 3.0  # defaults, not Param objects


@pytest.mark.parametrize("declare, message", [
    (lambda: node("x")(lambda a, *, p=1.0: a), "annotated with a port type"),
])
def test_unannotated_input_is_refused(declare, message):
    with pytest.raises(TypeError, match=message):
        declare()


def test_malformed_declarations_are_refused():
    with pytest.raises(TypeError, match="return annotation"):
        @node("x1")
        def no_out(a: Image):
            return a

    with pytest.raises(TypeError, match="needs a default"):
        @node("x2")
        def no_default(a: Image, *, p: float) -> Out(a=Image):
            return a

    with pytest.raises(TypeError, match="default of parameter 'p'"):
        @node("x3")
        def out_of_range(a: Image, *, p: float = Param(5.0, range=(0, 1))) -> Out(a=Image):
            return a

    with pytest.raises(TypeError, match="parameter annotation"):
        @node("x4")
        def bad_param_type(a: Image, *, p: list = Param([1])) -> Out(a=Image):
            return a

    with pytest.raises(TypeError, match="may only default to None"):
        @node("x5")
        def bad_input_default(a: Scalar = 3.0) -> Out(a=Scalar):
            return a


def test_string_annotations_are_resolved():
    namespace = {}
    exec("from __future__ import annotations\n"
         "from nodegraph import node, Out, Image, Param\n"
         "@node('s.x')\n"
         "def f(a: Image, *, k: int | None = Param(None)) -> Out(b=Image):\n"
         "    return a\n", namespace)
    spec = spec_of(namespace["f"])
    assert spec.inputs["a"].type is Image and spec.params["k"].optional


def test_param_checks_type_range_and_choices():
    @node("t.p")
    def f(a: Scalar, *, x: float = Param(1.0, range=(0, 2)), n: int = 1,
          mode: str = Param("a", choices=("a", "b")), flag: bool = False) -> Out(a=Scalar):
        return a

    params = spec_of(f).params
    assert params["x"].problem_with(1) is None  # ints are fine for floats
    assert "outside the range" in params["x"].problem_with(3.0)
    assert "expected float" in params["x"].problem_with("3")
    assert "expected int" in params["n"].problem_with(1.5)
    assert "expected int" in params["n"].problem_with(True)
    assert "not one of" in params["mode"].problem_with("c")
    assert params["flag"].parse("yes") is True and params["flag"].parse("off") is False
    with pytest.raises(ValueError):
        params["flag"].parse("maybe")
    assert params["x"].parse("1.5") == 1.5


def test_type_compatibility_table():
    assert Mask.can_feed(Gray) and not Gray.can_feed(Mask)
    assert not Image.can_feed(Gray) and not Gray.can_feed(Image)
    assert not Path.can_feed(OutPath) and not OutPath.can_feed(Path)
    assert all(t.can_feed(Any) for t in PORT_TYPES.values())
    assert Flow.can_feed(Flow) and not Flow.can_feed(Image)
    assert set(PORT_TYPES) >= {"Image", "Gray", "Mask", "Flow", "Rect", "Shift", "Scalar", "Path"}
    with pytest.raises(KeyError, match="unknown type"):
        port_type("Picture")


def test_runtime_value_checks():
    assert Image.problem_with(np.zeros((2, 2, 3), np.float32)) is None
    assert "dtype" in Image.problem_with(np.zeros((2, 2, 3), np.uint8))
    assert "shape" in Image.problem_with(np.zeros((2, 2), np.float32))
    assert Flow.problem_with(np.zeros((2, 2, 2), np.float32)) is None
    assert Rect.problem_with((0, 0, 1, 1)) is None and Rect.problem_with((0, 1)) is not None
    assert Shift.parse("1.5, -2") == (1.5, -2.0)
    assert Scalar.problem_with(True) is not None


def test_call_node_normalises_results():
    @node("t.two")
    def two(a: Scalar) -> Out(x=Scalar, y=Scalar):
        return a, a + 1

    @node("t.dict")
    def as_dict(a: Scalar) -> Out(x=Scalar, y=Scalar):
        return {"x": a}

    assert call_node(spec_of(two), {"a": 1.0}, {}) == {"x": 1.0, "y": 2.0}
    with pytest.raises(TypeError, match="no value for output"):
        call_node(spec_of(as_dict), {"a": 1.0}, {})
