from django.db import models
from django.templatetags.static import static
from django.urls import reverse


class Cake(models.Model):
    """A cake in the catalogue. Prices are copied onto order items, so editing one never rewrites history."""

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField()
    price = models.DecimalField(max_digits=8, decimal_places=2)
    image = models.CharField(
        max_length=200, help_text="Static path of the picture, e.g. cakes/strawberry-shortcake.svg"
    )
    position = models.PositiveSmallIntegerField(default=100, help_text="Lower comes first.")
    is_available = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("cake-detail", kwargs={"slug": self.slug})

    @property
    def image_url(self) -> str:
        return static(self.image)
