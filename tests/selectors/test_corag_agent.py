"""corag's configuration agent: artifact round trip (JSON + npz, no pickle), labels, per-query picks."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from ragkit.errors import ConfigError
from ragkit.selectors.corag import CoragSelector
from ragkit.selectors.corag_agent import FORMAT, VERSION, CoragAgent, choose_labels, reward, train_agent
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Query, ScoredChunk

CONFIGS = [{"scorer": {"type": "embedding"}, "c": 2.4, "lambda_": 0.1, "iterations": 1},
           {"scorer": {"type": "embedding"}, "c": 0.5, "lambda_": 1.0, "iterations": 3},
           {"scorer": {"type": "query_likelihood"}, "c": 2.4, "lambda_": 0.1, "iterations": 5}]


def _data(seed=0, n=30, dim=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)
    return X, y.tolist()


def test_artifact_round_trip_predicts_like_sklearn(tmp_path):
    X, y = _data()
    agent = train_agent(X, y, CONFIGS, embedder={"model": "toy"}, seed=0)
    path = agent.save(tmp_path / "agent")            # .json added
    assert path.suffix == ".json" and path.with_suffix(".npz").is_file()
    again = CoragAgent.load(path)
    assert again.configs == CONFIGS and again.classes == agent.classes and again.dim == 8
    assert [again.predict_index(x) for x in X] == [agent.predict_index(x) for x in X]
    # the numpy forward pass is sklearn's: refit the same model and compare predictions
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", max_iter=2000, random_state=0, alpha=1e-3)
    model.fit(X, np.asarray(y))
    assert [again.predict_index(x) for x in X] == model.predict(X).tolist()


def test_artifact_holds_no_pickle(tmp_path):
    X, y = _data()
    path = train_agent(X, y, CONFIGS, seed=0).save(tmp_path / "agent.json")
    meta = json.loads(path.read_text())
    assert meta["format"] == FORMAT and meta["version"] == VERSION
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as data:   # raises on object arrays
        assert all(data[k].dtype.kind == "f" for k in data.files)
    with zipfile.ZipFile(path.with_suffix(".npz")) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    for file in (path, path.with_suffix(".npz")):
        assert b"\x80\x04\x95" not in file.read_bytes() and b"cnumpy" not in file.read_bytes()


def test_wrong_format_version_or_missing_file_is_a_config_error(tmp_path):
    X, y = _data()
    path = train_agent(X, y, CONFIGS, seed=0).save(tmp_path / "agent.json")
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "version": VERSION + 1}))
    with pytest.raises(ConfigError, match="version"):
        CoragAgent.load(path)
    with pytest.raises(ConfigError, match="no artifact"):
        CoragAgent.load(tmp_path / "missing.json")


def test_one_label_gives_a_constant_agent(tmp_path):
    agent = CoragAgent.load(train_agent(np.eye(3), [2, 2, 2], CONFIGS).save(tmp_path / "a.json"))
    assert agent.weights == [] and agent.pick(np.ones(3))["iterations"] == 5


def test_labels_prefer_the_generally_strong_configuration_among_ties():
    rewards = np.array([[1.5, 1.5, 0.0], [0.2, 0.5, 0.5], [0.0, 1.5, 1.5]])
    labels, best = choose_labels(rewards)
    assert best == 1 and labels == [1, 1, 1]
    assert reward({"all_gold": 1.0, "recall": 1.0}) > reward({"all_gold": 0.0, "recall": 0.99})


class _Context:
    def __init__(self, embedder):
        self.embedder = embedder

    def count_tokens(self, text):
        return len(text.split())


def test_corag_picks_its_configuration_per_query(tmp_path):
    embedder = FakeEmbedder(dimension=16, mode="hash")
    questions = ["where is the tower?", "who wrote the poem?"]
    X = np.stack([embedder.embed_query(q) for q in questions] * 4)
    path = train_agent(X, [0, 1] * 4, CONFIGS[:2], embedder={"model": "fake"}, seed=0).save(tmp_path / "agent.json")
    cands = [ScoredChunk(Chunk(f"id{i}", "d", f"word{i} tower poem", 0, 2, 3), 1.0) for i in range(4)]
    selector = CoragSelector(budget=9, iterations=10, c=1.0, scorer="embedding", agent=str(path))
    picks = {}
    for q in questions:
        selector.select(Query.from_text(q), cands, context=_Context(embedder))
        trace = selector.trace()
        picks[q] = trace["agent"]
        assert trace["iterations"] == trace["agent"]["iterations"], "the agent's iterations, not the selector's"
    assert picks[questions[0]]["config"] == 0 and picks[questions[0]]["iterations"] == 1
    assert picks[questions[1]]["config"] == 1 and picks[questions[1]]["c"] == 0.5
    assert CoragSelector(agent=str(path)).get_params()["agent"] == str(path)
