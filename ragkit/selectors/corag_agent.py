"""CORAG's configuration agent: pick the scorer and search settings per query from the question's embedding.

The paper's learned part (METHODS.md §3.4), with ragkit's choices:

- **Labels.** For each training question, every configuration of a grid (scorer × ``c`` ×
  ``lambda_`` × ``iterations``) runs the search; the reward is the dataset's evidence metric of the
  combination it picks (``all_gold + recall / 2``: every gold span inside the budget first, then
  character recall; no LLM-judged answer). Among the configurations tied for the best reward, the
  label is the one with the best mean reward over all training questions, so ties go to the
  configuration that is strong in general (:func:`choose_labels`).
- **Model.** A scikit-learn ``MLPClassifier`` from the question's embedding (the pipeline's
  embedder, MiniLM by default; the authors use BGE-M3) to the label. One classifier over the grid's
  configurations replaces the authors' reranker classifier plus ``(C, iterations, λ)`` regressor:
  the grid is small and a regressed ``iterations`` would have to be rounded anyway.
- **Artifact.** A versioned pair ``NAME.json`` (format, version, configurations, embedder, layer
  shapes, the training report) and ``NAME.npz`` (weights; loaded with ``allow_pickle=False``). No
  pickle anywhere; prediction is a few numpy lines, so sklearn is needed only to train.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> configs = [{"scorer": {"type": "embedding"}, "c": 2.4, "lambda_": 0.1, "iterations": 4},
    ...            {"scorer": {"type": "query_likelihood"}, "c": 1.0, "lambda_": 0.1, "iterations": 4}]
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> agent = train_agent(X, [0, 0, 1, 1], configs, embedder={"model": "toy"}, seed=0)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "agent.json"
    >>> again = CoragAgent.load(agent.save(path))
    >>> [again.pick(x)["scorer"]["type"] for x in X]
    ['embedding', 'embedding', 'query_likelihood', 'query_likelihood']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.errors import ConfigError

FORMAT = "ragkit.corag_agent"
VERSION = 1


def reward(row: Mapping[str, Any]) -> float:
    """The label reward of one selection: ``all_gold + recall / 2`` (all gold first, then recall).

    Example:
        >>> reward({"all_gold": 1.0, "recall": 1.0}), reward({"all_gold": 0.0, "recall": 0.5})
        (1.5, 0.25)
    """
    return float(row.get("all_gold", 0.0)) + 0.5 * float(row.get("recall", 0.0))


def choose_labels(rewards: np.ndarray) -> tuple[list[int], int]:
    """Per-question labels from a reward matrix (questions × configurations), and the best fixed configuration.

    The best fixed configuration has the highest mean reward (ties: the earlier one). A question's
    label is, among its tied-best configurations, the one with the highest mean reward.

    Example:
        >>> R = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 1.0, 1.0]])
        >>> choose_labels(R)
        ([1, 2, 1], 1)
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    mean = rewards.mean(axis=0)
    best_fixed = int(np.argmax(mean))
    labels = []
    for row in rewards:
        tied = np.flatnonzero(row >= row.max() - 1e-12)
        labels.append(int(tied[np.argmax(mean[tied])]))
    return labels, best_fixed


