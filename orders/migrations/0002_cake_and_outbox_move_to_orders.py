"""The catalogue's Cake and the outbox's OutboxMessage become models of the order core.

Only Django's idea of who owns them moves: the tables keep their names (``bakery_cake``,
``payments_outboxmessage``) and their rows, so an existing database migrates without copying
anything. Their content types move along, so admin permissions and history stay attached.
"""

from django.db import migrations, models
import django.db.models.deletion

MOVED = [("bakery", "cake"), ("payments", "outboxmessage")]


def move_content_types(apps, schema_editor, forward=True):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for old_app, model in MOVED:
        source, target = (old_app, "orders") if forward else ("orders", old_app)
        if not ContentType.objects.filter(app_label=target, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, forward=False)


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        # The outbox's table was created by payments' first migration.
        ("payments", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Cake",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=80)),
                        ("slug", models.SlugField(max_length=80, unique=True)),
                        ("description", models.TextField()),
                        ("price", models.DecimalField(decimal_places=2, max_digits=8)),
                        ("image", models.CharField(help_text="Static path of the picture, e.g. cakes/strawberry-shortcake.svg", max_length=200)),
                        ("position", models.PositiveSmallIntegerField(default=100, help_text="Lower comes first.")),
                        ("is_available", models.BooleanField(default=True)),
                    ],
                    options={"ordering": ["position", "name"], "db_table": "bakery_cake"},
                ),
                migrations.AlterField(
                    model_name="orderitem",
                    name="cake",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to="orders.cake"),
                ),
                migrations.CreateModel(
                    name="OutboxMessage",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("task", models.CharField(max_length=100)),
                        ("args", models.JSONField(default=list)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("dispatched_at", models.DateTimeField(blank=True, db_index=True, null=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("last_error", models.CharField(blank=True, max_length=300)),
                    ],
                    options={
                        "ordering": ["id"],
                        "db_table": "payments_outboxmessage",
                        "indexes": [models.Index(condition=models.Q(("dispatched_at__isnull", True)), fields=["id"], name="outbox_pending")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
