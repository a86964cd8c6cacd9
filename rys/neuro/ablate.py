"""Ablation: skip a layer (or a contiguous block) and measure how much a probe's score drops.

importance(x) = baseline score - score with x skipped, paired over items, with a permutation CI and
p-value (rys.probes.stats.paired_delta). "Significant" is decided on p-values adjusted over every
config of the run (Benjamini-Hochberg, rys.probes.stats.adjust_pvalues): with 30 layers tested, one
raw p < 0.05 is what chance alone gives. A skipped layer acts as the identity: the path
simply leaves it out. Every finished config is appended to a journal, so an interrupted run resumes;
a config whose server fails is reported and never becomes a row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rys import paths as layer_paths
from rys.neuro import NeuroError
from rys.neuro.pipeline import in_order
from rys.probes import ProbeResult, open_target, run_probe
from rys.probes.stats import adjust_pvalues, paired_delta

ALPHA = 0.05  # family-wise level of every "significant" mark
ADJUST = "bh"  # the adjustment over the configs of a run

Skip = tuple[int, ...]  # the skipped layers, sorted; () is the baseline


@dataclass
class AblationRow:
    skipped: list[int]
    path: str
    score: float
    importance: float  # baseline - ablated
    ci_low: float
    ci_high: float
    p: float  # this test alone
    p_adjusted: float = 1.0  # over every config of the run (ADJUST)
    significant: bool = False  # p_adjusted < ALPHA


@dataclass
class SkipScores:
    """Probe results of the original model (baseline) and of skip paths, plus the configs that failed."""

    model: str
    probe: str
    probe_sha256: str
    n_layers: int
    baseline: ProbeResult
    results: dict[Skip, ProbeResult]
    failed: dict[Skip, str] = field(default_factory=dict)

    _family: dict = field(default_factory=dict, repr=False, compare=False)  # cache: configs -> adjusted p

    def _adjusted(self) -> dict[Skip, tuple]:
        """(Delta, adjusted p) of every config scored, adjusted over all of them."""
        key = tuple(sorted(self.results))
        if key not in self._family:
            deltas = {s: paired_delta(self.results[s].items, self.baseline.items) for s in key}  # baseline - ablated
            adjusted = adjust_pvalues([d.p for d in deltas.values()], ADJUST)
            self._family.clear()
            self._family[key] = {s: (d, q) for (s, d), q in zip(deltas.items(), adjusted)}
        return self._family[key]

    def row(self, skipped: Skip) -> AblationRow:
        d, q = self._adjusted()[skipped]
        return AblationRow(list(skipped), layer_paths.format_path(layer_paths.skip(skipped, self.n_layers)),
                           self.results[skipped].score, d.delta, d.ci_low, d.ci_high, d.p, q, bool(q < ALPHA))

    def significant(self) -> dict[int, bool]:
        """Single layers whose skip changes the score significantly (adjusted over the run), by layer."""
        return {s[0]: self.row(s).significant for s in self.results if len(s) == 1}

    def rows(self, size: int | None = None) -> list[AblationRow]:
        return [self.row(s) for s in sorted(self.results, key=lambda s: (len(s), s))
                if size is None or len(s) == size]

    def importance(self) -> dict[int, float]:
        """Single-layer importance by layer (layers whose ablation failed are absent)."""
        return {s[0]: self.row(s).importance for s in self.results if len(s) == 1}

    def to_dict(self) -> dict:
        return {"model": self.model, "probe": self.probe, "probe_sha256": self.probe_sha256,
                "n_layers": self.n_layers,
                "baseline": {"score": self.baseline.score, "ci_low": self.baseline.ci_low,
                             "ci_high": self.baseline.ci_high, "n": self.baseline.n, "flags": self.baseline.flags},
                "significance": {"alpha": ALPHA, "adjustment": ADJUST, "family": len(self.results)},
                "rows": [asdict(r) for r in self.rows()],
                "ranking": [r.skipped for r in sorted(self.rows(1), key=lambda r: -r.importance)],
                "failed": [{"skipped": list(s), "error": e} for s, e in sorted(self.failed.items())]}


def blocks(n_layers: int, size: int, layers: Iterable[int] | None = None) -> list[Skip]:
    """Contiguous blocks of `size` layers starting at each of `layers` (default every start that fits)."""
    if size < 1 or size >= n_layers:
        raise NeuroError(f"block size {size} does not fit a {n_layers}-layer model",
                         f"use block sizes from 1 to {n_layers - 1}")
    starts = range(n_layers - size + 1) if layers is None else layers
    return [tuple(range(s, s + size)) for s in starts if 0 <= s and s + size <= n_layers]


class Journal:
    """Append-only JSONL of finished configs of one (model, probe version): what resume reads back."""

    def __init__(self, path: Path | None, model: str, probe_sha256: str):
        self.path, self.key = path, {"model": model, "probe_sha256": probe_sha256}

    def load(self) -> dict[Skip, ProbeResult]:
        if self.path is None or not self.path.exists():
            return {}
        done = {}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: that config simply runs again
            if {k: entry.get(k) for k in self.key} != self.key:
                raise NeuroError(f"{self.path} (line {n}) holds results of another model or probe version",
                                 "write to a new --out folder, or delete that journal to start over")
            done[tuple(entry["skipped"])] = ProbeResult.from_dict(entry["result"])
        return done

    def add(self, skipped: Skip, result: ProbeResult) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({**self.key, "skipped": list(skipped), "result": result.to_dict()})
        with open(self.path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _switched(model: Path, probe, config, todo: list[Skip], n_layers: int,
              measure: Callable[[Skip], ProbeResult | str]) -> Iterator[tuple[Skip, ProbeResult | str]]:
    """(skip, outcome) for `todo` in order, on one llama-server switched from path to path. With prefix
    reuse (rys.prefix: one slot, a probe that only scores prompts, a build with prefix-resume.patch) the
    baseline's prompts keep the rows after the layers the skip paths start from, and skipping layer s runs
    only layers s+1.. from the rows kept after layer s-1. A path the server refuses, and every path after
    the server failed, gets a server of its own (`measure`); outcomes are as measure's."""
    from rys import prefix
    from rys.serve_path import PathSession, serve_path
    from rys.server import PathSwitchRefused, ServerError

    paths = {s: layer_paths.skip(s, n_layers) for s in todo if s}
    with serve_path(Path(model), range(n_layers), config, name="neuro-paths", start=True) as served:
        capture = prefix.plan_capture(paths.values(), n_layers, (i.prompt for i in probe.items),
                                      served.server.client.props().n_embd) if prefix.available(config, [probe]) else ()
        session = PathSession(served, n_layers, capture)

        def score(fields: dict) -> ProbeResult:
            return run_probe(session.client(fields), probe)

        dead = False
        for skipped in todo:
            if dead:
                yield skipped, measure(skipped)
                continue
            try:
                if not skipped:  # the server starts on the unmodified path: the baseline keeps the rows
                    result = score(session.capture_fields())
                    session.mark_captured()
                    yield skipped, result
                    continue
                layer = session.switch(paths[skipped], prime=score)
                yield skipped, score({} if layer is None else {"rys_resume_layer": layer})
            except PathSwitchRefused:
                yield skipped, measure(skipped)
            except ServerError as err:
                if not skipped:
                    raise  # without a baseline nothing can be measured
                served.server.mark_failed()
                dead = not served.server.alive()
                yield skipped, err.message


