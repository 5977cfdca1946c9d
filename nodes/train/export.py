"""Export the fusion UNet to ONNX (opset 17, dynamic H and W), check onnxruntime == torch, and
split its fixed detail-band blurs out of the graph for hzsr.fusion_unet (:func:`split_bands`)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from nodegraph.nodes.hzsr.fusion_unet import BANDS_INPUT, DETAIL_TAPS_KEY

from .model import MULTIPLE, FusionUNet

OPSET = 17
INPUT_NAME = "x"      # (N, 3, H, W): Y_src, Ỹ_ref, M_occ; H, W multiples of 64
OUTPUT_NAME = "y"     # (N, 1, H, W): Y_fusion
BANDS_PREFIX = "/bands/"        # torch.onnx.export names the DetailBands module's ops so


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


def load_onnx_weights(model: FusionUNet, path: str | Path) -> None:
    """Set ``model``'s parameters from an ONNX file exported by :func:`export_onnx`, in place
    (fine-tuning from a shipped model, which carries no checkpoint).

    The exporter names initializers after the parameters and may store a tensor once under one
    name and alias the others by Identity nodes; both are followed. ValueError when the file is
    not such a model or its tensors do not fit ``model``'s architecture.
    """
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # noqa: BLE001 - any parse failure means: not an ONNX model
        raise ValueError(f"cannot read ONNX model {str(path)!r}: {err}") from None
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
