import os

from django.core.wsgi import get_wsgi_application

from bakery import engines

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bakery.settings")
engines.start()
application = get_wsgi_application()
