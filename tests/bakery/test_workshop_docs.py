"""docs/workshop.md is what a facilitator follows: its anchors and the code it points at must exist."""

import re
from pathlib import Path

from bakery.timeline.words import LAB

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "workshop.md").read_text()


def test_every_lab_the_timeline_links_to_has_its_anchor():
    for anchor in LAB.values():
        assert f'<a id="{anchor}"></a>' in GUIDE, anchor
    for number, title in enumerate(["Break it", "Fix it", "The slow bakery", "A crashed worker", "A changed order"], 1):
        assert f"\n## Lab {number}: {title}\n" in GUIDE


def test_every_code_path_the_guide_names_exists():
    paths = set(re.findall(r"`((?:bakery|orders|payments|static|templates)/[\w/.]+\.(?:py|js|html))", GUIDE))
    assert len(paths) >= 10
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert missing == []


def test_the_guide_covers_setup_and_the_three_discussion_questions():
    assert "make demo HOST=0.0.0.0" in GUIDE and "manage.py facilitator_password" in GUIDE
    for question in ["Should a failure be stored with its key?", "How much should be stored?",
                     "How long to keep keys?"]:
        assert question in GUIDE
