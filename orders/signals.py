"""What the order core offers the site to hook into, without the core knowing the site."""

from django.dispatch import Signal

# Sent by ``@idempotent`` once the key is held and just before the view's handler runs, with
# ``sender`` = the endpoint's scope and ``request``. The tunnel simulator makes the slow bakery
# slow here, so a retry meets a key that is really still in use.
idempotent_handler_starting = Signal()
