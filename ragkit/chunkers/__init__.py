"""Chunkers: one file per strategy. See ``ragkit components --kind chunker``."""

from ragkit.chunkers.base import Chunker, add_heading_paths

__all__ = ["Chunker", "add_heading_paths"]
