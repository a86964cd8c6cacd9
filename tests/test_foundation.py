"""Set-up layer: model aliases, locating llama-server, the source build's failure handling, rys doctor."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from rys.cli import main
from rys.errors import BuildFailed, ModelNotFound, NotGGUF, RysError, ServerNotFound
from rys.llama import build, locate
from rys.models import resolve_model


def test_unknown_alias_names_the_choices():
    with pytest.raises(ModelNotFound) as err:
        resolve_model("no-such-model")
    assert "smollm2" in err.value.hint


def test_missing_file_and_non_gguf_file(tmp_path):
    with pytest.raises(ModelNotFound, match="not found"):
        resolve_model(tmp_path / "missing.gguf")
    bogus = tmp_path / "weights.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(NotGGUF, match="not a GGUF file"):
        resolve_model(bogus)


def test_cli_reports_bad_model_in_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["models", "path", str(tmp_path / "x.gguf")])
    assert result.exit_code == 2
    assert result.output.startswith("error: model file not found")
    assert "Traceback" not in result.output


def test_demo_model_is_real_gguf(smollm2):
    assert smollm2.read_bytes()[:4] == b"GGUF"
    assert smollm2.stat().st_size > 50_000_000


def _fake_binary(path: Path, executable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 'version: 11434 (abc1234)'\n")
    path.chmod(0o755 if executable else 0o644)
    return path


def test_locate_order_explicit_then_env_then_cache_then_path(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("RYS_LLAMA_SERVER", raising=False)
    with pytest.raises(ServerNotFound) as err:
        locate.find_llama_server()
    assert "rys setup llama-server" in err.value.hint

    on_path = _fake_binary(tmp_path / "bin" / "llama-server")
    assert locate.find_llama_server() == on_path
    cached = _fake_binary(locate.build_dir("cpu") / "bin" / "llama-server")
    assert locate.find_llama_server() == cached
    # a patched build (runtime layer paths) is used automatically once built, unless asked not to
    patched = _fake_binary(locate.build_dir("cpu", patched=True) / "bin" / "llama-server")
    monkeypatch.setenv("RYS_PREFER_PATCHED", "1")
    assert locate.find_llama_server() == patched
    monkeypatch.setenv("RYS_PREFER_PATCHED", "0")
    assert locate.find_llama_server() == cached
    # a GPU build is preferred to the CPU one, once it sees a device
    gpu = _fake_binary(locate.build_dir("vulkan", patched=True) / "bin" / "llama-server")
    gpu.write_text("#!/bin/sh\nprintf 'Available devices:\\n'\nif [ -n \"$GGML_VK_VISIBLE_DEVICES\" ]; then "
                   "printf '  Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits) (24000 MiB, 24000 MiB free)\\n'; fi\n")
    monkeypatch.delenv("GGML_VK_VISIBLE_DEVICES", raising=False)
    assert locate.find_llama_server() == cached  # no device: it would only run on the CPU
    monkeypatch.setenv("GGML_VK_VISIBLE_DEVICES", "0")
    assert locate.find_llama_server() == gpu
    env = _fake_binary(tmp_path / "env" / "llama-server")
    monkeypatch.setenv("RYS_LLAMA_SERVER", str(env))
    assert locate.find_llama_server() == env
    explicit = _fake_binary(tmp_path / "explicit" / "llama-server")
    assert locate.find_llama_server(explicit) == explicit


def test_locate_rejects_missing_and_non_executable(tmp_path):
    with pytest.raises(ServerNotFound, match="does not exist"):
        locate.find_llama_server(tmp_path / "nope")
    plain = _fake_binary(tmp_path / "llama-server", executable=False)
    with pytest.raises(ServerNotFound, match="not executable"):
        locate.find_llama_server(plain)


def test_server_version_parses_build_and_commit(tmp_path):
    version = locate.server_version(_fake_binary(tmp_path / "llama-server"))
    assert (version.build, version.commit) == (11434, "abc1234")


def test_unknown_backend_is_refused():
    with pytest.raises(RysError, match="unknown backend"):
        build.build_llama_server("opencl")


def test_cached_build_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE_DIR", str(tmp_path))
    binary = _fake_binary(locate.build_dir("cpu") / "bin" / "llama-server")
    (locate.build_dir("cpu") / "build.json").write_text(json.dumps({"recipe": build.BUILD_RECIPE}))
    result = build.build_llama_server("cpu")
    assert (result.binary, result.built) == (binary, False)


def test_patched_build_is_redone_when_the_patch_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE_DIR", str(tmp_path / "cache"))
    patches = tmp_path / "vendor"
    patches.mkdir()
    (patches / "a.patch").write_text("v1\n")
    (patches / "series").write_text("a.patch\n")
    monkeypatch.setattr(build, "VENDOR_PATCHES", patches)
    final = locate.build_dir("cpu", patched=True)
    _fake_binary(final / "bin" / "llama-server")
    (final / "build.json").write_text(json.dumps({"patches": ["a.patch"], "recipe": build.BUILD_RECIPE,
                                                  "patch_sha256": {"a.patch": build.sha256_of(patches / "a.patch")}}))
    assert build.build_llama_server("cpu", patched=True).built is False  # same patch: a no-op
    (patches / "a.patch").write_text("v2\n")
    broken = _sdist_with_cmakelists(tmp_path / "x.tar.gz", "message(FATAL_ERROR \"rebuilt\")\n")
    with pytest.raises(BuildFailed, match="patch a.patch failed"):  # it really tried to rebuild
        build.build_llama_server("cpu", patched=True, sdist=broken, jobs=1)
    assert (final / "bin" / "llama-server").exists()  # the old build stays until a new one is complete


def test_patches_apply_in_series_order_and_a_mismatch_is_refused(tmp_path, monkeypatch):
    patches = tmp_path / "vendor"
    patches.mkdir()
    for name in ("b.patch", "a.patch"):
        (patches / name).write_text("x\n")
    monkeypatch.setattr(build, "VENDOR_PATCHES", patches)
    (patches / "series").write_text("# comment\nb.patch\n\na.patch\n")
    assert [p.name for p in build.vendor_patches()] == ["b.patch", "a.patch"]  # not name order
    (patches / "series").write_text("b.patch\n")
    with pytest.raises(BuildFailed, match=r"not listed: \['a.patch'\]"):
        build.vendor_patches()
    (patches / "series").write_text("b.patch\na.patch\nc.patch\n")
    with pytest.raises(BuildFailed, match=r"listed but absent: \['c.patch'\]"):
        build.vendor_patches()
    (patches / "series").unlink()
    with pytest.raises(BuildFailed, match="series is missing"):
        build.vendor_patches()


def test_the_shipped_series_lists_every_patch():
    names = [p.name for p in build.vendor_patches()]
    assert names[:2] == ["layer-path.patch", "prompt-logprobs.patch"] and len(names) == len(set(names))


def _sdist_with_cmakelists(path: Path, cmakelists: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = cmakelists.encode()
        info = tarfile.TarInfo(build.SOURCE_PREFIX + "CMakeLists.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_failed_build_names_the_step_and_leaves_nothing_half_built(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE_DIR", str(tmp_path / "cache"))
    sdist = _sdist_with_cmakelists(tmp_path / "broken.tar.gz",
                                   "cmake_minimum_required(VERSION 3.14)\nproject(x)\nmessage(FATAL_ERROR \"boom-7\")\n")
    with pytest.raises(BuildFailed) as err:
        build.build_llama_server("cpu", sdist=sdist, jobs=1)
    assert "cmake configure failed" in err.value.message
    assert "boom-7" in err.value.message  # the log's last lines are shown
    root = locate.build_dir("cpu").parent
    assert not locate.build_dir("cpu").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".building-")]
    assert (root / "failed-b11434-cpu-logs" / "configure.log").exists()


def test_sdist_without_source_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE_DIR", str(tmp_path / "cache"))
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(BuildFailed, match="holds no"):
        build.build_llama_server("cpu", sdist=empty)
    assert not locate.build_dir("cpu").exists()


@pytest.mark.server
def test_doctor_serves_the_demo_model(llama_server_bin, smollm2):
    result = subprocess.run([sys.executable, "-m", "rys.cli", "doctor", "--llama-server", str(llama_server_bin)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert f"llama-server : {llama_server_bin}" in result.stdout
    assert "serves       : ok" in result.stdout
    assert "Paris" in result.stdout
    assert "path switch  : no (a fresh server per config)" in result.stdout  # the stock build
    assert "prefix reuse : no" in result.stdout


@pytest.mark.server
def test_doctor_names_what_the_patched_build_adds(patched_bin):
    result = subprocess.run([sys.executable, "-m", "rys.cli", "doctor", "--llama-server", str(patched_bin)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "runtime paths: yes" in result.stdout
    assert "continuations: scored in one request per 32 tokens" in result.stdout
    assert "path switch  : yes" in result.stdout
    assert "prefix reuse : yes" in result.stdout


def test_doctor_without_server_exits_with_the_fix(tmp_path):
    env = {**os.environ, "RYS_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    env.pop("RYS_LLAMA_SERVER", None)
    result = subprocess.run([sys.executable, "-m", "rys.cli", "doctor"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2
    assert "no llama-server found" in result.stderr and "rys setup llama-server" in result.stderr


def test_server_version_of_a_source_build(tmp_path):
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\necho 'version: 0.6.0-dev (build 11434, commit pypi-11434)' >&2\n")
    binary.chmod(0o755)
    version = locate.server_version(binary)
    assert (version.build, version.commit) == (11434, "pypi-11434")


def test_real_server_reports_the_pinned_build(llama_server_bin):
    # The rys build stamps the build number the sdist itself cannot supply (it has no git history).
    if llama_server_bin.parent.parent.parent.name != "llama-server":
        pytest.skip("not a rys-built llama-server")
    assert locate.server_version(llama_server_bin).build == locate.PINNED_BUILD
