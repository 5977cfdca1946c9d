"""Declaring a node: a typed Python function becomes a graph node.

    from nodegraph import node, Param, Out, Image

    @node("image.blur", version=1)
    def blur(image: Image, *,
             sigma: float = Param(1.0, range=(0.0, 100.0), unit="px",
                                  doc="standard deviation of the Gaussian")) -> Out(image=Image):
        '''Gaussian blur of each channel.'''
        return cv2.GaussianBlur(image, (0, 0), sigma)

* Parameters before ``*`` are **input ports**; their annotation is a port type
  (``nodegraph.types``). A default of ``None`` makes the input optional: it may stay
  unlinked, and the function then receives ``None``.
* Keyword-only parameters are **node parameters** (set in YAML under ``params:`` or with
  ``--set node.param=value``); their default is a :class:`Param` carrying range, choices,
  unit and documentation. The annotation (``float``, ``int``, ``bool``, ``str``, or
  ``float | None``...) is the parameter's value type.
* The return annotation :class:`Out` names and types the **output ports**. The function
  returns a dict keyed by output name, a tuple in declaration order, or the bare value when
  there is one output.
* ``version`` is part of the cache key: bump it when the node's results change.
* ``side_effect=True`` marks nodes that write files: they run every time and are never cached.
* ``fingerprint=f`` adds ``f(params)`` (a string) to the node's cache key, for what its
  parameters name but do not contain: a node whose parameter names a model file returns that
  file's content digest (:func:`nodegraph.files.file_digest`), so replacing the file at the
  same path re-runs the node.
* ``bypass={"output": "input"}`` says what the node yields when bypassed (an ablation), where
  the default rule is wrong. The default (:func:`bypass_sources`): each output passes through
  the node's first input of a type that can feed it; with none, the output type's
  :meth:`~nodegraph.types.PortType.bypass_value` (a mask of zeros, a flow of zeros, else no
  value). ``{"output": None}`` skips the pass-through and takes the type's value directly.
* ``warm_up=f``: ``f()`` does the node's one-time start-up work ahead of its first call
  (loading its compiled kernels: Numba's first kernel in a process costs ~0.3 s): a run
  starts it on a background thread (:func:`nodegraph.execute.start_warm_ups`), so it
  overlaps the nodes before this one. Its result is not used and its failure is ignored.
"""
from __future__ import annotations

import inspect
import os
import types as _pytypes
import typing
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .errors import brief
from .types import PortType, non_finite, parse_number

_PARAM_TYPES = (float, int, bool, str)


class Note(UserWarning):
    """Plain information a node gives about its run (not a problem): shown as ``note:``."""


class Wrote(Note):
    """A file a node wrote: the command line lists these at the end of a run."""


def wrote(path: str | os.PathLike, detail: str = "") -> None:
    """Report that this node wrote ``path`` (``detail``: e.g. the image size ``"740x500"``);
    ``nodegraph run`` ends with ``wrote PATH (detail)`` for each."""
    import warnings
    warnings.warn(f"{os.fspath(path)} ({detail})" if detail else os.fspath(path), Wrote,
                  stacklevel=2)


def note(message: str) -> None:
    """Report ``message`` as information about this node's run (the executor shows it as a
    note, the CLI prints ``note: node 'NAME': message``); use ``warnings.warn`` for problems."""
    import warnings
    warnings.warn(message, Note, stacklevel=2)


@dataclass(frozen=True)
class Param:
    """Default value and metadata of a node parameter."""

    default: Any
    range: tuple[float, float] | None = None  # inclusive bounds for numbers
    choices: tuple[Any, ...] | None = None
    unit: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))


class Out:
    """Output ports of a node, in order: ``Out(forward=Flow, backward=Flow)``."""

    def __init__(self, **ports: PortType) -> None:
        if not ports:
            raise TypeError("Out() needs at least one output port")
        for name, ptype in ports.items():
            if not isinstance(ptype, PortType):
                raise TypeError(f"output {name!r}: {ptype!r} is not a port type")
        self.ports: dict[str, PortType] = dict(ports)

    def __repr__(self) -> str:
        return "Out(" + ", ".join(f"{k}={v}" for k, v in self.ports.items()) + ")"


