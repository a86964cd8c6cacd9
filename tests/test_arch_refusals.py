"""Refusals before anything is served: a truncated model is one line from every serving command (the reading
`rys inspect` does), and a sweep of a model no layer path can be right for stops up front with the reason."""

from __future__ import annotations

from click.testing import CliRunner

from rys.cli import main
from rys.gguf.fixtures import TinySpec, header_only


def rys(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _truncated(tmp_path):
    """A model file cut off inside its first tensor: what an interrupted download looks like."""
    from rys.gguf.fixtures import _base_keys, _Draft, _tokenizer_entries, write_tiny

    spec = TinySpec("llama", n_layers=2)
    tokenizer = _tokenizer_entries()
    draft = _Draft(spec, _base_keys(spec, tokenizer), layers=[{}, {}])
    draft.globals["token_embd.weight"] = (64, 49152)
    full = write_tiny(draft, tmp_path / "full.gguf", tokenizer)
    data = full.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 1000])
    return cut


def test_serving_commands_check_the_file_as_inspect_does(tmp_path, llama_server_bin):
    cut = _truncated(tmp_path)
    inspect = rys("inspect", cut)
    assert inspect.exit_code != 0 and "truncated: tensor token_embd.weight ends at byte" in inspect.output
    for args in (("probe", cut, "--probe", "math", "--limit", 1, "--llama-server", llama_server_bin),
                 ("sweep", cut, "--probe", "math", "--limit", 1, "--results", tmp_path / "r.jsonl",
                  "--llama-server", llama_server_bin)):
        result = rys(*args)
        assert result.exit_code != 0, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines[0].startswith("error:") and "truncated: tensor token_embd.weight ends at byte" in lines[0]
        assert len(lines) <= 2  # the error and its fix, no server log
        assert not (tmp_path / "r.jsonl").exists()


def test_sweeps_of_refused_architectures_stop_up_front(tmp_path, llama_server_bin):
    for spec, words in ((TinySpec("bert", n_layers=4), "encoder"),
                        (TinySpec("gemma4", n_layers=4, keys=(("embedding_length_per_layer_input", 64),)),
                         "per-layer-embedding")):
        model = header_only(spec, tmp_path / f"{spec.arch}.gguf")
        result = rys("sweep", model, "--probe", "math", "--limit", 1, "--results", tmp_path / "r.jsonl",
                     "--llama-server", llama_server_bin)
        assert result.exit_code != 0
        assert f"cannot sweep {spec.arch}.gguf" in result.output and words in result.output
        assert not (tmp_path / "r.jsonl").exists()  # not one failure row per config


def test_sweeps_of_accepted_architectures_are_not_stopped(tmp_path):
    from rys.gguf.check import arch_refusal

    for spec in (TinySpec("qwen3moe", n_layers=4), TinySpec("gemma4", n_layers=4),
                 TinySpec("smollm3", n_layers=8)):  # smollm3 refuses some paths, not all
        assert arch_refusal(header_only(spec, tmp_path / f"{spec.arch}.gguf")) is None
