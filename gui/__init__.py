"""The visual graph editor (``nodegraph gui``): a DearPyGui view of :mod:`nodegraph.editing`."""
