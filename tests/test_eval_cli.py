"""The `rys` command line: eval/compare are registered once, and user mistakes give an error with a fix."""

from __future__ import annotations

import importlib

import click
import pytest
from click.testing import CliRunner

from rys.cli import _COMMAND_MODULES, main


def test_no_two_modules_register_the_same_command_name():
    # click's add_command silently replaces an earlier command of the same name, so a clash
    # (e.g. eval's `compare` and a neuro report comparison) would hide one of them without an error.
    owners: dict[str, str] = {}
    for module in _COMMAND_MODULES:
        group = click.Group()
        importlib.import_module(module).register(group)
        for name in group.commands:
            assert name not in owners, f"`rys {name}` is registered by {owners[name]} and {module}"
            owners[name] = module
    assert {"eval", "compare"} <= set(main.commands)
    assert owners["compare"] == "rys.cli.eval_cmds"


def test_compare_rejects_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "not a finished rys eval run" in result.output and "fix:" in result.output


def test_eval_rejects_an_unknown_task_before_starting_a_server(monkeypatch):
    from test_eval_tasks import require_modules

    require_modules("lm_eval")
    import lm_eval.tasks

    from rys.evaluate.run import EvalError, EvalSettings, task_manager

    class NoTasks:  # indexing lm-eval's real task list takes 15-30 s here; the check needs only its names
        all_tasks = all_subtasks = ()

        def __init__(self, **kwargs):
            pass

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", NoTasks)
    with pytest.raises(EvalError, match="unknown lm-eval task.*rys_no_such_task") as err:
        task_manager(EvalSettings(tasks=("rys_no_such_task",)))
    assert "rys_arc_easy" in err.value.hint


def test_format_results_lists_each_metric_with_its_stderr():
    from rys.evaluate.run import format_results

    results = {"results": {"t": {"name": "t", "alias": "t", "sample_len": 4, "acc,none": 0.75,
                                 "acc_stderr,none": 0.25, "exact_match,strict-match": 0.5,
                                 "exact_match_stderr,strict-match": "N/A"}},
               "n-samples": {"t": {"original": 10, "effective": 4}}}
    header, acc, em = format_results(results).splitlines()
    assert header.split()[:2] == ["task", "metric"]
    assert acc.split() == ["t", "acc", "4", "0.7500", "0.2500"]
    assert em.split() == ["t", "exact_match", "(strict-match)", "4", "0.5000", "n/a"]


def test_eval_with_missing_task_data_fails_before_any_server_starts(tmp_path, llama_server_bin, smollm2):
    from test_eval_tasks import require_modules

    require_modules("lm_eval")
    (tmp_path / "bad.yaml").write_text(
        f"task: my_bad\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'nope.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: gold\nmetric_list:\n  - metric: acc\nmetadata:\n  version: 1.0\n")
    result = CliRunner().invoke(main, ["eval", str(smollm2), "--tasks", "my_bad", "--include-path", str(tmp_path),
                                       "--llama-server", str(llama_server_bin), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "task data not found for my_bad" in result.output and "fix:" in result.output
    assert not (tmp_path / "out" / "server-logs").exists()  # no server was started