@dataclass(frozen=True)
class Local:
    """Declares a node *local*: it may run on horizontal strips of its frame.

    A local node's raster inputs (types with ``raster``: images, masks, flows) and outputs all
    share one frame (H, W), and output row y depends only on input rows y - halo .. y + halo.
    Called on a strip of input rows, the node returns outputs with the same rows, of which
    those farther than ``halo`` from a cut edge equal the whole-image run's (at the frame's
    own top and bottom the strip sees the true edge, so border rules hold there).

    * ``halo``: rows of context on each side, an int or ``halo(params, frame)`` -> int
      (e.g. from a blur's sigma, or from a width given as a fraction of the frame).
    * ``whole``: inputs passed whole to every strip: a raster the node samples anywhere (a
      flow's target, a reference image), or at another resolution. Non-raster inputs (rects,
      scalars, paths) are always whole.

    * ``frame``: for a node whose raster inputs are all whole (it resamples them onto a grid
      of its own), ``frame(inputs, params)`` gives its output's (H, W), or None to run it whole
      this time; each call then computes the rows :func:`output_rows` names.
    * ``in_place``: {output: input} of the same shape and dtype: the executor may assemble the
      output's strips in that input's array instead of a new one, when nothing else holds the
      input (no later reader, not a graph output, no cache, no other value sharing its memory),
      e.g. a blend written over the fused image it mixes. Declare it only where each output
      pixel reads that input at the same pixel alone: a strip's rows are then written over
      while a neighbouring strip may still read them, but only for its context rows, whose
      results are dropped.

    A node that uses its frame's size (not only its values) asks :func:`frame_of`, which
    gives the whole frame's (H, W) in a strip call as in a whole-image one. Only declare what
    is exactly equivalent: every local node has a strip-versus-whole test.
    """

    halo: int | Callable[[dict[str, Any], tuple[int, int]], int] = 0
    whole: tuple[str, ...] = ()
    frame: Callable[[dict[str, Any], dict[str, Any]], tuple[int, int] | None] | None = None
    in_place: tuple[tuple[str, str], ...] = ()  # given as a dict {output: input}

    def __post_init__(self) -> None:
        object.__setattr__(self, "whole", tuple(self.whole))
        pairs = self.in_place.items() if isinstance(self.in_place, dict) else self.in_place
        object.__setattr__(self, "in_place", tuple((str(out), str(inp)) for out, inp in pairs))

    def rows(self, params: dict[str, Any], frame: tuple[int, int]) -> int:
        """The halo in rows for these parameters and this frame size (H, W)."""
        halo = self.halo(params, frame) if callable(self.halo) else self.halo
        return max(0, int(halo))


# While a local node runs on a strip (set by the executor): the whole frame's (H, W) and the
# rows [top, bottom) of it that the call covers.
_strip: ContextVar[tuple[tuple[int, int], tuple[int, int]] | None] = ContextVar("strip", default=None)


def frame_of(raster: Any) -> tuple[int, int]:
    """(H, W) of the whole frame that ``raster`` (an input of a local node) belongs to: its
    own size in a whole-image call, the frame's when the executor passes a strip of it."""
    strip = _strip.get()
    return strip[0] if strip is not None else tuple(raster.shape[:2])


