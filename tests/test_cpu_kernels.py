"""CPU kernels: rys builds compile ggml's AMX kernels out (they crash llama.cpp b11434 on Intel CPUs with
AMX), the server manager names that crash in a user's own build, and rys doctor shows the CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from rys.llama import build
from rys.llama.cpu import NO_AMX_COMPILER_FLAGS, parse_cpuinfo
from rys.server.failures import AMX_HINT, AmxKernelCrash, ServerCrashed, failure, is_amx_crash

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
"""
EPYC = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_vnni\n"
# what llama.cpp b11434 logs on such a CPU before the warm-up decode crashes (llama-model.cpp load_tensors)
AMX_LOG = ("load_tensors: loading model tensors, this can take a while... (mmap = true)\n"
           "load_tensors:          AMX model buffer size =    62.11 MiB\n"
           "load_tensors:   CPU_Mapped model buffer size =   100.00 MiB\n")


def test_cpuinfo_tells_amx_from_the_flags():
    intel, amd = parse_cpuinfo(SAPPHIRE_RAPIDS), parse_cpuinfo(EPYC)
    assert (intel.vendor, intel.model, intel.has_amx) == ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8488C", True)
    assert (amd.vendor, amd.has_amx) == ("AuthenticAMD", False)
    assert intel.features_line() == "avx2, avx512f, avx512_vnni, avx512_bf16, avx512_fp16, amx_tile, amx_int8, amx_bf16"
    assert amd.features_line() == "avx2, avx512f, avx512_vnni"


def _macros(compiler: str, flags: list[str]) -> set[str]:
    done = subprocess.run([compiler, *flags, "-dM", "-E", "-x", "c++", os.devnull], capture_output=True,
                          text=True, check=True)
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("#define")}


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_build_flags_compile_amx_out_but_keep_the_rest_of_an_amx_cpus_instruction_set():
    flags, record = build.cpu_kernel_flags(env={"CXXFLAGS": "-O1"})
    if not flags:
        pytest.skip(f"this compiler does not target AMX: {record}")
    cxx_flags = next(f for f in flags if f.startswith("-DCMAKE_CXX_FLAGS=")).split("=", 1)[1].split()
    assert cxx_flags[0] == "-O1"  # the user's own CXXFLAGS are kept
    # ggml puts -march=native after CMAKE_CXX_FLAGS; an AMX CPU's -march is spelled out here
    target = ["-march=sapphirerapids"]
    stock, ours = _macros("c++", target), _macros("c++", cxx_flags + target)
    assert {"__AMX_INT8__", "__AMX_TILE__"} <= stock  # what ggml's AMX kernels are guarded by
    assert not {m for m in ours if m.startswith("__AMX")}
    assert {"__AVX512F__", "__AVX512VNNI__", "__AVX512FP16__", "__AVX512BF16__"} <= ours
    assert record["amx"] == "compiled out" and " ".join(NO_AMX_COMPILER_FLAGS) in record["mechanism"]


def test_a_cached_build_from_before_the_recipe_is_rebuilt(tmp_path, monkeypatch):
    from rys.llama import locate

    monkeypatch.setenv("RYS_CACHE_DIR", str(tmp_path / "cache"))
    final = locate.build_dir("cpu")
    (final / "bin").mkdir(parents=True)
    (final / "bin" / "llama-server").write_text("#!/bin/sh\n")
    (final / "build.json").write_text(json.dumps({"patches": [], "patch_sha256": {}}))  # the old recipe
    empty = tmp_path / "empty.tar.gz"
    import tarfile

    with tarfile.open(empty, "w:gz"):
        pass
    seen = []
    with pytest.raises(build.BuildFailed, match="holds no"):  # it really went on to rebuild
        build.build_llama_server("cpu", sdist=empty, log=seen.append)
    assert any("AMX" in line and "rebuilding" in line for line in seen)
    (final / "build.json").write_text(json.dumps({"patches": [], "patch_sha256": {}, "recipe": build.BUILD_RECIPE}))
    assert build.build_llama_server("cpu", sdist=empty).built is False


