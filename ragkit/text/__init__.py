"""Text utilities shared by loaders and chunkers: tokenizers, sentence splitting, heading detection.

Example:
    >>> from ragkit.text import find_headings, get_tokenizer, split_sentences
    >>> get_tokenizer().count("Hello world.")
    3
    >>> split_sentences("One. Two.")
    [(0, 4), (5, 9)]
"""

from ragkit.text.headings import find_headings
from ragkit.text.sentences import split_sentences
from ragkit.text.tokenizers import TokenSpans, get_tokenizer

__all__ = ["TokenSpans", "find_headings", "get_tokenizer", "split_sentences"]
