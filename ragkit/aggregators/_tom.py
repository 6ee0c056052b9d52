"""ToM's Map and Reduce prompts and the parser of their structured rationales (used by ``tree_mapreduce``).

A rationale has four parts: key information, reasoning, answer and a confidence out of 10. The marker
format asks for four labelled lines; :func:`parse_rationale` accepts the variations small models
produce (``**Answer**:``, ``[ANSWER]``, ``<answer>…</answer>``, ``key_info:``, ``Confidence: 8/10``,
``0.8``); the JSON format (for backends that constrain output to a schema) is parsed by
:func:`parse_json_rationale`.

Example:
    >>> r = parse_rationale("Key information: Rome is the capital.\\nReasoning: stated.\\n**Answer**: Rome\\nConfidence: 9/10")
    >>> r.answer, r.confidence, r.confidence_norm
    ('Rome', 9.0, 0.9)
    >>> parse_rationale("I think it is Rome.") is None
    True
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from ragkit.llm.prompts import PromptTemplate

_FORMAT = ("Reply in exactly this format:\n"
           "Key information: the relevant facts, separated by ';'\n"
           "Reasoning: your reasoning\n"
           "Answer: the answer in {words}\n"
           "Confidence: a number from 0 to 10")
_JSON_FORMAT = ('Reply with only a JSON object with the keys "key_info" (the relevant facts), "reasoning", '
                '"answer" (the answer in {words}) and "confidence" (an integer from 0 to 10).')
_CALIBRATION = ("Confidence: 10 when the text states the answer, 6 to 7 for a plausible inference from it, "
                "0 when the text is unrelated to the question.")

_MAP_TEXT = ("Question: {question}\n\nPart of a long document:\n{content}\n{previous}\n"
             "Using this part (prefer its original text), list the facts relevant to the question, reason about "
             "them, and answer the question. " + _CALIBRATION + "\n")
_REDUCE_TEXT = ("Question: {question}\n\nParts of a long document were read separately. Their findings, which may "
                "conflict:\n{findings}\n\nGather the relevant facts, weigh the findings by their confidence to "
                "resolve conflicts, and answer the question. " + _CALIBRATION + "\n")
_SYSTEM = "You answer questions about long documents, one part at a time."

#: Map and Reduce prompts, marker and JSON variants. Bump a version whenever its wording changes.
MAP_PROMPT = PromptTemplate("tom_map", 1, _MAP_TEXT + _FORMAT.format(words="fewer than 5 words"), system=_SYSTEM)
REDUCE_PROMPT = PromptTemplate("tom_reduce", 1, _REDUCE_TEXT + _FORMAT.format(words="fewer than 6 words"),
                               system=_SYSTEM)
MAP_PROMPT_JSON = PromptTemplate("tom_map_json", 1, _MAP_TEXT + _JSON_FORMAT.format(words="fewer than 5 words"),
                                 system=_SYSTEM)
REDUCE_PROMPT_JSON = PromptTemplate("tom_reduce_json", 1,
                                    _REDUCE_TEXT + _JSON_FORMAT.format(words="fewer than 6 words"), system=_SYSTEM)
RETRY_TEXT = ("Your reply did not follow the format. Answer again, and reply in exactly this format:\n"
              "Key information: ...\nReasoning: ...\nAnswer: ...\nConfidence: a number from 0 to 10")


class RationaleJSON(BaseModel):
    """The JSON form of a rationale (what a schema-constrained backend is asked for)."""

    key_info: str = Field(max_length=600)
    reasoning: str = Field(max_length=600)
    answer: str = Field(max_length=120)
    confidence: int = Field(ge=0, le=10)


@dataclass(frozen=True)
class Rationale:
    """A node's parsed output. ``confidence`` is raw (0–10, ``None`` when the model gave none)."""

    key_info: str
    reasoning: str
    answer: str
    confidence: float | None
    raw: str = ""

    @property
    def confidence_norm(self) -> float | None:
        """Confidence on 0–1."""
        return None if self.confidence is None else round(self.confidence / 10.0, 4)

    def render(self) -> str:
        """The rationale as the marker format (how children's outputs are shown to Reduce and Map)."""
        confidence = "unknown" if self.confidence is None else f"{self.confidence:g}"
        return (f"Key information: {self.key_info}\nReasoning: {self.reasoning}\nAnswer: {self.answer}\n"
                f"Confidence: {confidence}")


