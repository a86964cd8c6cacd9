"""`rys eval`: run lm-eval on the base model and on layer paths with identical settings, one run folder each.

A run folder holds `run.json` (what was run: model, path, settings, llama.cpp build), `results.json`
(lm-eval's results, with task hashes computed as lm-eval computes them) and `samples_<task>.jsonl`
(lm-eval's logged samples, which `rys compare` pairs document by document). `run.json` is written
last, so a folder without it is an interrupted run and is redone; a finished run is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from rys.errors import RysError
from rys.evaluate.tasks.materialize import OFFLINE_TASKS, prepare_tasks
from rys.outputs import save_text
from rys.paths import format_path


class EvalError(RysError):
    pass


@dataclass(frozen=True)
class EvalSettings:
    """Everything besides the model that decides a run's numbers; base and modified share one."""

    tasks: tuple[str, ...]
    limit: int | None = None
    num_fewshot: int | None = None
    chat: bool = False
    seed: int = 1234
    ctx_size: int = 2048
    server_args: tuple[str, ...] = ()
    include_paths: tuple[str, ...] = ()  # folders with the user's own task YAMLs


@dataclass(frozen=True)
class Run:
    folder: Path
    meta: dict
    results: dict
    samples: dict[str, list[dict]]

    @property
    def higher_is_better(self) -> dict[str, dict[str, bool]]:
        return self.results.get("higher_is_better", {})


def run_label(path: Sequence[int] | None) -> str:
    """Folder name for a config: `base`, or the path in short form with only [0-9._-] characters."""
    if path is None:
        return "base"
    return "path_" + format_path(path).replace(",", "_").replace("..", "-")


def _use_local_data(tasks: Sequence[str]) -> None:
    # The rys_* tasks read local files; keep `datasets` from reaching for the hub. Standard task names
    # need the hub, so the environment is left alone when any is asked for.
    if all(t in OFFLINE_TASKS for t in tasks):
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def task_manager(settings: EvalSettings):
    """lm-eval's TaskManager with the offline tasks (materialized now) and the user's include paths;
    raises before any server starts when a task name is unknown."""
    _use_local_data(settings.tasks)
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise EvalError(f"lm-eval is not installed ({err})", hint='pip install "rys[eval]"') from err
    include_path = [str(prepare_tasks(list(settings.tasks))), *settings.include_paths]
    # Indexing lm-eval's thousands of built-in task YAMLs takes 15-30 s on a small CPU. When every
    # name is a plain task in the rys or user folders (not a group, whose members may be built-ins),
    # the built-ins are not needed.
    manager = TaskManager(include_path=include_path, include_defaults=False)
    if not set(settings.tasks) <= set(manager.all_subtasks):
        manager = TaskManager(include_path=include_path)
    unknown = [t for t in settings.tasks if t not in manager.all_tasks]
    if unknown:
        raise EvalError(f"unknown lm-eval task(s): {', '.join(unknown)}",
                        hint=f"offline tasks: {', '.join(OFFLINE_TASKS)}; or any task name `lm-eval ls tasks` "
                             "shows (those download their data)")
    return manager


@contextmanager
def _task_data_errors(tasks: Sequence[str]):
    """A task whose data cannot be read (no network for a hub task, a wrong local path) is the user's
    to fix: an error with a hint instead of a traceback from inside `datasets`."""
    try:
        yield
    except ConnectionError as err:
        raise EvalError(f"could not download the data of {', '.join(tasks)}: {err}",
                        hint=f"without internet use the offline tasks ({', '.join(OFFLINE_TASKS)}) or your own "
                             "task YAMLs on local files (--include-path)") from err
    except FileNotFoundError as err:
        raise EvalError(f"task data not found for {', '.join(tasks)}: {err}",
                        hint="check the data_files paths in your task YAML") from err


def load_tasks(settings: EvalSettings, manager) -> None:
    """Read every task's documents once, so missing data fails before any server starts."""
    with _task_data_errors(settings.tasks):
        manager.load(list(settings.tasks))


def evaluate_client(client, settings: EvalSettings, manager=None) -> dict:
    """lm-eval's output dict (results, samples, configs, ...) for the model behind `client`."""
    manager = manager or task_manager(settings)
    import lm_eval
    import lm_eval.evaluator

    # lm-eval records the git hash of the current folder with a bare `git describe`, which prints
    # "fatal: not a git repository" into the user's terminal outside a checkout.
    lm_eval.evaluator.get_git_commit_hash = _quiet_git_hash

    from rys.evaluate.backend import RysLlamaLM

    with _task_data_errors(settings.tasks):
        output = _simple_evaluate(lm_eval, RysLlamaLM(client=client), settings, manager)
    if output is None:  # lm-eval returns None on non-zero ranks only; one process here
        raise EvalError("lm-eval returned no results", hint="run again with a single process")
    return output


