from django.contrib import admin

from bakery.models import Cake


@admin.register(Cake)
class CakeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "price", "position", "is_available"]
    list_editable = ["price", "position", "is_available"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]
