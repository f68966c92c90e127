"""Study records: what a researcher configures and what participants leave behind."""

from django.conf import settings
from django.db import models

from explain_engine.models import Classifier, Explanation, Image


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        PILOT = "pilot"
        LIVE = "live"
        PAUSED = "paused"
        CLOSED = "closed"

    class Platform(models.TextChoices):
        PROLIFIC = "prolific"
        MTURK = "mturk", "Amazon Mechanical Turk"
        OPEN = "open", "open link (lab or pilot)"

    slug = models.SlugField(max_length=60, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(
        blank=True, help_text="What a worker reads before accepting (the MTurk preview)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    platform = models.CharField(max_length=10, choices=Platform.choices)
    question_type = models.CharField(max_length=50)
    classifier = models.ForeignKey(Classifier, on_delete=models.PROTECT, related_name="studies")
    participants_per_condition = models.PositiveIntegerField()
    consent_text = models.TextField()
    consent_version = models.CharField(max_length=20, default="1")
    instructions_text = models.TextField()
    debrief_text = models.TextField(
        blank=True, help_text="Shown on the completion page. Markdown, like the other texts."
    )
    completion_code = models.CharField(max_length=40)
    no_consent_code = models.CharField(
        max_length=40, blank=True, help_text="Prolific code for those who decline consent."
    )
    comprehension_questions = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"question": "...", "choices": [...], "answer": index}]; none = no check.',
    )
    comprehension_max_attempts = models.PositiveIntegerField(default=2)
    failed_comprehension_code = models.CharField(
        max_length=40, blank=True, help_text="Prolific code for those who fail the check."
    )
    time_limit_minutes = models.PositiveIntegerField(
        default=60, help_text="From entry; past it an unfinished participant is timed out."
    )
    config_hash = models.CharField(max_length=64, blank=True, help_text="Frozen at launch.")
    exclusion_rules = models.JSONField(
        default=dict,
        blank=True,
        help_text="Declared before launch and frozen by it; see study.services.EXCLUSION_RULES.",
    )
    shortcut_margin_points = models.PositiveSmallIntegerField(
        default=10,
        help_text="Launch is refused when a strategy that needs no understanding beats chance "
        "by more than this many percentage points (see study.design.shortcut_audit).",
    )
    shortcut_override_reason = models.TextField(
        blank=True,
        help_text="Why the study launched although the shortcut audit failed; frozen into "
        "the design.",
    )
    show_accuracy = models.BooleanField(
        default=False,
        help_text="Show accuracy so far on the dashboard while live (off: no peeking).",
    )
    owners = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="owned_studies",
        help_text="Researchers who see and run this study; staff see every study.",
    )
    excluded_studies = models.ManyToManyField(
        "self",
        symmetrical=True,
        blank=True,
        help_text="Whoever took part in one of these may not take part in this one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    source_toml = models.TextField(
        blank=True, help_text="The study file it was created from (edited and exported as is)."
    )
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="A closed study put away: listed only on request."
    )
    precompute_jobs = models.ManyToManyField(
        "explain_engine.PrecomputeJob",
        blank=True,
        related_name="studies",
        help_text="The jobs that computed what the study shows (the command's and the "
        "dashboard's).",
    )

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.slug


