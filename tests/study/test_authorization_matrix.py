"""Who may reach what: every URL pattern of the project against every persona.

The patterns are walked from the root resolver, so a new URL without a row here fails
`test_every_url_pattern_has_a_row`. Personas:

- `anonymous`: not logged in, no participant code.
- `participant_a`: in condition gradcam of the study, at the first trial; uses their own code.
- `participant_b`: in condition none of the same study, at the consent page; puts their own
  code into A's URLs (A's image, A's explanation).
- `researcher_b`: logged in, not staff, owns nothing.
- `researcher_owner`: logged in, not staff, owns the study.
- `staff`: `is_staff`, owns nothing, no model permissions: sees every study's researcher
  pages (not the jobs, which need `explain_engine.view_precomputejob`), changes none, and
  reaches the admin index but no model in it.
- `superuser`.

Participant URLs carry the participant's code, which is the participant's only credential;
personas without a code of their own use an unknown one. A refused request (to a login page,
400, 403, 404, 405) changes nothing in the database.
"""

import uuid

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from explain_engine.models import ConceptModel, PrecomputeJob
from study.flow.stimulus_tokens import stimulus_token, stimulus_url
from study.models import Participant, Study
from tests.study.conftest import make_study
from tests.study.test_participant_flow import answer_current_trial, enter, post

pytestmark = pytest.mark.django_db

PERSONAS = (
    "anonymous",
    "participant_a",
    "participant_b",
    "researcher_b",
    "researcher_owner",
    "staff",
    "superuser",
)
PARTICIPANTS = ("participant_a", "participant_b")
LOGGED_IN = ("researcher_b", "researcher_owner", "staff", "superuser")

# Expected outcomes besides plain status codes.
LOGIN = "login"  # 302 to the researcher login page
ADMIN_LOGIN = "admin-login"  # 302 to the admin login page
REFUSED = {LOGIN, ADMIN_LOGIN, 400, 403, 404, 405}


def walk(patterns, prefix=""):
    """(route, name) of every pattern, names with their namespace."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            namespace = f"{pattern.namespace}:" if pattern.namespace else ""
            for route, name in walk(pattern.url_patterns, prefix + str(pattern.pattern)):
                yield route, (namespace + name if name else None)
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern), pattern.name


def every(outcome, **overrides):
    """One outcome for every persona, except those named."""
    row = dict.fromkeys(PERSONAS, outcome)
    row.update(overrides)
    return row


def researcher_page(*, staff, owner=200, superuser=None):
    """A study page: login for those without an account, 404 for a study not theirs."""
    return every(
        LOGIN,
        researcher_b=404,
        researcher_owner=owner,
        staff=staff,
        superuser=staff if superuser is None else superuser,
    )


@pytest.fixture
def world(client, classifier, researcher_owner, researcher_b, researcher_a, django_user_model):
    study = make_study(classifier, owners=[researcher_owner], per_condition=5)
    codes = {}
    while len(codes) < 2:  # one participant in each condition
        url = enter(Client(), study, pid=f"pid-{uuid.uuid4().hex[:8]}")
        participant = Participant.objects.get(code=url.rstrip("/").rsplit("/", 1)[1])
        codes.setdefault(participant.condition.name, participant)
    a, b = codes["gradcam"], codes["none"]
    url_a = reverse("study:participant", args=[study.slug, a.code])
    participant_client = Client()
    post(participant_client, url_a, page="consent", consent="yes")
    post(participant_client, url_a, page="instructions")
    answer_current_trial(participant_client, url_a, a)  # one response; now at trial 2
    a.refresh_from_db()
    item = study.items.get(pk=a.trial_item_ids[a.trial_position])
    explanation = item.image.explanations.get(method="gradcam")
    superuser = django_user_model.objects.create_superuser(
        username="root", password="a-long-test-password"
    )
    Group.objects.create(name="researchers")
    ConceptModel.objects.create(
        classifier=classifier,
        classes=[0, 1],
        k=2,
        layer="features",
        params={},
        params_hash="0" * 64,
        file="concepts/none.pt",
        r2=0.5,
        argmax_agreement=0.5,
        fit_report={},
        prototypes={},
    )
    users = {
        "researcher_b": researcher_b,
        "researcher_owner": researcher_owner,
        "staff": researcher_a,
        "superuser": superuser,
    }
    return {
        "study": study,
        "a": a,
        "b": b,
        "image": item.image,
        "explanation": explanation,
        "job": PrecomputeJob.objects.get(),
        "users": users,
    }


def client_for(world, persona) -> Client:
    client = Client()
    if persona in world["users"]:
        client.force_login(world["users"][persona])
    return client


def code_for(world, persona) -> str:
    if persona == "participant_a":
        return world["a"].code
    if persona == "participant_b":
        return world["b"].code
    return "no-such-code"


def database_state():
    """Every row of every table but the sessions (a refused request may still touch the
    requester's own session)."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if model is not Session
    }


