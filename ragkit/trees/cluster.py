"""``cluster``: RAPTOR-style bottom-up aggregation over another builder's top nodes (METHODS.md §2.2 step 6).

The ``base`` builder (``headings`` by default, or ``llm``) makes the tree; the children of its root are
the level-0 items. Per level:

1. each item's text (``Title / Keywords / Summary / Original Text``, the text clipped to
   ``item_chars``) is embedded with ``embedder``;
2. the **clusterer** groups the items. The default ``gmm`` follows the authors' code: reduce with
   UMAP (``dim`` components, cosine; global ``n_neighbors = max(3, min(⌊0.1·n⌋, 15))``, local 10,
   ``min_dist`` 0.1, seeded), fit Gaussian mixtures for k in 2..min(``max_clusters``, n/2) and take the
   k minimising normalised BIC + normalised AIC; an item joins its most probable cluster only when that
   probability exceeds ``threshold`` (else it stays unclustered); global clusters are clustered again
   locally. At most ``dim + 1`` items (11) form one cluster without any fitting;
3. every cluster of two or more items gets one LLM summary node (title ≤ 15 words, 3–5 keywords,
   ≤ 200-word summary; :data:`SUMMARY_PROMPT`) whose children are the members; singletons and
   unclustered items pass through.

This repeats up to ``max_levels`` times and stops early when one item remains or the count did not
shrink (compared with the previous level; the authors' code compares with level 0). When one cluster
holds every item, its summary goes to the root itself instead of adding a level. Leaves are the base
builder's leaves, untouched.

Pluggable parts: ``reducer`` is ``umap`` (umap-learn, the ``trees`` extra) or ``pca`` (numpy SVD, no
extra); ``clusterer`` is ``gmm`` (scikit-learn) or, from Python, any object with
``cluster(embeddings) -> (clusters, unclustered)`` (lists of item indices). A Leiden clusterer is not
included (no igraph/leidenalg here).

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder, FakeLLM
    >>> from ragkit.types import Chunk, Document
    >>> text = "# A\\nalpha\\n# B\\nbeta\\n# C\\ngamma"
    >>> doc = Document.from_text(text, {"headings": [(0, 3, 1, "A"), (10, 13, 1, "B"), (19, 22, 1, "C")]})
    >>> chunks = [Chunk.from_span(doc, s, e, 1) for s, e in [(4, 9), (14, 18), (23, 28)]]
    >>> llm = FakeLLM(mode="fixed", responses=["Title: Greek letters\\nKeywords: alpha; beta\\nSummary: Three letters."])
    >>> tree = ClusterTreeBuilder(llm=llm, embedder=FakeEmbedder(dimension=8)).build(doc, chunks)
    >>> root = tree.node(tree.root)
    >>> root.summary, [tree.node(c).title for c in root.children]
    ('Three letters.', ['A', 'B', 'C'])
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit.errors import ConfigError, MissingDependencyError
from ragkit.llm.prompts import PromptTemplate
from ragkit.stage import Component, EmbedderRef, LLMRef, StageRef
from ragkit.trees._common import Draft, freeze
from ragkit.types import Chunk, DocTree, Document

#: A nested tree builder parameter (``base: headings`` or ``base: {type: llm, ...}``).
TreeBuilderRef = Annotated[Any, StageRef("tree")]

#: The cluster summary prompt (our wording of the authors' intent). Bump the version on any change.
SUMMARY_PROMPT = PromptTemplate(
    "tom_cluster_summary",
    1,
    system="You write short titles and summaries of groups of document sections.",
    text=(
        "The following sections of one document belong together:\n\n{sections}\n\n"
        "Describe them as one group. Reply with exactly three lines:\n"
        "Title: a title of at most 15 words\n"
        "Keywords: 3 to 5 keywords separated by ';'\n"
        "Summary: a summary of at most 200 words"
    ),
)
_LABEL = re.compile(r"^[ \t*#]*(title|keywords|summary)[ \t*]*[:：][ \t*]*", re.IGNORECASE | re.MULTILINE)


# --------------------------------------------------------------------------- clustering pieces
def choose_k(bic: Sequence[float], aic: Sequence[float]) -> int:
    """Index of the smallest normalised BIC + normalised AIC (each min-max scaled to [0, 1]).

    Example:
        >>> choose_k([10.0, 8.0, 9.0], [5.0, 4.0, 1.0])
        2
        >>> choose_k([3.0], [1.0])
        0
    """
    def scale(values: Sequence[float]) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        span = float(arr.max() - arr.min()) if arr.size else 0.0
        return (arr - arr.min()) / span if span > 0 else np.zeros_like(arr)

    return int(np.argmin(scale(bic) + scale(aic)))


def assign(probabilities: np.ndarray, threshold: float) -> tuple[list[list[int]], list[int]]:
    """Clusters (item indices, non-empty, by cluster number) and unclustered items from membership probabilities.

    An item joins its most probable cluster only when that probability is above ``threshold``.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.85, 0.15], [0.5, 0.5], [0.05, 0.95]])
        >>> assign(p, 0.8)
        ([[0, 1], [3]], [2])
    """
    best = probabilities.argmax(axis=1)
    top = probabilities.max(axis=1)
    clusters: dict[int, list[int]] = {}
    unclustered: list[int] = []
    for i, (k, p) in enumerate(zip(best.tolist(), top.tolist())):
        if p > threshold:
            clusters.setdefault(int(k), []).append(i)
        else:
            unclustered.append(i)
    return [clusters[k] for k in sorted(clusters)], unclustered


def reduce_pca(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """Project onto the top ``dim`` principal components (numpy SVD; deterministic up to sign, fixed here).

    Example:
        >>> reduce_pca(np.eye(4), 2).shape
        (4, 2)
    """
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    k = max(1, min(dim, x.shape[0] - 1, x.shape[1]))
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    signs = np.sign(vt[:k, np.argmax(np.abs(vt[:k]), axis=1)].diagonal())
    signs[signs == 0] = 1.0
    return (u[:, :k] * s[:k]) * signs


def reduce_umap(embeddings: np.ndarray, dim: int, n_neighbors: int, seed: int) -> np.ndarray:
    """UMAP to ``dim`` components (cosine, ``min_dist`` 0.1, seeded); needs the ``trees`` extra."""
    try:
        import umap
    except ImportError as exc:
        raise MissingDependencyError("umap-learn", "trees",
                                     "the cluster tree builder's reducer 'umap'; or set reducer: pca") from exc
    n = embeddings.shape[0]
    components = max(1, min(dim, n - 2))
    reducer = umap.UMAP(n_components=components, n_neighbors=max(2, min(n_neighbors, n - 1)), min_dist=0.1,
                        metric="cosine", random_state=seed, init="random" if n <= components + 1 else "spectral")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # seeded UMAP runs single-threaded
        return np.asarray(reducer.fit_transform(embeddings), dtype=np.float64)


class GMMClusterer:
    """The authors' clustering: reduce (UMAP or PCA), Gaussian mixtures chosen by BIC + AIC, probability threshold, global then local.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> points = np.vstack([rng.normal(0, .01, (8, 4)) + [1, 0, 0, 0], rng.normal(0, .01, (8, 4)) + [0, 1, 0, 0]])
        >>> clusters, loose = GMMClusterer(reducer="pca", dim=1, small_n=8).cluster(points)
        >>> sorted(len(c) for c in clusters), loose
        ([8, 8], [])
    """

    def __init__(self, *, reducer: str = "umap", dim: int = 10, threshold: float = 0.8, max_clusters: int = 50,
                 seed: int = 224, small_n: int | None = None, local_neighbors: int = 10) -> None:
        self.reducer = reducer
        self.dim = dim
        self.threshold = threshold
        self.max_clusters = max_clusters
        self.seed = seed
        self.small_n = small_n if small_n is not None else dim + 1
        self.local_neighbors = local_neighbors

    def _reduce(self, x: np.ndarray, n_neighbors: int) -> np.ndarray:
        if self.reducer == "pca":
            return reduce_pca(x, self.dim)
        return reduce_umap(x, self.dim, n_neighbors, self.seed)

    def _mixture(self, x: np.ndarray) -> tuple[list[list[int]], list[int]]:
        from sklearn.mixture import GaussianMixture

        n = x.shape[0]
        ks = list(range(2, max(2, min(self.max_clusters, n // 2)) + 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few distinct points for a large k: sklearn warns, BIC/AIC decide
            models = [GaussianMixture(n_components=k, random_state=self.seed).fit(x) for k in ks]
        best = models[choose_k([m.bic(x) for m in models], [m.aic(x) for m in models])]
        return assign(best.predict_proba(x), self.threshold)

    def _level(self, x: np.ndarray, n_neighbors: int) -> tuple[list[list[int]], list[int]]:
        if x.shape[0] <= self.small_n:
            return [list(range(x.shape[0]))], []
        return self._mixture(self._reduce(x, n_neighbors))

    def cluster(self, embeddings: np.ndarray) -> tuple[list[list[int]], list[int]]:
        """``(clusters, unclustered)`` over the rows of ``embeddings``."""
        x = np.asarray(embeddings, dtype=np.float64)
        n = x.shape[0]
        if n == 0:
            return [], []
        global_clusters, unclustered = self._level(x, max(3, min(n // 10, 15)))
        clusters: list[list[int]] = []
        for members in global_clusters:
            if len(members) <= self.small_n:
                clusters.append(members)
                continue
            local, loose = self._level(x[members], self.local_neighbors)
            clusters.extend([[members[i] for i in c] for c in local])
            unclustered.extend(members[i] for i in loose)
        return clusters, sorted(unclustered)


# --------------------------------------------------------------------------- summaries
def parse_summary(text: str) -> dict[str, Any] | None:
    """``{title, keywords, summary}`` from ``Title:`` / ``Keywords:`` / ``Summary:`` lines (``None`` without title and summary).

    Example:
        >>> parse_summary("**Title**: Results\\nKeywords: F1; BLEU\\nSummary: Scores went up.")
        {'title': 'Results', 'keywords': ['F1', 'BLEU'], 'summary': 'Scores went up.'}
    """
    from ragkit.trees.llm import split_keywords

    marks = list(_LABEL.finditer(text))
    found: dict[str, str] = {}
    for m, nxt in zip(marks, [*marks[1:], None]):
        found.setdefault(m.group(1).lower(), " ".join(text[m.end(): nxt.start() if nxt else len(text)].split()))
    if not found.get("title") and not found.get("summary"):
        return None
    return {"title": " ".join(found.get("title", "").split()[:15]).strip(" *"),
            "keywords": split_keywords(found.get("keywords", ""))[:5], "summary": found.get("summary", "")}


def _item_text(draft: Draft, doc: Document, limit: int) -> str:
    body = " ".join(doc.text[draft.start:draft.end].split())
    parts = [f"Title: {draft.title}" if draft.title else "",
             f"Keywords: {'; '.join(draft.keywords)}" if draft.keywords else "",
             f"Summary: {draft.summary}" if draft.summary else "",
             f"Original Text: {body[:limit]}"]
    return "\n".join(p for p in parts if p)


def draft_of(tree: DocTree, node_id: str | None = None) -> Draft:
    """A :class:`Draft` copy of ``tree`` (node ids kept, so a rebuilt tree keeps its leaves' ids)."""
    node = tree.node(node_id or tree.root)
    return Draft(title=node.title, summary=node.summary, keywords=list(node.keywords), start=node.start,
                 end=node.end, children=[draft_of(tree, c) for c in node.children], metadata=dict(node.metadata),
                 node_id=node.id)


class ClusterTreeBuilder(Component):
    """RAPTOR-style summary levels (embeddings, UMAP + GMM, LLM summaries) over the ``base`` builder's top nodes.

    Parameters:
        base: the tree builder whose root's children are the level-0 items (``headings`` or ``llm``).
        llm: the LLM that writes cluster summaries.
        embedder: the embedder for item texts.
        reducer: ``umap`` (umap-learn, the ``trees`` extra) or ``pca`` (numpy).
        clusterer: ``gmm``, or (Python) an object with ``cluster(embeddings) -> (clusters, unclustered)``.
        dim: reduced dimension (10); at most ``dim + 1`` items form one cluster without fitting.
        threshold: membership probability an item needs to join its cluster (0.8).
        max_clusters: largest k tried (50). max_levels: summary levels at most (4). seed: 224.
        item_chars: characters of original text per item, for embedding and summary prompts.
        summary_max_tokens: output budget of a summary (200).

    Example:
        >>> from ragkit.testing.fakes import FakeEmbedder, FakeLLM
        >>> ClusterTreeBuilder(llm=FakeLLM(), embedder=FakeEmbedder(), reducer="pca").reducer
        'pca'
    """

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({"generate"})}

    def __init__(
        self,
        *,
        base: TreeBuilderRef = "headings",
        llm: LLMRef = "default",
        embedder: EmbedderRef = "default",
        reducer: Literal["umap", "pca"] = "umap",
        clusterer: Any = "gmm",
        dim: Annotated[int, Field(ge=2)] = 10,
        threshold: Annotated[float, Field(ge=0, lt=1)] = 0.8,
        max_clusters: Annotated[int, Field(ge=2)] = 50,
        max_levels: Annotated[int, Field(ge=1, le=8)] = 4,
        seed: int = 224,
        item_chars: Annotated[int, Field(ge=100)] = 2000,
        summary_max_tokens: Annotated[int, Field(gt=0)] = 200,
    ) -> None:
        self.base = base
        self.llm = llm
        self.embedder = embedder
        self.reducer = reducer
        self.clusterer = clusterer
        self.dim = dim
        self.threshold = threshold
        self.max_clusters = max_clusters
        self.max_levels = max_levels
        self.seed = seed
        self.item_chars = item_chars
        self.summary_max_tokens = summary_max_tokens
        self.last_report_: dict[str, Any] | None = None
        self.runtime_: Any = None

    def bind_runtime(self, runtime: Any) -> None:
        """Called by the pipeline; a ``base`` given as a name is then built through its registry."""
        self.runtime_ = runtime

    def _load(self) -> None:
        from ragkit.backends import resolve_backend

        self.llm = resolve_backend(self.llm, "llm")
        self.embedder = resolve_backend(self.embedder, "embedder")
        self.base_ = self._base_builder()
        if isinstance(self.clusterer, str):
            if self.clusterer != "gmm":
                raise ConfigError(f"cluster tree builder: clusterer={self.clusterer!r}; allowed: gmm (or, from "
                                  "Python, an object with cluster(embeddings) -> (clusters, unclustered))")
            self.clusterer_ = GMMClusterer(reducer=self.reducer, dim=self.dim, threshold=self.threshold,
                                           max_clusters=self.max_clusters, seed=self.seed)
        elif callable(getattr(self.clusterer, "cluster", None)):
            self.clusterer_ = self.clusterer
        else:
            raise ConfigError(f"cluster tree builder: clusterer {self.clusterer!r} has no cluster(embeddings) method")

    def _base_builder(self) -> Any:
        spec = self.base
        if hasattr(spec, "build"):
            return spec
        if isinstance(spec, str):
            spec = {"type": spec}
        params = {k: v for k, v in dict(spec).items() if k != "type"}
        registry = getattr(self.runtime_, "registry", None)
        if registry is not None:
            cls = registry.get("tree", spec["type"])
        else:
            from ragkit.trees.headings import HeadingsTreeBuilder
            from ragkit.trees.llm import LLMTreeBuilder

            known = {"headings": HeadingsTreeBuilder, "llm": LLMTreeBuilder}
            if spec["type"] not in known:
                raise ConfigError(f"cluster tree builder: base={spec['type']!r}; allowed here: headings, llm")
            cls = known[spec["type"]]
        if spec["type"] == "llm" and "llm" not in params:
            params["llm"] = self.llm
        return cls(**params)

    def _summaries(self, groups: list[list[Draft]], doc: Document) -> list[dict[str, Any]]:
        share = max(200, self.item_chars // 4)
        requests = [SUMMARY_PROMPT.request(sections="\n\n".join(_item_text(d, doc, share) for d in group),
                                           max_tokens=self.summary_max_tokens) for group in groups]
        completions = self.llm.generate(requests) if requests else []
        out = []
        for group, completion in zip(groups, completions):
            parsed = parse_summary(completion.text)
            if parsed is None:  # unusable output: a title from the members, the raw text (if any) as summary
                titles = [d.title for d in group if d.title]
                parsed = {"title": "; ".join(titles[:3]) + (" …" if len(titles) > 3 else ""), "keywords": [],
                          "summary": " ".join(completion.text.split())[:1500], "fallback": True}
            out.append(parsed)
        return out

    def build(self, doc: Document, chunks: Sequence[Chunk]) -> DocTree:
        """The base tree of ``doc`` with RAPTOR summary levels above its top nodes."""
        self.warm_up()
        root = draft_of(self.base_.build(doc, chunks))
        root.node_id = None
        top = list(root.children)
        report: dict[str, Any] = {"items": len(top), "levels": 0, "summaries": 0, "fallback_summaries": 0}
        for level in range(1, self.max_levels + 1):
            if len(top) <= 1:
                break
            vectors = np.asarray(self.embedder.embed_documents([_item_text(d, doc, self.item_chars) for d in top]))
            clusters, _ = self.clusterer_.cluster(vectors)
            groups = [sorted(c) for c in clusters if len(c) >= 2]
            if not groups:
                break
            summaries = self._summaries([[top[i] for i in g] for g in groups], doc)
            report["summaries"] += len(groups)
            report["fallback_summaries"] += sum(1 for s in summaries if s.get("fallback"))
            report["levels"] = level
            if len(groups) == 1 and len(groups[0]) == len(top):  # one cluster of everything: the root's summary
                found = summaries[0]
                root.title = root.title or found["title"]
                root.summary, root.keywords = found["summary"], found["keywords"]
                root.metadata["cluster_level"] = level
                break
            grouped = {i for g in groups for i in g}
            made = [Draft(title=s["title"], summary=s["summary"], keywords=s["keywords"],
                          children=[top[i] for i in g], metadata={"cluster_level": level})
                    for g, s in zip(groups, summaries)]
            for draft in made:
                draft.start = min(c.start for c in draft.children)
            following = sorted(made + [d for i, d in enumerate(top) if i not in grouped], key=lambda d: d.start)
            shrunk = len(following) < len(top)
            top = following
            if not shrunk:
                break
        root.children = top
        report["top_nodes"] = len(top)
        root.metadata["cluster"] = dict(report)
        self.last_report_ = report
        return freeze(doc, root, chunks, builder="cluster")