class Condition(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="conditions")
    name = models.SlugField(max_length=60)
    explanation_method = models.CharField(
        max_length=50, blank=True, help_text="Engine method slug; blank = no explanation."
    )
    explanation_params = models.JSONField(
        default=dict, blank=True, help_text="All the method's parameters, defaults included."
    )
    explanation_params_hash = models.CharField(max_length=64, blank=True)
    show_ai_prediction = models.BooleanField(default=False)
    show_ai_confidence = models.BooleanField(default=False)
    quota = models.PositiveIntegerField(
        null=True, blank=True, help_text="Places in this condition; blank = the study's default."
    )

    class Meta:
        ordering = ["study", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="condition_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.name}"


class StudyItem(models.Model):
    class Role(models.TextChoices):
        TRAINING = "training"
        MAIN = "main"
        ATTENTION = "attention", "attention check"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="study_items")
    role = models.CharField(max_length=10, choices=Role.choices)
    # A comparative study's A/B pair for the item, chosen at launch and kept: the SAG search
    # it comes from and the pair's index in it (study.design.question_types).
    comparison_explanation = models.ForeignKey(
        "explain_engine.Explanation",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    comparison_pair = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["study", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "image", "role"], name="studyitem_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.role}/{self.image.public_id}"


class Participant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"
        DECLINED = "declined", "declined consent"
        SCREENED_OUT = "screened_out", "failed the comprehension check"
        TIMED_OUT = "timed_out"

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="participants")
    code = models.CharField(max_length=40, unique=True, help_text="Unguessable; in the URL.")
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="participants")
    platform = models.CharField(max_length=10, choices=Study.Platform.choices)
    # Keyed hash of the platform id: analysis never sees the raw id (kept in PlatformIdentity).
    platform_pseudonym = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    page = models.CharField(max_length=20, help_text="Where the participant is in the flow.")
    trial_position = models.PositiveIntegerField(default=0)
    feedback_response = models.ForeignKey(
        "Response",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The practice answer whose feedback is on screen.",
    )
    trial_shown_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current trial was first sent."
    )
    trial_seed = models.BigIntegerField()
    trial_item_ids = models.JSONField(help_text="StudyItem ids in this participant's order.")
    questionnaire = models.JSONField(default=dict, blank=True)
    study_config_hash = models.CharField(max_length=64, blank=True)
    is_pilot = models.BooleanField(default=False, help_text="Entered while the study was a pilot.")

    class Override(models.TextChoices):
        NONE = "", "the rules decide"
        EXCLUDE = "exclude", "excluded by a researcher"
        INCLUDE = "include", "included by a researcher"

    excluded = models.BooleanField(
        default=False, help_text="By the study's exclusion rules, or a researcher's override."
    )
    simulated = models.BooleanField(
        default=False, help_text="A bot of simulate_participants, not a person."
    )
    preview = models.BooleanField(
        default=False,
        help_text="A researcher's preview of one condition: takes no place and is never in "
        "the exports or the analysis.",
    )
    exclusion_reasons = models.JSONField(default=list, blank=True)
    exclusion_override = models.CharField(
        max_length=10, choices=Override.choices, default=Override.NONE, blank=True
    )
    exclusion_override_reason = models.CharField(max_length=500, blank=True)
    consent_version = models.CharField(max_length=20, blank=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    comprehension_attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "platform_pseudonym"],
                condition=~models.Q(platform_pseudonym=""),
                name="participant_once_per_study",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}:{self.code[:8]}"


class PlatformIdentity(models.Model):
    """The raw crowd-platform ids, kept apart from analysis data for payment reconciliation."""

    participant = models.OneToOneField(
        Participant, on_delete=models.CASCADE, related_name="platform_identity"
    )
    worker_id = models.CharField(max_length=200, help_text="PROLIFIC_PID or MTurk workerId.")
    platform_study_id = models.CharField(max_length=200, blank=True)
    session_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="Prolific SESSION_ID or the latest MTurk assignmentId.",
    )
    submit_to = models.CharField(max_length=200, blank=True, help_text="MTurk turkSubmitTo.")

    def __str__(self) -> str:
        return f"identity of {self.participant}"


class Response(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="responses")
    item = models.ForeignKey(StudyItem, on_delete=models.PROTECT, related_name="responses")
    phase = models.CharField(max_length=10, choices=StudyItem.Role.choices)
    trial_position = models.PositiveIntegerField()
    answer = models.CharField(max_length=100, help_text="The chosen value, e.g. a label id.")
    answer_text = models.CharField(max_length=200, help_text="What the participant read.")
    correct_answer = models.CharField(max_length=100)
    is_correct = models.BooleanField()
    confidence = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1 (guessing) .. 5 (certain); none on attention checks."
    )
    client_response_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="From stimulus paint to answer, measured in the browser."
    )
    server_shown_at = models.DateTimeField(help_text="When the server sent the trial page.")
    server_received_at = models.DateTimeField(auto_now_add=True)
    explanation_shown = models.ForeignKey(
        Explanation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stimulus_missing = models.BooleanField(
        default=False,
        help_text="Answered while a photo or figure of the trial had not loaded in the browser.",
    )
    viewport = models.CharField(max_length=20, blank=True, help_text='"WIDTHxHEIGHT" in CSS px.')
    interactions = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"event": "heatmap_hidden", "ms": 1234}, ...], ms from stimulus paint.',
    )

    class Meta:
        ordering = ["participant", "trial_position"]
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "item", "phase"], name="response_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant} #{self.trial_position}"


