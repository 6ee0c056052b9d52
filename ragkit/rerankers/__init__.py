"""ragkit.rerankers."""
