"""Browser bots walk whole studies: every question type, every condition, every platform.

One bot reads whichever page it is on (the hidden `page` field names it) and does what a
careful participant does there, checking what is shown; afterwards the test checks what was
stored. Studies have practice trials with feedback, an attention check and a comprehension
question, so every page of the flow is visited.

The MTurk bot works inside a frame of a page served as workersandbox.mturk.com (Playwright
answers for that host), as a worker sees it: preview first, then accept, then the study, and
the final form posted to the sandbox's externalSubmit, which the test captures.
"""

from urllib.parse import parse_qs

import pytest

from study.design.question_types import QUESTION_TYPES, attention_check_choice
from study.flow.services import trial_correct_answer
from study.models import Participant, Response, Study, StudyItem
from tests.study.conftest import make_study

PROLIFIC_HOST = "https://app.prolific.com/"
MTURK_SANDBOX = "https://workersandbox.mturk.com"
COMPREHENSION = [
    {"question": "What will you be asked?", "choices": ["The weather", "About birds"], "answer": 1}
]


def _study(request, question_type, platform, slug):
    # The comparative question needs SAG pairs with clear confidence gaps: a trained model.
    fixture = "trained_classifier" if question_type == "sag_comparative" else "classifier"
    classifier = request.getfixturevalue(fixture)
    return make_study(
        classifier,
        slug=slug,
        platform=platform,
        per_condition=2,
        n_items=3,
        question_type=question_type,
        n_training=1,
        n_attention=1,
        comprehension_questions=COMPREHENSION,
    )


def _walk(frame, participant: Participant) -> list[str]:
    """Answer every page until the study is over; returns the pages seen, in order.

    Main trials are answered right at even positions and wrong at odd ones (the right
    answer comes from the server's own rule), so stored correctness is checked both ways.
    """
    seen = []
    shows_explanation = bool(participant.condition.explanation_method)
    for _ in range(60):
        marker = frame.locator("input[name=page]")
        if marker.count() == 0:
            return seen
        page_name = marker.first.get_attribute("value")
        seen.append(page_name)
        if page_name == "consent":
            _submit(frame, "I agree, continue")
        elif page_name == "instructions":
            _submit(frame, "Start")
        elif page_name == "comprehension":
            frame.locator("input[name=q0][value='1']").check()
            _submit(frame, "Check my answers")
        elif page_name == "trials":
            _answer_trial(frame, participant, shows_explanation)
        elif page_name == "feedback":
            assert frame.locator("text=The right answer is").count() == 1
            comparison = QUESTION_TYPES[participant.study.question_type].needs_comparison
            assert frame.locator("img").count() == 1 + shows_explanation + comparison
            _submit(frame, "Continue")
        elif page_name == "questionnaire":
            for name, value in [
                ("age_band", "25-34"),
                ("gender", "no answer"),
                ("bird_experience", "none"),
                ("trust_ai", "4"),
            ]:
                frame.locator(f"input[name={name}][value='{value}']").check()
            if shows_explanation:
                frame.locator("input[name=explanation_helpfulness][value='6']").check()
            frame.get_by_role("button", name="Finish").click()
            return seen
        else:
            raise AssertionError(f"unexpected page {page_name!r}")
    raise AssertionError(f"the study did not end: {seen}")


def _submit(frame, button: str) -> None:
    with frame.expect_navigation():
        frame.get_by_role("button", name=button).click()


def _answer_trial(frame, participant: Participant, shows_explanation: bool) -> None:
    frame.wait_for_selector("#trial-form[data-painted=true]")
    participant.refresh_from_db()
    item = StudyItem.objects.select_related("image").get(
        pk=participant.trial_item_ids[participant.trial_position]
    )
    study = participant.study
    question_type = QUESTION_TYPES[study.question_type]
    shows_comparison = question_type.needs_comparison
    expected_images = 1 + shows_explanation + shows_comparison
    assert frame.locator(".stimulus-image").count() == expected_images
    ai_answer = frame.locator(".ai-answer")
    assert ai_answer.count() == (1 if question_type.shows_ai_prediction else 0)
    if item.role == StudyItem.Role.ATTENTION:
        choices = question_type.choices(classifier=study.classifier)
        answer = attention_check_choice(item=item, choices=choices).value
        assert "Attention check" in frame.locator("legend").first.inner_text()
    else:
        right = trial_correct_answer(study=study, item=item)
        values = [
            radio.get_attribute("value") for radio in frame.locator("input[name=answer]").all()
        ]
        answer = (
            right
            if participant.trial_position % 2 == 0
            else next(value for value in values if value != right)
        )
    frame.locator(f"input[name=answer][value='{answer}']").check()
    if item.role == StudyItem.Role.ATTENTION:
        assert frame.locator("input[name=confidence]").count() == 0  # none asked
    else:
        frame.locator("input[name=confidence][value='3']").check()
    with frame.expect_navigation():
        frame.get_by_role("button", name="Next").click()


