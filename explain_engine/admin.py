from django.contrib import admin

from explain_engine.models import (
    Classifier,
    ClassLabel,
    ConceptModel,
    Explanation,
    Image,
    ImageSet,
    PrecomputeJob,
    Prediction,
)


@admin.register(ImageSet)
class ImageSetAdmin(admin.ModelAdmin):
    list_display = ["name", "source_path", "created_at"]


@admin.register(ClassLabel)
class ClassLabelAdmin(admin.ModelAdmin):
    list_display = ["display_name", "source_name", "image_set", "position"]
    list_filter = ["image_set"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["public_id", "image_set", "class_label", "split", "source_id"]
    list_filter = ["image_set", "split", "class_label"]


@admin.register(Classifier)
class ClassifierAdmin(admin.ModelAdmin):
    list_display = ["name", "architecture", "image_set", "test_accuracy", "checkpoint_sha256"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["image", "classifier", "predicted_label", "confidence"]
    list_filter = ["classifier"]


@admin.register(PrecomputeJob)
class PrecomputeJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "classifier", "status", "created_at", "finished_at"]


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin):
    list_display = ["image", "method", "status", "runtime_seconds", "device"]
    list_filter = ["method", "status", "classifier"]


@admin.register(ConceptModel)
class ConceptModelAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "classifier",
        "k",
        "classes",
        "r2",
        "argmax_agreement",
        "accepted_weak_fit",
        "created_at",
    ]
    list_filter = ["classifier", "accepted_weak_fit"]
