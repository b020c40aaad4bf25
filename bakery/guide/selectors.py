"""The guides in docs/ as HTML: which guides there are, and each one rendered from its Markdown."""

import re
from functools import lru_cache
from pathlib import Path

import markdown

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
PAGES = {"workshop": "workshop.md", "benchmarks": "benchmarks.md"}


LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def _blank_line_before_lists(text: str) -> str:
    """The guides are written for GitHub, where a list may follow a paragraph line directly;
    Python-Markdown needs a blank line there, so add one (outside fenced code)."""
    lines, fenced, previous = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and LIST_ITEM.match(line) and previous.strip() and not LIST_ITEM.match(previous) \
                and not previous.startswith((" ", "\t")):
            lines.append("")
        lines.append(line)
        previous = line
    return "\n".join(lines)


@lru_cache(maxsize=8)
def _rendered(path: Path, mtime: float) -> tuple[str, str]:
    """Render once per file version; the toc extension gives each heading its anchor (#lab-1-break-it)."""
    text = path.read_text(encoding="utf-8")
    converter = markdown.Markdown(extensions=["toc", "tables", "fenced_code"])
    html = converter.convert(_blank_line_before_lists(text))
    title = text.splitlines()[0].lstrip("# ").strip() if text else path.stem
    return title, html


def guide_page(name: str) -> tuple[str, str] | None:
    """(title, html) of the guide called ``name``, or None when there is no such guide."""
    if name not in PAGES or not (DOCS_DIR / PAGES[name]).exists():
        return None
    path = DOCS_DIR / PAGES[name]
    return _rendered(path, path.stat().st_mtime)
