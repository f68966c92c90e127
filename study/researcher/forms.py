"""The forms a researcher posts (and the plan's GET): a view reads only `cleaned_data`, and
a form that does not validate gets the 400 page naming the field."""

from django import forms

from study.models import Participant, Study, StudyEvent
from study.researcher.lifecycle import ALLOWED_FROM, MAX_QUOTA
from study.researcher.monitor import FLAGS, SORTS
from study.results.planning import MAX_N, MIN_N
from study.results.prolific_api import REJECTION_CATEGORIES, REJECTION_MESSAGE_MIN

# Prolific's submissions export for one study: a few thousand rows of short fields.
MAX_SUBMISSIONS_BYTES = 20 * 1024 * 1024


class LaunchForm(forms.Form):
    status = forms.ChoiceField(choices=[(Study.Status.PILOT, "pilot"), (Study.Status.LIVE, "live")])
    # Kept in the design when it overrides a failed shortcut audit.
    shortcut_override_reason = forms.CharField(required=False, max_length=2000)


class ShowAccuracyForm(forms.Form):
    show = forms.ChoiceField(choices=[("yes", "yes"), ("no", "no")])


class ProlificSubmissionsForm(forms.Form):
    submissions = forms.FileField(
        error_messages={"required": "Choose Prolific's submissions export (a CSV file) to upload."}
    )

    def clean_submissions(self):
        upload = self.cleaned_data["submissions"]
        if upload.size > MAX_SUBMISSIONS_BYTES:
            raise forms.ValidationError(
                f"{upload.name} is larger than {MAX_SUBMISSIONS_BYTES // 2**20} MiB"
            )
        return upload


class ProlificTokenForm(forms.Form):
    """A researcher's Prolific API token (Prolific: Settings, API token). Never rendered
    back: the field is a password field that does not show its value."""

    token = forms.CharField(
        min_length=20,
        max_length=500,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        error_messages={"required": "Paste your Prolific API token."},
    )

    def clean_token(self):
        token = self.cleaned_data["token"]
        if any(character.isspace() for character in token) or not token.isprintable():
            raise forms.ValidationError("A Prolific API token has no spaces or line breaks.")
        return token


# A reconciliation's signed state: ids of a few thousand submissions, compressed.
MAX_REVIEW_STATE_CHARS = 400_000


class ProlificReviewForm(forms.Form):
    """What a reconciliation page posts back: its signed state (which submissions it found
    to approve or to review) and, for one submission, what to do with it."""

    state = forms.CharField(max_length=MAX_REVIEW_STATE_CHARS)


class ProlificTransitionForm(ProlificReviewForm):
    submission_id = forms.CharField(max_length=200)
    action = forms.ChoiceField(choices=[("APPROVE", "approve"), ("REJECT", "reject")])
    rejection_category = forms.ChoiceField(
        required=False, choices=[("", "—"), *REJECTION_CATEGORIES.items()]
    )
    message = forms.CharField(required=False, max_length=500, strip=True)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == "REJECT":
            if len(cleaned.get("message") or "") < REJECTION_MESSAGE_MIN:
                self.add_error(
                    "message",
                    f"A rejection needs a message of at least {REJECTION_MESSAGE_MIN} characters "
                    "for the participant (Prolific's rule).",
                )
            if not cleaned.get("rejection_category"):
                self.add_error("rejection_category", "Choose the rejection's category.")
        return cleaned


def form_errors_message(form: forms.Form) -> str:
    return "; ".join(" ".join(messages) for messages in form.errors.values())


