"""ragkit.embeddings."""
