"""Training of the learned luminance fusion (HZSR section 3.2, SPEC section 5).

Modules: ``simulate`` (the two-camera rig simulated from real photos), ``data`` (pre-generated
patch cache), ``model`` (the 5-level UNet), ``losses`` (L1, CoBi, brightness consistency),
``train`` (the loop), ``export`` (ONNX), ``cli`` (``nodegraph train fusion``).
Importing this package does not import torch; ``model``, ``losses``, ``train`` and ``export`` do.
"""
