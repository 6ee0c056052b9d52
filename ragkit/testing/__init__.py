"""Deterministic fakes and conformance checks for ragkit stages (usable by plug-in authors)."""

from ragkit.testing.fakes import FakeEmbedder, FakeLLM, example_from_schema, seeded_rng

__all__ = ["FakeEmbedder", "FakeLLM", "example_from_schema", "seeded_rng"]
