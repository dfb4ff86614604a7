"""Which texts a head's input embedding is made of ("views" of the classifier text).

The default head reads one embedding: the classifier text itself (``full``).
A head trained with ``--views full,lead`` reads two, concatenated in that
order: the full text's and the ``lead`` view's, a short text made of the
text's first and last words. A sentence encoder mean-pools over all tokens, so
in "Summarize this: <two hundred words of article>" the instruction is a few
percent of the vector; the lead view is mostly instruction. Task router,
macro-F1 with ``full`` alone / with both: 0.81 / 0.84 on the validation split
of the training set, 0.77 / 0.82 on the held-out set.

Pure standard library: the run time (embedded classifier, Triton model) must
compute exactly the same texts, and can import this module.
"""

from __future__ import annotations

from collections.abc import Sequence

VIEWS = ("full", "lead")
LEAD_HEAD_WORDS = 16
LEAD_TAIL_WORDS = 8


def lead_view(text: str) -> str:
    """The first 16 and last 8 whitespace-separated words joined by `` ... ``; short texts unchanged.

    Unchanged means identical, so for prompts of at most 24 words the run time
    can reuse the full view's embedding instead of encoding twice."""
    words = text.split()
    if len(words) <= LEAD_HEAD_WORDS + LEAD_TAIL_WORDS:
        return text
    return " ".join(words[:LEAD_HEAD_WORDS]) + " ... " + " ".join(words[-LEAD_TAIL_WORDS:])


def view_texts(text: str, views: Sequence[str]) -> list[str]:
    """The texts to encode for one classifier text, in the head's input order."""
    return [text if view == "full" else lead_view(text) for view in views]
