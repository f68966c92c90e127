"""Property-based fuzzing of the participant endpoints: every page as the participant's
current page (consent, instructions, comprehension, a practice, main and attention trial
of each question type, the comparison trial, feedback, questionnaire), every field of it
with numeric edge values (non-finite, huge, negative, other scripts' digits), deep or huge
JSON, long strings and repeated keys. Whatever arrives: no server error, and a refused
request changes nothing that is saved.

Run with `-s` to see how many requests and fields were fuzzed.
"""

import string
from collections import Counter
from urllib.parse import quote

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study.models import Participant, PlatformIdentity, Response, StudyItem
from tests.study.conftest import make_study, report_line

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
OTHER_SCRIPTS_DIGITS = ["\u0663", "\u096f", "\uff13", "\U0001d7d1", "\u0c69", "\u0e53", "\u00b2"]
EDGE_NUMBERS = [
    "inf", "-inf", "Infinity", "nan", "NaN", "1e400", "-1e400", "1e-400", "9" * 400,
    "-" + "9" * 400, "9" * 5000, "-1", "0", "1", "3", "5", "6", "2147483648",
    "9223372036854775808", "-9223372036854775809", "1.5", "3.0", "0x10", "1_000", " 3 ",
    "3\x00", "+3", "--3", "3e0",
] + OTHER_SCRIPTS_DIGITS  # fmt: skip
EDGE_JSON = [
    "[" * 3000 + "]" * 3000,
    '{"a":' * 5000 + "1" + "}" * 5000,
    "[" * 100000,
    '[{"event": "heatmap_shown", "ms": 1e400}]',
    '[{"event": "heatmap_shown", "ms": NaN}]',
    '[{"event": "heatmap_shown", "ms": -1}]',
    '[{"event": "heatmap_shown", "ms": ' + "9" * 5000 + "}]",
    '[{"event": "heatmap_shown", "ms": 1.5}]',
    '[{"event": "x", "ms": 1}]',
    "[" + ",".join(['{"event": "heatmap_shown", "ms": 1}'] * 300) + "]",
    "[" + "1," * 50000 + "1]",
    '"' + "x" * 50000 + '"',
    "{}", "[]", "null", "true", "1", "[{}]", "[[]]", '{"event": "heatmap_shown", "ms": 1}',
    "\ufeff[]", "[1,]", "[\x00]",
]  # fmt: skip
EDGE_TEXTS = ["", "yes", "no", "\x00", "a" * 10000, "\u00e9" * 3000, "<script>", "' OR 1=1 --"]
edge_values = st.sampled_from(EDGE_NUMBERS + EDGE_JSON + EDGE_TEXTS)
anything = st.one_of(
    edge_values,
    st.text(max_size=50),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats().map(repr),
    st.text(min_size=1, max_size=100).map(lambda text: text * 100),  # long, cheap to draw
)
# A list of values posts the field more than once (the last one wins in Django's QueryDict).
fuzzed = st.one_of(anything, st.lists(anything, min_size=2, max_size=3))

QUESTIONNAIRE_VALID = {
    "age_band": ["25-34", "no answer"],
    "gender": ["no answer", "woman"],
    "bird_experience": ["some"],
    "trust_ai": ["1", "7"],
    "explanation_helpfulness": ["4"],
    "comments": ["", "Nice birds."],
}
COUNTS = Counter()
FIELDS = set()


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    report_line(
        request,
        f"participant fuzzing: {COUNTS['requests']} requests, {len(FIELDS)} distinct "
        f"fields on {len({page for page, _ in FIELDS})} pages, "
        f"{COUNTS['edge_values']} edge values, {COUNTS['server_errors']} server errors",
    )


@pytest.fixture(autouse=True)
def _no_entry_limit(settings):
    settings.EXPLAINSTUDY_ENTRY_RATE_LIMIT = 10**6


def _saved_state(study) -> list:
    participants = list(Participant.objects.filter(study=study).order_by("pk").values())
    responses = list(Response.objects.filter(participant__study=study).order_by("pk").values())
    return [participants, responses]


def _valid_step(participant: Participant, client, url) -> dict:
    """A form that moves the participant on from where they are."""
    page = participant.page
    if page == "consent":
        return {"page": page, "consent": "yes"}
    if page == "comprehension":
        questions = participant.study.comprehension_questions
        return {"page": page, **{f"q{i}": str(q["answer"]) for i, q in enumerate(questions)}}
    if page == "trials":
        trial = client.get(url).context["trial"]
        form = {"page": page, "trial_position": trial.position, "answer": trial.choices[0].value}
        if trial.item.role != "attention":  # an attention check asks no confidence
            form["confidence"] = "3"
        return form
    return {"page": page}


def _walk_to(client, study, page: str, role: str | None = None, pid: str = "fuzz") -> str:
    url = client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": pid, "STUDY_ID": "s", "SESSION_ID": "x"},
    )["Location"]
    participant = Participant.objects.get(platform_identity__worker_id=pid)
    for _ in range(40):
        participant.refresh_from_db()
        here = participant.page == page
        if here and role is not None:
            item = StudyItem.objects.get(pk=participant.trial_item_ids[participant.trial_position])
            here = item.role == role
        if here:
            return url
        assert client.post(url, _valid_step(participant, client, url)).status_code == 302
    raise AssertionError(f"never reached {page} ({role})")


