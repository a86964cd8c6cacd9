"""One self-contained GGUF for a layer path (the file to share or keep)."""

from __future__ import annotations

from pathlib import Path

from rys.gguf.errors import SurgeryError
from rys.gguf.plan import make_plan
from rys.gguf.source import open_source
from rys.gguf.writer import atomic_file, write_gguf


def build_single(src: str | Path, out: str | Path, path, force: bool = False) -> Path:
    """Write `src` run along `path` to `out`; `out` appears only when complete."""
    out = Path(out)
    source = open_source(src)
    if out.resolve() in {f.resolve() for f in source.files}:
        raise SurgeryError(f"output {out} is the source model itself", "write the output to a new file")
    plan = make_plan(source, path, force)
    if not out.parent.is_dir():
        raise SurgeryError(f"output folder {out.parent} does not exist", f"create it: mkdir -p {out.parent}")
    tensors = plan.globals + [t for block in plan.blocks for t in block]
    with atomic_file(out) as fd:
        write_gguf(fd, plan.kv, tensors, source.alignment)
    return out
