"""ragkit.store."""