def test_the_rys_builds_record_how_their_cpu_kernels_were_chosen(llama_server_bin):
    info_path = llama_server_bin.resolve().parent.parent / "build.json"
    if not info_path.exists():
        pytest.skip(f"{llama_server_bin} is not a rys build")
    info = json.loads(info_path.read_text())
    assert info["recipe"] == build.BUILD_RECIPE
    assert info["cpu_kernels"]["amx"] in ("compiled out", "not targeted by this compiler")
    # the AMX matmul is absent from the binary, whatever CPU it was built on
    nm = shutil.which("nm")
    if nm:
        symbols = subprocess.run([nm, "-C", str(llama_server_bin)], capture_output=True, text=True).stdout
        assert "ggml_backend_amx_mul_mat" not in symbols and "ggml_backend_cpu_get_proc_address" in symbols


@pytest.mark.parametrize("code, log, amx, expected", [
    (-11, AMX_LOG, True, True),
    (139, AMX_LOG, True, True),  # through a shell wrapper: 128 + SIGSEGV
    (-4, AMX_LOG, True, True),  # SIGILL
    (-11, AMX_LOG, False, False),  # a CPU without AMX crashed for another reason
    (-11, "load_tensors: CPU_REPACK model buffer size = 62.11 MiB\n", True, False),  # -nr or no AMX buffer
    (-9, AMX_LOG, True, False),  # killed, not a kernel crash
    (1, AMX_LOG, True, False),
])
def test_amx_crash_rule(code, log, amx, expected):
    assert is_amx_crash(code, log, amx) is expected


def test_an_amx_crash_is_named_with_the_fix_and_no_retry(tmp_path):
    log = tmp_path / "server.log"
    # the buffer line is far above the tail, as in a real log
    log.write_text(AMX_LOG + "".join(f"llama_context: line {i}\n" for i in range(200)))
    tail = "\n".join(log.read_text().splitlines()[-30:])
    err = failure("llama-server 'doctor' (m.gguf)", -11, tail, log, cpu_has_amx=True)
    assert isinstance(err, AmxKernelCrash) and isinstance(err, ServerCrashed)
    assert "killed by signal 11" in err.message and "AMX" in err.message and err.hint == AMX_HINT
    assert '"-nr"' in err.hint and "rys setup llama-server" in err.hint
    plain = failure("llama-server 'doctor' (m.gguf)", -11, tail, log, cpu_has_amx=False)
    assert type(plain) is ServerCrashed


@pytest.mark.server
def test_a_real_server_killed_by_sigsegv_is_classified_from_its_own_log(serve, smollm2, monkeypatch):
    from rys.llama import cpu

    server = serve(smollm2)
    os.kill(server.pid, signal.SIGSEGV)
    server._proc.wait(timeout=30)
    err = server.crash_error()
    assert type(err) is ServerCrashed and "killed by signal 11" in err.message  # this build has no AMX buffer
    monkeypatch.setattr(cpu, "host_cpu", lambda: parse_cpuinfo(SAPPHIRE_RAPIDS))
    assert type(server.crash_error()) is ServerCrashed  # an AMX CPU alone is not enough: the log decides


@pytest.mark.server
def test_doctor_shows_the_cpu_and_the_devices(llama_server_bin, smollm2):
    done = subprocess.run([sys.executable, "-m", "rys.cli", "doctor", "--llama-server", str(llama_server_bin)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = {k.strip(): v for k, v in (line.split(" : ", 1) for line in done.stdout.splitlines() if " : " in line)}
    cpu_line, devices = lines["cpu"], lines["devices"]
    from rys.llama.cpu import host_cpu

    assert host_cpu().model in cpu_line and ("avx2" in cpu_line) == ("avx2" in host_cpu().flags)
    listed = subprocess.run([str(llama_server_bin), "--list-devices"], capture_output=True, text=True).stdout
    assert (devices == "none besides the CPU") == ("Vulkan" not in listed and "CUDA" not in listed)
