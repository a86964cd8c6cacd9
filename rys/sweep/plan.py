"""What every worker of one pass over configs shares: a picklable record, so that the same plan drives
worker threads in this process and Ray actors on other machines."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Plan:
    model: Path  # the driver's path of the GGUF (a node may hold it elsewhere: Worker.model_path)
    model_sha256: str
    n_layers: int
    probes: list  # ProbeSets of this pass (a halving rung, the held-out items...)
    server: object  # rys.server.ServerConfig with the global --server-args
    base: dict = field(default_factory=dict)  # probe name -> the baseline's ProbeResult (deltas)
    stage: str = "search"
    versions: dict = field(default_factory=dict)  # probe name -> sha256 of the whole search probe
    search_deltas: dict = field(default_factory=dict)  # held-out rows: path -> probe -> search delta
    switch: bool = False  # keep a server per worker and switch its path between configs
    reuse: bool = False  # prefix reuse (rys.prefix): the baseline keeps rows, configs start from them
    reuse_paths: list = field(default_factory=list)  # the configs' paths, for the capture plan
    prefetch: bool = False  # start the next config's server while the current one scores
    # path -> probe name -> item dicts this config already has (its row on a smaller halving rung):
    # kept, only the other items are scored
    extend: dict = field(default_factory=dict)
    # Ray actors keep the plan they were last sent and fetch a new one only when the id changes
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def version(self, probe) -> str:
        return self.versions.get(probe.name, probe.sha256)
