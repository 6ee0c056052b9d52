"""Reading files as text: size limit, encoding fallback, newline normalisation, warnings."""

from __future__ import annotations

import codecs
import re
import warnings
from pathlib import Path

from ragkit.errors import DocumentError, RagkitWarning

#: Files larger than this are refused (pass ``max_bytes=`` to :func:`ragkit.loaders.load_corpus` to raise it).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class LoaderWarning(RagkitWarning):
    """A file was loaded with a caveat (decoded with a fallback encoding) or skipped (empty)."""


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path``, refusing files above ``max_bytes``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise DocumentError(
            f"{path} is {size:,} bytes, above the loader limit max_bytes={max_bytes:,}. Split the file, or raise "
            f"the limit: corpus: {{max_bytes: {size + 1}}} in the config, or load_corpus(..., max_bytes={size + 1})"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc}") from exc


def decode(raw: bytes, path: Path, *, sniff_html: bool = False) -> str:
    """Decode ``raw`` as UTF-8, else (with a :class:`LoaderWarning` naming ``path``) a fallback encoding.

    Order: UTF-8; a UTF-16/32 byte-order mark; for HTML a ``<meta charset>``; cp1252; latin-1 (which
    never fails). A UTF-8 byte-order mark is kept, as ``Path.read_text(encoding="utf-8")`` keeps it.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not valid UTF-8"
    candidates: list[str] = []
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            candidates.append(encoding)
            break
    if sniff_html:
        match = _META_CHARSET.search(raw[:4096])
        if match:
            candidates.append(match.group(1).decode("ascii", "replace"))
    candidates += ["cp1252", "latin-1"]
    for encoding in candidates:
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        warnings.warn(
            f"{path}: {problem}; decoded as {encoding} instead. Re-save the file as UTF-8 to silence this "
            "(offsets then index the UTF-8 text).",
            LoaderWarning,
            stacklevel=4,
        )
        return text
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def normalise_newlines(text: str) -> str:
    r"""``\r\n`` and lone ``\r`` become ``\n``, exactly as ``Path.read_text`` (universal newlines) does."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path, max_bytes: int, *, sniff_html: bool = False) -> str:
    """The text of ``path`` as ``Path(path).read_text(encoding="utf-8")`` gives it (with decoding fallback)."""
    return normalise_newlines(decode(read_bytes(path, max_bytes), path, sniff_html=sniff_html))
