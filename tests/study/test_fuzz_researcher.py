"""Property-based fuzzing of the researcher endpoints, the study file and the import
command: no server error or traceback, a clear message, and nothing saved changed."""

import itertools
import string

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explain_engine.models import ImageSet, PrecomputeJob
from study.models import Study
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "1", "0", "live", "pilot", "true", "gradcam", "-1", "9" * 30]),
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
    job = PrecomputeJob.objects.create(classifier=study.classifier, methods=[], image_ids=[])
    urls = [
        reverse("researcher-launch", args=[study.slug]),
        reverse("researcher-show-accuracy", args=[study.slug]),
        reverse("researcher-reconcile-prolific", args=[study.slug]),
        reverse("researcher-job-retry", args=[job.pk]),
    ]

    @FUZZ
    @given(
        index=st.integers(0, len(urls) - 1),
        form=st.dictionaries(
            st.sampled_from(["status", "show", "method", "submissions", "x"]), texts, max_size=3
        ),
        upload=st.one_of(
            st.none(),
            st.binary(max_size=300),
            st.text(max_size=300),
            # Files a researcher might really pick: not UTF-8, not CSV, a header only.
            st.sampled_from(
                [b"\xff\xfe\x00P", b"Participant id,Status\n\xc3\x28,APPROVED", b"\x00" * 20]
            ),
        ),
    )
    def post_anything(index, form, upload):
        before = _studies_state()
        data = dict(form)
        if upload is not None:
            content = upload.encode() if isinstance(upload, str) else upload
            data["submissions"] = SimpleUploadedFile("export.csv", content, "text/csv")
        response = client.post(urls[index], data)
        assert response.status_code < 500
        if response.status_code >= 400:
            assert _studies_state() == before

    post_anything()


def test_any_study_file_gives_a_study_or_a_clear_error_and_nothing_half_saved(classifier, tmp_path):
    keys = [
        "slug", "title", "classifier", "platform", "question_type", "classes", "items_per_class",
        "ai_wrong_share", "training_items", "attention_items", "seed", "time_limit_minutes",
        "completion_code", "participants_per_condition", "owners",
    ]  # fmt: skip
    values = st.one_of(
        st.integers(-5, 50),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.booleans(),
        st.text(alphabet=string.ascii_letters + string.digits + "-_ ", max_size=12),
        st.lists(st.text(alphabet=string.ascii_letters, max_size=6), max_size=3),
        st.just("tiny-classifier"),
    )
    tables = st.dictionaries(st.sampled_from(keys), values, max_size=8)

    def toml_value(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value + '"'
        if isinstance(value, list):
            return "[" + ", ".join(toml_value(item) for item in value) + "]"
        return repr(value)

    @FUZZ
    @given(table=tables, garbage=st.one_of(st.just(""), st.text(max_size=20)))
    def create_from(table, garbage):
        path = tmp_path / "study.toml"
        text = "\n".join(f"{key} = {toml_value(value)}" for key, value in table.items())
        path.write_text(text + "\n" + garbage)
        before = Study.objects.count()
        try:
            call_command("create_study", "--from", str(path))
        except CommandError as error:
            assert str(error).strip()
            assert Study.objects.count() == before
        else:
            Study.objects.exclude(slug="fuzzed").delete()

    create_from()


def test_import_cub_with_damaged_index_files_is_a_clear_error(birds_copy):
    original = {name: (birds_copy / name).read_text() for name in ("images.txt", "classes.txt")}
    names = itertools.count()

    @FUZZ
    @given(
        name=st.sampled_from(sorted(original)),
        line=st.text(alphabet=string.printable, max_size=40),
        at=st.integers(0, 5),
    )
    def import_damaged(name, line, at):
        lines = original[name].splitlines()
        lines.insert(at, line)
        (birds_copy / name).write_text("\n".join(lines) + "\n")
        before = ImageSet.objects.count()
        try:
            call_command("import_cub", str(birds_copy), "--name", f"fuzzed-{next(names)}")
        except CommandError as error:
            assert str(error).strip()
            assert ImageSet.objects.count() == before
        finally:
            (birds_copy / name).write_text(original[name])

    import_damaged()
