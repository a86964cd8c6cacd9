"""The shared layer store on synthetic GGUFs: sharing, exact contents, leases, eviction, concurrency,
limits and a full filesystem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import gguf
import pytest
from test_gguf_files import assert_runs_path, tiny_gguf

from rys.gguf import LayerStore, NoSpace
from rys.gguf.provenance import file_sha256


def read_config(model_path: Path):
    """Fields of the metadata split and tensors of all splits, as llama.cpp would assemble them."""
    files = sorted(model_path.parent.iterdir())
    assert files[0] == model_path and model_path.name == f"model-00001-of-{len(files):05d}.gguf"
    fields, tensors = {}, {}
    for no, f in enumerate(files):
        reader = gguf.GGUFReader(f)
        assert reader.fields["split.no"].contents() == no
        if no == 0:
            fields = {k: v.contents() for k, v in reader.fields.items() if not k.startswith("GGUF.")}
            assert not reader.tensors
        tensors.update({t.name: t.data.tolist() for t in reader.tensors})
    assert fields["split.count"] == len(files)
    assert fields["split.tensors.count"] == len(tensors)
    return fields, tensors


@pytest.fixture
def tiny(tmp_path) -> Path:
    return tiny_gguf(tmp_path / "tiny.gguf", n_layers=6)


def test_configs_share_block_files(tiny, tmp_path):
    store = LayerStore(tmp_path / "store", limit_bytes=10**9)
    with store.materialize(tiny, range(6)) as base:
        fields, tensors = read_config(base.model_path)
        assert_runs_path(tensors, list(range(6)))
        assert fields["llama.block_count"] == 6 and fields["rys.source.path"] == "0..5"
    block = 32 + 32  # one block's two tensors, each padded to 32 bytes, plus a split header below
    with store.materialize(tiny, [0, 1, 2, 3, 2, 3, 4, 5]) as dup:
        fields, tensors = read_config(dup.model_path)
        assert_runs_path(tensors, [0, 1, 2, 3, 2, 3, 4, 5])
        assert fields["llama.feed_forward_length"] == [10, 20, 30, 40, 30, 40, 50, 60]
        metadata = dup.model_path.stat().st_size
        # new files: blocks 2,3 at positions 4,5 and 4,5 at 6,7; only those and the metadata are written
        new_blocks = [dup.model_path.parent / f"model-{no:05d}-of-00010.gguf" for no in (7, 8, 9, 10)]
        assert dup.bytes_written == metadata + sum(f.stat().st_size for f in new_blocks)
        assert all(block < f.stat().st_size < block + 200 for f in new_blocks)
    again = store.materialize(tiny, [0, 1, 2, 3, 2, 3, 4, 5])
    assert again.bytes_written == 0 and again.model_path == dup.model_path
    again.release()
    model_dir = store.root / file_sha256(tiny)[:16]
    assert sorted(p.name for p in model_dir.iterdir() if p.is_file()) == sorted(
        ["globals.gguf"] + [f"L{i}-P{i}.gguf" for i in range(6)] + ["L2-P4.gguf", "L3-P5.gguf", "L4-P6.gguf",
                                                                  "L5-P7.gguf"])
    assert list(store.root.glob("leases/*")) == []


def test_models_never_share_files(tmp_path):
    a = tiny_gguf(tmp_path / "a.gguf", n_layers=3)
    b = tiny_gguf(tmp_path / "b.gguf", n_layers=4)
    store = LayerStore(tmp_path / "store", limit_bytes=10**9)
    with store.materialize(a, [0]) as ma, store.materialize(b, [0]) as mb:
        assert ma.model_path.parent.parent != mb.model_path.parent.parent
        assert read_config(mb.model_path)[0]["rys.source.name"] == "b.gguf"


def test_lru_eviction_spares_leased_configs(tiny, tmp_path):
    store = LayerStore(tmp_path / "store", limit_bytes=10**9)
    held = store.materialize(tiny, [0, 1])
    old = store.materialize(tiny, [5, 4])
    old.release()
    time.sleep(0.05)
    store.limit_bytes = store.usage() - 1  # one byte over: something must go
    freed = store.evict()
    assert freed > 0
    assert all(f.exists() for f in held.files)  # leased: untouched
    assert not all(f.exists() for f in old.files)  # the least recently used config lost a file
    store.limit_bytes = 0
    store.evict()
    assert all(f.exists() for f in held.files)
    held.release()
    store.evict()
    assert store.usage() == 0


def test_evicted_block_is_rewritten_on_reuse(tiny, tmp_path):
    store = LayerStore(tmp_path / "store", limit_bytes=10**9)
    with store.materialize(tiny, [0, 3]) as m:
        pass
    (m.model_path.parent.parent / "L3-P1.gguf").unlink()
    with store.materialize(tiny, [0, 3]) as again:
        assert again.bytes_written > 0
        assert_runs_path(read_config(again.model_path)[1], [0, 3])


HOLDER = """
import sys, time
from rys.gguf import LayerStore
m = LayerStore(sys.argv[1], limit_bytes=10**9).materialize(sys.argv[2], [1, 2])
print(m.model_path, flush=True)
time.sleep(120)
"""


def test_lease_of_another_process_blocks_eviction_until_it_dies(tiny, tmp_path):
    root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(tiny)], stdout=subprocess.PIPE,
                            text=True)
    try:
        model_path = Path(proc.stdout.readline().strip())
        store = LayerStore(root, limit_bytes=0)
        store.evict()
        assert model_path.exists() and (model_path.parent.parent / "L2-P1.gguf").exists()
    finally:
        proc.kill()  # only the process this test started, by its pid
        proc.wait()
    store.evict()  # the dead process's lease no longer counts
    assert not model_path.exists() and store.usage() == 0


def test_concurrent_materialize(tiny, tmp_path):
    store = LayerStore(tmp_path / "store", limit_bytes=10**9)
    paths = [[0, 1, 2, 3, 2, 3, 4, 5], list(range(6)), [0, 1, 2, 3, 2, 3, 4, 5], [0, 1, 1, 2, 3, 4, 5]] * 3
    results, errors = [None] * len(paths), []

    def work(k):
        try:
            results[k] = store.materialize(tiny, paths[k])
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for path, m in zip(paths, results):
        assert_runs_path(read_config(m.model_path)[1], path)
        m.release()
    assert not [p for p in store.root.rglob(".*") if p.name != ".lock"]  # no temp files left


def test_limit_too_small_is_a_clear_error(tiny, tmp_path):
    store = LayerStore(tmp_path / "store", limit_bytes=1000)
    with pytest.raises(NoSpace, match="store limit") as err:
        store.materialize(tiny, [0, 1])
    assert err.value.hint
    assert store.usage() == 0 and list(store.root.glob("leases/*")) == []


def test_full_tmpfs_leaves_nothing_behind(big_gguf, one_mb_tmpfs):
    root = one_mb_tmpfs
    store = LayerStore(root, limit_bytes=10**9)  # the limit allows it: the filesystem does not
    with pytest.raises(NoSpace, match="no space left"):
        store.materialize(big_gguf, [0, 1, 1])
    leftover = [p for p in root.rglob("*") if p.is_file() and p.name != ".lock" and p.stat().st_size]
    assert [p for p in leftover if p.name.startswith(".") or "cfg-" in str(p)] == []
    assert list(root.glob("leases/*")) == []


def test_least_recently_used_goes_first(tiny, tmp_path):
    store = LayerStore(tmp_path / "store", limit_bytes=10**9)
    a = store.materialize(tiny, [0, 1])
    b = store.materialize(tiny, [5, 4])
    a.release()
    b.release()
    time.sleep(0.05)
    store.materialize(tiny, [5, 4]).release()  # b used again: a is now the least recently used
    store.limit_bytes = store.usage() - 1
    store.evict()
    assert all(f.exists() for f in b.files)
    assert not all(f.exists() for f in a.files)


def test_leftovers_of_a_killed_process_are_removed_on_open(tiny, tmp_path):
    root = tmp_path / "store"
    store = LayerStore(root, limit_bytes=10**9)
    with store.materialize(tiny, [0, 1, 1, 2]) as lease:
        model_dir = lease.model_path.parent.parent
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process (a quick reuse would only keep the files)
    leftovers = [model_dir / f".L1-P2.gguf.tmp-{dead.pid}-1-abcdef01", root / "leases" / f".x.json.tmp-{dead.pid}-1-0"]
    for f in leftovers:
        f.write_bytes(b"half")
    (model_dir / f".cfg-0123-5.tmp-{dead.pid}-1-abcdef02").mkdir()
    (model_dir / f".cfg-0123-5.tmp-{dead.pid}-1-abcdef02" / "model-00001-of-00005.gguf").write_bytes(b"x")
    stale_lease = root / "leases" / f"{dead.pid}-abc.json"
    stale_lease.write_text(json.dumps({"pid": dead.pid, "started": 1.0, "files": []}))
    mine = model_dir / f".L2-P3.gguf.tmp-{os.getpid()}-1-abcdef03"  # a live writer's file stays
    mine.write_bytes(b"busy")

    LayerStore(root, limit_bytes=10**9)
    assert not [p for p in root.rglob("*") if f"-{dead.pid}-" in p.name or p == stale_lease]
    assert mine.exists() and (model_dir / "L1-P2.gguf").exists()
