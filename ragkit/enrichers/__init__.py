"""ragkit.enrichers."""
