"""Engine records: image sets, classifiers, their predictions, explanations and concept
models (fitted XNNs).

Files are stored under opaque names (a random hex stem); a participant-facing URL built
from any of them reveals nothing about the label.
"""

import uuid

from django.db import models
from django.utils.deconstruct import deconstructible


@deconstructible
class OpaqueUploadTo:
    """A random file name in `folder`, keeping only the suffix of the name given."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, instance, filename: str) -> str:
        suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
        return f"{self.folder}/{uuid.uuid4().hex}.{suffix}"

    def __eq__(self, other) -> bool:
        return isinstance(other, OpaqueUploadTo) and other.folder == self.folder


upload_image = OpaqueUploadTo("images")
upload_checkpoint = OpaqueUploadTo("checkpoints")
upload_artifact = OpaqueUploadTo("explanations")
upload_concept_model = OpaqueUploadTo("concept_models")


class WorkStatus(models.TextChoices):
    """Life of a unit of engine work: pending -> running (claimed) -> done or failed."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImageSet(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    source_path = models.CharField(max_length=500, help_text="Where it was imported from.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ClassLabel(models.Model):
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="classes")
    source_name = models.CharField(
        max_length=200, help_text='As in the source, e.g. "059.California_Gull".'
    )
    display_name = models.CharField(max_length=200)
    position = models.PositiveIntegerField(help_text="Order within the image set.")

    class Meta:
        ordering = ["image_set", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["image_set", "source_name"], name="classlabel_unique_name"
            ),
            models.UniqueConstraint(
                fields=["image_set", "position"], name="classlabel_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name


class Image(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train"
        TEST = "test"

    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="images")
    class_label = models.ForeignKey(ClassLabel, on_delete=models.PROTECT, related_name="images")
    split = models.CharField(max_length=5, choices=Split.choices)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source_id = models.PositiveIntegerField(help_text="The image id in the source data set.")
    # The source path names the species, so it is kept for provenance and never served.
    source_path = models.CharField(max_length=500)
    file = models.FileField(upload_to=upload_image, max_length=200)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bbox = models.JSONField(null=True, blank=True, help_text="[x, y, w, h] in pixels.")
    parts = models.JSONField(default=dict, blank=True, help_text="Visible part name -> [x, y].")

    class Meta:
        ordering = ["image_set", "source_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image_set", "source_id"], name="image_unique_source_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.image_set.name}#{self.source_id}"


class Classifier(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    image_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="classifiers")
    architecture = models.CharField(max_length=100)
    checkpoint = models.FileField(upload_to=upload_checkpoint, max_length=200)
    checkpoint_sha256 = models.CharField(max_length=64)
    class_order = models.JSONField(help_text="ClassLabel source names, in output-index order.")
    input_size = models.PositiveIntegerField()
    normalization_mean = models.JSONField()
    normalization_std = models.JSONField()
    test_accuracy = models.FloatField(null=True, blank=True)
    training = models.JSONField(default=dict, blank=True, help_text="How it was trained, if here.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Prediction(models.Model):
    classifier = models.ForeignKey(Classifier, on_delete=models.CASCADE, related_name="predictions")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions")
    predicted_index = models.PositiveIntegerField()
    predicted_label = models.ForeignKey(ClassLabel, on_delete=models.PROTECT, related_name="+")
    confidence = models.FloatField(help_text="Softmax probability of the predicted class.")
    top_k = models.JSONField(help_text='[{"index": i, "probability": p}, ...], best first.')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["classifier", "image"], name="prediction_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.classifier.name}: {self.image} -> {self.predicted_label}"

    @property
    def is_correct(self) -> bool:
        return self.predicted_label_id == self.image.class_label_id


class PrecomputeJob(models.Model):
    Status = WorkStatus

    classifier = models.ForeignKey(Classifier, on_delete=models.CASCADE, related_name="jobs")
    methods = models.JSONField(help_text='[{"method": slug, "params": {...}}, ...]')
    image_ids = models.JSONField(help_text="Image primary keys the job covers.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    batch_size = models.PositiveIntegerField(
        default=8, help_text="Images explained together in one worker task."
    )
    image_failures = models.JSONField(
        default=dict, blank=True, help_text="Image id -> why it could not be read or predicted."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"job {self.pk} ({self.status})"


class Explanation(models.Model):
    Status = WorkStatus

    classifier = models.ForeignKey(
        Classifier, on_delete=models.CASCADE, related_name="explanations"
    )
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="explanations")
    method = models.CharField(max_length=50)
    target_index = models.PositiveIntegerField(help_text="Output index explained.")
    params = models.JSONField()
    params_hash = models.CharField(max_length=64)
    job = models.ForeignKey(
        PrecomputeJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="explanations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    overlay = models.FileField(upload_to=upload_artifact, max_length=200, blank=True)
    raw_map = models.FileField(upload_to=upload_artifact, max_length=200, blank=True)
    data = models.JSONField(
        default=dict, blank=True, help_text="Method-specific data: SAG graph, XNN concepts."
    )
    metrics = models.JSONField(default=dict, blank=True)
    runtime_seconds = models.FloatField(
        null=True, blank=True, help_text="This image's share of its batch's explain time."
    )
    device = models.CharField(max_length=100, blank=True)
    library_versions = models.JSONField(default=dict, blank=True)
    checkpoint_sha256 = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times it was claimed.")
    # A fresh token per claim: only the holder of the latest claim may store the result, so
    # a worker whose claim was taken over (it was presumed dead) cannot store it twice.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["classifier", "image", "method", "target_index", "params_hash"],
                name="explanation_unique",
            ),
        ]
        indexes = [models.Index(fields=["classifier", "method", "status"])]

    def __str__(self) -> str:
        return f"{self.method}({self.image}) [{self.status}]"


class ConceptModel(models.Model):
    """A fitted XNN: fitted once per classifier, class subset and parameters, then reused to
    explain every image (``explain_engine.methods.xnn``)."""

    classifier = models.ForeignKey(
        Classifier, on_delete=models.CASCADE, related_name="concept_models"
    )
    classes = models.JSONField(help_text="Explained output indices of the classifier, sorted.")
    k = models.PositiveSmallIntegerField(help_text="Number of concepts (x-features).")
    layer = models.CharField(max_length=200, help_text="The layer whose features it embeds.")
    params = models.JSONField(help_text="XNN.params(), classes included.")
    params_hash = models.CharField(max_length=64)
    file = models.FileField(upload_to=upload_concept_model, max_length=200)
    r2 = models.FloatField(help_text="R² of the rebuilt class scores on the test split.")
    argmax_agreement = models.FloatField(
        help_text="Share of test images whose rebuilt arg-max is the classifier's."
    )
    fit_report = models.JSONField(
        default=dict, blank=True, help_text="Attempts and their losses, time, device."
    )
    prototypes = models.JSONField(
        help_text="Per SRAE (one, or one per explained class in per-class mode), per concept, "
        "the ids of the train images that activate it most, best first (records fitted before "
        "per-class mode: per concept only)."
    )
    accepted_weak_fit = models.BooleanField(
        default=False,
        help_text="It failed XNN's success rule or the R² bar and was kept on request "
        "(fit_xnn --accept-weak-fit); a study's launch checks show it.",
    )
    diversity = models.JSONField(
        default=dict,
        blank=True,
        help_text="Mean pairwise |correlation| of the concepts' activations and heatmaps "
        "on the test split (lower: more diverse).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["classifier", "classes", "params_hash"], name="conceptmodel_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"XNN k={self.k} on {self.classifier.name} classes {self.classes}"

    def prototype_ids(self, column: int) -> list[list[int]]:
        """Per concept, the prototype image ids of the concepts shown for explained class
        `column` (an index into ``classes``): its own SRAE's in per-class mode."""
        rows = self.prototypes
        if rows and rows[0] and isinstance(rows[0][0], list):
            return rows[column if len(rows) > 1 else 0]
        return rows