def score_skips(model: Path, probe, config, skips: Sequence[Skip], *, journal: Path | None = None,
                store=None, workers: int = 2, previous: SkipScores | None = None,
                on_done: Callable[[Skip, str], None] | None = None, switch: bool = True) -> SkipScores:
    """The probe on the original model and on every skip path, resuming from `journal` and reusing
    the results of a `previous` run of the same probe. On a build that switches paths in place (and
    `switch`), one server runs them all, each from the baseline's kept rows where it can (_switched);
    otherwise `workers` servers at a time, one per path."""
    from rys.gguf import SurgeryError
    from rys.gguf.source import open_source
    from rys.server import ServerError

    n_layers = open_source(model).n_layers
    for s in skips:
        layer_paths.skip(s, n_layers)  # a bad layer fails here, before any server starts
    log = Journal(journal, str(Path(model).resolve()), probe.sha256)
    done = log.load()
    if previous is not None:
        done.update({(): previous.baseline, **previous.results})

    def measure(skipped: Skip) -> ProbeResult | str:
        path = None if not skipped else layer_paths.skip(skipped, n_layers)
        name = "baseline" if not skipped else "skip-" + "-".join(map(str, skipped))
        try:
            with open_target(model, config, path=path, store=store, name=name) as server:
                return run_probe(server.client, probe)
        except (ServerError, SurgeryError) as err:
            if not skipped:
                raise  # without a baseline nothing can be measured
            return err.message

    todo = [s for s in dict.fromkeys([(), *(tuple(sorted(s)) for s in skips)]) if s not in done]
    failed = {}
    from rys.serve_path import switches_in_place

    if switch and todo and switches_in_place(config.binary, model):
        outcomes = _switched(model, probe, config, todo, n_layers, measure)
    else:
        outcomes = in_order(measure, todo, workers)
    for skipped, outcome in outcomes:
        if isinstance(outcome, str):
            failed[skipped] = outcome
        else:
            done[skipped] = outcome
            log.add(skipped, outcome)
        if on_done:
            on_done(skipped, "failed: " + outcome if isinstance(outcome, str) else f"score {outcome.score:.4f}")
    baseline = done.pop(())
    wanted = {tuple(sorted(s)) for s in skips}
    return SkipScores(str(model), probe.name, probe.sha256, n_layers, baseline,
                      {s: r for s, r in done.items() if s in wanted}, failed)
