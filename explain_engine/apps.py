from django.apps import AppConfig


class ExplainEngineConfig(AppConfig):
    name = "explain_engine"
    verbose_name = "Explanation engine"
