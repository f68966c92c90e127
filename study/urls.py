from django.urls import path

from study.flow import views as participant_views

app_name = "study"

urlpatterns = [
    path("<slug:slug>/", participant_views.entry, name="entry"),
    path("<slug:slug>/p/<slug:code>/", participant_views.participant_page, name="participant"),
    path(
        "<slug:slug>/p/<slug:code>/image/<slug:token>/",
        participant_views.participant_image,
        name="image",
    ),
    path(
        "<slug:slug>/p/<slug:code>/explanation/<slug:token>/",
        participant_views.participant_explanation,
        name="explanation",
    ),
    path(
        "<slug:slug>/p/<slug:code>/comparison/<slug:token>/",
        participant_views.participant_comparison,
        name="comparison",
    ),
]
