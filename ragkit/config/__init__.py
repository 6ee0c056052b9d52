"""Config loading: ``load_config(path_or_mapping, overrides)`` returns the normalised config dict."""

from ragkit.config.load import apply_overrides, load_config, parse_override, validate_config

__all__ = ["apply_overrides", "load_config", "parse_override", "validate_config"]
