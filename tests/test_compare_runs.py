"""`rys eval` (base + layer path) and `rys compare` end to end on real runs: SmolLM2, real llama-server,
offline ARC-Easy; the comparison is checked against a hand computation from the logged samples."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
from click.testing import CliRunner

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from test_eval_tasks import require_modules

require_modules("lm_eval")

from rys.cli import main
from rys.evaluate.run import load_run

pytestmark = pytest.mark.server

N_DOCS = 20
PATH = "0..11,14..29"  # SmolLM2 without layers 12 and 13


@pytest.fixture(scope="module")
def runs(tmp_path_factory, llama_server_bin, smollm2):
    require_modules("olmo_eval")
    out = tmp_path_factory.mktemp("eval")
    env = {"RYS_STORE_DIR": str(out / "store")}
    args = ["eval", str(smollm2), "--path", PATH, "--tasks", "rys_arc_easy", "--limit", str(N_DOCS),
            "--out", str(out / "runs"), "--ctx-size", "512", "--llama-server", str(llama_server_bin),
            "--server-args", "-t 1"]  # one thread: see test_eval_backend.ONE_THREAD
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    again = CliRunner().invoke(main, args, env=env)  # a finished run is reused, not redone
    assert again.exit_code == 0 and "already done" in again.output
    return out / "runs" / "base", out / "runs" / "path_0-11_14-29", result.output


def test_runs_store_results_and_samples(runs):
    base, modified, _ = runs
    for folder in (base, modified):
        run = load_run(folder)
        assert len(run.samples["rys_arc_easy"]) == N_DOCS
        assert "acc,none" in run.results["results"]["rys_arc_easy"]
        assert run.results["task_hashes"]["rys_arc_easy"]
        assert run.meta["settings"]["limit"] == N_DOCS
    assert load_run(base).meta["path"] is None
    assert load_run(modified).meta["path"] == list(range(12)) + list(range(14, 30))
    # same documents, prompts and targets: lm-eval's task hash agrees
    assert (load_run(base).results["task_hashes"] == load_run(modified).results["task_hashes"])


def test_compare_matches_a_hand_computation(runs, tmp_path):
    base, modified, eval_output = runs
    a = {s["doc_id"]: s["acc"] for s in load_run(base).samples["rys_arc_easy"]}
    b = {s["doc_id"]: s["acc"] for s in load_run(modified).samples["rys_arc_easy"]}
    only_a = sum(1 for d in a if a[d] == 1 and b[d] == 0)
    only_b = sum(1 for d in a if a[d] == 0 and b[d] == 1)
    delta = (sum(b.values()) - sum(a.values())) / N_DOCS
    n = only_a + only_b
    p = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n) if n else 1.0

    report = tmp_path / "compare.json"
    result = CliRunner().invoke(main, ["compare", str(base), str(modified), "--json", str(report)])
    assert result.exit_code == 0, result.output
    rows = {r["metric"]: r for r in json.loads(report.read_text())["rows"]}
    acc = rows["acc"]
    assert acc["n"] == N_DOCS and acc["test"] == "mcnemar"
    assert acc["delta"] == pytest.approx(delta)
    assert acc["p"] == pytest.approx(p)
    assert acc["ci_low"] <= delta <= acc["ci_high"]
    assert acc["verdict"] == ("no significant difference" if p >= 0.05 else ("B better" if delta > 0 else "B worse"))
    (acc_line,) = [line for line in result.output.splitlines() if line.startswith("rys_arc_easy") and " acc " in line]
    assert acc_line in eval_output  # `rys eval --path` printed the same comparison


def test_compare_refuses_runs_on_different_documents(runs, tmp_path):
    base, modified, _ = runs
    fewer = tmp_path / "fewer"
    shutil.copytree(modified, fewer)
    samples = fewer / load_run(modified).meta["sample_files"]["rys_arc_easy"]
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:-1]))
    result = CliRunner().invoke(main, ["compare", str(base), str(fewer)])
    assert result.exit_code == 2
    assert "different documents" in result.output and "fix:" in result.output

    edited = tmp_path / "edited"
    shutil.copytree(modified, edited)
    rows = [json.loads(line) for line in lines]
    rows[0]["prompt_hash"] = "0" * 64
    (edited / samples.name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["compare", str(base), str(edited)])
    assert result.exit_code == 2 and "prompt differs" in result.output
