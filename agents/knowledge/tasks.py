"""The knowledge base's task: a document processed by `manage.py worker` (django-tasks' database backend, the same
queue on SQLite and PostgreSQL). The task body is the service; the queue only decides where and when it runs."""
from django_tasks import task

from agents.knowledge.services import document_process


@task()
def document_process_task(*, document_id: str) -> None:
    document_process(document_id=document_id)