_NAMES = {
    "key_info": r"key[ _]?info(?:rmation)?|key[ _]facts|relevant[ _]facts|facts",
    "reasoning": r"reasoning(?:[ _]process)?|rationale",
    "answer": r"(?:final[ _])?answer",
    "confidence": r"confidence(?:[ _]score)?",
}
_ANY = "|".join(f"(?P<{k}>{v})" for k, v in _NAMES.items())
_COLON = re.compile(rf"^[ \t>#*\-]*(?:{_ANY})[ \t*_]*(?:\(.*?\))?[ \t*]*[:：=][ \t*]*", re.IGNORECASE | re.MULTILINE)
_BRACKET = re.compile(rf"[\[<][ \t]*(?:{_ANY})[ \t]*[\]>][ \t]*[:：]?[ \t]*", re.IGNORECASE)
_CLOSING = re.compile(r"[\[<]/[ \t]*\w+[ \t]*[\]>]")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?")


def confidence_value(text: str) -> float | None:
    """A confidence on 0–10 from free text (``8``, ``8/10``, ``80/100``, ``0.8``); ``None`` without a number.

    Example:
        >>> [confidence_value(t) for t in ["8", "7/10", "80 / 100", "0.9", "12", "high"]]
        [8.0, 7.0, 8.0, 9.0, 10.0, None]
    """
    m = _NUMBER.search(text)
    if not m:
        return None
    value = float(m.group(1))
    if m.group(2):
        scale = float(m.group(2))
        value = 10.0 * value / scale if scale > 0 else value
    elif value <= 1.0 and "." in m.group(1):
        value *= 10.0
    return max(0.0, min(10.0, round(value, 2)))


def _clean(text: str) -> str:
    text = _CLOSING.sub(" ", text)
    return " ".join(text.replace("**", " ").split()).strip(" \"'`*.")


def parse_rationale(text: str) -> Rationale | None:
    """Parse the marker format leniently; ``None`` when there is no non-empty answer.

    Example:
        >>> r = parse_rationale("[KEY_INFO] a; b [REASONING] because [ANSWER] <answer>Paris</answer> [CONFIDENCE] 0.7")
        >>> r.key_info, r.answer, r.confidence
        ('a; b', 'Paris', 7.0)
    """
    marks: list[tuple[int, int, str]] = []
    for pattern in (_COLON, _BRACKET):
        for m in pattern.finditer(text):
            name = next(k for k in _NAMES if m.group(k) is not None)
            marks.append((m.start(), m.end(), name))
    marks.sort()
    kept: list[tuple[int, int, str]] = []
    for mark in marks:  # a colon match inside a bracket match (or the reverse): keep the first
        if kept and mark[0] < kept[-1][1]:
            continue
        kept.append(mark)
    fields: dict[str, str] = {}
    for (_start, end, name), following in zip(kept, [*kept[1:], None]):
        value = text[end: following[0] if following else len(text)]
        if name not in fields or not fields[name]:
            fields[name] = value
    answer = _clean(fields.get("answer", "").strip().split("\n")[0] if fields.get("answer", "").strip() else "")
    if not answer:
        return None
    return Rationale(key_info=_clean(fields.get("key_info", "")), reasoning=_clean(fields.get("reasoning", "")),
                     answer=answer, confidence=confidence_value(fields.get("confidence", "")), raw=text)


def parse_json_rationale(text: str) -> Rationale | None:
    """Parse the JSON form (``None`` when it is not an object with a non-empty answer).

    Example:
        >>> parse_json_rationale('{"key_info": "x", "reasoning": "y", "answer": "Rome", "confidence": 8}').confidence
        8.0
    """
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        return parse_rationale(text)
    if not isinstance(data, dict) or not str(data.get("answer", "")).strip():
        return None
    raw_conf = data.get("confidence")
    confidence = confidence_value(str(raw_conf)) if raw_conf is not None else None
    return Rationale(key_info=_clean(str(data.get("key_info", ""))), reasoning=_clean(str(data.get("reasoning", ""))),
                     answer=_clean(str(data["answer"])), confidence=confidence, raw=text)
