"""Every order API view is a customer's: the session-style authentication that checks CSRF for all."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.views import APIView

from orders.problems import ProblemError


class CustomerSessionAuthentication(SessionAuthentication):
    """Every caller is a session customer, so every write must pass Django's CSRF check.

    DRF's own SessionAuthentication checks CSRF only for logged-in users; the bakery has no
    sign-up, so it checks for everyone, exactly as a Django form would.
    """

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser | AnonymousUser, None]:
        read_body(request)  # the CSRF check reads the body, so the size limit comes first
        self.enforce_csrf(request)
        return (request._request.user, None)


# drf-spectacular's extensions register themselves in an unannotated __init_subclass__.
class CustomerSessionScheme(SessionScheme):  # type: ignore[no-untyped-call]
    """The OpenAPI schema describes the customer's session cookie as DRF's session scheme would."""

    target_class = "orders.authentication.CustomerSessionAuthentication"


class CustomerAPIView(APIView):
    authentication_classes = [CustomerSessionAuthentication]


def read_body(request: Request) -> None:
    """Read the body once through Django, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE (64 KiB)."""
    try:
        request._request.body  # noqa: B018 - reading it is the check
    except RequestDataTooBig:
        raise ProblemError("body-too-large", "An order body may be at most 64 KiB.") from None
