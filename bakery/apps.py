from django.apps import AppConfig


class BakeryConfig(AppConfig):
    name = "bakery"
    verbose_name = "Storefront"

    def ready(self):
        # Imported here: models and middleware modules may only be imported once the app registry is ready.
        from bakery.storefront import tunnel
        from orders.signals import idempotent_handler_starting

        idempotent_handler_starting.connect(tunnel.slow_bakery, dispatch_uid="tunnel-slow-bakery")
