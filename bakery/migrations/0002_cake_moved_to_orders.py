"""Cake is now orders.Cake; its table (bakery_cake) and rows stay where they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("bakery", "0001_initial"),
        ("orders", "0002_cake_and_outbox_move_to_orders"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Cake")], database_operations=[]),
    ]
