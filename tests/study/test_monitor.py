"""The participant monitor: every participant, filtered and sorted; a researcher's
exclusion, inclusion and withdrawal, each in the export and the study log.

`researcher_owner` owns the study and may change participants; `researcher_a` is staff and
sees the monitor but changes nothing.
"""

import pytest
from django.urls import reverse

from study.flow.entry import participant_enter
from study.flow.simulation import BotBehaviour, participants_simulate
from study.models import Participant, Response, StudyEvent, Withdrawal
from study.researcher.monitor import MonitorError, participant_exclusion_set, participant_monitor
from study.results.exclusions import participants_apply_exclusions
from study.results.rows import study_export_rows
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def watched(classifier, researcher_owner):
    """Six bots done (gradcam ones too fast, so excluded by the rules) and one still active."""
    study = make_study(
        classifier,
        owners=[researcher_owner],
        n_attention=1,
        exclusion_rules={"min_median_response_ms": 800},
    )
    participants_simulate(
        study=study,
        allow_live=True,
        n=6,
        behaviour_by_condition={"gradcam": BotBehaviour(accuracy=0.5, mean_response_ms=1)},
        default_behaviour=BotBehaviour(accuracy=0.8, mean_response_ms=5000),
    )
    participants_apply_exclusions(study=study)
    active = participant_enter(study=study, worker_id="still-here")
    return study, active


def test_the_monitor_shows_every_participant_and_filters_and_sorts(watched):
    study, active = watched
    everyone = participant_monitor(study=study)
    assert everyone.total == 7 and len(everyone.rows) == 7
    row = next(r for r in everyone.rows if r.participant.pk == active.pk)
    assert (row.trials_done, row.trials_total, row.attention_checks) == (0, 5, 0)
    done = [r for r in everyone.rows if r.participant.status == "completed"]
    assert len(done) == 6
    assert {(r.trials_done, r.trials_total, r.attention_checks) for r in done} == {(5, 5, 1)}
    excluded = participant_monitor(study=study, flag="excluded")
    # Excluded participants free their places, so gradcam got more of the bots.
    n_excluded = Participant.objects.filter(study=study, excluded=True).count()
    assert excluded.total == n_excluded >= 1
    assert {r.condition for r in excluded.rows} == {"gradcam"}
    assert all("median response time" in r.participant.exclusion_reasons[0] for r in excluded.rows)
    assert participant_monitor(study=study, status="active").total == 1
    assert participant_monitor(study=study, condition="none", status="completed").total == (
        6 - n_excluded
    )
    by_progress = participant_monitor(study=study, sort="progress")
    assert by_progress.rows[-1].participant.pk == active.pk
    assert participant_monitor(study=study, sort="started").rows[0].participant.pk == active.pk


def test_a_researcher_overrides_the_rules_with_a_reason_kept_in_export_and_log(
    watched, researcher_owner
):
    study, _ = watched
    kept = Participant.objects.filter(study=study, excluded=False, status="completed").first()
    fast = Participant.objects.filter(study=study, excluded=True).first()
    participant_exclusion_set(
        study=study,
        participant_id=kept.pk,
        decision="exclude",
        reason="said they guessed",
        actor=researcher_owner,
    )
    participant_exclusion_set(
        study=study, participant_id=fast.pk, decision="include", reason="slow network"
    )
    participants_apply_exclusions(study=study)  # as every export does: the overrides stay
    rows = {row["participant"]: row for row in study_export_rows(study=study)}
    assert rows[kept.pk]["participant_excluded"] == 1
    assert "excluded by a researcher: said they guessed" in rows[kept.pk]["exclusion_reasons"]
    assert rows[fast.pk]["participant_excluded"] == 0
    assert "included by a researcher: slow network" in rows[fast.pk]["exclusion_reasons"]
    participant_exclusion_set(study=study, participant_id=fast.pk, decision="", reason="")
    fast.refresh_from_db()
    assert fast.excluded and fast.exclusion_override == ""
    log = list(study.events.order_by("pk").values_list("action", "detail", "reason", "actor"))
    assert log == [
        (
            "exclude",
            {"participant": kept.pk, "condition": kept.condition.name},
            "said they guessed",
            researcher_owner.pk,
        ),
        ("include", {"participant": fast.pk, "condition": "gradcam"}, "slow network", None),
        ("rules_decide", {"participant": fast.pk, "condition": "gradcam"}, "", None),
    ]
    with pytest.raises(MonitorError, match="needs a reason"):
        participant_exclusion_set(
            study=study, participant_id=kept.pk, decision="include", reason=" "
        )
    with pytest.raises(MonitorError, match="no participant"):
        participant_exclusion_set(study=study, participant_id=10**9, decision="", reason="")


def test_the_monitor_page_changes_participants_for_owners_only(
    client, watched, researcher_owner, researcher_a
):
    study, active = watched
    page = reverse("researcher-participants", args=[study.slug])
    exclusion = reverse("researcher-participant-exclusion", args=[study.slug])
    withdraw = reverse("researcher-participant-withdraw", args=[study.slug])
    client.force_login(researcher_a)
    html = client.get(page, {"flag": "excluded"}).content.decode()
    n_excluded = Participant.objects.filter(study=study, excluded=True).count()
    assert html.count("<code title=") == n_excluded >= 1 and "Exclude</button>" not in html
    data = {"participant": active.pk, "decision": "exclude", "reason": "bot-like"}
    assert client.post(exclusion, data).status_code == 403
    client.force_login(researcher_owner)
    assert client.get(page, {"sort": "nonsense"}).status_code == 400
    assert client.post(exclusion, {**data, "reason": ""}).status_code == 400
    assert client.post(exclusion, {**data, "participant": "1e9"}).status_code == 400
    assert not StudyEvent.objects.exists()
    response = client.post(exclusion, {**data, "return_query": "flag=excluded"})
    assert response.status_code == 302 and response["Location"].endswith("?flag=excluded")
    active.refresh_from_db()
    assert active.excluded and active.exclusion_reasons == ["excluded by a researcher: bot-like"]
    assert client.post(withdraw, {"participant": active.pk}).status_code == 400  # no confirm
    answered = Participant.objects.filter(study=study, status="completed").first()
    n_answers = Response.objects.filter(participant=answered).count()
    response = client.post(
        withdraw, {"participant": answered.pk, "reason": "asked", "confirm": "on"}
    )
    assert response.status_code == 302
    assert not Participant.objects.filter(pk=answered.pk).exists()
    assert Withdrawal.objects.get().responses_deleted == n_answers
    assert study.events.filter(action="withdraw", reason="asked").count() == 1
    html = client.get(page).content.decode()
    assert "6 participant(s)" in html and "excluded by a researcher: bot-like" in html
    dashboard = client.get(reverse("researcher-study", args=[study.slug])).content.decode()
    assert "participant withdrawn" in dashboard and f'href="{page}"' in dashboard
