"""The participant's pages, one class each: the template it renders, what it adds to the
page's context, and what a POST of it submits. `PAGES` holds them by the names of
`study.flow.sequence`, which says which page follows which.

A page's `submit` makes one service call and returns None to send the participant to
wherever they now are, or a response of its own (a 400 page, the platform's URL).
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from study.design.condition_texts import explanation_texts
from study.design.question_types import CONFIDENCE_SCALE
from study.design.questionnaire import QuestionnaireForm
from study.flow import selectors, sequence, services
from study.flow.forms import (
    ComprehensionForm,
    ConsentForm,
    TrialAnswerForm,
    form_errors_message,
)
from study.models import Participant


class Page:
    name = ""
    form = None  # the Django form its POST is parsed with, where it has one

    @property
    def template(self) -> str:
        return f"study/page_{self.name}.html"

    def context(self, participant: Participant) -> dict:
        """What the template shows beyond the study and the participant."""
        return {}

    def show(self, request: HttpRequest, participant: Participant) -> HttpResponse:
        context = {"study": participant.study, "participant": participant}
        context.update(self.context(participant))
        return render(request, self.template, context)

    def submit(self, request: HttpRequest, participant: Participant) -> HttpResponse | None:
        """Take the POST of this page; an ending page takes none."""
        return None


def bad_request(request: HttpRequest, participant: Participant, message: str) -> HttpResponse:
    context = {"study": participant.study, "participant": participant, "message": message}
    return render(request, "study/bad_request.html", context, status=400)


def _away_to_platform(participant: Participant, status: str) -> HttpResponse | None:
    """The platform's URL for a participant who just ended with `status`, if it has one."""
    destination = services.completion_url(participant=participant)
    if participant.status == status and destination:
        return redirect(destination)
    return None


class Consent(Page):
    name = sequence.PAGE_CONSENT

    form = ConsentForm

    def submit(self, request, participant):
        form = self.form(request.POST)
        if not form.is_valid():
            return bad_request(request, participant, form_errors_message(form))
        participant = services.participant_consent(
            participant=participant, agreed=form.cleaned_data["consent"] == "yes"
        )
        return _away_to_platform(participant, Participant.Status.DECLINED)


class Instructions(Page):
    name = sequence.PAGE_INSTRUCTIONS

    def context(self, participant):
        return {
            "gallery": selectors.reference_gallery(study=participant.study),
            "explanation_texts": explanation_texts(participant.condition.explanation_method),
        }

    def submit(self, request, participant):
        services.participant_finish_instructions(participant=participant)


class Comprehension(Page):
    name = sequence.PAGE_COMPREHENSION

    form = ComprehensionForm

    def submit(self, request, participant):
        form = self.form(request.POST, questions=participant.study.comprehension_questions)
        if not form.is_valid():
            return bad_request(request, participant, "please answer every question")
        participant = services.comprehension_submit(participant=participant, answers=form.answers())
        return _away_to_platform(participant, Participant.Status.SCREENED_OUT)


class Trials(Page):
    name = sequence.PAGE_TRIALS

    def context(self, participant):
        gallery = selectors.reference_gallery(study=participant.study)
        participant = services.trial_mark_shown(participant=participant)
        return {
            "gallery": gallery,
            "trial": selectors.trial_current(participant=participant),
            "confidence_scale": CONFIDENCE_SCALE,
        }

    form = TrialAnswerForm

    def submit(self, request, participant):
        form = self.form(request.POST)
        if not form.is_valid():
            return bad_request(request, participant, form_errors_message(form))
        try:
            services.response_record(participant=participant, **form.cleaned_data)
        except services.InvalidAnswer as error:
            return bad_request(request, participant, str(error))


class Feedback(Page):
    name = sequence.PAGE_FEEDBACK

    def context(self, participant):
        return {"feedback": selectors.feedback_for(participant=participant)}

    def submit(self, request, participant):
        services.feedback_acknowledge(participant=participant)


class Questionnaire(Page):
    name = sequence.PAGE_QUESTIONNAIRE
    form = QuestionnaireForm

    def questionnaire(self, participant: Participant, data=None) -> QuestionnaireForm:
        return self.form(data, explanation_method=participant.condition.explanation_method)

    def context(self, participant):
        return {"form": self.questionnaire(participant)}

    def submit(self, request, participant):
        form = self.questionnaire(participant, data=request.POST)
        if not form.is_valid():
            context = {"study": participant.study, "participant": participant, "form": form}
            return render(request, self.template, context, status=400)
        participant = services.questionnaire_submit(
            participant=participant, answers=form.cleaned_data
        )
        destination = services.completion_url(participant=participant)
        # With a debrief, the completion page shows it with the link back to the platform.
        if (
            participant.page == sequence.PAGE_COMPLETE
            and destination
            and not participant.study.debrief_text
        ):
            return redirect(destination)
        return None


class Ending(Page):
    """A page that ends the participation: the way back to the platform, and nothing to
    submit."""

    def context(self, participant):
        return {
            "completion_url": services.completion_url(participant=participant),
            "mturk_submit": selectors.mturk_submission_for(participant=participant),
        }


class Complete(Ending):
    name = sequence.PAGE_COMPLETE


class Declined(Ending):
    name = sequence.PAGE_DECLINED


class ScreenedOut(Ending):
    name = sequence.PAGE_SCREENED_OUT


class TimedOut(Page):
    name = sequence.PAGE_TIMED_OUT


PAGES: dict[str, Page] = {
    page.name: page
    for page in (
        Consent(),
        Instructions(),
        Comprehension(),
        Trials(),
        Feedback(),
        Questionnaire(),
        Complete(),
        Declined(),
        ScreenedOut(),
        TimedOut(),
    )
}
