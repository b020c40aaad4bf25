"""The lab guide is served by the product, so every "Lab N" link on the timeline lands on its section."""

import re

import pytest

from bakery.timeline.words import LAB, docs_url

pytestmark = pytest.mark.django_db


def test_workshop_guide_is_served_with_an_anchor_for_every_lab(client):
    response = client.get("/docs/workshop/")
    assert response.status_code == 200
    ids = set(re.findall(r'id="([^"]+)"', response.content.decode()))
    assert set(LAB.values()) <= ids


def test_timeline_links_point_at_the_served_guide(client):
    link = docs_url("lab-2-fix-it")
    assert link == "/docs/workshop/#lab-2-fix-it"
    assert client.get(link.split("#")[0]).status_code == 200


def test_unknown_guide_is_404(client):
    assert client.get("/docs/secret-recipes/").status_code == 404


def test_lists_written_for_github_render_as_lists(client):
    """In the guide a list follows its "See." line directly, as GitHub allows; it must stay a list."""
    html = client.get("/docs/workshop/").content.decode()
    fix_it = html[html.index('id="lab-2-fix-it"'):html.index('id="lab-3-slow-bakery"')]
    assert fix_it.count("<li>") >= 3
    assert "<p><strong>See.</strong> -" not in fix_it
