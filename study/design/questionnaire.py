"""The end-of-study questionnaire."""

from django import forms

from study.design.condition_texts import explanation_texts

LIKERT_7 = [(str(value), str(value)) for value in range(1, 8)]


class QuestionnaireForm(forms.Form):
    age_band = forms.ChoiceField(
        label="Your age",
        choices=[(v, v) for v in ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")]
        + [("no answer", "Prefer not to say")],
        widget=forms.RadioSelect,
    )
    gender = forms.ChoiceField(
        label="Your gender",
        choices=[
            ("woman", "Woman"),
            ("man", "Man"),
            ("non-binary", "Non-binary"),
            ("another", "Another gender"),
            ("no answer", "Prefer not to say"),
        ],
        widget=forms.RadioSelect,
    )
    bird_experience = forms.ChoiceField(
        label="How well do you know birds?",
        choices=[
            ("none", "Not at all"),
            ("some", "A little"),
            ("birder", "I watch birds often"),
            ("expert", "I can tell gull species apart"),
        ],
        widget=forms.RadioSelect,
    )
    trust_ai = forms.ChoiceField(
        label="How much would you trust this AI to identify gulls? (1 = not at all, 7 = fully)",
        choices=LIKERT_7,
        widget=forms.RadioSelect,
    )
    explanation_helpfulness = forms.ChoiceField(
        label="How helpful were the AI's explanations? (1 = not at all, 7 = very)",
        choices=LIKERT_7,
        widget=forms.RadioSelect,
    )
    comments = forms.CharField(
        label="Anything else you want to tell us? (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, explanation_method: str, **kwargs):
        """`explanation_method`: the engine method of the participant's condition ("" for
        none), whose kind of figure the question about the explanation names."""
        super().__init__(*args, **kwargs)
        texts = explanation_texts(explanation_method)
        if texts is None:
            del self.fields["explanation_helpfulness"]
        else:
            self.fields["explanation_helpfulness"].label = texts.helpfulness_question


QUESTIONNAIRE_FIELDS = tuple(QuestionnaireForm.base_fields)
