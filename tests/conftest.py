import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy_registry():
    """A registry with only the toy nodes."""
    import toy_nodes

    from nodegraph.registry import Registry
    registry = Registry()
    registry.add_module(toy_nodes, "toy")
    return registry


@pytest.fixture
def write_yaml(tmp_path):
    """Write YAML text to a file under tmp_path and return its path."""
    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write
