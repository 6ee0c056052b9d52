"""ragkit.loaders."""
