"""A UNet-shaped ONNX model cut into three stages, so that its full-resolution levels run in
tiles with a few pixels of context instead of the whole network's receptive field.

A UNet's output at a pixel depends on the input far away only through its coarse levels.
Tiling the whole network exactly needs that whole receptive field around every tile (192 px
for the bundled fusion model: 1.6x the pixels at 1024 px tiles). Cut at the finest skip
connection, the same model is three sub-models (``onnx.utils.Extractor``):

- ``encoder``: the network input -> ``skip`` (the finest level's encoder output, on the stem's
  grid), through stride-1 convolutions only: a tile needs ``encoder_halo`` px of context;
- ``deep``: ``skip`` -> ``deep_name`` (the next level's decoder output, the input of the last
  transposed convolution), run on the whole ``skip`` plane (1/16 of the pixels at a 4x stem),
  or in windows with ``deep_reach`` px of context;
- ``decoder``: the network inputs, ``skip`` and ``deep`` -> the outputs, again through
  stride-1 convolutions and the 2x2 stride-2 transposed convolution: ``decoder_halo`` px.

Results equal the whole network's to float rounding (the same operations on the same values;
``tests/test_fusion_unet.py`` checks tile edges). The cut is found in the graph, not by
names: the last ConvTranspose and the Add that joins its output with the skip. Halos and
reach are upper bounds summed from the kernel sizes in each stage, so a model of another
width or depth is cut correctly; a graph with any other structure (an operation not known to
be pointwise, a strided convolution where the fine levels should be) is not cut
(:func:`unet_stages` returns None) and runs whole, tiled with its full receptive field.

Cutting needs the ``onnx`` package, whose import alone takes ~0.65 s (its ``ml_dtypes``
extension): more than the fusion's whole network time on a small image, paid by every
process. So a model's stages (or the finding that it cannot be cut) are kept on disk in
:func:`nodegraph.files.user_cache_folder` (``onnx_stages``), keyed by the model's content and
this module's source, and later processes read them without importing ``onnx``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from nodegraph.files import file_digest, user_cache_folder, write_atomic

# operations that act on each pixel (or channel vector) alone: they add no spatial context
_POINTWISE = {"Add", "Sub", "Mul", "Div", "LeakyRelu", "Relu", "Sigmoid", "Tanh", "Clip",
              "Identity", "Constant", "Shape", "Reshape", "ReduceSum", "Slice", "Gather",
              "Concat", "Squeeze", "Unsqueeze", "Cast"}
_REGROUP = {"SpaceToDepth", "DepthToSpace"}  # the stem's pixel (un)shuffles


@dataclass(frozen=True)
class UNetStages:
    """The three serialized sub-models and their geometry, in input pixels unless noted."""
    encoder: bytes
    deep: bytes
    decoder: bytes
    skip: str            # tensor name: encoder output, deep and decoder input
    deep_name: str       # tensor name: deep output, decoder input
    skip_channels: int
    stem: int            # input px per skip px (the SpaceToDepth block size)
    deep_step: int       # input px per deep px: tiles start on this grid
    deep_multiple: int   # skip px: the deep stage's input sides must be multiples of it
    encoder_halo: int
    decoder_halo: int
    deep_reach: int      # skip px of context a deep output pixel may depend on


STAGES_CACHE = "onnx_stages"
_BYTES_FIELDS = ("encoder", "deep", "decoder")


def unet_stages(model_path: str) -> UNetStages | None:
    """The stages of the model at ``model_path`` (module doc), or None when its graph is not
    a UNet of the known shape. Cached per file content for the process and on disk."""
    try:
        return _stages_of(file_digest(model_path), model_path)
    except (OSError, ImportError):  # unreadable (the session reports it) or no onnx: run whole
        return None


@functools.lru_cache(maxsize=4)
def _stages_of(digest: str, model_path: str) -> UNetStages | None:
    entry = user_cache_folder(STAGES_CACHE) / f"{digest}-{file_digest(__file__)}.stages"
    try:
        return read_stages(entry)
    except (OSError, ValueError, TypeError, KeyError):  # absent, or not an entry this code wrote
        pass
    stages = _cut(model_path)
    try:
        write_atomic(entry, stages_bytes(stages))
    except OSError:  # a read-only cache folder: the next process cuts the model again
        pass
    return stages


def stages_bytes(stages: UNetStages | None) -> bytes:
    """``stages`` (or None: the model cannot be cut) as a cache entry: a JSON line with the
    geometry and the sizes of the three sub-models, then their bytes."""
    if stages is None:
        return b"null\n"
    fields = dataclasses.asdict(stages)
    blobs = [fields.pop(name) for name in _BYTES_FIELDS]
    fields["sizes"] = [len(blob) for blob in blobs]
    return json.dumps(fields).encode() + b"\n" + b"".join(blobs)


def read_stages(entry: Path) -> UNetStages | None:
    """The stages a :func:`stages_bytes` entry holds; ValueError (or KeyError, TypeError) for
    any file that is not a whole entry."""
    payload = entry.read_bytes()
    header, _, body = payload.partition(b"\n")
    fields = json.loads(header)
    if fields is None:
        return None
    sizes = fields.pop("sizes")
    if len(sizes) != len(_BYTES_FIELDS) or sum(sizes) != len(body):
        raise ValueError(f"truncated stages entry {entry}")
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    for name, start, end in zip(_BYTES_FIELDS, offsets, offsets[1:]):
        fields[name] = body[start:end]
    return UNetStages(**fields)


def _cut(model_path: str) -> UNetStages | None:
    """The model's stages found in its graph (module doc), or None."""
    import onnx
    import onnx.utils

    try:
        model = onnx.shape_inference.infer_shapes(onnx.load(model_path))
    except Exception:  # noqa: BLE001 - not a model onnx can read: it runs whole (or fails there)
        return None
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    producers = {out: node for node in graph.node for out in node.output}
    stems = [n for n in graph.node if n.op_type == "SpaceToDepth" and n.input[0] == inputs[0]]
    transposed = [n for n in graph.node if n.op_type == "ConvTranspose"]
    if len(stems) != 1 or not transposed:
        return None
    last_up = transposed[-1]
    joins = [n for n in graph.node if n.op_type == "Add" and last_up.output[0] in n.input]
    if len(joins) != 1 or _kernel(last_up, initializers) != 2 or _stride(last_up) != 2:
        return None
    skip = next(name for name in joins[0].input if name != last_up.output[0])
    deep_name = last_up.input[0]
    if skip not in producers:
        return None

    def extract(ins: list[str], outs: list[str]):
        sub = onnx.utils.Extractor(model).extract_model(ins, outs)
        del sub.metadata_props[:]
        sub.metadata_props.extend(model.metadata_props)
        return sub

    try:
        encoder = extract([inputs[0]], [skip])
        deep = extract([skip], [deep_name])
        decoder = extract(inputs + [skip, deep_name], [o.name for o in graph.output])
    except Exception:  # noqa: BLE001 - the cut does not separate the graph: run it whole
        return None
    stem = _attribute(stems[0], "blocksize")
    encoder_radius = _fine_radius(encoder.graph, initializers, allow_transposed=False)
    decoder_radius = _fine_radius(decoder.graph, initializers, allow_transposed=True)
    reach, multiple = _deep_reach(deep.graph, initializers, skip)
    channels = encoder.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    if encoder_radius is None or decoder_radius is None or reach is None or not channels:
        return None
    return UNetStages(encoder.SerializeToString(), deep.SerializeToString(), decoder.SerializeToString(),
                      skip, deep_name, channels, stem, 2 * stem, multiple,
                      stem * encoder_radius, stem * decoder_radius, reach)


