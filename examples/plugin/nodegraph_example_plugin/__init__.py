"""An example nodegraph plugin with one node."""
import numpy as np

from nodegraph import Image, Out, Param, node


@node("example.posterize", version=1)
def posterize(image: Image, *,
              levels: int = Param(4, range=(2, 256), doc="grey levels kept per channel")
              ) -> Out(image=Image):
    """Reduce each channel to ``levels`` evenly spaced values (a poster look)."""
    steps = levels - 1
    return (np.round(image * steps) / steps).astype(np.float32)
