"""Paired comparison of two lm-eval runs on the same documents: deltas, significance, verdicts.

Pure: takes lm-eval's logged samples (one dict per document and filter) and returns records.
Binary per-document metrics (acc, acc_norm, exact_match) get McNemar's exact test on the discordant
pairs; any other per-document number gets a paired bootstrap. Every delta gets a paired bootstrap
confidence interval. Runs whose documents, prompts or targets differ are refused: a paired test on
different items measures the items, not the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rys.errors import RysError
from rys.probes.stats import binomial_two_sided

ALPHA = 0.05
N_BOOT = 10_000
# Bounds the (replicates x documents) index matrix the bootstrap draws at once.
_BOOT_CHUNK_CELLS = 2_000_000


class MismatchedRuns(RysError):
    pass


@dataclass(frozen=True)
class MetricDelta:
    task: str
    metric: str
    filter: str
    n: int
    a: float  # mean of run A
    b: float  # mean of run B
    delta: float  # b - a
    ci_low: float
    ci_high: float
    p: float
    test: str  # "mcnemar" or "bootstrap"
    higher_is_better: bool
    verdict: str


@dataclass(frozen=True)
class AverageDelta:
    """Macro average over tasks of each task's primary metric, signed so that positive = B is better."""

    tasks: tuple[str, ...]
    metrics: tuple[str, ...]  # the primary metric used for each task, same order
    a: float
    b: float
    improvement: float
    ci_low: float
    ci_high: float
    p: float
    verdict: str


