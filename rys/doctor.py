"""`rys doctor`: which llama-server rys will use, what it is, what it runs on, and whether it really
serves a model. Split in two so the facts about the binary and the machine are shown before the serve
check, which is what fails on a broken machine."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rys.llama.cpu import CpuInfo


@dataclass
class DoctorReport:
    binary: Path
    version: str
    build: int | None
    cpu: CpuInfo
    devices: list[str] | None = None  # devices besides the CPU (None: could not be told)
    cpu_kernels: str | None = None  # how a rys build chose its CPU kernels (None: not a rys build)
    runtime_paths: bool | None = None  # None: could not be determined
    prompt_window: int = 0  # continuation tokens scored per request (0: one forced request per token)
    path_switch: bool = False  # a running server can switch layer paths (path-switch.patch)
    prefix_reuse: bool = False  # requests can keep and start from residual rows (prefix-resume.patch)
    model: Path | None = None
    served: bool = False
    ready_seconds: float | None = None
    answer: str | None = None
    problems: list[str] = field(default_factory=list)


def rys_build_kernels(binary: Path) -> str | None:
    """The CPU-kernel choice a rys build recorded (cache/llama-server/<build>/build.json), or None."""
    try:
        info = json.loads((binary.resolve().parent.parent / "build.json").read_text())
    except (OSError, ValueError):
        return None
    kernels = info.get("cpu_kernels")
    if not kernels:
        return "AMX kernels compiled in (built before rys compiled them out: rys setup llama-server rebuilds it)"
    return f"{kernels.get('mechanism')}; AMX {kernels.get('amx')}"


def inspect_server(explicit_server=None) -> DoctorReport:
    """What can be told without starting a server."""
    from rys.llama.cpu import host_cpu
    from rys.llama.features import PATH_SWITCH, PREFIX_RESUME, has_feature, list_devices
    from rys.llama.locate import find_llama_server, server_version
    from rys.llama.runtime import supports_runtime_paths

    binary = find_llama_server(explicit_server)
    version = server_version(binary)
    first_line = version.text.splitlines()[0] if version.text else "?"
    return DoctorReport(binary=binary, version=first_line.removeprefix("version:").strip(), build=version.build,
                        cpu=host_cpu(), devices=list_devices(binary), cpu_kernels=rys_build_kernels(binary),
                        runtime_paths=supports_runtime_paths(binary), path_switch=has_feature(binary, PATH_SWITCH),
                        prefix_reuse=has_feature(binary, PREFIX_RESUME))


def serve_check(report: DoctorReport, model_spec: str = "smollm2", server_args=()) -> DoctorReport:
    """Start the server on the model and ask for one token; a failure raises the classified ServerError
    (an AMX crash included)."""
    from rys.models import resolve_model
    from rys.server import LlamaServer, ServerConfig

    report.model = resolve_model(model_spec)
    start = time.monotonic()
    config = ServerConfig(binary=report.binary, ctx_size=256, slots=1, extra_args=tuple(server_args),
                          startup_timeout=120)
    with LlamaServer(report.model, config, name="doctor") as server:
        report.ready_seconds = time.monotonic() - start
        report.prompt_window = server.prompt_window
        dist = server.client.next_token("The capital of France is", top_k=1)
        report.answer = dist.tokens[0]
        report.served = True
    return report


def run_doctor(explicit_server=None, model_spec: str = "smollm2", server_args=()) -> DoctorReport:
    return serve_check(inspect_server(explicit_server), model_spec, server_args)