class PlanForm(forms.Form):
    """The assumptions of a power plan. Per-condition accuracies, when all are given, replace
    the baseline and difference (the first condition at the baseline, the others higher)."""

    baseline = forms.FloatField(
        min_value=0.01, max_value=0.99, initial=0.5, help_text="Accuracy of the first condition."
    )
    difference = forms.FloatField(
        min_value=-0.98,
        max_value=0.98,
        initial=0.15,
        help_text="Smallest difference worth detecting: every other condition this much higher.",
    )
    ability_sd = forms.FloatField(
        label="Ability SD",
        min_value=0,
        max_value=5,
        initial=1.0,
        help_text="Between participants, log-odds.",
    )
    item_sd = forms.FloatField(
        label="Item SD", min_value=0, max_value=5, initial=0.5, help_text="Between items, log-odds."
    )
    inattentive_share = forms.FloatField(
        min_value=0,
        max_value=0.9,
        initial=0.05,
        help_text="Share answering at random, fast; the exclusion rules may catch them.",
    )
    sims = forms.IntegerField(
        label="Simulated studies per n", min_value=10, max_value=400, initial=50
    )
    max_n = forms.IntegerField(label="Largest n", min_value=MIN_N, max_value=MAX_N, initial=200)
    confirm = forms.BooleanField(
        label="Simulate again at the n found",
        required=False,
        help_text="Slower; checks the projection.",
    )

    def __init__(self, *args, conditions: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.conditions = conditions
        for name in conditions:
            self.fields[f"accuracy_{name}"] = forms.FloatField(
                label=f"Accuracy of {name}", min_value=0.01, max_value=0.99, required=False
            )

    def clean(self):
        cleaned = super().clean()
        given = {
            name: cleaned.get(f"accuracy_{name}")
            for name in self.conditions
            if cleaned.get(f"accuracy_{name}") is not None
        }
        if given and len(given) != len(self.conditions):
            raise forms.ValidationError(
                "Give an accuracy for every condition, or for none (then the baseline and "
                "difference are used)."
            )
        cleaned["accuracies"] = given or None
        return cleaned


class LifecycleForm(forms.Form):
    action = forms.ChoiceField(
        choices=[(action, StudyEvent.Action(action).label) for action in ALLOWED_FROM]
    )
    reason = forms.CharField(max_length=500, required=False, strip=True)


class QuotaForm(forms.Form):
    """A quota for the study's default (condition left empty) or one condition; an empty
    quota for a condition means: back to the study's default."""

    condition = forms.SlugField(max_length=60, required=False)
    quota = forms.IntegerField(min_value=1, max_value=MAX_QUOTA, required=False)
    reason = forms.CharField(max_length=500, required=False, strip=True)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("condition") and cleaned.get("quota") is None and not self.errors:
            raise forms.ValidationError("the study's default quota needs a number")
        return cleaned


class MonitorFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "any status"), *Participant.Status.choices], required=False
    )
    condition = forms.SlugField(max_length=60, required=False)
    flag = forms.ChoiceField(
        choices=[("", "anyone"), *((flag, flag) for flag in FLAGS)], required=False
    )
    sort = forms.ChoiceField(
        choices=[(sort, sort.replace("_", " ")) for sort in SORTS], required=False
    )


class ExclusionForm(forms.Form):
    participant = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    decision = forms.ChoiceField(choices=Participant.Override.choices, required=False)
    reason = forms.CharField(max_length=500, required=False, strip=True)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("decision") and not cleaned.get("reason"):
            raise forms.ValidationError("say why: the reason goes to the export and the log")
        return cleaned


class WithdrawForm(forms.Form):
    participant = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    reason = forms.CharField(max_length=500, required=False, strip=True)
    confirm = forms.BooleanField(
        required=True, help_text="Their answers and ids are deleted; this cannot be undone."
    )


MAX_STUDY_FILE_BYTES = 100_000  # examples/study.toml is 3 kB


class StudyFileForm(forms.Form):
    """A study file (the schema of examples/study.toml), pasted or uploaded; checked by the
    same code as `create_study --from FILE`."""

    text = forms.CharField(
        label="Study file (TOML)",
        required=False,
        max_length=MAX_STUDY_FILE_BYTES,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 30, "spellcheck": "false"}),
    )
    upload = forms.FileField(label="or upload one", required=False)

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("upload")
        if upload is not None:
            if upload.size > MAX_STUDY_FILE_BYTES:
                raise forms.ValidationError(
                    f"{upload.name} is larger than {MAX_STUDY_FILE_BYTES:,} bytes"
                )
            try:
                cleaned["text"] = upload.read().decode("utf-8")
            except UnicodeDecodeError as error:
                raise forms.ValidationError(f"{upload.name} is not UTF-8 text") from error
        if not cleaned.get("text", "").strip() and not self.errors:
            raise forms.ValidationError("paste a study file or upload one")
        return cleaned


class _SlugConfirmedForm(forms.Form):
    """A deletion confirmed by typing the study's slug; `deletes` completes the error
    "type <slug> to ..." when it does not match."""

    deletes = ""

    def __init__(self, *args, study: Study, **kwargs):
        super().__init__(*args, **kwargs)
        self.study = study

    def clean_confirm(self) -> str:
        confirm = self.cleaned_data["confirm"]
        if confirm != self.study.slug:
            raise forms.ValidationError(f"type {self.study.slug} to {self.deletes}")
        return confirm


class DeleteDraftForm(_SlugConfirmedForm):
    deletes = "delete this draft"
    confirm = forms.SlugField(max_length=60, help_text="Type the study's slug to delete it.")


class PreviewForm(forms.Form):
    """Which of the study's conditions to preview."""

    condition = forms.ModelChoiceField(queryset=None, to_field_name="name")

    def __init__(self, *args, study: Study, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["condition"].queryset = study.conditions.order_by("pk")


class PrecomputeStartForm(forms.Form):
    """Start computing what the study shows; the form has nothing to fill in but its
    token, and a second post while a job runs starts nothing."""


class DeleteSimulatedForm(_SlugConfirmedForm):
    deletes = "delete its simulated participants"
    confirm = forms.SlugField(
        max_length=60, help_text="Type the study's slug to delete its simulated participants."
    )
    reason = forms.CharField(max_length=500, required=False, strip=True)
