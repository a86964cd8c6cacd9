"""GGUF surgery: turn a layer path into a GGUF llama-server loads, as one file or a shared split layout."""

from rys.gguf.build import build_single
from rys.gguf.errors import CorruptGGUF, NoSpace, SurgeryError, UnsupportedPath
from rys.gguf.inspect import ModelInfo, format_info, model_info
from rys.gguf.store import LayerStore, Materialized

__all__ = ["CorruptGGUF", "LayerStore", "Materialized", "ModelInfo", "NoSpace", "SurgeryError", "UnsupportedPath", "build_single", "format_info", "model_info"]
