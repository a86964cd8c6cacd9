"""The sweep's progress bar, its messages, and the live top table of the configs scored so far."""

from __future__ import annotations

import threading

from tqdm import tqdm

from rys.sweep.rank import combined_ranking


class Progress:
    def __init__(self, total: int, rows: list, enabled: bool, top_k: int, log):
        self.rows = rows  # this model's rows so far; grows with every row written
        self.enabled = enabled
        self.top_k = top_k
        self.log = log
        self.lock = threading.Lock()
        self.leader: str | None = None
        self.bar = tqdm(total=total, unit="config", disable=not enabled, dynamic_ncols=True)

    def add_row(self, row) -> None:
        with self.lock:
            self.rows.append(row)

    def config_done(self) -> None:
        with self.lock:
            self.bar.update(1)
            self._show_leaders()

    def say(self, text: str) -> None:
        if self.enabled:
            self.bar.write(text)  # above the bar, which stays at the bottom
        else:
            self.log(text)

    def close(self) -> None:
        self.bar.close()

    def _show_leaders(self) -> None:
        """A live top table, printed whenever the best config changes."""
        ranked = combined_ranking(self.rows)
        if not ranked or ranked[0].path == self.leader:
            return
        self.leader = ranked[0].path
        self.bar.set_postfix_str(f"best {ranked[0].config}")
        lines = [f"current top {min(self.top_k, len(ranked))}:"]
        for n, r in enumerate(ranked[: self.top_k], 1):
            deltas = "  ".join(f"{p} {d:+.4f}" for p, d in r.delta.items())
            lines.append(f"  {n}. {r.config:<12} {deltas}")
        self.say("\n".join(lines))