def _simple_evaluate(lm_eval, model, settings: EvalSettings, manager) -> dict | None:
    return lm_eval.simple_evaluate(
        model=model,
        tasks=list(settings.tasks),
        num_fewshot=settings.num_fewshot,
        limit=settings.limit,
        task_manager=manager,
        log_samples=True,
        apply_chat_template=settings.chat,
        random_seed=settings.seed,
        numpy_random_seed=settings.seed,
        fewshot_random_seed=settings.seed,
        bootstrap_iters=1000,
    )


def _quiet_git_hash() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always"], check=False, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def task_hash(samples: list[dict]) -> str:
    """lm-eval's task hash: sha256 over every sample's doc, prompt and target hashes in order."""
    joined = "".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _dump(obj) -> str:
    from lm_eval.utils import handle_non_serializable

    return json.dumps(obj, indent=1, default=handle_non_serializable, ensure_ascii=False)


def _safe_task_file(task: str) -> str:
    return "samples_" + re.sub(r"[^A-Za-z0-9._-]", "_", task) + ".jsonl"


def save_run(folder: Path, output: dict, meta: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    samples = output.get("samples", {})
    files = {}
    for task, task_samples in samples.items():
        files[task] = _safe_task_file(task)
        save_text("".join(_dump(s).replace("\n", " ") + "\n" for s in task_samples), folder / files[task])
    results = {k: v for k, v in output.items() if k != "samples"}
    results["task_hashes"] = {task: task_hash(s) for task, s in samples.items()}
    save_text(_dump(results), folder / "results.json")
    save_text(_dump({**meta, "sample_files": files}), folder / "run.json")
    return folder


def load_run(folder: str | Path) -> Run:
    folder = Path(folder)
    meta_file = folder / "run.json"
    if not meta_file.exists():
        raise EvalError(f"{folder} is not a finished rys eval run (no run.json)",
                        hint="give a folder written by `rys eval` (e.g. OUT/base), or rerun the eval to finish it")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    samples = {}
    for task, name in meta["sample_files"].items():
        with open(folder / name, encoding="utf-8") as fh:
            samples[task] = [json.loads(line) for line in fh]
    return Run(folder, meta, results, samples)


def format_results(results: dict) -> str:
    """One line per task, metric and filter of lm-eval's results: value and its standard error."""
    lines = [f"{'task':<24} {'metric':<30} {'n':>5} {'value':>8} {'stderr':>8}"]
    counts = results.get("n-samples", {})
    for task, metrics in results.get("results", {}).items():
        n = counts.get(task, {}).get("effective", "")
        for key, value in metrics.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            label = metric if filt == "none" else f"{metric} ({filt})"
            err = f"{stderr:>8.4f}" if isinstance(stderr, (int, float)) else f"{'n/a':>8}"
            lines.append(f"{task:<24} {label:<30} {n!s:>5} {value:>8.4f} {err}")
    return "\n".join(lines)


def _provenance(model: Path, client) -> dict:
    from rys import __version__
    from rys.gguf.provenance import file_sha256

    props = client.props()
    return {"model_sha256": file_sha256(model), "llama_cpp_build": props.build_info, "n_ctx": props.n_ctx,
            "rys_version": __version__}


def evaluate_configs(model: Path, paths: Sequence[Sequence[int] | None], settings: EvalSettings, out: Path,
                     binary: Path, log=print) -> list[Path]:
    """Evaluate each config (None = the base model) with the same settings; returns the run folders.
    A config whose folder already holds a finished run with these settings is not run again."""
    from rys.probes.runner import open_target
    from rys.server.manager import ServerConfig

    manager = None  # built (and the task names checked) before the first server starts
    folders = []
    for path in paths:
        label = run_label(path)
        folder = out / label
        meta = {"model": str(model), "path": None if path is None else list(path),
                "label": label, "settings": json.loads(json.dumps(asdict(settings)))}
        if (folder / "run.json").exists():
            done = load_run(folder).meta
            if done["settings"] != meta["settings"] or done["model"] != meta["model"]:
                raise EvalError(f"{folder} holds a finished run with other settings or another model",
                                hint="write to another --out folder, or delete that run folder")
            log(f"{label}: already done, reusing {folder}")
            folders.append(folder)
            continue
        if manager is None:
            manager = task_manager(settings)
            load_tasks(settings, manager)
        limit = f" (limit {settings.limit})" if settings.limit else ""
        log(f"{label}: evaluating {', '.join(settings.tasks)}{limit}")
        # One slot: batch shapes stay identical between base and modified, so differences are the model's.
        config = ServerConfig(binary=binary, ctx_size=settings.ctx_size, slots=1,
                              extra_args=settings.server_args, log_dir=out / "server-logs")
        with open_target(model, config, path=None if path is None else list(path), name=f"eval-{label}") as server:
            meta["provenance"] = _provenance(model, server.client)
            output = evaluate_client(server.client, settings, manager)
        folders.append(save_run(folder, output, meta))
        log(f"{label}: saved {folder}")
    return folders
