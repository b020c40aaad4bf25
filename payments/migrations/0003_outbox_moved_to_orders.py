"""OutboxMessage is now orders.OutboxMessage; its table (payments_outboxmessage) and rows stay where they are."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("payments", "0002_invoice_counter_single_row"),
        ("orders", "0002_cake_and_outbox_move_to_orders"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="OutboxMessage")], database_operations=[]
        ),
    ]
