"""The cut fusion model's stages kept on disk (``nodegraph.nodes.ops.onnx_stages``): later
processes read them instead of importing onnx and cutting the model again."""
from __future__ import annotations

import os

import pytest

from nodegraph.nodes.hzsr import fusion_unet as fu
from nodegraph.nodes.ops import onnx_stages

BUNDLED = os.path.join(os.path.dirname(fu.__file__), fu.BUNDLED_MODEL)
needs_model = pytest.mark.skipif(not os.path.isfile(BUNDLED), reason="bundled fusion_unet.onnx not built yet")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache folder, and no stages remembered by this process."""
    monkeypatch.setenv("NODEGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    onnx_stages._stages_of.cache_clear()
    yield tmp_path / "cache" / onnx_stages.STAGES_CACHE
    onnx_stages._stages_of.cache_clear()


def _fresh_process_stages(model: str):
    onnx_stages._stages_of.cache_clear()
    return onnx_stages.unet_stages(model)


@needs_model
def test_the_cut_is_written_once_and_read_back_without_cutting(cache_dir, monkeypatch):
    cut = onnx_stages.unet_stages(BUNDLED)
    assert cut is not None and len(list(cache_dir.iterdir())) == 1

    def no_cut(path):
        raise AssertionError("cut again although the cache holds the stages")

    monkeypatch.setattr(onnx_stages, "_cut", no_cut)
    assert _fresh_process_stages(BUNDLED) == cut


@needs_model
def test_a_damaged_entry_is_cut_again_and_replaced(cache_dir):
    cut = onnx_stages.unet_stages(BUNDLED)
    (entry,) = cache_dir.iterdir()
    whole = entry.read_bytes()
    for damaged in (whole[:-1], whole[:40], b"", b"{not json\n", b'{"stem": 4}\n'):
        entry.write_bytes(damaged)
        assert _fresh_process_stages(BUNDLED) == cut
        assert entry.read_bytes() == whole


@needs_model
def test_a_cache_folder_that_cannot_be_written_only_costs_the_cut(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("NODEGRAPH_CACHE_DIR", str(blocker))
    onnx_stages._stages_of.cache_clear()
    try:
        assert onnx_stages.unet_stages(BUNDLED) is not None
    finally:
        onnx_stages._stages_of.cache_clear()


@needs_model
def test_another_model_has_its_own_entry(cache_dir, tmp_path):
    """Keyed by content: a copy with one byte of metadata changed is cut on its own."""
    import onnx

    model = onnx.load(BUNDLED)
    model.doc_string = "another model"
    other = tmp_path / "other.onnx"
    onnx.save(model, other)
    assert onnx_stages.unet_stages(BUNDLED) is not None
    assert onnx_stages.unet_stages(str(other)) is not None
    assert len(list(cache_dir.iterdir())) == 2


def test_a_model_that_cannot_be_cut_is_remembered_as_such(cache_dir, tmp_path, monkeypatch):
    path = tmp_path / "not_a_model.onnx"
    path.write_bytes(b"\x00not a protobuf")
    assert onnx_stages.unet_stages(str(path)) is None
    monkeypatch.setattr(onnx_stages, "_cut", lambda p: pytest.fail("cut again"))
    assert _fresh_process_stages(str(path)) is None


@needs_model
def test_entry_bytes_round_trip(tmp_path):
    cut = onnx_stages._cut(BUNDLED)
    entry = tmp_path / "entry"
    for stages in (cut, None):
        entry.write_bytes(onnx_stages.stages_bytes(stages))
        assert onnx_stages.read_stages(entry) == stages
