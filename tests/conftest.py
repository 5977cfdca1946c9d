import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# derived data a run keeps for later processes (the fusion model's stages) stays in the session
if "NODEGRAPH_CACHE_DIR" not in os.environ:
    os.environ["NODEGRAPH_CACHE_DIR"] = tempfile.mkdtemp(prefix="nodegraph-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NODEGRAPH_CACHE_DIR"], ignore_errors=True)


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
