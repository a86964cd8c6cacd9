"""Pure parts of rys.server: log classification, thinking split, TokenDist math, config checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rys.errors import RysError
from rys.server import (
    BadServerArgs,
    ModelLoadError,
    PortInUse,
    ServerConfig,
    ServerCrashed,
    ServerError,
    ServerOutOfMemory,
    TokenDist,
    split_thinking,
)
from rys.server.failures import classify, describe_exit, failure

# Tails of real llama-server b11434 logs (SmolLM2, CPU build), as the manager captures them.
BIND_LOG = """\
0.00.003.522 E srv         start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 18765
0.00.003.523 I srv    operator(): operator(): cleaning up before exit...
0.00.005.663 E srv  llama_server: exiting due to HTTP server error"""
LOAD_LOG = """\
0.00.014.972 E gguf_init_from_reader: failed to read key-value pairs
0.00.015.239 E llama_model_load: error loading model: llama_model_loader: failed to load model from /tmp/trunc.gguf
0.00.015.253 E srv    load_model: failed to load model, '/tmp/trunc.gguf'
0.00.015.584 E srv  llama_server: exiting due to model loading error"""
OOM_LOG = """\
0.01.095.626 E ggml_aligned_malloc: insufficient memory (attempted to allocate 87890.62 MB)
0.01.095.659 E ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 92160000000
0.01.141.740 E llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache
0.01.147.013 E srv    load_model: failed to create_context with model 'x.gguf'
0.01.151.209 E srv  llama_server: exiting due to model loading error"""
CUDA_OOM_LOG = "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000.00 MiB on device 0: cudaMalloc failed: out of memory"
ARGS_LOG = "error: invalid argument: --bogus-flag"
CRASH_LOG = "0.02.787.692 I slot      release: id  0 | task 2 | stop processing: n_tokens = 5, truncated = 0"


@pytest.mark.parametrize("log, kind", [
    (BIND_LOG, PortInUse), (LOAD_LOG, ModelLoadError), (OOM_LOG, ServerOutOfMemory),
    (CUDA_OOM_LOG, ServerOutOfMemory), (ARGS_LOG, BadServerArgs), (CRASH_LOG, ServerCrashed), ("", ServerCrashed),
])
def test_classify_real_logs(log, kind):
    assert classify(log)[0] is kind


def test_failure_carries_tail_exit_and_hint():
    err = failure("llama-server 'c1' (m.gguf)", -9, CRASH_LOG, "/r/c1.log")
    assert isinstance(err, ServerCrashed) and isinstance(err, ServerError) and isinstance(err, RysError)
    assert err.log_tail == CRASH_LOG and "killed by signal 9" in err.message and "/r/c1.log" in err.message
    assert CRASH_LOG in str(err) and err.hint
    assert describe_exit(1) == "exit code 1" and describe_exit(None) == "still running"


@pytest.mark.parametrize("text, thinking, answer", [
    ("The answer is 4.", "", "The answer is 4."),
    ("<think>2+2 is 4</think>\n\nThe answer is 4.", "2+2 is 4", "The answer is 4."),
    ("2+2 is 4\n</think>\n4", "2+2 is 4", "4"),  # template opened the block in the prompt
    ("<think>still counting: 1, 2, 3", "still counting: 1, 2, 3", ""),  # ran out of tokens
    ("<think>a</think>x <think>b</think>y", "a\n\nb", "x y"),
    ("[THINK]hmm[/THINK]42", "hmm", "42"),
    ("<thinking>q</thinking> done", "q", "done"),
])
def test_split_thinking(text, thinking, answer):
    assert split_thinking(text) == (thinking, answer)


def test_token_dist_helpers():
    lp = np.log([0.5, 0.25, 0.125])
    dist = TokenDist(ids=np.array([7, 3, 9]), logprobs=lp, tokens=["a", "b", "c"], n_vocab=4)
    assert not dist.full
    assert dist.logprob_of(3) == pytest.approx(math.log(0.25))
    assert dist.logprob_of(1) is None  # not listed: never a made-up value
    assert dist.top(2) == [(7, "a", lp[0]), (3, "b", lp[1])]
    assert dist.mass() == pytest.approx(0.875)
    assert dist.mass([9, 3, 1]) == pytest.approx(0.375)


def test_config_checks():
    assert ServerConfig("x", extra_args="-ngl 99 --device 'Vulkan 1'").extra_args == ("-ngl", "99", "--device", "Vulkan 1")
    for bad in (["--port", "8080"], ["-c", "99"], ["--model=a.gguf"], ["-np", "2"]):
        with pytest.raises(BadServerArgs, match="rys sets itself"):
            ServerConfig("x", extra_args=bad)
    with pytest.raises(BadServerArgs):
        ServerConfig("x", slots=0)


def test_cpu_launch_defaults_apply_only_to_cpu_only_servers(tmp_path, fake_devices):
    from rys.server.manager import LlamaServer, ServerConfig

    cpu = fake_devices("cpu", "  (none)\\n")
    gpu = fake_devices("gpu", "  CUDA0: NVIDIA H100 80GB HBM3 (81000 MiB, 80000 MiB free)\\n")

    flags = ("-fit", "--fit", "-fa", "--flash-attn")

    def launch(binary, **config):
        cmd = LlamaServer(tmp_path / "m.gguf", ServerConfig(binary=binary, **config)).command(1)
        return [a for i, a in enumerate(cmd) if a.split("=")[0] in flags or cmd[i - 1] in flags]

    assert launch(cpu) == ["-fit", "off", "-fa", "off"]  # CPU only: nothing to fit; batch-independent scores
    assert launch(gpu) == []  # a GPU build: llama-server's own defaults
    assert launch(gpu, extra_args="-ngl 0") == ["-fit", "off", "-fa", "off"]
    assert launch(cpu, extra_args="-fit on --flash-attn=on") == ["-fit", "on", "--flash-attn=on"]  # the user's, once
    assert launch(cpu, cpu_defaults=False) == []  # a plain launch, as the peers' (benchmarks/bench_sweep.py)
