import factory

from orders.models import Cake


class CakeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cake
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Test Cake {n}")
    slug = factory.Sequence(lambda n: f"test-cake-{n}")
    description = "A cake made for a test."
    price = "10.00"
    image = "cakes/strawberry-shortcake.svg"
