"""No request a client can send makes a 5xx: schemathesis generates requests from the served OpenAPI document
(valid and invalid bodies, odd user ids) and sends them to a real daphne process."""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def test_generated_requests_never_cause_a_server_error(daphne_url, project_key, developer_token, demo_project):
    schema = schemathesis.openapi.from_url(f"{daphne_url}/api/schema/?format=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # the six conversation endpoints, the stream resume (GET) and stop, the project chat and its stream, the
    # knowledge base's six, the Project Management API's other 22 (projects 6, workflows 3, tools 2, variables 1,
    # versions 3, API keys 3, templates 2, generate, import) and the public Project API's two; the v2 API's
    # conversations (list, create, get, delete, messages list and post, stream: 7), files (list, upload, download)
    # and data frames (list, slice): 5
    assert len(operations) == 52
    # v2 paths name the demo agent in its tenant, so that they reach its conversations (not only 404s)
    v2_agent = {"tenant": demo_project.workspace.slug, "aid": demo_project.id}

    for operation in operations:
        # The Project Management API (and the project chat) takes a developer token (a project key only ever gets
        # its 403), on the demo project — except its deletion, which is sent random ids (404), so that the other
        # operations still have a project to work on.
        management = operation.path.startswith("/api/v1/projects")
        on_demo = management and not (operation.method.upper() == "DELETE"
                                      and operation.path == "/api/v1/projects/{project_id}")
        fuzz(operation, daphne_url, developer_token if management else project_key,
             demo_project.id if on_demo else None, v2_agent if operation.path.startswith("/tenants/") else None)


def fuzz(operation, daphne_url: str, key: str, project_id: str | None, path_values: dict | None = None) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case):
        if project_id and case.path_parameters is not None:
            case.path_parameters["project_id"] = project_id
        if path_values and case.path_parameters is not None:
            case.path_parameters.update(path_values)
        response = case.call(base_url=daphne_url, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
        if response.status_code >= 400:
            body = response.json()
            assert set(body) >= {"error", "code"}, body

    check()
