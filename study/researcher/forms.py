"""The forms a researcher posts; a view reads only `cleaned_data`, and a form that does not
validate gets the 400 page naming the field."""

from django import forms

from study.models import Study

# Prolific's submissions export for one study: a few thousand rows of short fields.
MAX_SUBMISSIONS_BYTES = 20 * 1024 * 1024


class LaunchForm(forms.Form):
    status = forms.ChoiceField(choices=[(Study.Status.PILOT, "pilot"), (Study.Status.LIVE, "live")])


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


def form_errors_message(form: forms.Form) -> str:
    return "; ".join(" ".join(messages) for messages in form.errors.values())
