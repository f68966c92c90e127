"""Property-based fuzzing of the researcher endpoints, the study file and the commands that
take input (create_study, import_cub, precompute): numeric edge values (non-finite, huge,
negative, other scripts' digits), nesting and long strings reach every field. No server
error or traceback, a clear message, and nothing saved changed.

Run with `-s` to see how many requests, files and command runs were fuzzed.
"""

import itertools
import json
import string
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explain_engine.models import Explanation, ImageSet, PrecomputeJob
from study.models import Study
from tests.study.conftest import make_study, report_line

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
OTHER_SCRIPTS_DIGITS = ["\u0663", "\u096f", "\uff13", "\U0001d7d1", "\u0c69", "\u00b2"]
EDGE_STRINGS = [
    "", "1", "0", "-1", "live", "pilot", "closed", "yes", "no", "true", "gradcam", "sag",
    "inf", "-inf", "nan", "1e400", "9" * 400, "9" * 5000, "\x00", "a" * 10000,
    "[" * 3000 + "]" * 3000, "Walk Bad Slug!", "../../etc/passwd", "<script>",
] + OTHER_SCRIPTS_DIGITS  # fmt: skip
texts = st.one_of(st.sampled_from(EDGE_STRINGS), st.text(max_size=30))
COUNTS = Counter()
FIELDS = set()  # (view, field) pairs posted


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    yield
    report_line(
        request,
        f"researcher fuzzing: {COUNTS['requests']} requests over {len(FIELDS)} "
        f"(view, field) pairs; {COUNTS['study_files']} study files, "
        f"{COUNTS['imports']} imports, {COUNTS['precompute']} precompute runs; "
        f"{COUNTS['server_errors']} server errors",
    )


def _studies_state() -> list:
    return [
        model_to_dict(study, exclude=["owners", "excluded_studies"])
        for study in Study.objects.order_by("pk")
    ]


@pytest.fixture
def owned(classifier, django_user_model):
    owner = django_user_model.objects.create_user(
        username="owner", password="a-long-password", is_superuser=True, is_staff=True
    )
    study = make_study(classifier, slug="fuzzed", launch=False)
    study.owners.add(owner)
    return owner, study


