"""The forms a participant's pages post (`study.flow.pages`), each field bounded, so a page
reads only `cleaned_data`.

A browser of ours sends small, well-formed values; anything else (a non-finite or huge
number, a deeply nested or oversized JSON value, an unknown choice) is refused here with a
message for the 400 page, before any service runs, and so nothing saved changes.
"""

import json
import math

from django import forms
from django.core.exceptions import ValidationError

from study.design.question_types import CONFIDENCE_SCALE

# The longest a participant may take over one trial that still counts as a response time.
MAX_RESPONSE_MS = 24 * 3600 * 1000
# A study has at most a few hundred trials; the bound keeps the integer far from any limit.
MAX_TRIAL_POSITION = 100_000


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def json_nesting_depth(text: str) -> int:
    """How deeply `text`'s arrays and objects nest, counted without parsing it (brackets
    inside strings do not count), so an over-deep value is refused before the parser
    would recurse into it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class BoundedJSONField(forms.Field):
    """JSON text of at most `max_length` characters nesting at most `max_depth` deep, with
    no NaN or Infinity; empty gives `empty_value`."""

    def __init__(self, *, max_length: int, max_depth: int, empty_value=None, **kwargs):
        self.max_length = max_length
        self.max_depth = max_depth
        self.empty_value = empty_value
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return self.empty_value
        if len(value) > self.max_length:
            raise ValidationError(f"longer than {self.max_length} characters")
        if json_nesting_depth(value) > self.max_depth:
            raise ValidationError(f"nested deeper than {self.max_depth} levels")
        try:
            return json.loads(value, parse_constant=_reject_constant)
        except ValueError as error:  # JSONDecodeError, a NaN, an integer of 4,300+ digits
            raise ValidationError(f"not valid JSON: {error}") from error


class AsciiNumberMixin:
    """Python reads other scripts' digits ("\u0663" is 3); a browser of ours sends ASCII, so
    anything else is a crafted request and refused rather than reinterpreted."""

    def to_python(self, value):
        if isinstance(value, str) and not value.isascii():
            raise ValidationError("not a number")
        return super().to_python(value)


class IntegerField(AsciiNumberMixin, forms.IntegerField):
    pass


class MillisecondsField(AsciiNumberMixin, forms.FloatField):
    """A duration in milliseconds as the browser measured it (it may send a fraction), kept
    as a whole number; finite and within [0, MAX_RESPONSE_MS)."""

    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_value=MAX_RESPONSE_MS - 1, required=False, **kwargs)

    def clean(self, value):
        number = super().clean(value)  # FloatField refuses nan, inf and 1e400 (inf)
        return None if number is None else math.floor(number)


class ConsentForm(forms.Form):
    consent = forms.ChoiceField(choices=[("yes", "yes"), ("no", "no")])


class ComprehensionForm(forms.Form):
    """One field per question, `q0`, `q1`, ..., each the index of a choice."""

    def __init__(self, *args, questions: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        for index, question in enumerate(questions):
            self.fields[f"q{index}"] = forms.TypedChoiceField(
                choices=[(str(i), str(i)) for i in range(len(question["choices"]))], coerce=int
            )

    def answers(self) -> list[int]:
        return [self.cleaned_data[f"q{index}"] for index in range(len(self.fields))]


class TrialAnswerForm(forms.Form):
    trial_position = IntegerField(min_value=0, max_value=MAX_TRIAL_POSITION)
    answer = forms.CharField(max_length=200, strip=False)
    # Required on every trial but attention checks, which ask none (the service decides).
    confidence = IntegerField(
        min_value=min(CONFIDENCE_SCALE), max_value=max(CONFIDENCE_SCALE), required=False
    )
    client_response_ms = MillisecondsField()
    # "1" when the page's script saw the photo or figure fail to load before the answer.
    stimulus_missing = forms.TypedChoiceField(
        choices=[("0", "0"), ("1", "1")],
        coerce=lambda value: value == "1",
        required=False,
        empty_value=False,
    )
    viewport = forms.CharField(max_length=20, required=False)
    # At most 200 events of a few dozen characters each, a list of flat objects.
    interactions = BoundedJSONField(max_length=20_000, max_depth=2, empty_value=[])


def form_errors_message(form: forms.Form) -> str:
    """The form's errors as one line for the 400 page."""
    return "; ".join(
        f"{name}: {' '.join(messages)}" for name, messages in form.errors.items()
    ).replace("__all__: ", "")
