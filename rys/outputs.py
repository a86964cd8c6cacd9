"""Output files (charts, reports) written whole or not at all: a temp name in the same folder, then an
atomic rename, so an interrupted run never leaves a half-written file where the real one belongs."""

from __future__ import annotations

import os
from pathlib import Path


def temp_name(out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.with_name(f".{out.name}.{os.getpid()}.tmp")


def _atomic(out: Path, write) -> Path:
    out = Path(out)
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
