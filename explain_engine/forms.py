"""The forms a researcher posts to the precompute job pages."""

from django import forms


class RetryFailedForm(forms.Form):
    """Which method's failures to queue again; none: every method's."""

    method = forms.SlugField(max_length=50, required=False)
