from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        import config.checks  # noqa: F401  (registers the project's system checks; config is not an app)
