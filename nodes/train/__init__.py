"""Training of the learned luminance fusion (HZSR section 3.2, SPEC section 5).

Modules: ``simulate`` (the two-camera rig simulated from real photos), ``real_pairs`` (real
captures: registered low/high pairs such as City100, a user's own W/T pairs), ``data``
(pre-generated patch caches), ``model`` (the 5-level UNet), ``losses`` (L1, CoBi, brightness consistency),
``train`` (the loop), ``export`` (ONNX), ``cli`` (``nodegraph train fusion``).
Importing this package does not import torch; ``model``, ``losses``, ``train`` and ``export`` do.
"""

# City100 pairs held out of training, for validation only (every tenth; 017 and 063 are not in
# the training folder: the dev cases are built from them). Here, not in ``real_pairs``, so the
# command line's help needs no image-processing imports.
ALIGNED_VALIDATION = ("010", "020", "030", "040", "050", "060")
