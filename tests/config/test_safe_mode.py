"""Safe mode (``--safe`` / ``RAGKIT_SAFE=1``): config paths confined, endpoints loopback unless allowed (issue 13.14).

Each refusal runs through the real CLI (``typer.testing.CliRunner``) and is checked to happen before
anything is written; the same configs without safe mode run as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.config.load import load_config
from ragkit.config.safety import SAFE_ENV, SafetyPolicy, check_config, safe_mode
from ragkit.errors import UnsafeConfigError
from ragkit.paths import ragkit_home

BASE = """\
version: 1
backends:
  llm: {default: {type: fake}}
  embeddings: {default: {type: fake}}
cache: {mode: "off"}
corpus: {paths: ["docs/*.md"]}
index:
  store: index-store
  chunker: {type: token, max_tokens: 32}
query:
  questions: questions.jsonl
output: {dir: out}
"""


@pytest.fixture(autouse=True)
def _safe_mode_off_unless_asked(monkeypatch):
    for name in (SAFE_ENV, "RAGKIT_ALLOW_HOSTS", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "store.md").write_text("# Store\n\nThe index store is written atomically.\n", encoding="utf-8")
    (folder / "questions.jsonl").write_text('{"id": "q1", "question": "How is the store written?"}\n', encoding="utf-8")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.md").write_text("# Secret\n\nNot for this config.\n", encoding="utf-8")
    return folder


def write(project: Path, text: str = BASE, **replace: str) -> Path:
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = project / "rag.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def refused(result, key: str) -> str:
    """The stderr of a refused command, after checking its exit code and that it names ``key``."""
    assert result.exit_code == 2, result.output
    assert "refused by --safe" in result.stderr and key in result.stderr, result.stderr
    return result.stderr


# ---------------------------------------------------------------------------------------------- paths


def test_absolute_output_dir_outside_is_refused_before_anything_is_written(project: Path, tmp_path: Path):
    target = tmp_path / "outside" / "run"
    config = write(project, **{"output: {dir: out}": f"output: {{dir: {target}}}"})
    err = refused(invoke("run", config, "--safe"), "output.dir")
    assert str(target) in err and str(project) in err and str(ragkit_home()) in err  # value, roots
    assert "drop --safe" in err and "move it under" in err  # how to fix
    assert "output.dir (line 12)" in err
    assert not target.exists() and not (project / "index-store").exists()


def test_dotdot_escape_in_corpus_paths_is_refused(project: Path, tmp_path: Path):
    config = write(project, **{'paths: ["docs/*.md"]': 'paths: ["../outside/*.md"]'})
    err = refused(invoke("index", config, "--safe"), "corpus.paths.0")
    assert str(tmp_path / "outside") in err
    assert not (project / "index-store").exists()


def test_symlinked_folder_escape_is_refused(project: Path, tmp_path: Path):
    (project / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    config = write(project, **{'paths: ["docs/*.md"]': 'paths: ["linked"]'})
    err = refused(invoke("index", config, "--safe"), "corpus.paths.0")
    assert f"resolves to {tmp_path / 'outside'}" in err


def test_symlinked_file_inside_the_corpus_folder_is_refused(project: Path, tmp_path: Path):
    (project / "docs" / "leak.md").symlink_to(tmp_path / "outside" / "secret.md")
    config = write(project)
    err = refused(invoke("run", config, "--safe"), "corpus.paths.0")
    assert f"{project / 'docs' / 'leak.md'} -> {tmp_path / 'outside' / 'secret.md'}" in err
    assert not (project / "out").exists()


def test_store_outside_is_refused_and_not_created(project: Path, tmp_path: Path):
    store = tmp_path / "outside" / "store"
    config = write(project, **{"store: index-store": f"store: {store}"})
    refused(invoke("index", config, "--safe"), "index.store")
    assert not store.exists()


def test_questions_outside_and_a_set_override_outside_are_refused(project: Path, tmp_path: Path):
    (tmp_path / "outside" / "q.jsonl").write_text('{"id": "x", "question": "x?"}\n', encoding="utf-8")
    config = write(project, **{"questions: questions.jsonl": "questions: ../outside/q.jsonl"})
    refused(invoke("validate", config, "--safe"), "query.questions")
    result = invoke("validate", write(project), "--safe", "--set", f"output.dir={tmp_path / 'outside'}")
    refused(result, "output.dir")  # --set values become config values and are checked too


def test_intents_path_and_local_model_paths_outside_are_refused(project: Path, tmp_path: Path):
    (tmp_path / "outside" / "intents.json").write_text("{}", encoding="utf-8")
    (tmp_path / "outside" / "model").mkdir()
    text = BASE.replace("embeddings: {default: {type: fake}}",
                        f"embeddings: {{default: {{type: fake}}, local: {{type: sentence_transformers, "
                        f"model: {tmp_path / 'outside' / 'model'}}}}}")
    text = text.replace("chunker: {type: token, max_tokens: 32}",
                        "chunker: {type: intent, llm: default, embedder: default, intent_source: given, "
                        "intents_path: ../outside/intents.json}")
    err = refused(invoke("validate", write(project, text), "--safe"), "index.chunker.intents_path")
    assert "backends.embeddings.local.model" in err


def test_trust_remote_code_is_refused(project: Path):
    text = BASE.replace("llm: {default: {type: fake}}",
                        "llm: {default: {type: fake}, hf: {type: transformers, model: smollm2-135m-instruct, "
                        "trust_remote_code: true}}")
    refused(invoke("validate", write(project, text), "--safe"), "backends.llm.hf.trust_remote_code")


def test_every_problem_is_reported_at_once_by_validate(project: Path, tmp_path: Path):
    text = BASE.replace("store: index-store", f"store: {tmp_path / 'outside' / 's'}")
    text = text.replace("output: {dir: out}", "output: {dir: ../outside/out}")
    text = text.replace("embeddings: {default: {type: fake}}",
                        "embeddings: {default: {type: fake}, remote: {type: openai, base_url: 'http://203.0.113.7/v1'}}")
    err = refused(invoke("validate", write(project, text), "--safe"), "index.store")
    assert "3 settings refused" in err
    assert "output.dir" in err and "backends.embeddings.remote.base_url" in err


# ---------------------------------------------------------------------------------------------- endpoints


REMOTE = BASE.replace("llm: {default: {type: fake}}",
                      "llm: {default: {type: fake}, remote: {type: openai, base_url: 'http://gpu-box.example:8000/v1', "
                      "model: m, api_key_env: null}}")


def test_remote_base_url_is_refused_and_an_allowed_host_passes(project: Path):
    config = write(project, REMOTE)
    err = refused(invoke("validate", config, "--safe"), "backends.llm.remote.base_url")
    assert "'gpu-box.example'" in err and "--allow-host gpu-box.example" in err
    ok = invoke("validate", config, "--safe", "--allow-host", "gpu-box.example")
    assert ok.exit_code == 0, ok.output
    assert "safe mode" in ok.stdout


def test_openai_without_base_url_is_checked_at_its_effective_endpoint(project: Path, monkeypatch):
    text = BASE.replace("llm: {default: {type: fake}}", "llm: {default: {type: fake}, hosted: {type: openai, model: m}}")
    config = write(project, text)
    err = refused(invoke("validate", config, "--safe"), "backends.llm.hosted.base_url")
    assert "api.openai.com" in err and "base_url is not set" in err
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8765/v1")  # the operator's loopback server
    assert invoke("validate", config, "--safe").exit_code == 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765/v1", "http://127.3.2.1/v1", "http://localhost:1/v1",
                                 "http://[::1]:8080/v1", "https://LOCALHOST./v1"])
def test_loopback_endpoints_pass(url: str, tmp_path: Path):
    cfg = {"backends": {"llm": {"x": {"type": "openai", "base_url": url}}}}
    assert check_config(cfg, config_dir=tmp_path, policy=SafetyPolicy()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1@evil.example/v1", "http://evil.example#@127.0.0.1/v1",
                                 "http://127.0.0.1\\@evil.example/v1", "http://0.0.0.0:80/v1", "127.0.0.1:8765/v1",
                                 "file:///etc/passwd", "http://[::ffff:10.0.0.1]/v1"])
def test_tricky_or_non_loopback_urls_are_refused(url: str, tmp_path: Path):
    cfg = {"backends": {"llm": {"x": {"type": "openai", "base_url": url}}}}
    assert [k for k, _, _ in check_config(cfg, config_dir=tmp_path, policy=SafetyPolicy())] == ["backends.llm.x.base_url"]


def test_ray_address_and_runtime_env(tmp_path: Path):
    policy = SafetyPolicy()
    assert check_config({"engine": {"type": "ray", "address": "auto"}}, config_dir=tmp_path, policy=policy) == []
    assert check_config({"engine": {"type": "ray", "address": "ray://127.0.0.1:10001"}}, config_dir=tmp_path,
                        policy=policy) == []
    keys = [k for k, _, _ in check_config({"engine": {"type": "ray", "address": "ray://head.example:10001",
                                                      "runtime_env": {"pip": ["anything"]}}},
                                          config_dir=tmp_path, policy=policy)]
    assert keys == ["engine.address", "engine.runtime_env"]


# ---------------------------------------------------------------------------------------------- what passes


def test_config_folder_and_ragkit_home_paths_pass_and_the_run_works(project: Path):
    store = ragkit_home() / "safe-mode-test-store"
    config = write(project, **{"store: index-store": f"store: {store}"})
    result = invoke("run", config, "--safe")
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith(f"output: {project / 'out'}")
    assert (project / "out" / "answers.jsonl").is_file() and store.is_dir()
    answers = [json.loads(line) for line in (project / "out" / "answers.jsonl").read_text().splitlines()]
    assert answers[0]["chunks"]
    query = invoke("query", config, "How is the store written?", "--safe", "--no-llm")
    assert query.exit_code == 0, query.output


def test_symlink_that_stays_inside_passes(project: Path):
    (project / "alias").symlink_to(project / "docs", target_is_directory=True)
    config = write(project, **{'paths: ["docs/*.md"]': 'paths: ["alias"]'})
    assert invoke("validate", config, "--safe").exit_code == 0


# ---------------------------------------------------------------------------------------------- switches


def test_without_safe_nothing_changes(project: Path, tmp_path: Path):
    target = tmp_path / "outside" / "run"
    (project / "docs" / "leak.md").symlink_to(tmp_path / "outside" / "secret.md")
    config = write(project, REMOTE.replace("output: {dir: out}", f"output: {{dir: {target}}}"))
    assert invoke("validate", config).exit_code == 0
    result = invoke("run", config)
    assert result.exit_code == 0, result.output
    assert (target / "answers.jsonl").is_file()  # written where the config points, as before


def test_environment_variable_turns_it_on(project: Path, tmp_path: Path):
    config = write(project, REMOTE)
    refused(invoke("validate", config, env={SAFE_ENV: "1"}), "backends.llm.remote.base_url")
    refused(invoke("index", config, env={SAFE_ENV: "true"}), "backends.llm.remote.base_url")
    ok = invoke("validate", config, env={SAFE_ENV: "1", "RAGKIT_ALLOW_HOSTS": "other.example, gpu-box.example"})
    assert ok.exit_code == 0, ok.output
    bad = invoke("validate", config, env={SAFE_ENV: "maybe"})
    assert bad.exit_code == 2 and "RAGKIT_SAFE='maybe'" in bad.stderr
    assert invoke("validate", config, env={SAFE_ENV: "0"}).exit_code == 0


def test_allow_host_without_safe_is_an_error(project: Path):
    result = invoke("validate", write(project), "--allow-host", "gpu-box.example")
    assert result.exit_code == 2 and "only applies under safe mode" in result.stderr


def test_python_api_under_safe_mode(project: Path, tmp_path: Path, monkeypatch):
    config = write(project, **{"output: {dir: out}": "output: {dir: ../outside/out}"})
    assert load_config(config)["output"]["dir"] == str(tmp_path / "outside" / "out")
    with safe_mode(), pytest.raises(UnsafeConfigError) as caught:
        load_config(config)
    assert [p[0] for p in caught.value.problems] == ["output.dir"]
    monkeypatch.setenv(SAFE_ENV, "1")
    monkeypatch.chdir(project)  # a mapping's folder is the working directory
    with pytest.raises(UnsafeConfigError):
        load_config({"output": {"dir": "../outside/out"}})
    assert load_config({"output": {"dir": "out"}})["output"]["dir"] == "out"


# ---------------------------------------------------------------------------------------------- eval, serve


def test_eval_experiment_paths_are_checked(project: Path, tmp_path: Path):
    experiment = project / "exp.yaml"
    experiment.write_text(f"dataset: {{name: chroma_chunking_eval, subset: [chatlogs]}}\n"
                          f"data_root: {tmp_path / 'outside'}\n"
                          "base: {index: {chunker: {type: token, max_tokens: 64}}}\n"
                          "variants: [{name: tok}]\n", encoding="utf-8")
    out = tmp_path / "eval-out"
    refused(invoke("eval", experiment, "--safe", "--out", out), "data_root")
    assert not out.exists()
    experiment.write_text("dataset: {name: chroma_chunking_eval, subset: [chatlogs]}\n"
                          f"base: {tmp_path / 'outside' / 'base.yaml'}\n", encoding="utf-8")
    (tmp_path / "outside" / "base.yaml").write_text("version: 1\n", encoding="utf-8")
    refused(invoke("validate", experiment, "--safe"), "base")
    experiment.write_text("dataset: {name: chroma_chunking_eval, subset: [chatlogs]}\n"
                          "base: {output: {dir: /}}\n", encoding="utf-8")
    refused(invoke("eval", experiment, "--safe", "--out", out), "output.dir")
    assert not out.exists()


def test_serve_applies_safe_mode_to_chunk_requests(project: Path, tmp_path: Path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from ragkit.serve.app import create_app

    (tmp_path / "outside" / "intents.json").write_text('["What is A?"]', encoding="utf-8")
    (project / "intents.json").write_text('["What is A?"]', encoding="utf-8")
    config = write(project, **{"store: index-store": "store: ':memory:'"})
    spec = {"type": "intent", "llm": "default", "embedder": "default", "intent_source": "given"}
    with safe_mode(roots=[project]):
        client = TestClient(create_app(config))
    outside = client.post("/chunk", json={"text": "A. B.", "chunker": {**spec, "intents_path": str(tmp_path / "outside" / "intents.json")}})
    assert outside.status_code == 422, outside.text
    assert outside.json()["detail"][0]["path"] == "body.chunker.intents_path"
    inside = client.post("/chunk", json={"text": "A. B.", "chunker": {**spec, "intents_path": str(project / "intents.json")}})
    assert inside.status_code == 200, inside.text
    assert inside.json()["chunks"]
    assert os.environ.get(SAFE_ENV) is None  # the policy lived in the app, not in the process environment


def test_a_mapping_relative_path_is_checked_where_the_run_resolves_it(tmp_path: Path, monkeypatch):
    folder, elsewhere = tmp_path / "experiment", tmp_path / "elsewhere"
    folder.mkdir(), elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a mapping's relative paths are used against the working directory
    policy = SafetyPolicy(roots=(folder,))
    problems = check_config({"output": {"dir": "out"}}, config_dir=None, policy=policy)
    assert [k for k, _, _ in problems] == ["output.dir"] and str(elsewhere / "out") in problems[0][1]
    assert check_config({"output": {"dir": str(folder / "out")}}, config_dir=None, policy=policy) == []