class Withdrawal(models.Model):
    """Audit entry of a participant's data deleted at their request.

    Keeps what shows the deletion happened, not the data: the keyed-hash pseudonym (so a
    repeated request is recognised), the condition, how many answers were deleted, who did
    it, when and why. The raw platform id is deleted with the participant.
    """

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="withdrawals")
    platform_pseudonym = models.CharField(max_length=64)
    condition_name = models.CharField(max_length=100)
    participant_status = models.CharField(max_length=20)
    responses_deleted = models.PositiveIntegerField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"withdrawal from {self.study.slug} at {self.created_at:%Y-%m-%d %H:%M}"


class StudyEvent(models.Model):
    """Audit log of a study: every launch, pause, resume, close, reopen, archive and quota
    change, every participant excluded, included or withdrawn by hand, every deletion of
    simulated participants, every approval or rejection sent to Prolific with its outcome;
    who (blank: the command line), when and why."""

    class Action(models.TextChoices):
        LAUNCH_PILOT = "launch_pilot", "launched as pilot"
        LAUNCH_LIVE = "launch_live", "launched live"
        PAUSE = "pause", "paused"
        RESUME = "resume", "resumed"
        CLOSE = "close", "closed"
        REOPEN = "reopen", "reopened"
        ARCHIVE = "archive", "archived"
        QUOTA = "quota", "quota changed"
        EXCLUDE = "exclude", "participant excluded"
        INCLUDE = "include", "participant included"
        RULES_DECIDE = "rules_decide", "participant left to the exclusion rules"
        WITHDRAW = "withdraw", "participant withdrawn"
        PROLIFIC_APPROVE = "prolific_approve", "approval sent to Prolific"
        PROLIFIC_REJECT = "prolific_reject", "rejection sent to Prolific"
        DELETE_SIMULATED = "delete_simulated", "simulated participants deleted"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=20, choices=Action.choices)
    status_before = models.CharField(max_length=10, choices=Study.Status.choices)
    status_after = models.CharField(max_length=10, choices=Study.Status.choices)
    detail = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"condition": "gradcam", "from": 40, "to": 60}'
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.study.slug}: {self.get_action_display()} at {self.created_at:%Y-%m-%d %H:%M}"


class SimulatedDeletion(models.Model):
    """Audit entry of a study's simulated participants deleted by a researcher: how many,
    with how many answers, who did it, when and why."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="simulated_deletions")
    participants_deleted = models.PositiveIntegerField()
    responses_deleted = models.PositiveIntegerField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M}"
        return f"simulated participants deleted from {self.study.slug} at {when}"


class PreparationStep(models.Model):
    """One step of set-up work done while the site already serves (the demo's data,
    training, concept model, each method's explanations, the launch): the researcher's pages
    show its progress, and a study it prepares tells participants to come back soon."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    key = models.SlugField(max_length=60, unique=True)
    label = models.CharField(max_length=200)
    position = models.PositiveIntegerField()
    unit = models.CharField(max_length=30, blank=True, help_text="What `done` counts.")
    studies = models.JSONField(default=list, help_text="Slugs of the studies it prepares.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.label} ({self.status})"


class ProlificCredential(models.Model):
    """A researcher's Prolific API token, encrypted at rest (Fernet; see
    `study.results.prolific_token`). Only its last four characters are kept in clear, to
    tell the researcher which token is stored; it is in no export, admin page or log."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="prolific_credential"
    )
    token_encrypted = models.TextField()
    token_hint = models.CharField(max_length=4, help_text="The token's last four characters.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Prolific token of {self.user} (ending {self.token_hint})"
