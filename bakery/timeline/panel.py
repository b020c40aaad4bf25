"""What the timeline panel shows, for the pages that embed it (the cake page, each compare phone)."""

from __future__ import annotations

from bakery.timeline.story import build_timeline
from bakery.timeline.words import LANES


def timeline_context(customer, *, phone: str = "") -> dict:
    """What the panel shows; a phone's panel has its own element id and asks for its phone's events."""
    return {"intents": build_timeline(customer=customer), "lanes": LANES, "phone": phone,
            "timeline_id": f"timeline-{phone}" if phone else "timeline"}
