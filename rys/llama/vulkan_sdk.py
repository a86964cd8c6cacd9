"""What a Vulkan build of llama-server needs from the system, checked before cmake runs.

llama.cpp b11434's ggml-vulkan needs the glslc shader compiler, the Vulkan loader and headers, and the
SPIR-V headers. Its instance setup uses vk::LayerSettingEXT (VK_EXT_layer_settings) without a version
guard, which Vulkan headers have only from 1.3.272 on; Debian 12 ships 1.3.239. Headers are plain
files and the loader's ABI is stable, so rather than patch llama.cpp (the stock build would then not be
stock) rys unpacks a newer libvulkan-dev's headers into its cache, without installing anything, and
builds against them with the system's loader. On Debian that package comes from the next release
(Debian 13, 1.4.309), through apt with a private sources list that reuses the system's own archive.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rys.config import cache_dir
from rys.errors import BuildFailed

MIN_HEADER_VERSION = 272  # 1.3.272: VK_EXT_layer_settings
NEWER_HEADERS_SUITE = "trixie"  # Debian 13: libvulkan-dev 1.4.309
INSTALL_HINT = "apt-get install glslc libvulkan-dev spirv-headers mesa-vulkan-drivers"


@dataclass(frozen=True)
class Part:
    what: str
    debian_package: str
    found: bool


def header_version(include_dir: Path) -> int | None:
    """VK_HEADER_VERSION from <include_dir>/vulkan/vulkan_core.h, or None when there is no header."""
    try:
        text = (include_dir / "vulkan" / "vulkan_core.h").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"#define\s+VK_HEADER_VERSION\s+(\d+)", text)
    return int(found.group(1)) if found else None


def _include_dirs(env) -> list[Path]:
    sdk = env.get("VULKAN_SDK")
    return ([Path(sdk) / "include"] if sdk else []) + [Path("/usr/include"), Path("/usr/local/include")]


def _has_loader(env) -> bool:
    sdk = env.get("VULKAN_SDK")
    roots = ([Path(sdk) / "lib"] if sdk else []) + [Path("/usr/lib"), Path("/usr/lib64"), Path("/usr/local/lib")]
    return any(any(root.glob(pattern)) for root in roots if root.is_dir()
               for pattern in ("libvulkan.so", "*/libvulkan.so"))


def check_parts(env=os.environ) -> list[Part]:
    includes = _include_dirs(env)
    return [
        Part("the glslc shader compiler", "glslc", shutil.which("glslc", path=env.get("PATH")) is not None),
        Part("the Vulkan headers", "libvulkan-dev", any(header_version(d) is not None for d in includes)),
        Part("the Vulkan loader library (libvulkan.so)", "libvulkan-dev", _has_loader(env)),
        Part("the SPIR-V headers", "spirv-headers",
             any((d / "spirv" / "unified1" / "spirv.hpp").is_file() or (d / "spirv-headers" / "spirv.hpp").is_file()
                 for d in includes)),
    ]


def vulkan_cmake_flags(log=print, env=os.environ) -> list[str]:
    """Extra cmake flags for the Vulkan backend: none when the system's headers are new enough, else
    the include directory of newer headers. Refuses with the missing packages named."""
    missing = [p for p in check_parts(env) if not p.found]
    if missing:
        packages = " ".join(sorted({p.debian_package for p in missing}))
        raise BuildFailed("the Vulkan build needs " + ", ".join(p.what for p in missing) + " (Debian/Ubuntu: "
                          f"{packages})", f"install them ({INSTALL_HINT}), or point VULKAN_SDK at a Vulkan SDK")
    version = max(v for v in (header_version(d) for d in _include_dirs(env)) if v is not None)
    if version >= MIN_HEADER_VERSION:
        return []
    log(f"the Vulkan headers here are 1.x.{version}; llama.cpp b{_pinned()} needs 1.3.{MIN_HEADER_VERSION} or "
        f"newer: using libvulkan-dev's headers from Debian {NEWER_HEADERS_SUITE} (unpacked into the rys cache)")
    return [f"-DVulkan_INCLUDE_DIR={newer_headers(log)}"]


def _pinned() -> int:
    from rys.llama.locate import PINNED_BUILD

    return PINNED_BUILD


def debian_archive(sources_dir: Path = Path("/etc/apt")) -> str | None:
    """The system's main Debian archive URI, read from its apt sources (deb822 or one-line style)."""
    texts = []
    for path in [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]:
        try:
            texts.append(path.read_text(errors="replace"))
        except OSError:
            continue
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and "security" not in uris.group(1) and "security" not in suites.group(1):
                return uris.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in line:
                return next(p for p in parts[1:] if not p.startswith("["))
    return None


def newer_headers(log=print) -> Path:
    """An include directory with libvulkan-dev's headers from Debian's next release, fetched once."""
    target = cache_dir() / "vulkan-headers" / NEWER_HEADERS_SUITE
    include = target / "usr" / "include"
    if header_version(include) is not None:
        return include
    archive = debian_archive()
    if archive is None or shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise BuildFailed(f"the Vulkan headers here are older than 1.3.{MIN_HEADER_VERSION}, which llama.cpp "
                          f"b{_pinned()} needs, and this is not a Debian system rys can fetch newer ones on",
                          "install Vulkan headers 1.3.272 or newer (e.g. a Vulkan SDK, then set VULKAN_SDK) "
                          "and run again")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial", "download"):
            (tmp / sub).mkdir(parents=True)
        (tmp / "sources.list").write_text(f"deb {archive} {NEWER_HEADERS_SUITE} main\n")
        options = ["-o", f"Dir::Etc::SourceList={tmp / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
                   "-o", f"Dir::State::Lists={tmp / 'lists'}", "-o", f"Dir::Cache={tmp / 'cache'}",
                   "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]
        for step, cmd, cwd in (("apt-get update", ["apt-get", *options, "update"], tmp),
                               ("apt-get download", ["apt-get", *options, "download", "libvulkan-dev"],
                                tmp / "download")):
            done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BuildFailed(f"could not fetch Debian {NEWER_HEADERS_SUITE}'s libvulkan-dev ({step} failed: "
                                  f"{(done.stderr or done.stdout).strip().splitlines()[-1:]})",
                                  "install Vulkan headers 1.3.272 or newer by hand (set VULKAN_SDK) and run again")
        deb = next((tmp / "download").glob("libvulkan-dev_*.deb"))
        unpacked = tmp / "unpacked"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True, capture_output=True)
        (unpacked / "SOURCE").write_text(deb.name + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)  # complete or absent: a killed fetch leaves only the temporary folder
    log(f"Vulkan headers 1.x.{header_version(include)} from {deb.name} in {include}")
    return include
