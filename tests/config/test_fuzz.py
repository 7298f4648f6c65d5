"""No request a client can send makes a 5xx: schemathesis generates requests from the served OpenAPI document
(valid and invalid bodies, odd user ids) and sends them to a real daphne process."""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


def test_generated_requests_never_cause_a_server_error(daphne_url, project_key):
    schema = schemathesis.openapi.from_url(f"{daphne_url}/api/schema/?format=json")
    headers = {"Authorization": f"Bearer {project_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8  # the six endpoints, the stream resume (GET) and stop

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(base_url=daphne_url, headers=headers)
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
            if response.status_code >= 400:
                body = response.json()
                assert set(body) >= {"error", "code"}, body

        check()
