"""The power plan page: a draft's design simulated from the dashboard."""

import pytest

from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

ASK = {
    "baseline": "0.4",
    "difference": "0.3",
    "ability_sd": "1",
    "item_sd": "0.5",
    "inattentive_share": "0.05",
    "sims": "10",
    "max_n": "8",
}


def test_the_draft_dashboard_links_the_plan_and_the_plan_shows_power(
    client, classifier, researcher_owner
):
    study = make_study(classifier, launch=False, n_items=6, owners=[researcher_owner])
    client.force_login(researcher_owner)
    dashboard = client.get(f"/researcher/studies/{study.slug}/")
    assert f'href="/researcher/studies/{study.slug}/plan/"' in dashboard.content.decode()
    empty = client.get(f"/researcher/studies/{study.slug}/plan/")
    assert empty.status_code == 200 and "Participants per condition" not in empty.content.decode()
    page = client.get(f"/researcher/studies/{study.slug}/plan/", ASK)
    assert page.status_code == 200
    html = page.content.decode()
    assert "none vs gradcam" in html and "+30.0 pp" in html
    assert "Participants per condition for 80% power" in html


def test_plan_input_is_checked_and_others_studies_are_hidden(
    client, classifier, researcher_owner, researcher_b
):
    study = make_study(classifier, launch=False, owners=[researcher_owner])
    client.force_login(researcher_owner)
    url = f"/researcher/studies/{study.slug}/plan/"
    assert client.get(url, {**ASK, "baseline": "2"}).status_code == 400
    assert client.get(url, {**ASK, "sims": "100000"}).status_code == 400
    partial = client.get(url, {**ASK, "accuracy_none": "0.5"})
    assert partial.status_code == 400
    assert "Give an accuracy for every condition" in partial.content.decode()
    client.force_login(researcher_b)
    assert client.get(url, ASK).status_code == 404
