"""`rys path`, `rys build`, `rys inspect` and the llm-circuit-finder wrapper `layer_path.py`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
from click.testing import CliRunner
from test_gguf_files import assert_runs_path, read, tiny_gguf

from rys.cli import main

REPO = Path(__file__).resolve().parents[1]


def rys(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_path_command():
    assert rys("path", "--duplicate", 3, 7, "-n", 30).output == "0..6,3..29\n"
    assert rys("path", "0..3, 2 ,3,4..5").output == "0..3,2..5\n"
    assert rys("path", "--skip", "1,3", "-n", 5, "--json").output == "[0, 2, 4]\n"
    assert rys("path", "--repeat", 1, 3, 3, "-n", 4).output == "0..2,1,2,1..3\n"
    assert rys("path", "--truncate", 4).output == "0..3\n"


def test_path_command_errors():
    result = rys("path", "0..40", "-n", 30)
    assert result.exit_code == 2
    assert "'0..40' is out of range" in result.output and "fix: valid layers are 0..29" in result.output
    assert rys("path", "--duplicate", 3, 7).exit_code == 2  # needs -n
    assert rys("path", "--duplicate", 3, 7, "--truncate", 2, "-n", 9).exit_code == 2


def test_build_and_inspect(tmp_path):
    src = tiny_gguf(tmp_path / "tiny.gguf", n_layers=6)
    result = rys("build", src, tmp_path / "out.gguf", "--duplicate", 2, 4)
    assert result.exit_code == 0, result.output
    assert "0..3,2..5" in result.output
    assert_runs_path(read(tmp_path / "out.gguf")[1], [0, 1, 2, 3, 2, 3, 4, 5])
    info = json.loads(rys("inspect", tmp_path / "out.gguf", "--json").output)
    assert info["arch"] == "llama" and info["n_layers"] == 8
    assert info["per_layer_arrays"]["llama.feed_forward_length"] == [10, 20, 30, 40, 30, 40, 50, 60]
    assert info["provenance"]["rys.source.path"] == "0..3,2..5"
    assert info["layers"][4] == {"index": 4, "n_tensors": 2, "bytes": 52, "types": {"F32": 2}}
    text = rys("inspect", tmp_path / "out.gguf").output
    assert "rys.source.path  0..3,2..5" in text and "layers      8" in text
    bad = rys("build", tmp_path / "nope.gguf", tmp_path / "o.gguf")
    assert bad.exit_code == 2 and "not found" in bad.output


def test_inspect_gemma3_shows_sliding_window_layers(gemma3):
    info = json.loads(rys("inspect", gemma3, "--json").output)
    assert info["arch"] == "gemma3" and info["n_layers"] == 18
    assert info["swa_layers"] == [il for il in range(18) if il % 6 != 5]


def test_layer_path_wrapper(tmp_path):
    src = tiny_gguf(tmp_path / "tiny.gguf", n_layers=5)
    done = subprocess.run([sys.executable, REPO / "layer_path.py", src, tmp_path / "out.gguf", "-p", "0..2,1,2,3..4",
                           "-v"], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "5 layers -> 7 layers: 0..2,1..4" in done.stdout
    assert gguf.GGUFReader(tmp_path / "out.gguf").fields["llama.block_count"].contents() == 7
    bad = subprocess.run([sys.executable, REPO / "layer_path.py", src, tmp_path / "bad.gguf", "-p", "2..1"],
                         check=False, capture_output=True, text=True)
    assert bad.returncode == 2 and "reversed range" in bad.stderr
    assert not (tmp_path / "bad.gguf").exists()
