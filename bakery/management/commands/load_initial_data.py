"""Load the demo data: the cake catalogue from a committed fixture, and the facilitator's admin user.

Safe to run any number of times: the fixture has fixed primary keys (loaddata updates rows in
place) and the admin user is created only once, with a password random per install (see
bakery/facilitator.py; ``manage.py facilitator_password`` prints it).
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from bakery.facilitator import facilitator_ensure


class Command(BaseCommand):
    help = "Load the cake catalogue and the facilitator's admin user (idempotent)."

    def handle(self, *args, **options):
        call_command("loaddata", "cakes", verbosity=0)
        login = facilitator_ensure()
        self.stdout.write(f"Facilitator admin user {login.username!r} is ready "
                          "(manage.py facilitator_password prints the password).")
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
