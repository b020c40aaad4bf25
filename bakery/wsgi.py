"""The WSGI application gunicorn serves."""

import io
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")
engines.start()


class ChunkedRequestBody:
    """Let Django read a ``Transfer-Encoding: chunked`` request body.

    Django reads exactly CONTENT_LENGTH bytes of a body, and a chunked request has no
    Content-Length, so Django would see an empty body (an order would be refused as "items
    required"). gunicorn has already undone the chunking in ``wsgi.input``; this reads it, at most
    DATA_UPLOAD_MAX_MEMORY_SIZE + 1 bytes, and states its length. A longer body keeps a length
    over the limit, so Django refuses it exactly as it refuses a long body with a Content-Length (413).
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and not environ.get("CONTENT_LENGTH"):
            body = environ["wsgi.input"].read(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


application = ChunkedRequestBody(get_wsgi_application())
