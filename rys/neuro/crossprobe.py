"""Cross-probe anatomy: which layers matter for every probe, which for one only, and how alike the
probes' importance profiles are (Pearson correlation over layers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rys.neuro.labels import important_layers


def correlation(profiles: Sequence[Sequence[float]]) -> list[list[float | None]]:
    """Pearson correlation between importance profiles; None where a profile is constant."""
    data = np.asarray(profiles, dtype=float)
    out: list[list[float | None]] = []
    for a in data:
        row = []
        for b in data:
            if a.std() == 0 or b.std() == 0:
                row.append(None)
            else:
                row.append(float(np.corrcoef(a, b)[0, 1]))
        out.append(row)
    return out


def shared_and_specific(names: Sequence[str], profiles: Sequence[Sequence[float]],
                        significant: Sequence[Sequence[bool]]) -> dict:
    """Layers important for every probe, and those important for one only. Important = a significant drop
    when skipped (labels.important_layers), each probe's p-values adjusted over its own layers: "for every
    probe" then needs every one of those tests to pass (an intersection of tests needs no further
    correction)."""
    flags = [important_layers(p, s) for p, s in zip(profiles, significant)]
    n = len(profiles[0])
    shared = [layer for layer in range(n) if all(f[layer] for f in flags)]
    specific = {name: [layer for layer in range(n) if f[layer] and sum(g[layer] for g in flags) == 1]
                for name, f in zip(names, flags)}
    return {"shared": shared, "specific": specific}