def _attribute(node, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute.ints if attribute.ints else attribute.i
    return default


def _kernel(node, initializers) -> int:
    weight = initializers.get(node.input[1])
    if weight is not None:
        return max(weight.dims[2:])
    return max(_attribute(node, "kernel_shape", [1]))


def _stride(node) -> int:
    return max(_attribute(node, "strides", [1]))


def _fine_radius(graph, initializers, allow_transposed: bool) -> int | None:
    """Skip px of context a stage at the finest level needs: the sum of its stride-1
    convolutions' radii (a bound over every path); None if it holds anything else spatial."""
    radius = 0
    for node in graph.node:
        if node.op_type == "Conv":
            if _stride(node) != 1:
                return None
            radius += _kernel(node, initializers) // 2
        elif node.op_type == "ConvTranspose":
            if not allow_transposed or _stride(node) != 2 or _kernel(node, initializers) != 2:
                return None
        elif node.op_type not in _POINTWISE | _REGROUP:
            return None
    return radius


def _deep_reach(graph, initializers, skip: str) -> tuple[int | None, int]:
    """(bound on the skip px of context a deep output depends on, the sides' multiple the
    stage needs): each convolution adds its kernel's reach at the scale it reads (a sum over
    every path); a transposed convolution whose kernel equals its stride adds none."""
    scale, reach, coarsest = {skip: 1}, 0, 1
    for node in graph.node:
        known = [scale[name] for name in node.input if name in scale]
        at = max(known) if known else 1
        if node.op_type in ("Conv", "ConvTranspose"):
            stride, kernel = _stride(node), _kernel(node, initializers)
            if node.op_type == "Conv":
                out = at * stride
                # an odd kernel is centred (padding k // 2); an even one reaches one way
                reach += (kernel // 2 if kernel % 2 else kernel - 1) * at
            else:
                out = at // stride
                reach += 0 if kernel == stride else (kernel - 1) * at
        elif node.op_type in _POINTWISE:
            out = at
        else:
            return None, 1
        coarsest = max(coarsest, out)
        for name in node.output:
            scale[name] = out
    return reach, coarsest
