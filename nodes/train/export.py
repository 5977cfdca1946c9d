"""Export the fusion UNet to ONNX (opset 17, dynamic H and W), check onnxruntime == torch, and
rewrite the graph into the layout hzsr.fusion_unet runs fastest (:func:`runtime_layout`): the
fixed detail-band blurs moved out of it (:func:`split_bands`), the pixel (un)shuffles as
SpaceToDepth / DepthToSpace with the detail gains applied at the network's 1/4 resolution
(:func:`space_to_depth_layout`)."""
from __future__ import annotations

import json
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from nodegraph.nodes.hzsr.fusion_unet import BANDS_INPUT, DETAIL_TAPS_KEY

from .model import LEVELS, MULTIPLE, FusionUNet

OPSET = 17
INPUT_NAME = "x"      # (N, 3, H, W): Y_src, Ỹ_ref, M_occ; H, W multiples of 64
OUTPUT_NAME = "y"     # (N, 1, H, W): Y_fusion
BANDS_PREFIX = "/bands/"        # torch.onnx.export names the DetailBands module's ops so
# torch.onnx.export's pixel_unshuffle: Reshape to (N, C, h, b, w, b), this Transpose to
# (N, C, b, b, h, w), Reshape to (N, C b b, h, w)
UNSHUFFLE_PERM = [0, 1, 3, 5, 2, 4]


def split_bands(model_path: str | Path, out_path: str | Path) -> None:
    """Write ``out_path`` (may be ``model_path``): ``model_path`` with its DetailBands ops replaced
    by the input ``bands`` and their Gaussian taps stored in its metadata (``detail_taps``).

    hzsr.fusion_unet then computes the bands with OpenCV, ~0.6x the time per window of running
    these 25-tap one-channel convolutions inside onnxruntime; every learned weight is unchanged.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inside = [node for node in graph.node if node.name.startswith(BANDS_PREFIX)]
    if not inside:
        raise SystemExit(f"{model_path}: no {BANDS_PREFIX}* ops (already split, or another network)")
    made_inside = {out for node in inside for out in node.output}
    read_outside = {name for node in graph.node if not node.name.startswith(BANDS_PREFIX)
                    for name in node.input}
    (bands_tensor,) = made_inside & read_outside
    horizontal = next(node for node in inside if node.op_type == "Conv"
                      and list(helper.get_attribute_value(a) for a in node.attribute
                               if a.name == "kernel_shape")[0][0] == 1)
    weights = next(node for node in inside if node.output[0] == horizontal.input[1])
    taps = numpy_helper.to_array(helper.get_attribute_value(weights.attribute[0]))  # (k, 1, 1, 25)
    kept = [node for node in graph.node if not node.name.startswith(BANDS_PREFIX)]
    for node in kept:
        for i, name in enumerate(node.input):
            if name == bands_tensor:
                node.input[i] = BANDS_INPUT
    del graph.node[:]
    graph.node.extend(kept)
    x_dims = graph.input[0].type.tensor_type.shape.dim
    dims = [d.dim_param or d.dim_value for d in x_dims]
    dims[1] = taps.shape[0]
    graph.input.append(helper.make_tensor_value_info(BANDS_INPUT, onnx.TensorProto.FLOAT, dims))
    entry = model.metadata_props.add()
    entry.key, entry.value = DETAIL_TAPS_KEY, json.dumps(taps.reshape(taps.shape[0], -1).tolist())
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


def runtime_layout(model_path: str | Path, out_path: str | Path) -> None:
    """Write ``out_path`` (may be ``model_path``): ``model_path`` in the layout hzsr.fusion_unet
    runs fastest, whichever of :func:`split_bands` and :func:`space_to_depth_layout` it still
    lacks (``nodegraph train fusion`` writes it; ``tools/fusion_layout.py`` converts a file).
    ValueError when the file is already in that layout."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    needs_split = any(node.name.startswith(BANDS_PREFIX) for node in graph.node)
    needs_depth = any(node.op_type == "Transpose" and _attribute(node, "perm") == UNSHUFFLE_PERM
                      for node in graph.node)
    if not (needs_split or needs_depth):
        raise ValueError(f"{model_path}: already in hzsr.fusion_unet's layout (or another network)")
    if needs_split:
        split_bands(model_path, out_path)
        model_path = out_path
    if needs_depth:
        space_to_depth_layout(model_path, out_path)


