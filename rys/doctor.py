"""`rys doctor`: which llama-server rys will use, what it is, and whether it really serves a model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DoctorReport:
    binary: Path
    version: str
    build: int | None
    runtime_paths: bool | None = None  # None: could not be determined
    prompt_window: int = 0  # continuation tokens scored per request (0: one forced request per token)
    path_switch: bool = False  # a running server can switch layer paths (path-switch.patch)
    prefix_reuse: bool = False  # requests can keep and start from residual rows (prefix-resume.patch)
    model: Path | None = None
    served: bool = False
    ready_seconds: float | None = None
    answer: str | None = None
    problems: list[str] = field(default_factory=list)


def run_doctor(explicit_server=None, model_spec: str = "smollm2", server_args=()) -> DoctorReport:
    from rys.llama.locate import find_llama_server, server_version
    from rys.models import resolve_model

    binary = find_llama_server(explicit_server)
    from rys.server import LlamaServer, ServerConfig

    version = server_version(binary)
    first_line = version.text.splitlines()[0] if version.text else "?"
    report = DoctorReport(binary=binary, version=first_line.removeprefix("version:").strip(), build=version.build)
    try:
        from rys.llama.features import PATH_SWITCH, PREFIX_RESUME, has_feature
        from rys.llama.runtime import supports_runtime_paths

        report.runtime_paths = supports_runtime_paths(binary)
        report.path_switch = has_feature(binary, PATH_SWITCH)
        report.prefix_reuse = has_feature(binary, PREFIX_RESUME)
    except ImportError:
        report.runtime_paths = None
    report.model = resolve_model(model_spec)
    start = time.monotonic()
    config = ServerConfig(binary=binary, ctx_size=256, slots=1, extra_args=tuple(server_args), startup_timeout=120)
    with LlamaServer(report.model, config, name="doctor") as server:
        report.ready_seconds = time.monotonic() - start
        report.prompt_window = server.prompt_window
        dist = server.client.next_token("The capital of France is", top_k=1)
        report.answer = dist.tokens[0]
        report.served = True
    return report
