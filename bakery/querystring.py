"""A query string PostgreSQL could not be asked about is a 400 at the door, on every page.

Views and the admin hand query parameters to the ORM as they are: the admin's list filters
(``?kind=``, ``?status=``) and any field lookup it allows (``?key=``), its search (``?q=``). A NUL
(``%00``) makes PostgreSQL refuse the statement, a 500 for whoever sent it. Rather than guard each
filter, every parameter's name and value is checked once here, before any view runs, with the
same check the API's JSON parser makes (``orders/parsers.py``). The 400 comes from handler400: a
small page, or problem+json under ``/api/``.
"""

from __future__ import annotations

from django.core.exceptions import BadRequest

from orders.parsers import text_problem


class QueryStringGuard:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, values in request.GET.lists():
            for text in (name, *values):
                problem = text_problem(text)
                if problem:
                    raise BadRequest(f"A parameter of the query string {problem}.")
        return self.get_response(request)
