"""The rewriter on small synthetic GGUFs written by gguf-py: exact tensor bytes, metadata, provenance,
split inputs, and every kind of bad input (clear error, nothing half-written left behind)."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from rys.errors import NotGGUF
from rys.gguf import CorruptGGUF, NoSpace, SurgeryError, UnsupportedPath, build_single, model_info
from rys.gguf.provenance import file_sha256
from rys.paths import PathError


def tiny_gguf(path: Path, arch: str = "llama", n_layers: int = 4, split_max_tensors: int = 0) -> Path:
    """Block il holds attn_norm = [il]*8 and ffn_up = [100+il]*5 (20 bytes: exercises padding)."""
    w = gguf.GGUFWriter(path, arch, split_max_tensors=split_max_tensors)
    w.add_block_count(n_layers)
    w.add_array(f"{arch}.feed_forward_length", [10 * (il + 1) for il in range(n_layers)])
    w.add_head_count(2)
    w.add_tensor("token_embd.weight", np.arange(16, dtype=np.float32))
    for il in range(n_layers):
        w.add_tensor(f"blk.{il}.attn_norm.weight", np.full(8, il, dtype=np.float32))
        w.add_tensor(f"blk.{il}.ffn_up.weight", np.full(5, 100 + il, dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def read(path: Path):
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: np.array(t.data).tolist() for t in reader.tensors}
    return fields, tensors


def assert_runs_path(tensors: dict, path: list[int]):
    for pos, src in enumerate(path):
        assert tensors[f"blk.{pos}.attn_norm.weight"] == [float(src)] * 8
        assert tensors[f"blk.{pos}.ffn_up.weight"] == [100.0 + src] * 5
    assert f"blk.{len(path)}.attn_norm.weight" not in tensors
    assert tensors["token_embd.weight"] == list(map(float, range(16)))
    assert tensors["output_norm.weight"] == [1.0] * 4


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def tiny(tmp_path) -> Path:
    return tiny_gguf(tmp_path / "tiny.gguf")


def test_build_moves_exact_bytes_and_remaps_metadata(tiny, tmp_path):
    out = build_single(tiny, tmp_path / "out.gguf", [0, 1, 2, 1, 2, 3])
    fields, tensors = read(out)
    assert_runs_path(tensors, [0, 1, 2, 1, 2, 3])
    assert fields["llama.block_count"] == 6
    assert fields["llama.feed_forward_length"] == [10, 20, 30, 20, 30, 40]
    assert fields["llama.attention.head_count"] == 2
    assert fields["rys.source.path"] == "0..2,1..3"
    assert fields["rys.source.name"] == "tiny.gguf"
    assert fields["rys.source.sha256"] == file_sha256(tiny)
    assert "rys.forced" not in fields
    assert leftovers(tmp_path, {"tiny.gguf", "out.gguf"}) == []


def test_skip_truncate_and_rebuild_of_a_rys_file(tiny, tmp_path):
    first = build_single(tiny, tmp_path / "a.gguf", [3, 0])
    fields, tensors = read(build_single(first, tmp_path / "b.gguf", [1, 1, 0]))
    assert_runs_path(tensors, [0, 0, 3])
    assert fields["llama.feed_forward_length"] == [10, 10, 40]
    assert fields["rys.source.path"] == "1,1,0"  # provenance of the newest step
    assert fields["rys.source.name"] == "a.gguf"


def test_identity_keeps_tensor_data_and_metadata(tiny, tmp_path):
    fields, tensors = read(build_single(tiny, tmp_path / "id.gguf", [0, 1, 2, 3]))
    src_fields, src_tensors = read(tiny)
    assert tensors == src_tensors
    assert {k: v for k, v in fields.items() if not k.startswith("rys.")} == src_fields


def test_split_input_builds_the_same_model(tmp_path):
    (tmp_path / "split").mkdir()
    first = tiny_gguf(tmp_path / "split" / "m.gguf", split_max_tensors=3)
    assert first.name == "m.gguf" and not first.exists()
    first = tmp_path / "split" / "m-00001-of-00004.gguf"
    fields, tensors = read(build_single(first, tmp_path / "out.gguf", [2, 2, 3]))
    assert_runs_path(tensors, [2, 2, 3])
    assert not any(k.startswith("split.") for k in fields)
    assert model_info(first).n_layers == 4


def test_missing_split_file_is_an_error(tmp_path):
    tiny_gguf(tmp_path / "m.gguf", split_max_tensors=3)
    (tmp_path / "m-00003-of-00004.gguf").unlink()
    with pytest.raises(CorruptGGUF, match="missing 1 of its 4 files"):
        build_single(tmp_path / "m-00001-of-00004.gguf", tmp_path / "out.gguf", [0])


def test_not_gguf_and_damaged_files(tiny, tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("hello, not a model")
    data = tiny.read_bytes()
    truncated_data = tmp_path / "truncated.gguf"
    truncated_data.write_bytes(data[:-40])
    truncated_header = tmp_path / "header.gguf"
    truncated_header.write_bytes(data[:60])
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + bytes([3, 0, 0, 0]) + os.urandom(200))
    with pytest.raises(NotGGUF, match="not a GGUF file"):
        build_single(text, tmp_path / "o.gguf", [0])
    with pytest.raises(CorruptGGUF, match="truncated: tensor output_norm.weight"):
        build_single(truncated_data, tmp_path / "o.gguf", [0])
    for bad in (truncated_header, garbage):
        with pytest.raises(CorruptGGUF) as err:
            build_single(bad, tmp_path / "o.gguf", [0])
        assert err.value.hint
    assert not (tmp_path / "o.gguf").exists()
    assert leftovers(tmp_path, {"tiny.gguf", "notes.gguf", "truncated.gguf", "header.gguf", "garbage.gguf"}) == []


def test_bad_paths_and_outputs(tiny, tmp_path):
    with pytest.raises(PathError, match="layer 4 at path position 1 is out of range"):
        build_single(tiny, tmp_path / "o.gguf", [0, 4])
    with pytest.raises(PathError, match="empty"):
        build_single(tiny, tmp_path / "o.gguf", [])
    with pytest.raises(SurgeryError, match="is the source model itself"):
        build_single(tiny, tiny, [0])
    with pytest.raises(SurgeryError, match="does not exist"):
        build_single(tiny, tmp_path / "nowhere" / "o.gguf", [0])
    assert leftovers(tmp_path, {"tiny.gguf"}) == []


def test_unknown_architecture_refused_unless_forced(tmp_path):
    src = tiny_gguf(tmp_path / "mystery.gguf", arch="mystery")
    build_single(src, tmp_path / "identity.gguf", [0, 1, 2, 3])  # the identity is always right
    with pytest.raises(UnsupportedPath, match="'mystery' is not in rys's table") as err:
        build_single(src, tmp_path / "dup.gguf", [0, 1, 1, 2, 3])
    assert "--force" in err.value.hint
    assert not (tmp_path / "dup.gguf").exists()
    fields, tensors = read(build_single(src, tmp_path / "dup.gguf", [0, 1, 1, 2, 3], force=True))
    assert "not in rys's table" in fields["rys.forced"]
    assert_runs_path(tensors, [0, 1, 1, 2, 3])


def test_gemma3n_refused(tmp_path):
    src = tiny_gguf(tmp_path / "g.gguf", arch="gemma3n")
    with pytest.raises(UnsupportedPath, match="per-layer-embedding"):
        build_single(src, tmp_path / "o.gguf", [0, 1, 2])


def test_full_filesystem_leaves_nothing_behind(big_gguf, one_mb_tmpfs):
    """A real 1 MB tmpfs: the build fails with NoSpace and no partial file."""
    with pytest.raises(NoSpace, match="no space left") as err:
        build_single(big_gguf, one_mb_tmpfs / "out.gguf", [0, 1, 1])
    assert err.value.hint
    assert list(one_mb_tmpfs.iterdir()) == []
