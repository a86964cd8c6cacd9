"""`rys eval` and `rys compare`: validate a layer path on lm-eval benchmarks against the base model."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import click


def _split_tasks(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


@click.command("eval")
@click.argument("model")
@click.option("--path", "path_text", default=None,
              help='Layer path to validate against the base model, e.g. "0..14,10..29".')
@click.option("--tasks", required=True,
              help="Comma-separated lm-eval tasks: offline rys_arc_easy, rys_arc_challenge, rys_hellaswag, "
                   "rys_gsm8k_cot, rys_bb_*; or any lm-eval task name (downloads its data).")
@click.option("--limit", type=int, default=None, help="Documents per task (default: all).")
@click.option("--num-fewshot", type=int, default=None, help="Few-shot examples (default: the task's).")
@click.option("--chat", is_flag=True, help="Apply the model's chat template (from its GGUF).")
@click.option("--include-path", "include_paths", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with your own lm-eval task YAMLs (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the runs (default: ./rys-eval/<model name>).")
@click.option("--ctx-size", type=int, default=2048, show_default=True, help="llama-server context per slot.")
@click.option("--llama-server", "llama_server", default=None, help="llama-server binary.")
@click.option("--server-args", default="", help='Extra llama-server arguments, e.g. "-ngl 99".')
def eval_cmd(model, path_text, tasks, limit, num_fewshot, chat, include_paths, out, ctx_size, llama_server,
             server_args) -> None:
    """Run lm-eval on MODEL and on MODEL along --path with identical settings, then compare them."""
    from rys.evaluate.compare import compare_samples, format_comparison
    from rys.evaluate.run import EvalSettings, evaluate_configs, format_results, load_run
    from rys.gguf import model_info
    from rys.llama.locate import find_llama_server
    from rys.models import resolve_model
    from rys.paths import parse_path

    model_path = resolve_model(model)
    binary = find_llama_server(llama_server)
    path = None if path_text is None else parse_path(path_text, model_info(model_path).n_layers)
    settings = EvalSettings(tasks=_split_tasks(tasks), limit=limit, num_fewshot=num_fewshot, chat=chat,
                            ctx_size=ctx_size, server_args=tuple(shlex.split(server_args)),
                            include_paths=tuple(str(p.resolve()) for p in include_paths))
    out = out or Path("rys-eval") / model_path.stem
    configs = [None] if path is None else [None, path]
    folders = evaluate_configs(model_path, configs, settings, out, binary, log=lambda m: click.echo(m, err=True))
    for folder in folders:
        click.echo(f"run: {folder}")
    if path is None:
        click.echo(format_results(load_run(folders[0]).results))
    else:
        base, modified = (load_run(f) for f in folders)
        result = compare_samples(base.samples, modified.samples, base.higher_is_better)
        click.echo(format_comparison(result, "base", "path"))


@click.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tasks", default=None, help="Compare only these tasks (comma-separated).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the comparison as JSON to this file.")
def compare_cmd(run_a, run_b, tasks, json_out) -> None:
    """Paired comparison of two `rys eval` runs: delta, 95% CI, p-value and verdict per task and metric
    (McNemar's exact test for 0/1 metrics, paired bootstrap otherwise), and an equal-weight task average."""
    from rys.evaluate.compare import MismatchedRuns, compare_samples, format_comparison
    from rys.evaluate.run import load_run

    a, b = load_run(run_a), load_run(run_b)
    samples_a, samples_b = a.samples, b.samples
    if tasks:
        wanted = _split_tasks(tasks)
        missing = [t for t in wanted if t not in samples_a or t not in samples_b]
        if missing:
            raise MismatchedRuns(f"task(s) {', '.join(missing)} are not in both runs",
                                 hint=f"tasks in both: {', '.join(sorted(samples_a.keys() & samples_b.keys()))}")
        samples_a = {t: samples_a[t] for t in wanted}
        samples_b = {t: samples_b[t] for t in wanted}
    result = compare_samples(samples_a, samples_b, a.higher_is_better)
    click.echo(f"A = {run_a}\nB = {run_b}")
    click.echo(format_comparison(result))
    if json_out:
        payload = {"a": str(run_a), "b": str(run_b), **dataclasses.asdict(result)}
        tmp = json_out.with_name(json_out.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(json_out)


def register(cli: click.Group) -> None:
    cli.add_command(eval_cmd)
    cli.add_command(compare_cmd)