def outcome(response):
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith("/researcher/login/"):
            return LOGIN
        if location.startswith("/admin/login/"):
            return ADMIN_LOGIN
    return response.status_code


def participant_url(name, file=None):
    """A's URL, with the persona's own code in it (a stimulus keeps A's token)."""

    def build(world, persona):
        args = [world["study"].slug, code_for(world, persona)]
        if file is not None:
            kind = name.split(":")[1]
            args.append(
                stimulus_token(code=world["a"].code, kind=kind, public_id=world[file].public_id)
            )
        return reverse(name, args=args)

    return build


def own_stimulus_url(name, file):
    """The persona's own URL for A's stimulus: its code and the token made for it."""

    def build(world, persona):
        code = code_for(world, persona)
        return stimulus_url(
            study_slug=world["study"].slug,
            code=code,
            kind=name.split(":")[1],
            public_id=world[file].public_id,
        )

    return build


def study_url(name):
    return lambda world, persona: reverse(name, args=[world["study"].slug])


def job_url(name):
    return lambda world, persona: reverse(name, args=[world["job"].pk])


def study_job_url(name):
    return lambda world, persona: reverse(name, args=[world["study"].slug, world["job"].pk])


def plain_url(name):
    return lambda world, persona: reverse(name)


GET_ONLY_LOGGED_IN_405 = every(LOGIN, **dict.fromkeys(LOGGED_IN, 405))