def test_researcher_posts_of_anything_never_fail_on_the_server(client, owned):
    owner, study = owned
    client.force_login(owner)
    job = PrecomputeJob.objects.create(
        classifier=study.classifier, methods=[{"method": "gradcam", "params": {}}], image_ids=[]
    )
    views = {
        reverse("researcher-launch", args=[study.slug]): ["status"],
        reverse("researcher-show-accuracy", args=[study.slug]): ["show"],
        reverse("researcher-reconcile-prolific", args=[study.slug]): ["submissions"],
        reverse("researcher-job-retry", args=[job.pk]): ["method"],
        reverse("researcher-prolific-approve-list", args=[study.slug]): ["state"],
        reverse("researcher-prolific-approve", args=[study.slug]): ["state"],
        reverse("researcher-prolific-transition", args=[study.slug]): [
            "state",
            "submission_id",
            "action",
            "message",
            "rejection_category",
        ],
        reverse("researcher-prolific-token"): ["token"],
        reverse("researcher-preview", args=[study.slug]): ["condition"],
        reverse("researcher-simulated-delete", args=[study.slug]): ["confirm", "reason"],
    }
    uploads = st.one_of(
        st.none(),
        st.binary(max_size=300),
        st.text(max_size=300),
        # Files a researcher might really pick: not UTF-8, not CSV, a header only, huge rows.
        st.sampled_from(
            [
                b"\xff\xfe\x00P",
                b"Participant id,Status\n\xc3\x28,APPROVED",
                b"\x00" * 20,
                b"Participant id,Status\n" + b"x" * 200_000 + b",APPROVED\n",
                ("Participant id,Status\n" + "p,APPROVED\n" * 5000).encode(),
                b'"' * 10000,
            ]
        ),
    )

    @FUZZ
    @given(
        url=st.sampled_from(sorted(views)),
        form=st.dictionaries(
            st.sampled_from(
                [
                    "status",
                    "show",
                    "method",
                    "submissions",
                    "state",
                    "action",
                    "token",
                    "condition",
                    "confirm",
                    "reason",
                    "x",
                ]
            ),
            texts | st.lists(texts, min_size=2, max_size=3),
            max_size=3,
        ),
        upload=uploads,
    )
    def post_anything(url, form, upload):
        before = _studies_state()
        jobs_before = list(PrecomputeJob.objects.values())
        data = dict(form)
        if upload is not None:
            content = upload.encode() if isinstance(upload, str) else upload
            data["submissions"] = SimpleUploadedFile("export.csv", content, "text/csv")
        response = client.post(url, data)
        COUNTS["requests"] += 1
        for name in data:
            FIELDS.add((url, name))
        COUNTS["server_errors"] += response.status_code >= 500
        assert response.status_code < 500
        if response.status_code >= 400:
            assert _studies_state() == before
            assert list(PrecomputeJob.objects.values()) == jobs_before

    post_anything()
    # Each view's own fields with every edge value, besides what was drawn above.
    outcomes = Counter()
    for url, fields in views.items():
        for name, value in itertools.product(fields, EDGE_STRINGS):
            outcomes[client.post(url, {name: value}).status_code // 100] += 1
            COUNTS["requests"] += 1
            FIELDS.add((url, name))
    assert 5 not in outcomes
    assert sum(outcomes.values()) == sum(map(len, views.values())) * len(EDGE_STRINGS)


def test_login_and_dashboard_queries_of_anything_never_fail(client, owned):
    owner, study = owned
    login = reverse("researcher-login")
    dashboard = reverse("researcher-study", args=[study.slug])

    @FUZZ
    @given(
        credentials=st.fixed_dictionaries({}, optional={"username": texts, "password": texts}),
        query=st.dictionaries(
            st.sampled_from(["include_pilot", "include_excluded", "exclude", "x", "condition"]),
            texts,
            max_size=3,
        ),
    )
    def anything(credentials, query):
        answered = client.post(login, credentials)
        COUNTS["requests"] += 1
        FIELDS.update((login, name) for name in credentials)
        assert answered.status_code in (200, 302)
        client.force_login(owner)
        page = client.get(dashboard, query)
        plot = client.get(
            reverse("researcher-analysis-plot", args=[study.slug, "accuracy_by_condition"]),
            query,
        )
        COUNTS["requests"] += 2
        FIELDS.update((dashboard, name) for name in query)
        assert page.status_code in (200, 400) and plot.status_code in (200, 400, 404)
        client.logout()

    anything()


# A study file: every key, in its table, with sensible values or edge values.
BASE_FILE = {
    "slug": "fuzz-file",
    "title": "Fuzzed",
    "classifier": "tiny-classifier",
    "platform": "prolific",
    "participants_per_condition": 10,
    "items": {"per_class": 1},
    "texts": {"consent": "ok", "instructions": "ok"},
    "conditions": [{"name": "none"}],
}
KEYS = {
    "": [
        "slug", "title", "description", "classifier", "question_type", "platform",
        "participants_per_condition", "time_limit_minutes", "owners", "comprehension_max_attempts",
    ],
    "items": ["classes", "per_class", "ai_wrong_share", "training", "attention", "seed"],
    "texts": ["consent", "consent_version", "instructions", "debrief"],
    "completion_codes": ["completed", "no_consent", "failed_comprehension"],
    "exclusion_rules": [
        "max_failed_attention_checks", "min_median_response_ms", "max_same_answer_share",
    ],
    "conditions": [
        "name", "method", "params", "show_ai_prediction", "show_ai_confidence", "quota",
    ],
    "comprehension": ["question", "choices", "answer"],
}  # fmt: skip
EDGE_TOML_VALUES = [
    "inf", "-inf", "nan", "9223372036854775807", "-9223372036854775808", "0", "-1",
    "1e308", "1.7976931348623157e308", "5e-324", "100000000000", "0.5", "true",
    '"Walk Bad Slug!"', '"' + "x" * 5000 + '"', '"\u0663"', '"\\u0000"', "[]", "[[[[[1]]]]]",
    "{}", '{ a = { b = { c = 1 } } }', "[" * 300 + "]" * 300, '"gradcam"', '"sag"',
    '["California Gull"]', '[1, 2, 3]', '{ steps = inf }', '{ "n_masks" = 9223372036854775807 }',
] + [f'"{digit}"' for digit in OTHER_SCRIPTS_DIGITS]  # fmt: skip


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


class Raw(str):
    """A TOML value written as is (edge values TOML spells its own way: inf, nan)."""


TABLES = ("items", "texts", "completion_codes", "exclusion_rules")
TABLE_ARRAYS = ("conditions", "comprehension")


def _line(key, value) -> str:
    return f"{key} = {value if isinstance(value, Raw) else _toml(value)}"


def _study_file(table: dict) -> str:
    def is_table(key, value):
        return (key in TABLES and isinstance(value, dict)) or (
            key in TABLE_ARRAYS
            and isinstance(value, list)
            and all(isinstance(entry, dict) for entry in value)
        )

    lines = [_line(key, value) for key, value in table.items() if not is_table(key, value)]
    for key, value in table.items():
        if is_table(key, value) and isinstance(value, dict):
            lines += [f"[{key}]"] + [_line(k, v) for k, v in value.items()]
        elif is_table(key, value):
            for entry in value:
                lines += [f"[[{key}]]"] + [_line(k, v) for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def _with(table: dict, where: str, key: str, value) -> dict:
    table = json.loads(json.dumps(table))
    if where == "":
        table[key] = value
    elif where in TABLE_ARRAYS:
        if not isinstance(table.get(where), list) or not table[where]:
            table[where] = [{}]
        table[where][0][key] = value
    else:
        if not isinstance(table.get(where), dict):
            table[where] = {}
        table[where][key] = value
    return table


def _create(path, text: str) -> str:
    """'ok', or 'refused' with a clear message and nothing saved."""
    path.write_text(text)
    before = Study.objects.count()
    COUNTS["study_files"] += 1
    try:
        call_command("create_study", "--from", str(path))
    except CommandError as error:
        assert str(error).strip() and "\n" not in str(error).strip()
        assert Study.objects.count() == before
        return "refused"
    Study.objects.exclude(slug="fuzzed").delete()
    return "ok"


def test_any_study_file_gives_a_study_or_a_clear_error_and_nothing_half_saved(classifier, tmp_path):
    path = tmp_path / "study.toml"
    places = [(where, key) for where, keys in KEYS.items() for key in keys]
    values = st.one_of(
        st.sampled_from(EDGE_TOML_VALUES).map(Raw),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.text(alphabet=string.ascii_letters + string.digits + "-_ ", max_size=12),
        st.lists(st.text(alphabet=string.ascii_letters, max_size=6), max_size=3),
        st.just("tiny-classifier"),
    )

    @FUZZ
    @given(
        changes=st.lists(st.tuples(st.sampled_from(places), values), max_size=6),
        garbage=st.one_of(
            st.just(""), st.text(max_size=20), st.sampled_from(["a = " + "[" * 5000])
        ),
    )
    def create_from(changes, garbage):
        table = BASE_FILE
        for (where, key), value in changes:
            table = _with(table, where, key, value)
        _create(path, _study_file(table) + garbage)

    create_from()
    # Then every key with every edge value, the rest of the file sensible.
    outcomes = Counter(
        _create(path, _study_file(_with(BASE_FILE, where, key, Raw(value))))
        for (where, key), value in itertools.product(places, EDGE_TOML_VALUES)
    )
    assert sum(outcomes.values()) == len(places) * len(EDGE_TOML_VALUES)
    assert outcomes["refused"] > 0
    assert _create(path, "a = " + "[" * 5000 + "]" * 5000) == "refused"


def test_import_cub_with_damaged_index_files_is_a_clear_error(birds_copy):
    original = {name: (birds_copy / name).read_text() for name in ("images.txt", "classes.txt")}
    names = itertools.count()
    edge_lines = [
        "1 " + "9" * 400, "9" * 5000 + " a/b.jpg", "inf a/b.jpg", "-1 a/b.jpg",
        "\u0663 001.Gull/x.jpg", "1 ../../../etc/passwd", "1 " + "a/" * 3000 + "x.jpg",
        "nan nan", "1\x00 x",
    ]  # fmt: skip

    @FUZZ
    @given(
        name=st.sampled_from(sorted(original)),
        line=st.one_of(
            st.text(alphabet=string.printable, max_size=40), st.sampled_from(edge_lines)
        ),
        at=st.integers(0, 5),
    )
    def import_damaged(name, line, at):
        lines = original[name].splitlines()
        lines.insert(at, line)
        (birds_copy / name).write_text("\n".join(lines) + "\n")
        before = ImageSet.objects.count()
        COUNTS["imports"] += 1
        try:
            call_command("import_cub", str(birds_copy), "--name", f"fuzzed-{next(names)}")
        except CommandError as error:
            assert str(error).strip()
            assert ImageSet.objects.count() == before
        finally:
            (birds_copy / name).write_text(original[name])

    import_damaged()


def test_precompute_with_any_parameters_is_a_job_or_a_clear_error(classifier, monkeypatch):
    from study.management.commands.precompute import Command

    # The checks and the recorded job are what is fuzzed; running a job is tested elsewhere.
    monkeypatch.setattr(Command, "_run_in_process", lambda self, job, fit: None)
    params_texts = st.one_of(
        st.sampled_from(
            [
                "[" * 3000 + "]" * 3000,
                '{"a":' * 5000 + "1" + "}" * 5000,
                '{"gradcam": {"x": 1}}',
                '{"gradcam": []}',
                '{"gradcam": {"layer": "' + "x" * 5000 + '"}}',
                '{"igos": {"steps": 1e400}}',
                '{"igos": {"steps": NaN}}',
                '{"igos": {"steps": ' + "9" * 5000 + "}}",
                '{"igos": {"steps": -1}}',
                '{"igos": {"steps": 9223372036854775808}}',
                '{"sag": {"beam_width": 1e300}}',
                "[]",
                "1",
                "null",
                "",
            ]
        ),
        st.text(max_size=30),
    )

    @FUZZ
    @given(
        methods=st.lists(
            st.sampled_from(["gradcam", "igos", "sag", "xnn", "nope", "\u0663"]),
            min_size=1,
            max_size=2,
        ),
        params=params_texts,
        batch_size=st.sampled_from(
            [None, "0", "-1", "1", "9" * 30, "9223372036854775808", "\u0663", "1e3"]
        ),
    )
    def run(methods, params, batch_size):
        before = (PrecomputeJob.objects.count(), Explanation.objects.count())
        arguments = ["--classifier", classifier.name, "--methods", *methods, "--params", params]
        if batch_size is not None:
            arguments += ["--batch-size", batch_size]
        COUNTS["precompute"] += 1
        try:
            call_command("precompute", *arguments)
        except CommandError as error:
            assert str(error).strip()
            assert (PrecomputeJob.objects.count(), Explanation.objects.count()) == before

    run()