def _check_stored(participant: Participant) -> None:
    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    responses = Response.objects.filter(participant=participant).select_related("item")
    assert responses.count() == len(participant.trial_item_ids)
    for response in responses:
        is_attention = response.item.role == StudyItem.Role.ATTENTION
        assert response.confidence == (None if is_attention else 3)
        assert response.client_response_ms is not None and response.client_response_ms > 0
        assert response.viewport
        assert (response.explanation_shown_id is not None) == bool(
            participant.condition.explanation_method
        )
        if response.item.role == StudyItem.Role.ATTENTION:
            assert response.is_correct
        elif response.item.role == StudyItem.Role.MAIN:
            assert response.is_correct == (response.trial_position % 2 == 0)
        assert response.is_correct == (response.answer == response.correct_answer)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("question_type", sorted(QUESTION_TYPES))
def test_prolific_bots_complete_every_condition(browser, live_server, request, question_type):
    study = _study(request, question_type, Study.Platform.PROLIFIC, f"p-{question_type}")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.route(PROLIFIC_HOST + "**", lambda route: route.fulfill(body="prolific says thanks"))
    conditions = set()
    for index in range(study.conditions.count()):
        pid = f"prolific-{index}"
        page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=x")
        page.wait_for_url("**/p/**")  # the entry page's script admits the browser
        participant = Participant.objects.get(platform_identity__worker_id=pid)
        conditions.add(participant.condition.name)
        seen = _walk(page, participant)
        page.wait_for_url(PROLIFIC_HOST + "**")
        assert "cc=C0DE42" in page.url
        assert seen[:3] == ["consent", "instructions", "comprehension"]
        assert "feedback" in seen and seen[-1] == "questionnaire"
        _check_stored(participant)
    assert conditions == set(study.conditions.values_list("name", flat=True))
    context.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("question_type", sorted(QUESTION_TYPES))
def test_mturk_bots_preview_accept_and_submit_inside_the_frame(
    browser, live_server, request, question_type
):
    study = _study(request, question_type, Study.Platform.MTURK, f"m-{question_type}")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    def mturk(route):
        request = route.request
        if request.url.startswith(MTURK_SANDBOX + "/mturk/externalSubmit"):
            route.fulfill(body="HIT submitted")
        else:
            # The worker's HIT page: our study in an ExternalQuestion frame.
            src = request.url.split("frame=", 1)[1]
            route.fulfill(
                content_type="text/html",
                body=f'<iframe id="hit" src="{src}" style="width:100%;height:860px"></iframe>',
            )

    page.route(MTURK_SANDBOX + "/**", mturk)
    conditions = set()
    for index in range(study.conditions.count()):
        worker = f"WORKER{index}"
        entry = f"{live_server.url}/s/{study.slug}/?hitId=HIT1&workerId={worker}"
        before = Participant.objects.filter(study=study).count()
        page.goto(f"{MTURK_SANDBOX}/hit?frame={entry}&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")
        preview = page.frame_locator("#hit").locator("text=Accept the HIT to start")
        preview.wait_for()
        assert Participant.objects.filter(study=study).count() == before

        accepted = f"{entry}&assignmentId=ASSIGN{index}&turkSubmitTo={MTURK_SANDBOX}"
        page.goto(f"{MTURK_SANDBOX}/hit?frame={accepted}")
        inner = page.frame(url=lambda url: url.startswith(live_server.url))
        inner.wait_for_selector("input[name=page]", state="attached")
        participant = Participant.objects.get(platform_identity__worker_id=worker)
        conditions.add(participant.condition.name)
        seen = _walk(inner, participant)
        assert seen[0] == "consent" and seen[-1] == "questionnaire"
        inner.wait_for_selector("text=Submit the HIT")
        with page.expect_request(MTURK_SANDBOX + "/mturk/externalSubmit") as submit:
            inner.get_by_role("button", name="Submit the HIT").click()
        form = parse_qs(submit.value.post_data)
        assert form["assignmentId"] == [f"ASSIGN{index}"]
        assert form["completion_code"] == ["C0DE42"]
        _check_stored(participant)
    assert conditions == set(study.conditions.values_list("name", flat=True))
    context.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("question_type", sorted(QUESTION_TYPES))
def test_open_link_bots_complete_every_condition(browser, live_server, request, question_type):
    study = _study(request, question_type, Study.Platform.OPEN, f"o-{question_type}")
    conditions = set()
    for _ in range(study.conditions.count()):
        # A lab's open link carries no ids: each participant is a fresh browser session.
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        before = set(Participant.objects.filter(study=study).values_list("pk", flat=True))
        page.goto(f"{live_server.url}/s/{study.slug}/")
        page.wait_for_url("**/p/**")  # the entry page's script admits the browser
        participant = Participant.objects.filter(study=study).exclude(pk__in=before).get()
        conditions.add(participant.condition.name)
        seen = _walk(page, participant)
        page.wait_for_selector("text=You may close this page")
        assert seen[-1] == "questionnaire"
        _check_stored(participant)
        context.close()
    assert conditions == set(study.conditions.values_list("name", flat=True))
