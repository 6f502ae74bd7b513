"""Markdown to HTML for every report (ablation, suite and claims), through markdown-it-py's CommonMark parser.

Report text is written once, in markdown; the HTML is rendered from the same text, so what a reader sees in
report.md (`code`, **bold**, *emphasis*, [links](part/report.md)) is what report.html shows. Raw HTML in the
text is escaped, never passed through.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def to_html(text: str) -> str:
    """Block markdown (paragraphs, lists, tables) as HTML."""
    return _parser().render(str(text))


def inline_html(text: str) -> str:
    """One line of inline markdown as HTML, without a surrounding paragraph (headings, list items, table cells,
    captions)."""
    return _parser().renderInline(str(text))
