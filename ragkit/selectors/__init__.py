"""ragkit.selectors."""
