"""Checking the machines of a Ray cluster before they get work: the GGUF and llama-server must be there.

A node scores configs of the driver's model only if it holds the same file: at the driver's path, or
at --model-path-on-nodes, which may name environment variables each node expands for itself (e.g.
'$RYS_MODELS/model.gguf' where the boxes mount their disks in different places), and with the same
sha256 as the driver's copy. Everything here runs on the node, as a small Ray task pinned to it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass
class NodeReport:
    """What one node said about itself."""

    node_id: str
    ip: str
    hostname: str
    model_path: str  # the path as this node expanded it
    problem: str | None  # why no worker may run there; None: it may

    @property
    def label(self) -> str:
        return node_label(self.ip, self.hostname, self.node_id)


def node_label(ip: str, hostname: str, node_id: str) -> str:
    return f"{hostname} ({ip}, Ray node {node_id[:8]})"


def inspect_node(model_spec: str, model_sha256: str, binary: str) -> NodeReport:
    """Run on the node: is the model there with the driver's sha256, and the llama-server binary?"""
    import ray

    from rys.gguf.provenance import file_sha256

    node_id = ray.get_runtime_context().get_node_id()
    ip = ray.util.get_node_ip_address()
    path = os.path.expanduser(os.path.expandvars(model_spec))
    problem = None
    if not os.path.isfile(path):
        problem = f"has no model file at {path}"
    elif not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        problem = f"has no llama-server at {binary}"
    else:
        try:
            sha = file_sha256(path)
        except OSError as err:
            problem = f"cannot read {path}: {err.strerror or err}"
        else:
            if sha != model_sha256:
                problem = (f"holds a different file at {path} (sha256 {sha[:12]}..., the driver's is "
                           f"{model_sha256[:12]}...)")
    return NodeReport(node_id, ip, socket.gethostname(), path, problem)


FIX = ("copy the same GGUF to every node (same path, or pass --model-path-on-nodes PATH, which may use "
       "$VARIABLES each node sets), and llama-server to the same path (--llama-server PATH)")
