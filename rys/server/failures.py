"""Server error types, and the pure rule that reads a llama-server log and says which one happened.

The rules are data: (error type, log fragments). Order matters: an out-of-memory start also ends with
"exiting due to model loading error", so memory is checked before model loading.
"""

from __future__ import annotations

from rys.errors import RysError


class ServerError(RysError):
    """llama-server failed. `log_tail` holds the last lines of its log (may be empty)."""

    def __init__(self, message: str, hint: str | None = None, log_tail: str = "", log_path=None):
        if log_tail:
            message = f"{message}\n--- last lines of the llama-server log ---\n{log_tail}"
        super().__init__(message, hint)
        self.log_tail = log_tail
        self.log_path = log_path


class ServerOutOfMemory(ServerError):
    pass


class ModelLoadError(ServerError):
    pass


class ServerCrashed(ServerError):
    pass


class AmxKernelCrash(ServerCrashed):
    """The server died on a CPU with AMX while its weights sat in ggml's AMX buffer: llama.cpp b11434's
    AMX matmul crashes there (upstream issue 20824)."""


class ServerStartTimeout(ServerError):
    pass


class PortInUse(ServerError):
    pass


class BadServerArgs(ServerError):
    """llama-server rejected its command line (usually something in --server-args)."""


class RequestFailed(ServerError):
    """An HTTP request to a live server failed for good (after retries for transient errors).
    `status` is the HTTP status when the server answered with an error."""

    status: int | None = None


class PathSwitchRefused(RequestFailed):
    """The server cannot switch to that layer path in place (it is still running its old one)."""


# (type, fragments any of which identifies it, hint). First match wins.
_RULES: tuple[tuple[type[ServerError], tuple[str, ...], str], ...] = (
    (PortInUse, ("couldn't bind HTTP server socket", "address already in use"),
     "another process holds the port: leave --port unset so rys picks a free one"),
    (BadServerArgs, ("invalid argument:", "error: unknown argument", "error while handling argument"),
     "fix --server-args (run llama-server --help for the options of this build)"),
    (ServerOutOfMemory, ("out of memory", "insufficient memory", "failed to allocate", "unable to allocate",
                         "ErrorOutOfDeviceMemory", "std::bad_alloc", "cudaMalloc failed", "hipMalloc failed"),
     "use a smaller --ctx-size or fewer slots, offload fewer layers (-ngl), or a shorter layer path"),
    (ModelLoadError, ("exiting due to model loading error", "failed to load model", "error loading model"),
     "check that the GGUF is complete and that this llama-server build supports its architecture"),
)


def classify(log_tail: str) -> tuple[type[ServerError], str]:
    """The error type a dead server's log points to, and the hint for it (ServerCrashed when none matches)."""
    lowered = log_tail.lower()
    for kind, fragments, hint in _RULES:
        if any(f.lower() in lowered for f in fragments):
            return kind, hint
    return ServerCrashed, "see the log; rerun with --keep-logs to keep logs of servers that succeed too"


# How a crash in a CPU kernel ends: SIGSEGV or SIGILL, as Popen reports a signal (negative) or as a shell
# wrapper passes it on (128 + signal).
_KERNEL_CRASH_CODES = {-11, -4, 139, 132}
AMX_HINT = ("pass --server-args \"-nr\" (--no-repack: weights stay in the plain CPU buffer, which does not "
            "use the AMX kernels), or use a rys build (rys setup llama-server [--patched] compiles AMX out); "
            "rys never retries with other flags by itself, since they change the numbers")


def is_amx_crash(exit_code: int | None, log_text: str, cpu_has_amx: bool) -> bool:
    """A signal 11 or 4 on a CPU with AMX, from a server whose log shows weights in an AMX buffer
    (llama.cpp logs "AMX model buffer size = ..." at load)."""
    return cpu_has_amx and exit_code in _KERNEL_CRASH_CODES and "amx model buffer" in log_text.lower()


def describe_exit(code: int | None) -> str:
    """'exit code 1' or 'killed by signal 9' (Popen reports signals as negative codes)."""
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _log_head(log_path, limit: int = 1 << 20) -> str:
    """The start of a log, where llama-server names its buffers (the tail may no longer show them)."""
    try:
        with open(log_path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except (OSError, TypeError):
        return ""


def failure(what: str, exit_code: int | None, log_tail: str, log_path=None,
            cpu_has_amx: bool | None = None) -> ServerError:
    """The error for a server that exited: `what` says which server, the log decides the type."""
    where = f" (log: {log_path})" if log_path else ""
    if exit_code in _KERNEL_CRASH_CODES:
        if cpu_has_amx is None:
            from rys.llama.cpu import host_cpu

            cpu_has_amx = host_cpu().has_amx
        if is_amx_crash(exit_code, _log_head(log_path) + "\n" + log_tail, cpu_has_amx):
            return AmxKernelCrash(f"{what} stopped: {describe_exit(exit_code)}{where}; this CPU has AMX and the "
                                  "server kept weights in ggml's AMX buffer, whose matmul crashes in llama.cpp "
                                  "b11434 (upstream issue 20824)", AMX_HINT, log_tail, log_path)
    kind, hint = classify(log_tail)
    return kind(f"{what} stopped: {describe_exit(exit_code)}{where}", hint, log_tail, log_path)