@dataclass
class CoragAgent:
    """A trained configuration agent: question embedding → one of ``configs``.

    ``weights`` / ``biases`` are the MLP's layers (ReLU hidden layers); ``classes`` maps output
    units to configuration indices. With one class only, no layer is kept and that class is always
    picked.
    """

    configs: list[dict[str, Any]]
    classes: list[int]
    weights: list[np.ndarray] = field(default_factory=list)
    biases: list[np.ndarray] = field(default_factory=list)
    embedder: dict[str, Any] = field(default_factory=dict)
    dim: int = 0
    report: dict[str, Any] = field(default_factory=dict)

    def predict_index(self, vector: Sequence[float] | np.ndarray) -> int:
        """The configuration index for one question embedding."""
        if len(self.classes) == 1 or not self.weights:
            return int(self.classes[0])
        h = np.asarray(vector, dtype=np.float64).reshape(1, -1)
        if self.dim and h.shape[1] != self.dim:
            raise ConfigError(f"corag agent: the question embedding has {h.shape[1]} dimensions, the agent was "
                              f"trained on {self.dim} ({self.embedder}); use the embedder it was trained with")
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        out = h[0]
        unit = (1 if out[0] > 0 else 0) if out.shape[0] == 1 else int(np.argmax(out))
        return int(self.classes[unit])

    def pick(self, vector: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """The configuration (``scorer``, ``c``, ``lambda_``, ``iterations``) for one question embedding."""
        return dict(self.configs[self.predict_index(vector)])

    # ------------------------------------------------------------------ artifact
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (JSON, ``.json`` added when missing) and the weights next to it (``.npz``)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path.with_suffix(".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)} | {f"b{i}": b for i, b in enumerate(self.biases)}
        np.savez(path.with_suffix(".npz"), **arrays)
        meta = {"format": FORMAT, "version": VERSION, "configs": self.configs, "classes": self.classes,
                "layers": len(self.weights), "shapes": [list(w.shape) for w in self.weights],
                "embedder": self.embedder, "dim": self.dim, "weights": path.with_suffix(".npz").name,
                "report": self.report}
        path.write_text(json.dumps(meta, indent=2, default=_json_default), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CoragAgent:
        """Read an artifact written by :meth:`save` (checks format and version; never unpickles)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"corag agent: no artifact at {str(path)!r}; train one with `ragkit corag train`")
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ConfigError(f"corag agent: {str(path)!r} is not a corag agent artifact (format {meta.get('format')!r})")
        if meta.get("version") != VERSION:
            raise ConfigError(f"corag agent: {str(path)!r} has version {meta.get('version')!r}; this ragkit reads "
                              f"version {VERSION}: retrain with `ragkit corag train`")
        weights: list[np.ndarray] = []
        biases: list[np.ndarray] = []
        if meta["layers"]:
            with np.load(path.parent / meta["weights"], allow_pickle=False) as data:
                weights = [np.asarray(data[f"w{i}"]) for i in range(meta["layers"])]
                biases = [np.asarray(data[f"b{i}"]) for i in range(meta["layers"])]
        return cls(configs=[dict(c) for c in meta["configs"]], classes=[int(c) for c in meta["classes"]],
                   weights=weights, biases=biases, embedder=dict(meta.get("embedder") or {}),
                   dim=int(meta.get("dim") or 0), report=dict(meta.get("report") or {}))


def train_agent(X: np.ndarray, labels: Sequence[int], configs: Sequence[Mapping[str, Any]], *,
                embedder: Mapping[str, Any] | None = None, hidden: Sequence[int] = (64,), seed: int = 0,
                report: Mapping[str, Any] | None = None) -> CoragAgent:
    """Fit an ``MLPClassifier`` from embeddings ``X`` to configuration ``labels`` (needs scikit-learn)."""
    X = np.asarray(X, dtype=np.float64)
    classes = sorted(set(int(v) for v in labels))
    common = {"configs": [dict(c) for c in configs], "embedder": dict(embedder or {}), "dim": int(X.shape[1]),
              "report": dict(report or {})}
    if len(classes) == 1:
        return CoragAgent(classes=classes, **common)
    from ragkit._lazy import require

    neural = require("sklearn.neural_network", "retrieval", "training the corag agent")
    model = neural.MLPClassifier(hidden_layer_sizes=tuple(hidden), activation="relu", max_iter=2000,
                                 random_state=seed, alpha=1e-3)
    model.fit(X, np.asarray(labels))
    return CoragAgent(classes=[int(c) for c in model.classes_], weights=[np.asarray(w) for w in model.coefs_],
                      biases=[np.asarray(b) for b in model.intercepts_], **common)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
