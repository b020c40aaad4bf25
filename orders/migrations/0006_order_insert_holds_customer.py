from django.db import migrations

# A reset must never run while one of the customer's orders is half-placed (orders.services.
# customer_reset). Every INSERT into orders_order takes the customer's advisory lock shared, for
# the rest of its transaction, in this trigger: whoever places the order (the order API with or
# without its idempotency layer, the admin, a script) holds it, and it costs the request no
# statement of its own. A reset takes the same lock exclusively.
# orders_customer_lock_key is the lock's number: the customer id's first 64 bits.
HOLD_CUSTOMER = """
CREATE FUNCTION orders_customer_lock_key(customer uuid) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT ('x' || left(replace(customer::text, '-', ''), 16))::bit(64)::bigint
$$;
CREATE FUNCTION orders_order_hold_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(orders_customer_lock_key(NEW.customer_id));
    RETURN NEW;
END $$;
CREATE TRIGGER orders_order_hold_customer BEFORE INSERT ON orders_order
    FOR EACH ROW EXECUTE FUNCTION orders_order_hold_customer();
"""
LET_GO = """
DROP TRIGGER IF EXISTS orders_order_hold_customer ON orders_order;
DROP FUNCTION IF EXISTS orders_order_hold_customer();
DROP FUNCTION IF EXISTS orders_customer_lock_key(uuid);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0005_outbox_notify'),
    ]

    operations = [
        migrations.RunSQL(HOLD_CUSTOMER, LET_GO),
    ]
