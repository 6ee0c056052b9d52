"""ragkit.aggregators."""
