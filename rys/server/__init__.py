"""llama-server: a process manager that never leaves a server behind, and a client that never turns a
failure into a score."""

from rys.server.client import ContinuationScore, Generation, LlamaClient, ServerProps, TokenDist
from rys.server.failures import (
    BadServerArgs,
    ModelLoadError,
    PathSwitchRefused,
    PortInUse,
    RequestFailed,
    ServerCrashed,
    ServerError,
    ServerOutOfMemory,
    ServerStartTimeout,
)
from rys.server.manager import LlamaServer, ServerConfig, stop_all
from rys.server.thinking import split_thinking

__all__ = [
    "BadServerArgs",
    "ContinuationScore",
    "Generation",
    "LlamaClient",
    "LlamaServer",
    "ModelLoadError",
    "PathSwitchRefused",
    "PortInUse",
    "RequestFailed",
    "ServerConfig",
    "ServerCrashed",
    "ServerError",
    "ServerOutOfMemory",
    "ServerProps",
    "ServerStartTimeout",
    "TokenDist",
    "split_thinking",
    "stop_all",
]