def output_rows() -> tuple[int, int] | None:
    """The rows [top, bottom) of its frame that a local node computes in this call (its
    strip, halo included), or None in a whole-image call."""
    strip = _strip.get()
    return None if strip is None else strip[1]


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: PortType
    optional: bool


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type  # float, int, bool or str
    default: Any
    optional: bool  # None is an accepted value
    range: tuple[float, float] | None
    choices: tuple[Any, ...] | None
    unit: str
    doc: str

    def problem_with(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this parameter, or None."""
        if value is None:
            return None if self.optional else "must not be empty"
        if self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.type)
        if not ok:
            return f"expected {self.type.__name__}, got {type(value).__name__} {brief(value)}"
        if non_finite(value):
            return f"expected a finite number, got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"{brief(value)} is not one of {list(self.choices)}"
        if self.range is not None and not (self.range[0] <= value <= self.range[1]):
            unit = f" {self.unit}" if self.unit else ""
            return f"{value!r} is outside the range [{self.range[0]}, {self.range[1]}]{unit}"
        return None

    def parse(self, text: str) -> Any:
        """Parse a command-line string into this parameter's type."""
        if self.optional and text.lower() in ("none", "null", "auto", ""):
            return None
        if self.type is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {brief(text)}")
        if self.type is int:
            return parse_number(text, integer=True)
        if self.type is float:
            return parse_number(text)
        return text


@dataclass(frozen=True)
class NodeSpec:
    """Everything the framework knows about a node type."""

    id: str
    version: int
    func: Callable[..., Any] = field(repr=False, compare=False)
    inputs: dict[str, InputSpec]
    params: dict[str, ParamSpec]
    outputs: dict[str, PortType]
    doc: str
    side_effect: bool = False
    fingerprint: Callable[[dict[str, Any]], str] | None = field(default=None, repr=False, compare=False)
    # Output -> the input a bypassed node passes through (None: the type's bypass value).
    bypass: dict[str, str | None] = field(default_factory=dict)
    local: Local | None = None  # may run strip by strip (see Local)
    warm_up: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    source: str = ""  # where it came from: "builtin", "plugin NAME" or a graph file
    subgraph: Any = field(default=None, repr=False, compare=False)  # the Graph of a subgraph node

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""

    def default_params(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.params.items()}


def _param_value_type(annotation: Any, where: str) -> tuple[type, bool]:
    """(value type, optional) of a parameter annotation such as ``float`` or ``int | None``."""
    if annotation in _PARAM_TYPES:
        return annotation, False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, _pytypes.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and args[0] in _PARAM_TYPES:
            return args[0], True
    raise TypeError(f"{where}: parameter annotation must be float, int, bool or str "
                    f"(optionally '| None'), got {annotation!r}")


def make_spec(func: Callable[..., Any], node_id: str, version: int, side_effect: bool = False,
              fingerprint: Callable[[dict[str, Any]], str] | None = None,
              bypass: dict[str, str | None] | None = None, local: Local | None = None,
              warm_up: Callable[[], Any] | None = None) -> NodeSpec:
    """Read a node function's signature into a :class:`NodeSpec`; TypeError if malformed."""
    where = f"node {node_id!r} ({func.__module__}.{func.__qualname__})"
    hints = _resolved_annotations(func)
    signature = inspect.signature(func)
    inputs: dict[str, InputSpec] = {}
    params: dict[str, ParamSpec] = {}
    for name, parameter in signature.parameters.items():
        annotation = hints.get(name, inspect.Parameter.empty)
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if not isinstance(annotation, PortType):
                raise TypeError(f"{where}: input {name!r} must be annotated with a port type")
            if parameter.default not in (inspect.Parameter.empty, None):
                raise TypeError(f"{where}: input {name!r} may only default to None (optional)")
            inputs[name] = InputSpec(name, annotation, parameter.default is None)
        elif parameter.kind == parameter.KEYWORD_ONLY:
            default = parameter.default
            if default is inspect.Parameter.empty:
                raise TypeError(f"{where}: parameter {name!r} needs a default")
            meta = default if isinstance(default, Param) else Param(default)
            value_type, optional = _param_value_type(annotation, f"{where}, {name!r}")
            spec = ParamSpec(name, value_type, meta.default, optional or meta.default is None,
                             meta.range, meta.choices, meta.unit, meta.doc)
            problem = spec.problem_with(meta.default)
            if problem:
                raise TypeError(f"{where}: default of parameter {name!r}: {problem}")
            params[name] = spec
        else:
            raise TypeError(f"{where}: *args and **kwargs are not allowed in a node function")
    returns = hints.get("return", inspect.Parameter.empty)
    if not isinstance(returns, Out):
        raise TypeError(f"{where}: the return annotation must be Out(name=Type, ...)")
    for out, port in (bypass or {}).items():
        if out not in returns.ports:
            raise TypeError(f"{where}: bypass names no output {out!r}")
        if port is not None and (port not in inputs
                                 or not inputs[port].type.can_feed(returns.ports[out])):
            raise TypeError(f"{where}: bypass of output {out!r}: {port!r} is not an input "
                            f"that can feed a {returns.ports[out].name}")
    if local is not None:
        _check_local(local, inputs, returns.ports, side_effect, where)
    return NodeSpec(id=node_id, version=version, func=func, inputs=inputs, params=params,
                    outputs=dict(returns.ports), doc=inspect.getdoc(func) or "",
                    side_effect=side_effect, fingerprint=fingerprint, bypass=dict(bypass or {}),
                    local=local, warm_up=warm_up)


def _check_local(local: Local, inputs: dict[str, InputSpec], outputs: dict[str, PortType],
                 side_effect: bool, where: str) -> None:
    if not isinstance(local, Local):
        raise TypeError(f"{where}: local must be a Local(...), got {local!r}")
    if side_effect:
        raise TypeError(f"{where}: a node with side effects cannot be local")
    unknown = [name for name in local.whole if name not in inputs]
    if unknown:
        raise TypeError(f"{where}: local whole names no input {unknown}")
    if not all(ptype.raster and ptype.in_strips for ptype in outputs.values()):
        raise TypeError(f"{where}: a local node's outputs must all be rasters made in strips")
    for output, written in local.in_place:
        spec = inputs.get(written)
        if output not in outputs or spec is None or written in local.whole or not spec.type.in_strips \
                or not spec.type.raster:
            raise TypeError(f"{where}: in_place {output!r} -> {written!r} must name an output and an "
                            "input read in strips (not whole)")
    if local.frame is None and not any(spec.type.raster and spec.type.in_strips and name not in local.whole
                                       for name, spec in inputs.items()):
        raise TypeError(f"{where}: a local node needs a raster input that is not whole, "
                        "or a frame")


def _resolved_annotations(func: Callable[..., Any]) -> dict[str, Any]:
    # Port types and Out(...) are objects, not classes, so typing.get_type_hints rejects them;
    # string annotations (from __future__ import annotations) are evaluated here instead.
    return {name: eval(a, func.__globals__) if isinstance(a, str) else a  # noqa: S307
            for name, a in func.__annotations__.items()}


def node(node_id: str, version: int = 1, *, side_effect: bool = False,
         fingerprint: Callable[[dict[str, Any]], str] | None = None,
         bypass: dict[str, str | None] | None = None, local: Local | None = None,
         warm_up: Callable[[], Any] | None = None) -> Callable:
    """Declare a node type. The decorated function stays callable as a plain function."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        spec = make_spec(func, node_id, version, side_effect, fingerprint, bypass, local, warm_up)
        # Plain calls get the parameters' default values, not the Param objects.
        func.__kwdefaults__ = spec.default_params() or None
        func.__nodegraph_spec__ = spec  # type: ignore[attr-defined]
        return func

    return decorate


def spec_of(func: Callable[..., Any]) -> NodeSpec | None:
    """The NodeSpec attached by :func:`node`, or None for an undecorated function."""
    return getattr(func, "__nodegraph_spec__", None)


def call_node(spec: NodeSpec, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Call a node function and return its outputs as a dict keyed by output name, each held
    as its port type stores it (``PortType.store``: a CompactMask output as 8 bits)."""
    result = spec.func(**inputs, **params)
    names = list(spec.outputs)
    if isinstance(result, dict):
        missing = [n for n in names if n not in result]
        if missing:
            raise TypeError(f"node {spec.id!r} returned no value for output(s) {missing}")
        outputs = {n: result[n] for n in names}
    elif len(names) == 1:
        outputs = {names[0]: result}
    elif isinstance(result, tuple) and len(result) == len(names):
        outputs = dict(zip(names, result))
    else:
        raise TypeError(f"node {spec.id!r} must return a dict or a {len(names)}-tuple "
                        f"for outputs {names}")
    for name, value in outputs.items():
        store = spec.outputs[name].store
        if store is not None and value is not None:
            outputs[name] = store(value)
    return outputs


def bypass_sources(spec: NodeSpec, has_value: Callable[[str], bool]) -> dict[str, str | None]:
    """Where each output of a bypassed node comes from: the input port passed through, or None
    for the output type's :meth:`~nodegraph.types.PortType.bypass_value`.

    ``has_value(port)`` says whether an input carries a value (at run time: not None; when
    validating: linked to something that will have one). The executor and validation both
    ask this one function, so what validation promises is what a run does.
    """
    sources: dict[str, str | None] = {}
    for out, out_type in spec.outputs.items():
        if out in spec.bypass:
            port = spec.bypass[out]
            sources[out] = port if port is not None and has_value(port) else None
        else:
            sources[out] = next((port for port, in_spec in spec.inputs.items()
                                 if in_spec.type.can_feed(out_type) and has_value(port)), None)
    return sources


def bypass_frame_port(spec: NodeSpec, has_value: Callable[[str], bool]) -> str | None:
    """The input whose (H, W) sizes the fill of a bypassed node's outputs: its first raster
    input with a value, or None."""
    return next((port for port, in_spec in spec.inputs.items()
                 if in_spec.type.raster and has_value(port)), None)


def bypassed_outputs(spec: NodeSpec, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs of a bypassed node given its input values (see :func:`bypass_sources`)."""
    def has_value(port: str) -> bool:
        return inputs.get(port) is not None

    frame_port = bypass_frame_port(spec, has_value)
    frame = tuple(inputs[frame_port].shape[:2]) if frame_port is not None else None
    # a passed-through value takes its output's type (a CompactImage passed on as an Image
    # becomes float32, as it would for a node reading it)
    return {out: (spec.inputs[port].type.convert(inputs[port], spec.outputs[out]) if port is not None
                  else spec.outputs[out].bypass_value(frame))
            for out, port in bypass_sources(spec, has_value).items()}
