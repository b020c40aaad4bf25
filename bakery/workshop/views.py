"""The facilitator's dashboard: who in the room is baking, and what idempotency saved them from.

The views only check the caller is staff, call one selector or service and render. Learners are
anonymous session customers, so "staff only" also means "learners cannot reach it": the admin
login is the only way in.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from bakery import kitchen_fire as fires
from bakery.http import BakeryRequest, page_or_partial
from bakery.workshop.qr import qr_svg
from bakery.workshop.selectors import dashboard_context, room_url
from bakery.workshop.services import workshop_reset_learner, workshop_reset_room
from orders.models import Customer

LEARNERS = "workshop/_learners.html"


@require_GET
@staff_member_required
def dashboard(request: BakeryRequest) -> HttpResponse:
    url, warning = room_url(request)
    context = {**dashboard_context(request.GET.get("page")), "room_url": url, "room_warning": warning,
               "room_qr": qr_svg(url)}
    return page_or_partial(request, page="workshop/dashboard.html", partial=LEARNERS, context=context)


@require_GET
@staff_member_required
def learners(request: BakeryRequest) -> HttpResponse:
    """The live part of the dashboard (one page of learners), polled by htmx; a plain page of its own without JS."""
    return render(request, LEARNERS, dashboard_context(request.GET.get("page")))


@require_POST
@staff_member_required
def reset_learner(request: BakeryRequest, customer_id) -> HttpResponse:
    workshop_reset_learner(customer=get_object_or_404(Customer, pk=customer_id))
    return _after_reset(request, page_number=request.POST.get("page"))


@require_POST
@staff_member_required
def reset_room(request: BakeryRequest) -> HttpResponse:
    """Resets as much of the room as fits in one answer and says how far it got ("Reset N of M
    learners"): in the partial for htmx, as a message on the dashboard after the redirect."""
    done = workshop_reset_room()
    if done.finished:
        said = f"Reset {done.reset} of {done.total} learners: every bakery in the room is empty."
    else:
        said = (f"Reset {done.reset} of {done.total} learners, then stopped to answer in time. "
                "Press “Reset the whole room” again to reset the rest.")
    if not request.htmx:
        messages.add_message(request, messages.SUCCESS if done.finished else messages.WARNING, said)
    return _after_reset(request, room_reset=said)


def _after_reset(request: BakeryRequest, *, page_number=None, room_reset: str = "") -> HttpResponse:
    page_number = page_number if str(page_number or "").isdigit() else None
    if request.htmx:
        return render(request, LEARNERS, {**dashboard_context(page_number), "room_reset": room_reset})
    return redirect(reverse("workshop-dashboard") + (f"?page={page_number}" if page_number else ""))


@require_POST
@staff_member_required
def kitchen_fire(request: BakeryRequest) -> HttpResponse:
    """Hands a fire to `make demo`'s supervisor (bakery/kitchen_fire.py): a part and how many seconds it
    stays away. A part or a number it cannot take is a 400, a fire while one burns (or no demo
    supervisor to start it) a 409, each with its sentence."""
    try:
        fire = fires.ask(request.POST.get("part", ""), request.POST.get("seconds", ""))
    except fires.FireRefused as refused:
        return render(request, "workshop/fire_refused.html", {"detail": str(refused)}, status=refused.status)
    if fire.part == "worker":
        said = (f"The kitchen catches fire in {fires.DELAY_SECONDS} s: the worker dies inside the next order's "
                f"{fires.WORKER_STEP} step and stays away {fire.seconds} s.")
    else:
        said = f"The kitchen catches fire in {fires.DELAY_SECONDS} s: {fire.name} goes away for {fire.seconds} s."
    messages.add_message(request, messages.WARNING, said)
    return redirect(reverse("workshop-dashboard"))
