"""ragkit.scorers: ``score(query, texts) -> ndarray``, used by selectors (CORAG) and scoring rerankers."""
