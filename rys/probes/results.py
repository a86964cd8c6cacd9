"""Records of a probe run: one ItemResult per item, one ProbeResult per (probe, model or path).

Both round-trip through plain JSON (to_dict / from_dict): the sweep writes them into JSONL rows and
compares configs item by item.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class ItemResult:
    id: str
    category: str
    score: float  # in [0, 1]: the number a sweep averages
    correct: bool
    p_correct: float | None = None  # probability of the gold answer, where the scorer has one
    prediction: str | None = None  # what the model answered (label, number, parsed text)
    coverage: float | None = None  # how much the model answered in the expected format, in [0, 1]
    detail: dict[str, Any] = field(default_factory=dict)  # scorer-specific numbers (log_odds, E, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ItemResult:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class ProbeResult:
    probe: str
    probe_sha256: str
    scorer: str
    n: int
    score: float
    accuracy: float
    coverage: float | None
    ci_low: float  # bootstrap 95% CI of the mean item score
    ci_high: float
    chance: float | None  # score expected from a random answer in the right format
    constant: float | None  # best score a constant answer reaches
    constant_answer: str | None
    flags: list[str]  # honesty flags: degenerate, at-chance, low-coverage
    categories: dict[str, dict[str, float]]  # category -> {n, score, accuracy}
    items: list[ItemResult]
    seconds: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["items"] = [item.to_dict() for item in self.items]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ProbeResult:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["items"] = [ItemResult.from_dict(item) for item in data["items"]]
        return cls(**values)
