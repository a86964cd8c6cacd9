"""Output files (charts, reports) written whole or not at all: a temp name in the same folder, then an
atomic rename, so an interrupted run never leaves a half-written file where the real one belongs."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path


def temp_name(final: Path) -> Path:
    """A unique sibling name: same filesystem (so rename is atomic), hidden, never a final name. The
    pid in it lets rys.gguf.store remove what a killed process left behind."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}")


def _atomic(out: Path, write) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(out)
    try:
        write(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def save_png(fig, out: Path) -> Path:
    """A matplotlib figure as PNG; the figure is closed either way (pyplot keeps open figures alive)."""
    from matplotlib import pyplot as plt

    try:
        return _atomic(out, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def save_plotly_html(fig, out: Path) -> Path:
    """A plotly figure as one HTML page with plotly.js embedded, so it opens offline."""
    return _atomic(out, lambda tmp: fig.write_html(tmp, include_plotlyjs=True, full_html=True))


def save_text(text: str, out: Path) -> Path:
    return _atomic(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_bytes(data: bytes, out: Path) -> Path:
    return _atomic(out, lambda tmp: Path(tmp).write_bytes(data))


def save_lines(lines: Iterable[str], out: Path) -> Path:
    """Streamed: the lines are written as they come, never joined in memory."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
    return _atomic(out, write)
