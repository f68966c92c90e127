"""The participant's pages, in order, by the names the server stores as its pointer
(`Participant.page`), and which page follows which. `study.flow.pages` declares what each
page shows and submits.

The main line runs consent, instructions, comprehension (only when the study asks
comprehension questions), trials, questionnaire, complete. Feedback follows a practice
trial and returns to the trials; declined, screened_out and timed_out are endings off the
main line.
"""

from study.models import Participant

PAGE_CONSENT = "consent"
PAGE_INSTRUCTIONS = "instructions"
PAGE_COMPREHENSION = "comprehension"
PAGE_TRIALS = "trials"
PAGE_FEEDBACK = "feedback"
PAGE_QUESTIONNAIRE = "questionnaire"
PAGE_COMPLETE = "complete"
PAGE_DECLINED = "declined"
PAGE_TIMED_OUT = "timed_out"
PAGE_SCREENED_OUT = "screened_out"
PAGE_SEQUENCE = (
    PAGE_CONSENT,
    PAGE_INSTRUCTIONS,
    PAGE_COMPREHENSION,
    PAGE_TRIALS,
    PAGE_QUESTIONNAIRE,
    PAGE_COMPLETE,
)


def page_applies(page: str, participant: Participant) -> bool:
    """Whether the main-line `page` is part of the participant's study."""
    return page != PAGE_COMPREHENSION or bool(participant.study.comprehension_questions)


def page_after(page: str, participant: Participant) -> str:
    """The main-line page that follows `page` for this participant (their study is read
    only when a page that may be left out comes next)."""
    following = PAGE_SEQUENCE[PAGE_SEQUENCE.index(page) + 1 :]
    return next(name for name in following if page_applies(name, participant))
