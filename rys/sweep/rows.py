"""Turning a scored config into records: a Row per probe, a Failure when it could not be scored."""

from __future__ import annotations

from datetime import datetime, timezone

from rys import __version__
from rys.probes import ProbeResult, ProbeSet
from rys.probes.stats import paired_delta
from rys.sweep.results import Failure, Row
from rys.sweep.space import Config


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def provenance(plan, server, server_config, method: str, node: dict | None = None) -> dict:
    """What produced a row: model, build, binary, arguments, and where it ran (node, GPU) when known."""
    props = server.client.props()
    out = {"model": str(plan.model), "model_sha256": plan.model_sha256,
           "llama_build": props.build_info, "llama_server": str(server_config.binary),
           "server_args": list(server_config.extra_args), "ctx_size": server_config.ctx_size,
           "slots": server_config.slots, "rys_version": __version__,
           # what rys added to server_args, and continuation tokens scored per request (0: forced)
           "launch_args": list(server.launch_args), "prompt_window": server.prompt_window,
           "method": method}
    out.update(node or {})
    return out


def build_row(plan, k: int, config: Config, probe: ProbeSet, result: ProbeResult, timings: dict,
              provenance: dict) -> Row:
    base = plan.base.get(probe.name)
    if config.is_baseline:
        base = result
    delta = None
    if base is not None:
        ids = {item.id for item in result.items}  # a halving rung scores the first items only
        delta = paired_delta([it for it in base.items if it.id in ids], result.items).to_dict()
        if plan.stage == "confirm" and not config.is_baseline:
            delta["search_delta"] = plan.search_deltas.get(config.key, {}).get(probe.name)
    return Row(config=config.label, path=config.key, i=config.i, j=config.j, times=config.times,
               interleaved=config.interleaved, n_layers=len(config.path), probe=probe.name,
               probe_sha256=probe.sha256, score=result.score, ci=[result.ci_low, result.ci_high],
               coverage=result.coverage, n_items=result.n, delta=delta, result=result.to_dict(),
               timings=timings, provenance=provenance, worker=k, finished_at=now(),
               stage=plan.stage, probe_version=plan.version(probe))


def build_failure(plan, k: int, config: Config, probes: list[str], err, server=None, extra=None) -> Failure:
    """`err` is a RysError (its log tail and path are kept) or any exception with a message."""
    log_path = getattr(err, "log_path", None) or (server.log_path if server is not None else None)
    message = getattr(err, "message", None) or str(err) or type(err).__name__
    return Failure(config=config.label, path=config.key, probes=list(probes), error=type(err).__name__,
                   reason=message.split("\n")[0], log_tail=getattr(err, "log_tail", "") or "",
                   log_path=str(log_path) if log_path else None, model_sha256=plan.model_sha256,
                   worker=k, at=now(), extra=dict(extra or {}))
