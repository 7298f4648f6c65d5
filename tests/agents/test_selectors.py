"""The spec a turn runs: development follows edits, versions are frozen, and specs are built once."""
import pytest

from agents.selectors import agent_spec_get, spec_cache
from agents.services import version_publish
from config.api.errors import NotFound

pytestmark = pytest.mark.django_db


def test_development_follows_edits_and_versions_stay_frozen(demo_project):
    version = version_publish(project=demo_project, name="v1")
    demo_project.document["settings"]["fallbackMessage"] = "Edited."
    demo_project.save()

    development, dev_id = agent_spec_get(project=demo_project, version="development")
    production, prod_id = agent_spec_get(project=demo_project, version="production")
    pinned, pinned_id = agent_spec_get(project=demo_project, version=version.id)

    assert (dev_id, prod_id, pinned_id) == ("development", version.id, version.id)
    assert development.fallback_message == "Edited."
    assert production.fallback_message.startswith("Sorry, I didn't understand that.")
    assert pinned is production


def test_a_spec_is_built_once_per_definition(demo_project, django_assert_num_queries):
    version = version_publish(project=demo_project)
    first, _ = agent_spec_get(project=demo_project, version=version.id)

    with django_assert_num_queries(0):
        again, _ = agent_spec_get(project=demo_project, version=version.id)
        development, _ = agent_spec_get(project=demo_project)
        assert agent_spec_get(project=demo_project)[0] is development
    assert again is first

    spec_cache.clear()
    assert agent_spec_get(project=demo_project, version=version.id)[0] is not first


@pytest.mark.parametrize("version", ["production", "ver_missing"])
def test_unknown_versions_are_not_found(demo_project, version):
    with pytest.raises(NotFound):
        agent_spec_get(project=demo_project, version=version)


def test_a_version_of_another_project_is_not_found(demo_project, other_project):
    theirs = version_publish(project=other_project)
    with pytest.raises(NotFound):
        agent_spec_get(project=demo_project, version=theirs.id)