def channel_order(channels: int, block: int) -> np.ndarray:
    """Index j of SpaceToDepth's (DCR) channel order -> the channel torch's pixel_unshuffle (and
    DepthToSpace's CRD mode) puts there: SpaceToDepth makes channel (i b + j) C + c of input
    channel c at offset (i, j) in the b x b block, pixel_unshuffle c b^2 + i b + j."""
    return np.arange(channels * block * block).reshape(channels, block * block).T.ravel()


def space_to_depth_layout(model_path: str | Path, out_path: str | Path) -> None:
    """Write ``out_path`` (may be ``model_path``): ``model_path`` with its pixel (un)shuffles as
    ONNX SpaceToDepth / DepthToSpace and its detail gains applied at 1/4 resolution; the same
    function up to float rounding.

    torch exports pixel_unshuffle as Reshape + a 6-D Transpose + Reshape, ~19 % of
    onnxruntime's time per window on a 2-core CPU, where SpaceToDepth does the same copy ~5x
    faster. SpaceToDepth orders the channels differently (:func:`channel_order`), so the
    convolutions that read its output take their input channels in that order: a Gather of
    the stored weights, which onnxruntime folds into a constant when it loads the model (the
    initializers keep torch's layout, so :func:`load_onnx_weights` reads them unchanged).

    The detail term sum_k pixel_shuffle(g)_k d_k (the gains' 48-channel DepthToSpace, then a
    full-resolution product and sum: ~15 % of the time per window) becomes
    pixel_shuffle(sum_k g_k space_to_depth(d)_k): the bands go to 1/4 resolution once
    (SpaceToDepth), the gains convolution's output channels are put in that order, the
    product is summed over k there and added to the residual before its own (one-channel)
    DepthToSpace. Unused ops (the exporter leaves a slice of Ỹ_ref that fed the bands) go.
    ValueError when the graph has no such pixel_unshuffle.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    nodes = list(graph.node)
    producer = {out: node for node in nodes for out in node.output}
    readers = defaultdict(list)
    for node in nodes:
        for name in node.input:
            readers[name].append(node)
    unshuffle = [node for node in nodes if node.op_type == "Transpose"
                 and _attribute(node, "perm") == UNSHUFFLE_PERM]
    if len(unshuffle) != 1:
        raise ValueError(f"{model_path}: no pixel_unshuffle of torch's export (already converted, "
                         "or another network)")
    chain, source = list(unshuffle), unshuffle[0].input[0]
    while source in producer and producer[source].op_type in ("Reshape", "Unsqueeze"):
        chain.append(producer[source])
        source = producer[source].input[0]
    blocks = unshuffle[0].output[0]
    while len(readers[blocks]) == 1 and readers[blocks][0].op_type in ("Reshape", "Squeeze"):
        chain.append(readers[blocks][0])
        blocks = readers[blocks][0].output[0]
    x_dims = next(i for i in graph.input if i.name == source).type.tensor_type.shape.dim
    channels = x_dims[1].dim_value
    weights = {t.name: t for t in graph.initializer}
    stem_in = weights[readers[blocks][0].input[1]].dims[1]
    block = round((stem_in // channels) ** 0.5)
    if channels * block * block != stem_in or any(r.op_type != "Conv" for r in readers[blocks]):
        raise ValueError(f"{model_path}: its pixel_unshuffle does not feed convolutions of "
                         f"{channels} x b^2 input channels")
    added, constants = [], []

    def permuted(tensor: str, order: np.ndarray, axis: int) -> str:
        """A Gather of ``tensor``'s slices along ``axis`` in ``order`` (a constant onnxruntime
        folds), named after it."""
        name = f"{tensor}/space_to_depth"
        constants.append(numpy_helper.from_array(order.astype(np.int64), f"{name}/order"))
        added.append(helper.make_node("Gather", [tensor, f"{name}/order"], [name], axis=axis,
                                      name=f"{name}/Gather"))
        return name

    added.append(helper.make_node("SpaceToDepth", [source], [blocks], blocksize=block,
                                  name="/SpaceToDepth"))
    for conv in readers[blocks]:
        conv.input[1] = permuted(conv.input[1], channel_order(channels, block), axis=1)
    removed = {id(node) for node in chain}
    removed |= _detail_at_low_resolution(graph, nodes, producer, readers, block, added, permuted)
    kept = [node for node in nodes if id(node) not in removed] + added
    graph.initializer.extend(constants)
    del graph.node[:]
    graph.node.extend(_topological(_without_unused(kept, graph)))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


def _detail_at_low_resolution(graph, nodes, producer, readers, block, added, permuted) -> set:
    """Rewrite y = (... + DepthToSpace(r)) + ReduceSum_k(DepthToSpace(g) d) as
    ... + DepthToSpace(r + sum_k g' SpaceToDepth(d)) (:func:`space_to_depth_layout`); returns
    the ids of the nodes it replaces. ValueError when the graph is not of that form (a
    residual r of other than b^2 channels fails the Reshape to its shape when the model runs)."""
    from onnx import helper, numpy_helper

    def only_reader(name: str, op_type: str):
        found = readers[name]
        if len(found) != 1 or found[0].op_type != op_type:
            raise ValueError(f"the detail term's {name!r} is not read by one {op_type} (another network?)")
        return found[0]

    shuffles = [node for node in nodes if node.op_type == "DepthToSpace"]
    gains_shuffle = next((node for node in shuffles if readers[node.output[0]]
                          and readers[node.output[0]][0].op_type == "Mul"), None)
    if gains_shuffle is None:
        raise ValueError("no DepthToSpace of detail gains multiplied by bands (another network?)")
    product = only_reader(gains_shuffle.output[0], "Mul")
    total = only_reader(product.output[0], "ReduceSum")
    outer = only_reader(total.output[0], "Add")
    inner = producer.get(next(name for name in outer.input if name != total.output[0]))
    residual_shuffle = next((producer[name] for name in (inner.input if inner else ())
                             if name in producer and producer[name] in shuffles), None)
    gains = producer.get(gains_shuffle.input[0])
    if (residual_shuffle is None or gains is None or gains.op_type != "Conv"
            or _attribute(gains_shuffle, "blocksize") != block
            or _attribute(residual_shuffle, "blocksize") != block):
        raise ValueError("the output is not (... + DepthToSpace(r)) + ReduceSum(DepthToSpace(Conv) x bands) "
                         "(another network?)")
    bands = next(name for name in product.input if name != gains_shuffle.output[0])
    gains_weight = next(t for t in graph.initializer if t.name == gains.input[1])
    band_count = gains_weight.dims[0] // (block * block)
    if _attribute(gains_shuffle, "mode", b"DCR") == b"CRD":
        order = channel_order(band_count, block)
        gains.input[1] = permuted(gains.input[1], order, axis=0)
        gains.input[2] = permuted(gains.input[2], order, axis=0)
    low = "/detail_low_resolution"
    residual = residual_shuffle.input[0]
    group_shape = numpy_helper.from_array(np.array([0, block * block, band_count, -1], np.int64),
                                          f"{low}/group_shape")
    graph.initializer.append(group_shape)
    added += [
        helper.make_node("SpaceToDepth", [bands], [f"{low}/bands"], blocksize=block, name=f"{low}/SpaceToDepth"),
        helper.make_node("Mul", [gains.output[0], f"{low}/bands"], [f"{low}/product"], name=f"{low}/Mul"),
        helper.make_node("Reshape", [f"{low}/product", group_shape.name], [f"{low}/grouped"], name=f"{low}/Reshape"),
        helper.make_node("ReduceSum", [f"{low}/grouped", f"{low}/axis"], [f"{low}/sum"], keepdims=0,
                         name=f"{low}/ReduceSum"),
        helper.make_node("Shape", [residual], [f"{low}/shape"], name=f"{low}/Shape"),
        helper.make_node("Reshape", [f"{low}/sum", f"{low}/shape"], [f"{low}/detail"], name=f"{low}/Reshape_1"),
        helper.make_node("Add", [residual, f"{low}/detail"], [f"{low}/residual"], name=f"{low}/Add"),
    ]
    graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), f"{low}/axis"))
    residual_shuffle.input[0] = f"{low}/residual"
    inner.output[0] = outer.output[0]
    return {id(gains_shuffle), id(product), id(total), id(outer)}


def _attribute(node, name: str, default=None):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _without_unused(nodes: list, graph) -> list:
    """``nodes`` less those whose outputs nothing reads (repeatedly), nor the graph returns."""
    needed = {out.name for out in graph.output}
    kept = []
    for node in reversed(_topological(nodes)):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(node.input)
    return kept[::-1]


def _topological(nodes: list) -> list:
    """``nodes`` in an order where each comes after the producers of its inputs (ONNX requires
    it): as given, but a node listed after one that reads it is pulled forward to just before
    that reader (so a node appended to the list runs when its output is first needed)."""
    producer = {out: node for node in nodes for out in node.output}
    done, ordered = set(), []

    def emit(node, visiting=()):
        if id(node) in done:
            return
        if id(node) in visiting:
            raise ValueError("the rewritten graph has a cycle")
        for name in node.input:
            if name in producer:
                emit(producer[name], (*visiting, id(node)))
        done.add(id(node))
        ordered.append(node)

    for node in nodes:
        emit(node)
    return ordered


def export_onnx(model: FusionUNet, path: str | Path, check_size: tuple[int, int] = (128, 192),
                atol: float = 1e-4) -> float:
    """Write ``model`` to ``path`` and return max |onnxruntime - torch| on a random input.

    Raises AssertionError when the difference exceeds ``atol``.
    """
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    h, w = check_size
    assert h % MULTIPLE == 0 and w % MULTIPLE == 0
    dummy = torch.zeros(1, 3, MULTIPLE, MULTIPLE)
    # The TorchScript exporter (deprecated, still shipped): a plain Conv/Relu graph with symbolic
    # N, H, W, exported in a second, without the torch.export tracing of the dynamo exporter.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # the pixel (un)shuffle's strided slices cannot be constant-folded: harmless, not the user's
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(model, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={INPUT_NAME: {0: "n", 2: "h", 3: "w"},
                                        OUTPUT_NAME: {0: "n", 2: "h", 3: "w"}})
    rng = np.random.default_rng(0)
    x = rng.random((1, 3, h, w), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    err = float(np.abs(out - ref).max())
    assert err <= atol, f"onnxruntime differs from torch by {err} > {atol}"
    return err


def _read_graph(path: str | Path):
    """The graph of the ONNX file at ``path``; ValueError when it cannot be read as one."""
    import onnx

    try:
        return onnx.load(str(path)).graph
    except Exception as err:  # noqa: BLE001 - any parse failure means: not an ONNX model
        raise ValueError(f"cannot read ONNX model {str(path)!r}: {err}") from None


def onnx_widths(path: str | Path) -> tuple[int, ...]:
    """The per-level channel widths of a fusion UNet exported by :func:`export_onnx` (from its
    encoder convolutions' output channels), so that a model of any width can be loaded;
    ValueError when the file is not such a model."""
    dims = {t.name: tuple(t.dims) for t in _read_graph(path).initializer}
    names = [f"enc.{level}.0.weight" for level in range(LEVELS)]
    if not all(name in dims for name in names):
        raise ValueError(f"ONNX model {str(path)!r} is not a fusion UNet (no encoder weights)")
    return tuple(int(dims[name][0]) for name in names)


def load_onnx_weights(model: FusionUNet, path: str | Path) -> None:
    """Set ``model``'s parameters from an ONNX file exported by :func:`export_onnx`, in place
    (fine-tuning from a shipped model, which carries no checkpoint).

    The exporter names initializers after the parameters and may store a tensor once under one
    name and alias the others by Identity nodes; both are followed. ValueError when the file is
    not such a model or its tensors do not fit ``model``'s architecture.
    """
    from onnx import numpy_helper

    graph = _read_graph(path)
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Identity" and n.input[0] in tensors:
            tensors[n.output[0]] = tensors[n.input[0]]
    state = model.state_dict()
    missing = [name for name in state if name not in tensors]
    wrong = [name for name in state if name in tensors and tuple(tensors[name].shape) != tuple(state[name].shape)]
    if missing or wrong:
        raise ValueError(f"ONNX model {str(path)!r} does not fit the fusion UNet "
                         f"(missing: {', '.join(missing[:3]) or '-'}; other shapes: "
                         f"{', '.join(wrong[:3]) or '-'}); train with the architecture it was made with")
    model.load_state_dict({name: torch.from_numpy(np.array(tensors[name])) for name in state})
