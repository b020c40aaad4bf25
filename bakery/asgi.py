import os

from django.core.asgi import get_asgi_application

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")
engines.start()
application = get_asgi_application()
