from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path

from explain_engine import views as engine_views
from study.researcher import (
    draft_views,
    monitor_views,
    plan_views,
    preview_views,
    prolific_views,
    run_views,
)
from study.researcher import views as researcher_views


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("s/", include("study.urls")),
    path(
        "researcher/login/",
        auth_views.LoginView.as_view(template_name="researcher/login.html"),
        name="researcher-login",
    ),
    path("researcher/logout/", auth_views.LogoutView.as_view(), name="researcher-logout"),
    path("researcher/", researcher_views.study_list, name="researcher-home"),
    path("researcher/studies/new/", draft_views.study_new, name="researcher-study-new"),
    path(
        "researcher/studies/<slug:slug>/edit/",
        draft_views.study_edit,
        name="researcher-study-edit",
    ),
    path(
        "researcher/studies/<slug:slug>/study.toml",
        draft_views.study_file_download,
        name="researcher-study-file",
    ),
    path(
        "researcher/studies/<slug:slug>/delete",
        draft_views.study_delete,
        name="researcher-study-delete",
    ),
    path(
        "researcher/studies/<slug:slug>/",
        researcher_views.study_dashboard,
        name="researcher-study",
    ),
    path(
        "researcher/studies/<slug:slug>/analysis/<slug:name>.svg",
        researcher_views.study_analysis_plot,
        name="researcher-analysis-plot",
    ),
    path(
        "researcher/studies/<slug:slug>/launch",
        researcher_views.study_launch,
        name="researcher-launch",
    ),
    path(
        "researcher/studies/<slug:slug>/show-accuracy",
        researcher_views.study_show_accuracy,
        name="researcher-show-accuracy",
    ),
    path(
        "researcher/studies/<slug:slug>/responses.csv",
        researcher_views.study_export_csv,
        name="researcher-export",
    ),
    path(
        "researcher/studies/<slug:slug>/lifecycle",
        run_views.study_lifecycle,
        name="researcher-lifecycle",
    ),
    path(
        "researcher/studies/<slug:slug>/simulated/delete",
        run_views.study_simulated_delete,
        name="researcher-simulated-delete",
    ),
    path(
        "researcher/studies/<slug:slug>/quota",
        run_views.study_quota,
        name="researcher-quota",
    ),
    path(
        "researcher/studies/<slug:slug>/participants/",
        monitor_views.participant_monitor_page,
        name="researcher-participants",
    ),
    path(
        "researcher/studies/<slug:slug>/participants/exclusion",
        monitor_views.participant_exclusion,
        name="researcher-participant-exclusion",
    ),
    path(
        "researcher/studies/<slug:slug>/participants/withdraw",
        monitor_views.participant_withdrawal,
        name="researcher-participant-withdraw",
    ),
    path(
        "researcher/studies/<slug:slug>/plan/",
        plan_views.study_plan_page,
        name="researcher-plan",
    ),
    path(
        "researcher/studies/<slug:slug>/preview",
        preview_views.study_preview,
        name="researcher-preview",
    ),
    path(
        "researcher/studies/<slug:slug>/precompute",
        preview_views.study_precompute,
        name="researcher-precompute",
    ),
    path(
        "researcher/studies/<slug:slug>/jobs/<int:job_id>/",
        preview_views.study_job,
        name="researcher-study-job",
    ),
    path("researcher/jobs/", engine_views.job_list, name="researcher-jobs"),
    path("researcher/jobs/<int:job_id>/", engine_views.job_detail, name="researcher-job"),
    path(
        "researcher/jobs/<int:job_id>/retry/",
        engine_views.job_retry_failed,
        name="researcher-job-retry",
    ),
    path(
        "researcher/studies/<slug:slug>/export.zip",
        researcher_views.study_export_zip,
        name="researcher-export-zip",
    ),
    path(
        "researcher/studies/<slug:slug>/reconcile-prolific",
        researcher_views.study_reconcile_prolific,
        name="researcher-reconcile-prolific",
    ),
    path(
        "researcher/studies/<slug:slug>/prolific/approve-list.txt",
        prolific_views.prolific_approve_list,
        name="researcher-prolific-approve-list",
    ),
    path(
        "researcher/studies/<slug:slug>/prolific/approve",
        prolific_views.prolific_approve,
        name="researcher-prolific-approve",
    ),
    path(
        "researcher/studies/<slug:slug>/prolific/transition",
        prolific_views.prolific_transition,
        name="researcher-prolific-transition",
    ),
    path(
        "researcher/prolific-token/",
        prolific_views.prolific_token_page,
        name="researcher-prolific-token",
    ),
    path(
        "researcher/prolific-token/delete",
        prolific_views.prolific_token_remove,
        name="researcher-prolific-token-delete",
    ),
    path("admin/", admin.site.urls),
]
