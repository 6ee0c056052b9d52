"""Built-in components, declared lazily as import strings so that listing them imports nothing heavy.

Each entry: ``name: (import path, extra or None, one-line description)``. The extra is what
``pip install 'ragkit[EXTRA]'`` adds for the component to import and run. Besides stages and
backends (:data:`KINDS`) the registry holds plug-in kinds (:data:`PLUGIN_KINDS`): embedding views,
query-prefix builders and file loaders (named by file suffix).
"""

from __future__ import annotations

BUILTINS: dict[str, dict[str, tuple[str, str | None, str]]] = {
    "chunker": {
        "token": ("ragkit.chunkers.token:TokenChunker", None, "fixed windows of max_tokens with overlap"),
        "sentence": ("ragkit.chunkers.sentence:SentenceChunker", None, "packs whole sentences up to max_tokens"),
        "paragraph": ("ragkit.chunkers.paragraph:ParagraphChunker", None, "packs blank-line blocks up to max_tokens"),
        "recursive": ("ragkit.chunkers.recursive:RecursiveChunker", None,
                      "separator cascade: headings, blank lines, lines, sentences, words, characters"),
        "structure": ("ragkit.chunkers.structure:StructureChunker", None,
                      "Markdown/WikiText/HTML sections, recursive inside long ones"),
        "semantic": ("ragkit.chunkers.semantic:SemanticChunker", "embeddings",
                     "adjacent-sentence embedding-distance breakpoints at a percentile, hard cap enforced"),
        "perplexity": ("ragkit.chunkers.perplexity:PerplexityChunker", "transformers",
                       "Meta-Chunking: boundaries at local minima of per-sentence perplexity"),
        "margin": ("ragkit.chunkers.margin:MarginChunker", "transformers",
                   "Meta-Chunking: margin-sampling split/keep decisions with an adaptive threshold"),
        "intent": ("ragkit.chunkers.intent:IntentChunker", "embeddings",
                   "IDC: LLM-predicted intents, boundaries by exact dynamic programming"),
        "cluster": ("ragkit.chunkers.cluster:ClusterChunker", "embeddings",
                    "cluster-semantic: small pieces grouped by DP on embedding similarity"),
        "langchain_recursive": ("ragkit.chunkers.peers:LangchainRecursiveChunker", "peers",
                                "peer: LangChain RecursiveCharacterTextSplitter (MiniLM tokens)"),
        "chonkie_recursive": ("ragkit.chunkers.peers:ChonkieRecursiveChunker", "peers",
                              "peer: Chonkie RecursiveChunker (MiniLM tokens)"),
        "chonkie_semantic": ("ragkit.chunkers.peers:ChonkieSemanticChunker", "peers",
                             "peer: Chonkie SemanticChunker (local MiniLM)"),
    },
    "enricher": {
        "llm_metadata": ("ragkit.enrichers.llm_metadata:LLMMetadataEnricher", None,
                         "one LLM call per chunk returning schema-validated JSON metadata"),
        "context_prefix": ("ragkit.enrichers.context_prefix:ContextPrefixEnricher", None,
                           "LLM-written description of where the chunk sits in its document"),
    },
    "embedder": {
        "sentence_transformers": ("ragkit.embeddings.sentence_transformers:SentenceTransformerEmbedder",
                                  "embeddings", "local sentence-transformers model (default: packaged MiniLM)"),
        "openai": ("ragkit.embeddings.openai:OpenAIEmbedder", "openai",
                   "OpenAI or any OpenAI-compatible /embeddings endpoint"),
        "fake": ("ragkit.testing.fakes:FakeEmbedder", None, "deterministic hash-seeded vectors (tests)"),
    },
    "retriever": {
        "bm25": ("ragkit.retrievers.bm25:BM25Retriever", "retrieval", "BM25 (bm25s or rank-bm25 engine)"),
        "dense": ("ragkit.retrievers.dense:DenseRetriever", "retrieval", "FAISS inner-product index"),
        "hybrid": ("ragkit.retrievers.hybrid:HybridRetriever", "retrieval",
                   "BM25 + dense with reciprocal-rank or weighted score fusion"),
    },
    "reranker": {
        "embedding": ("ragkit.rerankers.embedding:EmbeddingReranker", None,
                      "re-scores candidates by query/chunk embedding cosine"),
        "scorer": ("ragkit.rerankers.scorer:ScorerReranker", None,
                   "re-ranks candidates by any scorer (embedding, query_likelihood, llm_yes, cross_encoder)"),
    },
    "selector": {
        "top_k": ("ragkit.selectors.top_k:TopKSelector", None, "the k best-ranked chunks"),
        "token_budget": ("ragkit.selectors.token_budget:TokenBudgetSelector", None,
                         "ranked chunks while the running token count stays within the budget"),
        "corag": ("ragkit.selectors.corag:CoragSelector", None,
                  "CORAG/CARROT: MCTS for the best-scoring ordered chunk combination under a hard token budget"),
        "meteora": ("ragkit.selectors.meteora:MeteoraSelector", None,
                    "METEORA: LLM rationales, then pairing ∪ elbow ∪ neighbour expansion in document order (no k)"),
        "verifier": ("ragkit.selectors.verifier:VerifierSelector", None,
                     "METEORA verifier: drops chunks an LLM flags as injected, contradictory or false (fails closed)"),
        "perplexity_filter": ("ragkit.selectors.perplexity_filter:PerplexityFilterSelector", None,
                              "drops chunks whose LM perplexity exceeds a corpus-calibrated threshold"),
    },
    "scorer": {
        "query_likelihood": ("ragkit.scorers.query_likelihood:QueryLikelihoodScorer", None,
                             "mean log P(question | text) through the LLM's token_logprobs"),
        "llm_yes": ("ragkit.scorers.llm_yes:LLMYesScorer", None,
                    "P(yes) that the text answers the question, through next_token_probs"),
        "embedding": ("ragkit.scorers.embedding:EmbeddingScorer", None, "query/text embedding cosine"),
        "cross_encoder": ("ragkit.scorers.cross_encoder:CrossEncoderScorer", "embeddings",
                          "sentence-transformers CrossEncoder from a local folder or hub name"),
    },
    "tree": {
        "headings": ("ragkit.trees.headings:HeadingsTreeBuilder", None,
                     "sections from the document's heading spans, chunks as leaves (no model)"),
        "llm": ("ragkit.trees.llm:LLMTreeBuilder", None,
                "ToM's prompted hierarchical parser per block; leaves aligned back to verbatim spans"),
        "cluster": ("ragkit.trees.cluster:ClusterTreeBuilder", "trees",
                    "RAPTOR-style LLM summary levels over another builder's top nodes (UMAP/PCA + GMM)"),
    },
    "engine": {
        "local": ("ragkit.indexing:LocalEngine", None,
                  "the index phase on this machine: chunking in one process per core, BM25 beside the embedder, "
                  "the chunker's token ids handed to the embedder (batched, resumable)"),
        "ray": ("ragkit.engines.ray:RayEngine", "ray",
                "the index phase on a Ray cluster: Ray Data chunking on CPU workers, embedder actor pool, one commit"),
    },
    "aggregator": {
        "stuff": ("ragkit.aggregators.stuff:StuffAggregator", None,
                  "selected chunks in prompt order, then one generate call"),
        "tree_mapreduce": ("ragkit.aggregators.tree_mapreduce:TreeMapReduceAggregator", None,
                           "ToM: Map at tree leaves, Reduce siblings, Map internal nodes, root answers"),
    },
    "llm": {
        "transformers": ("ragkit.llm.transformers_backend:TransformersLLM", "transformers",
                         "local causal LM (default: packaged SmolLM2-135M-Instruct)"),
        "llama_cpp": ("ragkit.llm.llama_cpp_backend:LlamaCppLLM", "llama", "in-process GGUF via llama-cpp-python"),
        "openai": ("ragkit.llm.openai_backend:OpenAILLM", "openai", "OpenAI or any OpenAI-compatible server"),
        "fake": ("ragkit.testing.fakes:FakeLLM", None, "deterministic hash-seeded outputs (tests)"),
    },
    # ---- plug-in kinds: looked up by name inside a stage (not stages themselves; see PLUGIN_KINDS)
    "view": {
        "content": ("ragkit.retrievers.views:ContentView", None, "embed chunk.text and the query text as they are"),
        "prefix_fusion": ("ragkit.retrievers.metadata_views:PrefixFusionView", None,
                          "metadata tags prefixed to chunk and query text before embedding"),
        "tfidf_weighted": ("ragkit.retrievers.metadata_views:TfidfWeightedView", None,
                           "content vector blended with a vector of the chunk's TF-IDF keywords"),
        "tfidf_concat": ("ragkit.retrievers.metadata_views:TfidfConcatView", None,
                         "content vector concatenated with a TF-IDF keyword vector"),
    },
    "query_prefix": {
        "generic": ("ragkit.retrievers.metadata_prefix:generic_query_metadata", None,
                    "query tags from generic intent/content-type cues and the corpus vocabulary"),
        "none": ("ragkit.retrievers.metadata_prefix:no_query_metadata", None, "no query-side tags"),
    },
    "loader": {
        **{suffix: ("ragkit.loaders.formats:load_text", None, "plain text: one document, no headings")
           for suffix in (".txt", ".text", ".rst")},
        **{suffix: ("ragkit.loaders.formats:load_markdown", None, "Markdown/WikiText: one document with headings")
           for suffix in (".md", ".markdown", ".mdown", ".mkd")},
        **{suffix: ("ragkit.loaders.formats:load_html", None, "HTML: the extracted text with headings and title")
           for suffix in (".html", ".htm", ".xhtml")},
        **{suffix: ("ragkit.loaders.formats:load_jsonl", None, "JSON Lines: one document per line")
           for suffix in (".jsonl", ".ndjson")},
    },
}

