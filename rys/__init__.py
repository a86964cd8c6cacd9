"""rys: find and exploit reasoning circuits in GGUF models by layer-path surgery."""

__version__ = "0.1.0"