@dataclass(frozen=True)
class Comparison:
    rows: list[MetricDelta]
    average: AverageDelta | None
    skipped: list[str]  # "task/metric: why" for metrics that cannot be paired per document


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (b: A right/B wrong, c: the reverse)."""
    return binomial_two_sided(b, c)


def bootstrap_means(diffs: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of the per-document differences."""
    diffs = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    n = len(diffs)
    step = max(1, _BOOT_CHUNK_CELLS // max(n, 1))
    means = [diffs[rng.integers(0, n, size=(min(step, n_boot - start), n))].mean(axis=1)
             for start in range(0, n_boot, step)]
    return np.concatenate(means)


def bootstrap_summary(means: np.ndarray) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p) of bootstrap means: 95% percentile interval, and
    p = 2 * min(share of means <= 0, share >= 0), with +1 smoothing so p is never exactly 0."""
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    r = len(means)
    tail = min(int((means <= 0).sum()), int((means >= 0).sum()))
    return float(low), float(high), min(1.0, 2 * (tail + 1) / (r + 1))


def paired_bootstrap(a, b, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float, float]:
    """(ci_low, ci_high, p) for mean(b - a) over paired documents."""
    return bootstrap_summary(bootstrap_means(np.asarray(b, float) - np.asarray(a, float), n_boot, seed))


def verdict(improvement: float, p: float) -> str:
    if p >= ALPHA:
        return "no significant difference"
    return "B better" if improvement > 0 else "B worse"


def _key(sample: dict) -> tuple[str, int]:
    return sample["filter"], sample["doc_id"]


def _check_same_documents(task: str, a: list[dict], b: list[dict]) -> None:
    keyed_a = {_key(s): s for s in a}
    keyed_b = {_key(s): s for s in b}
    if keyed_a.keys() != keyed_b.keys():
        only_a, only_b = len(keyed_a.keys() - keyed_b.keys()), len(keyed_b.keys() - keyed_a.keys())
        raise MismatchedRuns(
            f"task {task}: the runs scored different documents ({len(keyed_a)} vs {len(keyed_b)} samples; "
            f"{only_a} only in A, {only_b} only in B)",
            hint="run both with the same --tasks and --limit (rys eval does this for base and modified)",
        )
    for key, sa in keyed_a.items():
        sb = keyed_b[key]
        for field, what in (("doc_hash", "document text"), ("prompt_hash", "prompt"), ("target_hash", "target")):
            if sa.get(field) != sb.get(field):
                raise MismatchedRuns(
                    f"task {task}, document {key[1]}: the {what} differs between the runs",
                    hint="compare runs made with the same task data, few-shot and chat-template settings",
                )


def _is_number(value) -> bool:
    return isinstance(value, (int, float))  # bool included: some tasks log True/False


def compare_samples(
    samples_a: dict[str, list[dict]],
    samples_b: dict[str, list[dict]],
    higher_is_better: dict[str, dict[str, bool]] | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Comparison:
    """Compare run B against run A task by task. Raises MismatchedRuns unless both ran the same
    tasks on the same documents with the same prompts and targets."""
    if samples_a.keys() != samples_b.keys():
        raise MismatchedRuns(
            f"the runs cover different tasks (A: {sorted(samples_a)}, B: {sorted(samples_b)})",
            hint="pass --tasks with tasks that both runs contain",
        )
    higher_is_better = higher_is_better or {}
    rows: list[MetricDelta] = []
    skipped: list[str] = []
    primary: dict[str, tuple[MetricDelta, np.ndarray]] = {}
    for task in sorted(samples_a):
        _check_same_documents(task, samples_a[task], samples_b[task])
        by_key_b = {_key(s): s for s in samples_b[task]}
        groups: dict[tuple[str, str], tuple[list, list]] = {}
        for sa in sorted(samples_a[task], key=_key):
            sb = by_key_b[_key(sa)]
            for metric in sa["metrics"]:
                va, vb = sa.get(metric), sb.get(metric)
                if not (_is_number(va) and _is_number(vb)):
                    if f"{task}/{metric}" not in skipped:
                        skipped.append(f"{task}/{metric}: not a number per document (aggregated over the corpus)")
                    continue
                pair = groups.setdefault((sa["filter"], metric), ([], []))
                pair[0].append(float(va))
                pair[1].append(float(vb))
        for (filt, metric), (va, vb) in groups.items():
            a, b = np.array(va), np.array(vb)
            hib = higher_is_better.get(task, {}).get(metric, True)
            means = bootstrap_means(b - a, n_boot, seed)
            low, high, p = bootstrap_summary(means)
            test = "bootstrap"
            if set(np.unique(np.concatenate([a, b]))) <= {0.0, 1.0}:
                test = "mcnemar"
                p = mcnemar_exact(int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum()))
            delta = float(b.mean() - a.mean())
            row = MetricDelta(task, metric, filt, len(a), float(a.mean()), float(b.mean()), delta,
                              low, high, p, test, hib, verdict(delta if hib else -delta, p))
            rows.append(row)
            # The primary metric of a task: the first metric of its first filter, as lm-eval lists them.
            primary.setdefault(task, (row, (b - a) if hib else (a - b)))
    return Comparison(rows, _average(primary, n_boot, seed), skipped)


def _average(primary: dict[str, tuple[MetricDelta, np.ndarray]], n_boot: int, seed: int) -> AverageDelta | None:
    """Equal weight per task; the interval resamples documents within each task (stratified bootstrap)."""
    if not primary:
        return None
    tasks = tuple(primary)
    means = np.mean([bootstrap_means(primary[t][1], n_boot, seed + i) for i, t in enumerate(tasks)], axis=0)
    low, high, p = bootstrap_summary(means)
    if len(tasks) == 1:  # one task: the average is that task's primary row, keep its exact test
        p = primary[tasks[0]][0].p
    improvement = float(np.mean([primary[t][1].mean() for t in tasks]))
    return AverageDelta(
        tasks=tasks,
        metrics=tuple(primary[t][0].metric for t in tasks),
        a=float(np.mean([primary[t][0].a for t in tasks])),
        b=float(np.mean([primary[t][0].b for t in tasks])),
        improvement=improvement,
        ci_low=low,
        ci_high=high,
        p=p,
        verdict=verdict(improvement, p),
    )


def format_comparison(result: Comparison, label_a: str = "A", label_b: str = "B") -> str:
    """Plain-text table: one row per task, filter and metric, then the average and its verdict."""
    header = (f"{'task':<24} {'metric':<26} {'n':>5} {label_a[:8]:>8} {label_b[:8]:>8} {'delta':>8} "
              f"{'95% CI':>18} {'p':>7} {'test':<9} verdict")
    lines = [header]
    for r in result.rows:
        metric = r.metric if r.filter == "none" else f"{r.metric} ({r.filter})"
        lines.append(f"{r.task:<24} {metric:<26} {r.n:>5} {r.a:>8.4f} {r.b:>8.4f} {r.delta:>+8.4f} "
                     f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}] {r.p:>7.4f} {r.test:<9} {r.verdict}")
    avg = result.average
    if avg is not None:
        lines.append(
            f"average over {len(avg.tasks)} task(s) of each task's primary metric ({', '.join(avg.metrics)}), "
            f"equal weight per task: {label_a} {avg.a:.4f}, {label_b} {avg.b:.4f}, improvement {avg.improvement:+.4f} "
            f"[{avg.ci_low:+.4f}, {avg.ci_high:+.4f}], p = {avg.p:.4f}: {avg.verdict}")
    lines.extend(f"skipped {s}" for s in result.skipped)
    return "\n".join(lines)
