from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        import agents.knowledge.checks  # noqa: F401  (the knowledge base's system checks)
        import config.checks  # noqa: F401  (registers the project's system checks; config is not an app)
        from agents.knowledge.index import sqlite_vec_load

        # sqlite-vec in every SQLite connection (vector search); without it the knowledge base is lexical.
        connection_created.connect(sqlite_vec_load, dispatch_uid="conduet.sqlite_vec_load")
