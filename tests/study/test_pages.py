"""The participant's pages as declared: every page the server can point a participant to
has its class and its template, and the main line runs in the declared order."""

import pytest
from django.template.loader import get_template

from study.flow import sequence
from study.flow.pages import PAGES

ALL_PAGE_NAMES = {
    value
    for name, value in vars(sequence).items()
    if name.startswith("PAGE_") and name != "PAGE_SEQUENCE"
}


def test_every_page_name_has_a_page_class_and_its_template():
    assert set(PAGES) == ALL_PAGE_NAMES
    for name in sorted(ALL_PAGE_NAMES):
        page = PAGES[name]
        assert page.name == name
        get_template(page.template)


@pytest.mark.parametrize(
    ("questions", "expected"),
    [
        ([], ["consent", "instructions", "trials", "questionnaire", "complete"]),
        (
            [{"question": "q", "choices": ["a", "b"], "answer": 0}],
            ["consent", "instructions", "comprehension", "trials", "questionnaire", "complete"],
        ),
    ],
)
def test_the_main_line_leaves_out_comprehension_only_without_questions(questions, expected):
    class Study:
        comprehension_questions = questions

    class Participant:
        study = Study()

    walked = [sequence.PAGE_SEQUENCE[0]]
    while walked[-1] != sequence.PAGE_COMPLETE:
        walked.append(sequence.page_after(walked[-1], Participant()))
    assert walked == expected
