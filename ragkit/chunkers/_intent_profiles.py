"""IDC profile resolution: which value each profile-dependent parameter of ``intent`` takes.

:class:`~ragkit.chunkers.intent.IntentChunker` keeps its constructor parameters as given (``None``
means "the profile's value"), so ``to_config()`` and index hashes stay what they always were; the
values the chunker actually uses come from :func:`resolve_profile` (public as
``IntentChunker.effective_params()``).

Example:
    >>> resolve_profile("reference_code", {"length_weight": None, "max_sentences": 12})["length_weight"]
    0.1
    >>> resolve_profile("paper", {"max_sentences": 12})["max_sentences"]
    12
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ragkit.errors import ConfigError

Profile = Literal["paper", "reference_code"]

#: Defaults of the two profiles (METHODS.md §5.4): the paper's objective and the authors' CLI.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "paper": {
        "max_sentences": 15, "length_weight": 0.0005, "length_penalty": "paper", "min_sentences": 1,
        "coherence_weight": 0.0, "boundary_heuristics": False, "boundary_penalty": None,
    },
    "reference_code": {
        "max_sentences": 20, "length_weight": 0.1, "length_penalty": "linear", "min_sentences": 3,
        "coherence_weight": 0.3, "boundary_heuristics": True, "boundary_penalty": 1.2,
    },
}

#: The parameters whose ``None`` means "the profile's value".
PROFILE_PARAMS: tuple[str, ...] = tuple(PROFILE_DEFAULTS["paper"])


def check_profile(profile: str) -> None:
    """Raise :class:`~ragkit.errors.ConfigError` unless ``profile`` is a known profile.

    Example:
        >>> check_profile("paper")
        >>> check_profile("code")
        Traceback (most recent call last):
        ...
        ragkit.errors.ConfigError: chunker 'intent': profile must be 'paper' or 'reference_code'; got 'code'
    """
    if profile not in PROFILE_DEFAULTS:
        raise ConfigError(f"chunker 'intent': profile must be 'paper' or 'reference_code'; got {profile!r}")


def profile_value(profile: str, name: str, value: Any) -> Any:
    """``value`` when given, else ``profile``'s default for parameter ``name``.

    Example:
        >>> profile_value("reference_code", "boundary_penalty", None), profile_value("paper", "min_sentences", 2)
        (1.2, 2)
    """
    return PROFILE_DEFAULTS[profile][name] if value is None else value


def resolve_profile(profile: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every profile-dependent entry left at ``None`` replaced by the profile's value.

    Parameters of :data:`PROFILE_PARAMS` missing from ``params`` are filled in too; ``boundary_penalty``
    may stay ``None`` (paper profile: calibrated per document).

    Example:
        >>> resolve_profile("paper", {})["length_penalty"]
        'paper'
    """
    check_profile(profile)
    out = dict(params)
    for name in PROFILE_PARAMS:
        out[name] = profile_value(profile, name, params.get(name))
    return out
