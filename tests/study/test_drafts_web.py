"""A study created, edited, exported and deleted on the web from its study file, checked by
the code `create_study --from FILE` runs. `researcher_owner` creates and owns the draft;
`researcher_a` is staff and sees it but may not change it."""

# ruff: noqa: F811 (demo_like is a fixture imported from test_study_file, then requested)
import html

import pytest
from django.urls import reverse

from explain_engine.models import Prediction
from study.models import Study, StudyItem
from tests.study.conftest import make_study
from tests.study.test_study_file import EXAMPLE, demo_like  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

NEW = reverse("researcher-study-new")


def test_a_study_file_pasted_on_the_web_creates_the_draft(
    client,
    demo_like,
    researcher_owner,
    researcher_a,
):
    client.force_login(researcher_owner)
    text = EXAMPLE.read_text()
    response = client.post(NEW, {"text": text})
    assert response.status_code == 302
    study = Study.objects.get(slug="gulls-from-file")
    assert response["Location"] == reverse("researcher-study", args=[study.slug])
    assert study.source_toml == text and study.status == "draft"
    assert {u.username for u in study.owners.all()} == {"researcher", "researcher_owner"}
    assert study.items.filter(role=StudyItem.Role.MAIN).count() == 8
    download = client.get(reverse("researcher-study-file", args=[study.slug]))
    assert download.content.decode() == text
    assert 'filename="gulls-from-file.toml"' in download["Content-Disposition"]
    dashboard = client.get(response["Location"]).content.decode()
    assert "Edit the study file" in dashboard and "Warning:" not in dashboard
    assert "Completion code for Prolific: <code>C1GULLS</code>" in dashboard
    client.force_login(researcher_a)
    assert client.get(reverse("researcher-study-edit", args=[study.slug])).status_code == 403


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('slug = "gulls-from-file"', 'slug = "Walk Bad Slug!"', "slug: &#x27;Walk Bad Slug!&#x27;"),
        ("per_class = 2", 'per_class = "two"', "items.per_class: expected an integer"),
        ("[texts]", "[texts]\nconsent = 1", "is not valid TOML"),
    ],
)
def test_a_bad_study_file_is_refused_naming_the_key_and_saves_nothing(
    client,
    demo_like,
    researcher_owner,
    old,
    new,
    message,
):
    client.force_login(researcher_owner)
    predictions = Prediction.objects.count()
    response = client.post(NEW, {"text": EXAMPLE.read_text().replace(old, new, 1)})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Study.objects.exists() and Prediction.objects.count() == predictions
    assert client.get(reverse("researcher-home")).status_code == 200


def test_editing_a_draft_re_creates_it_and_a_bad_edit_changes_nothing(
    client,
    demo_like,
    researcher_owner,
):
    client.force_login(researcher_owner)
    text = EXAMPLE.read_text()
    client.post(NEW, {"text": text})
    edit = reverse("researcher-study-edit", args=["gulls-from-file"])
    assert text in html.unescape(client.get(edit).content.decode())
    bad = text.replace("per_class = 2", "per_class = 0")
    response = client.post(edit, {"text": bad})
    assert response.status_code == 400 and "items.per_class" in response.content.decode()
    assert Study.objects.get().source_toml == text
    confounded = text.replace(
        'method = "igospp"\nshow_ai_prediction = false',
        'method = "igospp"\nshow_ai_prediction = true',
    )
    assert confounded != text
    changed = confounded.replace('title = "Which gull is it?"', 'title = "Which gull, again?"')
    response = client.post(edit, {"text": changed})
    assert response.status_code == 302
    study = Study.objects.get()
    assert study.title == "Which gull, again?" and study.source_toml == changed
    dashboard = client.get(response["Location"]).content.decode()
    assert "Warning: conditions differ in whether they show the AI&#x27;s answer" in dashboard


def test_only_a_draft_is_edited_or_deleted_and_deleting_asks_for_the_slug(
    client, classifier, researcher_owner
):
    draft = make_study(classifier, launch=False, owners=[researcher_owner], slug="draft")
    live = make_study(classifier, owners=[researcher_owner], slug="live")
    client.force_login(researcher_owner)
    assert client.get(reverse("researcher-study-edit", args=[live.slug])).status_code == 409
    delete = reverse("researcher-study-delete", args=[live.slug])
    client.post(delete, {"confirm": "live"})
    assert Study.objects.filter(slug="live").exists()
    delete = reverse("researcher-study-delete", args=[draft.slug])
    assert client.post(delete, {"confirm": "drat"}).status_code == 400
    assert client.post(delete, {"confirm": "Bad Slug!"}).status_code == 400
    assert Study.objects.filter(slug="draft").exists()
    assert client.post(delete, {"confirm": "draft"})["Location"] == reverse("researcher-home")
    assert not Study.objects.filter(slug="draft").exists()
    # Made in code, not from a file: nothing to download.
    assert client.get(reverse("researcher-study-file", args=[live.slug])).status_code == 404
