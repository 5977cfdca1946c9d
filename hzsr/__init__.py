"""HZSR extras that are not nodes: the training code of the learned fusion (``hzsr.train``).

Nothing here is imported at run time by ``nodes/`` or ``nodegraph/``; ``hzsr.train`` needs the
optional ``train`` extra (PyTorch).
"""
