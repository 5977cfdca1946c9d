"""``python -m nodegraph ...``: the same as the ``nodegraph`` command."""
from .cli import console

console()
