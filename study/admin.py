from django.contrib import admin

from study.models import Condition, Participant, Response, Study, StudyItem


class ConditionInline(admin.TabularInline):
    model = Condition
    extra = 0


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "status", "platform", "question_type"]
    inlines = [ConditionInline]
    filter_horizontal = ["owners", "excluded_studies"]


@admin.register(StudyItem)
class StudyItemAdmin(admin.ModelAdmin):
    list_display = ["study", "image", "role"]
    list_filter = ["study", "role"]


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "study",
        "condition",
        "status",
        "is_pilot",
        "simulated",
        "excluded",
        "page",
        "trial_position",
        "started_at",
    ]
    list_filter = ["study", "status", "condition", "is_pilot", "simulated", "excluded"]
    exclude = ["code"]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = [
        "participant",
        "item",
        "phase",
        "is_correct",
        "confidence",
        "client_response_ms",
    ]
    list_filter = ["phase", "is_correct"]
