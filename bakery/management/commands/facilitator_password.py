"""Print the facilitator's admin login, or give it a new random password with --reset."""

from django.core.management.base import BaseCommand, CommandError

from bakery.facilitator import facilitator_ensure, facilitator_password_reset


class Command(BaseCommand):
    help = "Print the facilitator's admin login (user and password); --reset makes a new random password."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true",
                            help="make a new random password; the old one stops working")

    def handle(self, *args, **options):
        if options["reset"]:
            facilitator_ensure()
            login = facilitator_password_reset()
        else:
            login = facilitator_ensure()
        if login.password is None:
            raise CommandError(f"The password of {login.username!r} was changed in the admin, so it is not known here. "
                               "Run `manage.py facilitator_password --reset` for a new one.")
        origin = " (from DEMO_ADMIN_PASSWORD)" if login.source == "environment" else ""
        self.stdout.write(f"user {login.username!r}  password {login.password!r}{origin}")
