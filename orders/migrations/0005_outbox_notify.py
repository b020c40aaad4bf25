from django.db import migrations

# Every insert into the outbox NOTIFYs orders_outbox. PostgreSQL delivers a notification only when
# the inserting transaction commits, so the relay listening in each worker (orders.outbox.
# relay_on_notify) hears of a message exactly when it may publish it, and the request that wrote
# it spends no statement on it. One notification per statement; an empty payload says "look".
NOTIFY_ON_INSERT = """
CREATE FUNCTION orders_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orders_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER orders_outbox_notify AFTER INSERT ON payments_outboxmessage
    FOR EACH STATEMENT EXECUTE FUNCTION orders_outbox_notify();
"""
SILENT = """
DROP TRIGGER IF EXISTS orders_outbox_notify ON payments_outboxmessage;
DROP FUNCTION IF EXISTS orders_outbox_notify();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0004_order_resumptions_and_fulfilment_failed'),
    ]

    operations = [
        migrations.RunSQL(NOTIFY_ON_INSERT, SILENT),
    ]
