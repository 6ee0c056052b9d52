"""ragkit.text."""