def _page_fields(participant: Participant, client, url) -> dict[str, list[str]]:
    """Each field the page posts, with values that pass its checks."""
    page = participant.page
    if page == "consent":
        return {"consent": ["yes", "no"]}
    if page == "comprehension":
        questions = participant.study.comprehension_questions
        return {f"q{i}": [str(q["answer"]), "0"] for i, q in enumerate(questions)}
    if page == "trials":
        trial = client.get(url).context["trial"]
        return {
            "trial_position": [str(trial.position)],
            "answer": [choice.value for choice in trial.choices],
            "confidence": ["1", "3", "5"],
            "client_response_ms": ["1200", "1234.5", ""],
            "viewport": ["390x844", ""],
            "interactions": ["[]", '[{"event": "heatmap_hidden", "ms": 5}]'],
        }
    if page == "questionnaire":
        return QUESTIONNAIRE_VALID
    return {}


def _fuzz_current_page(client, study, url, page: str) -> None:
    participant = Participant.objects.get(platform_identity__worker_id="fuzz")
    assert participant.page == page
    fields = _page_fields(participant, client, url)
    start_row = Participant.objects.filter(pk=participant.pk).values().get()
    forms = st.fixed_dictionaries(
        {"page": st.sampled_from([page, page, page, "trials", "consent", "x" * 300])},
        optional={
            **{name: st.sampled_from(values) | fuzzed for name, values in fields.items()},
            "extra": fuzzed,
        },
    )

    def post(form) -> int:
        before = _saved_state(study)
        response = client.post(url, form)
        COUNTS["requests"] += 1
        FIELDS.update((page, name) for name in form)
        if response.status_code >= 500:
            COUNTS["server_errors"] += 1
        changed = response.status_code == 400 and _saved_state(study) != before
        # Back to the page under test for the next request, whatever this one did.
        Response.objects.filter(participant=participant).exclude(
            pk__in=[r["id"] for r in before[1]]
        ).delete()
        Participant.objects.filter(pk=participant.pk).update(
            **{k: v for k, v in start_row.items() if k != "id"}
        )
        return -1 if changed else response.status_code

    @FUZZ
    @given(form=forms)
    def post_anything(form):
        assert post(form) in (200, 302, 400)  # -1: a refusal that changed something saved

    post_anything()
    # Then each field with every edge value, the other fields valid: none is left out.
    valid = {"page": page, **{name: values[0] for name, values in fields.items()}}
    outcomes = Counter()
    for name in fields:
        for value in EDGE_NUMBERS + EDGE_JSON + EDGE_TEXTS:
            outcomes[post({**valid, name: value})] += 1
            COUNTS["edge_values"] += 1
    assert set(outcomes) <= {200, 302, 400}, outcomes
    assert sum(outcomes.values()) == len(fields) * len(EDGE_NUMBERS + EDGE_JSON + EDGE_TEXTS)
    assert client.get(url).status_code == 200


@pytest.fixture
def full_study(classifier):
    return make_study(
        classifier,
        slug="fuzz",
        n_items=2,
        n_training=1,
        n_attention=1,
        comprehension_questions=[
            {"question": "Birds?", "choices": ["no", "yes"], "answer": 1},
            {"question": "Planes?", "choices": ["no", "yes", "maybe"], "answer": 0},
        ],
    )


@pytest.mark.parametrize(
    ("page", "role"),
    [
        ("consent", None),
        ("instructions", None),
        ("comprehension", None),
        ("trials", StudyItem.Role.TRAINING),
        ("feedback", None),
        ("trials", StudyItem.Role.MAIN),
        ("trials", StudyItem.Role.ATTENTION),
        ("questionnaire", None),
    ],
)
def test_any_post_on_any_page_is_answered_without_a_server_error(client, full_study, page, role):
    url = _walk_to(client, full_study, page, role)
    _fuzz_current_page(client, full_study, url, page)


@pytest.mark.parametrize("question_type", ["predict_ai", "verify_ai"])
def test_any_answer_to_each_question_type_is_answered_without_a_server_error(
    client, classifier, question_type
):
    study = make_study(classifier, slug="fuzz-qt", question_type=question_type, n_items=2)
    url = _walk_to(client, study, "trials")
    _fuzz_current_page(client, study, url, "trials")


def test_any_answer_to_the_comparison_trial_is_answered_without_a_server_error(
    client, trained_classifier
):
    study = make_study(
        trained_classifier, slug="fuzz-compare", question_type="sag_comparative", n_items=2
    )
    url = _walk_to(client, study, "trials")
    trial = client.get(url).context["trial"]
    assert trial.comparison is not None
    _fuzz_current_page(client, study, url, "trials")


def test_any_entry_query_is_answered_without_a_server_error_and_refusals_save_nothing(
    client, full_study
):
    entry = reverse("study:entry", args=[full_study.slug])

    @FUZZ
    @given(
        query=st.dictionaries(
            st.sampled_from(
                ["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "x", "assignmentId", "workerId"]
            ),
            fuzzed,
            max_size=4,
        )
    )
    def enter_with(query):
        before = PlatformIdentity.objects.count()
        response = client.get(entry, {**query, "js": "1"})
        COUNTS["requests"] += 1
        assert response.status_code in (302, 400, 403, 409, 410, 429), response.status_code
        if response.status_code != 302:
            assert PlatformIdentity.objects.count() == before

    enter_with()


def test_any_participant_code_or_file_id_is_not_found(client, full_study):
    url_codes = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1)

    @FUZZ
    @given(code=url_codes, raw=st.text(min_size=1, max_size=60), file_id=st.uuids())
    def probe(code, raw, file_id):
        for name in ("study:image", "study:explanation", "study:comparison"):
            url = reverse(name, args=[full_study.slug, code, file_id])
            assert client.get(url).status_code == 404
        assert (
            client.get(reverse("study:participant", args=[full_study.slug, code])).status_code
            == 404
        )
        # Any text at all in the code's place: not a route, or no such participant.
        assert client.get(f"/s/{full_study.slug}/p/{quote(raw, safe='')}/").status_code == 404
        COUNTS["requests"] += 5

    probe()