#: The abstract method(s) each kind of component must implement.
REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "chunker": ("chunk",),
    "enricher": ("enrich",),
    "embedder": ("embed_documents", "embed_query"),
    "retriever": ("index", "retrieve"),
    "reranker": ("rerank",),
    "selector": ("select",),
    "aggregator": ("aggregate",),
    "scorer": ("score",),
    "tree": ("build",),
    "engine": ("chunk_documents", "build_index"),
    "llm": ("generate",),
}

#: Plug-in kinds: named parts a stage looks up (an embedding view, a query-prefix builder, a file
#: loader by suffix). Registered, validated and listed like stages, but not stages: no constructor
#: parameters to validate, no stage protocol; query-prefix builders and loaders are functions.
PLUGIN_REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "view": ("chunk_texts", "embed_chunks", "embed_query"),
    "query_prefix": ("__call__",),
    "loader": ("__call__",),
}

#: Stage and backend kinds (what ``Registry.entries()`` walks by default and conformance tests cover).
KINDS: tuple[str, ...] = tuple(REQUIRED_METHODS)
PLUGIN_KINDS: tuple[str, ...] = tuple(PLUGIN_REQUIRED_METHODS)
#: Every kind the registry holds.
ALL_KINDS: tuple[str, ...] = KINDS + PLUGIN_KINDS
