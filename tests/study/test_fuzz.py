"""Property-based fuzzing of the participant endpoints: whatever arrives, no server error,
and a refused request changes nothing that is saved."""

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study.models import Participant, PlatformIdentity, Response, Study
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = [
    "page", "consent", "trial_position", "answer", "confidence", "client_response_ms",
    "viewport", "interactions", "q0", "age_band", "gender", "bird_experience", "trust_ai",
    "explanation_helpfulness", "comments",
]  # fmt: skip
PAGES = ["consent", "instructions", "comprehension", "trials", "feedback", "questionnaire"]
texts = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(["", "yes", "no", "0", "1", "5", "[]", "[{}]", '[{"event": 1}]', "nan"]),
    st.text(min_size=5000, max_size=6000),
)
# Forms of every page with each field either sensible or anything at all, so fuzzing gets
# past the first missing field into the parsing and the services.
FULL_FORMS = {
    "consent": {"consent": ["yes", "no"]},
    "comprehension": {"q0": ["0", "1"]},
    "trials": {
        "trial_position": ["0", "1", "2"],
        "answer": ["yes"],
        "confidence": ["1", "3", "5"],
        "client_response_ms": ["1200", ""],
        "viewport": ["390x844"],
        "interactions": ["[]", '[{"event": "heatmap_hidden", "t_ms": 5}]'],
    },
}


def _full_form(page: str):
    fields = FULL_FORMS.get(page, {})
    return st.fixed_dictionaries(
        {"page": st.just(page)},
        optional={name: st.sampled_from(values) | texts for name, values in fields.items()},
    )


forms = (
    st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), texts, max_size=8)
    | st.builds(
        lambda page, extra: {"page": page, **extra},
        st.sampled_from(PAGES),
        st.dictionaries(st.sampled_from(FIELDS), texts, max_size=7),
    )
    | st.sampled_from(PAGES).flatmap(_full_form)
)


def _saved_state(study: Study) -> list:
    participants = [
        model_to_dict(p) for p in Participant.objects.filter(study=study).order_by("pk")
    ]
    responses = [model_to_dict(r) for r in Response.objects.filter(participant__study=study)]
    return [participants, sorted(responses, key=lambda r: r["id"])]


def _walk_to(client, study, page: str, pid: str) -> str:
    url = client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": pid, "STUDY_ID": "s", "SESSION_ID": "x"},
    )["Location"]
    steps = {
        "consent": [],
        "comprehension": [{"page": "consent", "consent": "yes"}, {"page": "instructions"}],
        "trials": [
            {"page": "consent", "consent": "yes"},
            {"page": "instructions"},
            {"page": "comprehension", "q0": "1"},
        ],
    }
    for form in steps[page]:
        client.post(url, form)
    return url


@pytest.fixture
def fuzz_study(classifier):
    return make_study(
        classifier,
        slug="fuzz",
        n_items=2,
        n_training=1,
        comprehension_questions=[
            {"question": "Birds?", "choices": ["no", "yes"], "answer": 1},
        ],
    )


@pytest.mark.parametrize("page", ["consent", "comprehension", "trials"])
def test_any_post_on_any_page_is_answered_without_a_server_error(client, fuzz_study, page):
    url = _walk_to(client, fuzz_study, page, pid=f"fuzz-{page}")

    @FUZZ
    @given(form=forms)
    def post_anything(form):
        before = _saved_state(fuzz_study)
        response = client.post(url, form)
        assert response.status_code in (200, 302, 400), response.status_code
        if response.status_code == 400:
            assert _saved_state(fuzz_study) == before

    post_anything()


def test_any_entry_query_is_answered_without_a_server_error_and_refusals_save_nothing(
    client, fuzz_study
):
    entry = reverse("study:entry", args=[fuzz_study.slug])

    @FUZZ
    @given(
        query=st.dictionaries(
            st.sampled_from(["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "x", "assignmentId"]),
            texts,
            max_size=4,
        )
    )
    def enter_with(query):
        before = PlatformIdentity.objects.count()
        response = client.get(entry, {**query, "js": "1"})
        assert response.status_code in (302, 400, 403, 409, 410, 429), response.status_code
        if response.status_code != 302:
            assert PlatformIdentity.objects.count() == before

    enter_with()


def test_any_participant_code_or_file_id_is_not_found(client, fuzz_study):
    @FUZZ
    @given(code=st.text(min_size=1, max_size=60), file_id=st.uuids())
    def probe(code, file_id):
        for name, args in [
            ("study:participant", [fuzz_study.slug, code]),
            ("study:image", [fuzz_study.slug, code, file_id]),
            ("study:explanation", [fuzz_study.slug, code, file_id]),
        ]:
            try:
                url = reverse(name, args=args)
            except Exception:  # a code the URL pattern cannot even express
                continue
            assert client.get(url).status_code == 404

    probe()
