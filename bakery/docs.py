"""The guides in docs/, served inside the product so the timeline's "Lab N" links work offline too."""

import re
from functools import lru_cache
from pathlib import Path

import markdown
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
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


@require_GET
def doc_page(request, name: str):
    if name not in PAGES or not (DOCS_DIR / PAGES[name]).exists():
        raise Http404("No such guide")
    path = DOCS_DIR / PAGES[name]
    title, html = _rendered(path, path.stat().st_mtime)
    return render(request, "docs.html", {"title": title, "body": html})