# name: [(method, POST data, URL builder, expected outcome per persona)]
ROWS = {
    "healthz": [("get", None, plain_url("healthz"), every(200))],
    # Without the platform's parameters no one enters (and nothing is created).
    "study:entry": [("get", {"js": "1"}, study_url("study:entry"), every(400))],
    "study:participant": [
        (
            "get",
            None,
            participant_url("study:participant"),
            every(404, participant_a=200, participant_b=200),
        ),
        # A stale form (the page is not the participant's current one) changes nothing.
        (
            "post",
            {"page": "questionnaire"},
            participant_url("study:participant"),
            every(404, participant_a=302, participant_b=302),
        ),
        ("put", None, participant_url("study:participant"), every(405)),
    ],
    # Stimulus URLs are valid for one participant only: B may not use A's URL of a photo
    # both are shown, but reaches it by B's own.
    "study:image": [
        (
            "get",
            None,
            participant_url("study:image", "image"),
            every(404, participant_a=200),
        ),
        (
            "get",
            None,
            own_stimulus_url("study:image", "image"),
            every(404, participant_a=200, participant_b=200),
        ),
    ],
    # B (no explanations) may not fetch A's Grad-CAM with B's code, with A's token or B's.
    "study:explanation": [
        (
            "get",
            None,
            participant_url("study:explanation", "explanation"),
            every(404, participant_a=200),
        ),
        (
            "get",
            None,
            own_stimulus_url("study:explanation", "explanation"),
            every(404, participant_a=200),
        ),
    ],
    # Not a comparative study: there is no A/B picture for anyone (a SAG study's comparison
    # is served in tests/study/test_comparative.py).
    "study:comparison": [
        ("get", None, participant_url("study:comparison", "explanation"), every(404))
    ],
    "researcher-login": [("get", None, plain_url("researcher-login"), every(200))],
    "researcher-logout": [("get", None, plain_url("researcher-logout"), every(405))],
    "researcher-home": [
        ("get", None, plain_url("researcher-home"), every(LOGIN, **dict.fromkeys(LOGGED_IN, 200)))
    ],
    "researcher-study": [("get", None, study_url("researcher-study"), researcher_page(staff=200))],
    "researcher-analysis-plot": [
        (
            "get",
            None,
            lambda world, persona: reverse(
                "researcher-analysis-plot", args=[world["study"].slug, "accuracy_by_condition"]
            ),
            researcher_page(staff=200),
        )
    ],
    "researcher-launch": [
        # The owner's launch of a live study is refused with a message on the dashboard.
        (
            "post",
            {"status": "live"},
            study_url("researcher-launch"),
            researcher_page(owner=302, staff=403),
        ),
        ("get", None, study_url("researcher-launch"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-lifecycle": [
        (
            "post",
            {"action": "pause", "reason": "a fix"},
            study_url("researcher-lifecycle"),
            researcher_page(owner=302, staff=403),
        ),
        ("get", None, study_url("researcher-lifecycle"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-quota": [
        (
            "post",
            {"quota": "7"},
            study_url("researcher-quota"),
            researcher_page(owner=302, staff=403),
        ),
        ("get", None, study_url("researcher-quota"), GET_ONLY_LOGGED_IN_405),
    ],
    # A plan changes nothing: whoever sees the study may ask for one (the form, unasked).
    "researcher-plan": [("get", None, study_url("researcher-plan"), researcher_page(staff=200))],
    "researcher-participants": [
        ("get", None, study_url("researcher-participants"), researcher_page(staff=200))
    ],
    # No participant named: a 400 for the owner, nothing changed.
    "researcher-participant-exclusion": [
        (
            "post",
            {"decision": "exclude"},
            study_url("researcher-participant-exclusion"),
            researcher_page(owner=400, staff=403),
        ),
        ("get", None, study_url("researcher-participant-exclusion"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-participant-withdraw": [
        (
            "post",
            {"reason": "asked"},
            study_url("researcher-participant-withdraw"),
            researcher_page(owner=400, staff=403),
        ),
        ("get", None, study_url("researcher-participant-withdraw"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-study-new": [
        (
            "get",
            None,
            plain_url("researcher-study-new"),
            every(LOGIN, **dict.fromkeys(LOGGED_IN, 200)),
        )
    ],
    # The world's study is live: it is no longer edited (409) or deleted (a message).
    "researcher-study-edit": [
        ("get", None, study_url("researcher-study-edit"), researcher_page(owner=409, staff=403))
    ],
    # Made in code, not from a study file: nothing to download.
    "researcher-study-file": [
        ("get", None, study_url("researcher-study-file"), researcher_page(owner=404, staff=404))
    ],
    "researcher-study-delete": [
        (
            "post",
            {},
            study_url("researcher-study-delete"),
            researcher_page(owner=400, staff=403),
        ),
        ("get", None, study_url("researcher-study-delete"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-show-accuracy": [
        (
            "post",
            {"show": "yes"},
            study_url("researcher-show-accuracy"),
            researcher_page(owner=302, staff=403),
        ),
        ("get", None, study_url("researcher-show-accuracy"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-export": [
        ("get", None, study_url("researcher-export"), researcher_page(staff=200))
    ],
    "researcher-export-zip": [
        ("get", None, study_url("researcher-export-zip"), researcher_page(staff=200))
    ],
    "researcher-reconcile-prolific": [
        # No file uploaded: a 400 that names the problem, for those who see the study.
        (
            "post",
            {},
            study_url("researcher-reconcile-prolific"),
            researcher_page(owner=400, staff=400),
        ),
        ("get", None, study_url("researcher-reconcile-prolific"), GET_ONLY_LOGGED_IN_405),
    ],
    # No condition chosen: a 400 naming the field, for whoever sees the study (a preview
    # changes nothing of it, so staff may start one too).
    "researcher-preview": [
        ("post", {}, study_url("researcher-preview"), researcher_page(owner=400, staff=400)),
        ("get", None, study_url("researcher-preview"), GET_ONLY_LOGGED_IN_405),
    ],
    # The owner starts (or is shown the unfinished) precompute job of the study.
    "researcher-precompute": [
        (
            "post",
            {},
            study_url("researcher-precompute"),
            researcher_page(owner=302, staff=403),
        ),
        ("get", None, study_url("researcher-precompute"), GET_ONLY_LOGGED_IN_405),
    ],
    # Deleting the study's simulated participants: owners only; an empty form (no slug
    # typed) is a 400 that deletes nothing.
    "researcher-simulated-delete": [
        (
            "post",
            {},
            study_url("researcher-simulated-delete"),
            researcher_page(owner=400, staff=403),
        ),
        ("get", None, study_url("researcher-simulated-delete"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-study-job": [
        ("get", None, study_job_url("researcher-study-job"), researcher_page(staff=200))
    ],
    # The approve list and the calls to Prolific carry a reconciliation's signed state:
    # without it, a 400 for those who may; sending to Prolific is for owners only.
    "researcher-prolific-approve-list": [
        (
            "post",
            {},
            study_url("researcher-prolific-approve-list"),
            researcher_page(owner=400, staff=400),
        ),
        ("get", None, study_url("researcher-prolific-approve-list"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-prolific-approve": [
        (
            "post",
            {},
            study_url("researcher-prolific-approve"),
            researcher_page(owner=400, staff=403),
        ),
        ("get", None, study_url("researcher-prolific-approve"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-prolific-transition": [
        (
            "post",
            {"action": "APPROVE"},
            study_url("researcher-prolific-transition"),
            researcher_page(owner=400, staff=403),
        ),
        ("get", None, study_url("researcher-prolific-transition"), GET_ONLY_LOGGED_IN_405),
    ],
    # Each researcher's own token: the page for everyone logged in; an empty form is a 400.
    "researcher-prolific-token": [
        (
            "get",
            None,
            plain_url("researcher-prolific-token"),
            every(LOGIN, **dict.fromkeys(LOGGED_IN, 200)),
        ),
        (
            "post",
            {},
            plain_url("researcher-prolific-token"),
            every(LOGIN, **dict.fromkeys(LOGGED_IN, 400)),
        ),
    ],
    # Removing one's own token (none stored here: nothing changes).
    "researcher-prolific-token-delete": [
        (
            "post",
            {},
            plain_url("researcher-prolific-token-delete"),
            every(LOGIN, **dict.fromkeys(LOGGED_IN, 302)),
        ),
        ("get", None, plain_url("researcher-prolific-token-delete"), GET_ONLY_LOGGED_IN_405),
    ],
    "researcher-jobs": [
        (
            "get",
            None,
            plain_url("researcher-jobs"),
            every(LOGIN, researcher_b=403, researcher_owner=403, staff=403, superuser=200),
        )
    ],
    "researcher-job": [
        (
            "get",
            None,
            job_url("researcher-job"),
            every(LOGIN, researcher_b=403, researcher_owner=403, staff=403, superuser=200),
        )
    ],
    "researcher-job-retry": [
        (
            "post",
            {},
            job_url("researcher-job-retry"),
            every(LOGIN, researcher_b=403, researcher_owner=403, staff=403, superuser=302),
        ),
        ("get", None, job_url("researcher-job-retry"), every(405)),
    ],
}

ADMIN_MODEL_ACTIONS = ("changelist", "add", "change", "delete", "history")


def admin_row(route: str, name: str | None, world) -> tuple[str, dict] | None:
    """(URL, expected outcomes) of an admin pattern; None when no rule here covers it.

    Non-staff users are sent to the admin's login page like anonymous visitors; staff
    without permissions reach the index and their own password, and are refused every
    model; a superuser reaches everything. Each registered model's pages are covered by one
    rule, so registering a model adds rows without editing this file."""
    staff = every(ADMIN_LOGIN, staff=200, superuser=200)
    if name in ("admin:index", "admin:password_change", "admin:password_change_done"):
        return reverse(name), staff
    if name == "admin:jsi18n":
        return reverse(name), staff
    if name == "admin:login":  # staff are already in: sent on to the index
        return reverse(name), every(200, staff=302, superuser=302)
    if name == "admin:logout":  # logging out is a POST; others are sent to the index
        return reverse(name), every(302, staff=405, superuser=405)
    if name == "admin:autocomplete":  # without a field to complete
        return reverse(name), every(ADMIN_LOGIN, staff=403, superuser=403)
    if name == "admin:app_list":  # staff see no app they have no permission in
        return reverse(name, args=["study"]), every(ADMIN_LOGIN, staff=404, superuser=200)
    if name == "admin:view_on_site":  # a study has no public page of its own
        study = world["study"]
        content_type = ContentType.objects.get_for_model(Study)
        url = reverse(name, args=[content_type.pk, study.pk])
        return url, every(ADMIN_LOGIN, staff=404, superuser=404)
    if route == "admin/(?P<url>.*)$":
        return "/admin/no-such-page/", every(ADMIN_LOGIN, staff=404, superuser=404)
    parts = route.split("/")
    if len(parts) < 4 or not admin.site.is_registered(apps.get_model(parts[1], parts[2])):
        return None
    model = apps.get_model(parts[1], parts[2])
    obj = model.objects.order_by("pk").first()
    assert obj is not None, f"the world needs a {model._meta.label} for its admin pages"
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}_"
    refused = every(ADMIN_LOGIN, staff=403, superuser=200)
    if name == f"{prefix}changelist" or name == f"{prefix}add":
        return reverse(name), refused
    if name in [prefix + action for action in ADMIN_MODEL_ACTIONS] or name == (
        "admin:auth_user_password_change"
    ):
        return reverse(name, args=[obj.pk]), refused
    if name is None and route.endswith("/<path:object_id>/"):  # old URLs: on to the change page
        url = f"/admin/{parts[1]}/{parts[2]}/{obj.pk}/"
        return url, every(ADMIN_LOGIN, staff=302, superuser=302)
    return None


def all_routes():
    return list(walk(get_resolver().url_patterns))


def test_every_url_pattern_has_a_row(world):
    uncovered = [
        (route, name)
        for route, name in all_routes()
        if not route.startswith("admin/")
        and name not in ROWS
        or route.startswith("admin/")
        and admin_row(route, name, world) is None
    ]
    assert uncovered == []
    assert set(ROWS) <= {name for _, name in all_routes()}


def requests_of_the_matrix(world):
    for route, name in all_routes():
        if route.startswith("admin/"):
            url, expected = admin_row(route, name, world)
            yield route, "get", None, (lambda world, persona, url=url: url), expected
        else:
            for method, data, build, expected in ROWS[name]:
                yield route, method, data, build, expected


def test_every_persona_gets_exactly_its_status_and_refusals_change_nothing(world):
    study = world["study"]
    study.show_accuracy = True  # the analysis plot is there to be refused or served
    study.save(update_fields=["show_accuracy"])
    clients = {persona: client_for(world, persona) for persona in PERSONAS}  # logged in now
    wrong, changed = [], []
    state = database_state()
    for _route, method, data, build, expected in requests_of_the_matrix(world):
        for persona in PERSONAS:
            url = build(world, persona)
            response = getattr(clients[persona], method)(url, data or {})
            got = outcome(response)
            if got != expected[persona]:
                wrong.append(
                    f"{method.upper()} {url} as {persona}: {got}, expected {expected[persona]}"
                )
            after = database_state()
            if got in REFUSED and after != state:
                changed.append(f"{method.upper()} {url} as {persona} ({got}) changed the database")
            state = after
    assert not wrong, "\n".join(wrong)
    assert not changed, "\n".join(changed)
