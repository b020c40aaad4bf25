"""Load the demo data: the cake catalogue from a committed fixture, and the demo admin user.

Safe to run any number of times: the fixture has fixed primary keys (loaddata updates rows in
place) and the admin user is created only once.
"""

import os

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

ADMIN_USERNAME = os.environ.get("DEMO_ADMIN_USERNAME", "admin")
ADMIN_PASSWORD = os.environ.get("DEMO_ADMIN_PASSWORD", "freeds-bakery")


class Command(BaseCommand):
    help = "Load the cake catalogue and the demo admin user (idempotent)."

    def handle(self, *args, **options):
        call_command("loaddata", "cakes", verbosity=0)
        User = get_user_model()
        if not User.objects.filter(username=ADMIN_USERNAME).exists():
            User.objects.create_superuser(ADMIN_USERNAME, "admin@freeds-bakery.example", ADMIN_PASSWORD)
            self.stdout.write(f"Created admin user {ADMIN_USERNAME!r}")
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
