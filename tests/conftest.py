import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy_registry():
    """A registry with only the toy nodes."""
    import toy_nodes

    return toy_nodes.registry()


@pytest.fixture
def write_yaml(tmp_path):
    """Write YAML text to a file under tmp_path and return its path."""
    def write(text: str, name: str = "graph.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path
    return write


@pytest.fixture(scope="session")
def dask_scheduler():
    """Address of a 2-process cluster like the one ``nodegraph batch`` starts, shared by the tests."""
    from nodegraph.batch import local_cluster

    cluster = local_cluster(2)
    yield cluster.scheduler_address
    cluster.close()
