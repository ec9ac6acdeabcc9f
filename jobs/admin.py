from django.contrib import admin

from jobs.models import AuthToken, DailyStat


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at"]
    list_select_related = ["user"]


@admin.register(DailyStat)
class DailyStatAdmin(admin.ModelAdmin):
    list_display = ["date", "new_users", "tokens_created", "active_tokens", "computed_at"]
