"""Export the fusion UNet to ONNX (opset 17, dynamic H and W) and check onnxruntime == torch."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .model import MULTIPLE, FusionUNet

OPSET = 17
INPUT_NAME = "x"      # (N, 3, H, W): Y_src, Ỹ_ref, M_occ; H, W multiples of 64
OUTPUT_NAME = "y"     # (N, 1, H, W): Y_fusion


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
