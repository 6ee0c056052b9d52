"""Fixed token windows: ``max_tokens`` tokens per chunk, ``overlap_tokens`` shared between neighbours."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ragkit.chunkers._split import TokenizedChunker, check_params, finalize
from ragkit.text import token_ids
from ragkit.text.tokenizers import TokenizerName
from ragkit.types import Chunk, Document


class TokenChunker(TokenizedChunker):
    """Cut a document into windows of ``max_tokens`` tokens; consecutive windows share ``overlap_tokens``.

    Windows start and end on token boundaries (inside words too, as a token splitter does) and the
    chunk text is the verbatim span from the first token's start to the last token's end. Where a
    cut falls inside a word, re-encoding the span can differ from the window's count; the window is
    then shortened until ``len(tokenizer.encode(chunk.text)) <= max_tokens``.

    Example:
        >>> from ragkit.types import Document
        >>> chunker = TokenChunker(max_tokens=4, overlap_tokens=1)
        >>> [c.text for c in chunker.chunk(Document.from_text("one two three four five six seven"))]
        ['one two three four', 'four five six seven']
    """

    def __init__(
        self,
        *,
        max_tokens: Annotated[int, Field(gt=0)] = 256,
        overlap_tokens: Annotated[int, Field(ge=0)] = 0,
        tokenizer: TokenizerName = "minilm",
    ) -> None:
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.tokenizer = tokenizer
        check_params(self, max_tokens=max_tokens, overlap_tokens=overlap_tokens)

    def _chunk(self, doc: Document) -> list[Chunk]:
        view = self._view(doc)
        n = len(view)
        if n == 0:
            return finalize(doc, view, [(0, len(doc.text))], self.max_tokens)
        starts, ends, cuttable = view.starts, view.ends, view.cuttable
        tokenizer = self._tok
        text = doc.text
        chunks: list[Chunk] = []
        ids = view.spans.ids if token_ids.active() is not None else None  # handed to the embedder (index phase)
        i = 0
        while i < n:
            j = min(i + self.max_tokens, n)
            while j < n and j > i + 1 and not cuttable[j]:
                j -= 1
            while True:
                s, e = int(starts[i]), int(ends[j - 1])
                clean = view.spans.clean_at(s) and view.spans.clean_at(e)
                if clean:
                    count = j - i
                else:
                    count = tokenizer.count(text[s:e])
                if count <= self.max_tokens or j == i + 1:
                    break
                j = max(i + 1, j - (count - self.max_tokens))
                while j > i + 1 and not cuttable[j]:
                    j -= 1
            if count > self.max_tokens:
                chunks.extend(finalize(doc, view, [(s, e)], self.max_tokens))  # raises with a clear message
            else:
                chunks.append(Chunk.from_span(doc, s, e, token_count=count))
                if clean and ids is not None:
                    token_ids.record(tokenizer.fingerprint, chunks[-1].text, ids[i:j])
            if j >= n:
                break
            nxt = max(j - self.overlap_tokens, i + 1)
            while nxt < j and not cuttable[nxt]:
                nxt += 1
            i = nxt
        return chunks
