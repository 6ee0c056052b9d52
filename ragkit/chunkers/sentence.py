"""Pack whole sentences into chunks of at most ``max_tokens`` tokens."""

from __future__ import annotations

from ragkit.chunkers._split import CascadePacker, FixedCuts, PackingChunker
from ragkit.text.sentences import split_sentences
from ragkit.types import Chunk, Document


class SentenceChunker(PackingChunker):
    """Greedily pack consecutive whole sentences while the chunk stays within ``target_tokens``.

    ``target_tokens`` defaults to ``max_tokens``. A sentence longer than ``max_tokens`` is split at
    word boundaries (token boundaries inside a word only if one word is too long). With
    ``overlap_tokens``, each chunk starts with the previous chunk's trailing sentences whose total is
    at most ``overlap_tokens``. Sentences come from ``split_sentences(text, splitter)``.

    Example:
        >>> from ragkit.types import Document
        >>> doc = Document.from_text("Paris is in France. Rome is in Italy. Berlin is in Germany.")
        >>> [c.text for c in SentenceChunker(max_tokens=10).chunk(doc)]
        ['Paris is in France. Rome is in Italy.', 'Berlin is in Germany.']
    """

    def _chunk(self, doc: Document) -> list[Chunk]:
        view = self._view(doc)
        sentences = split_sentences(doc.text, self.splitter)
        packer = CascadePacker(
            view,
            [FixedCuts([s for s, _e in sentences[1:]], "sentences")],
            max_tokens=self.max_tokens,
            target_tokens=self.target_tokens,
            overlap_tokens=self.overlap_tokens,
        )
        return self._finalize(doc, view, packer.split())
