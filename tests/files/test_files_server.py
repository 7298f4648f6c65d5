"""The files upload on a real daphne process: the body is spooled by the ASGI handler and parsed by the upload handler
as it streams; a file over the limit is 413 with nothing stored, whether the body declares its length or is sent
chunked."""
import hashlib

import httpx
import pytest

from conversations.services import conversation_v2_create
from files.models import DataFrame, StoredFile

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024


def multipart(files: list[tuple[str, bytes]], boundary: str = "b0undary"):
    for name, data in files:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        for start in range(0, len(data), MIB):
            yield data[start: start + MIB]
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


@pytest.fixture
def url(daphne_url, demo_project):
    conversation = conversation_v2_create(agent=demo_project, name="live")
    return (f"{daphne_url}/tenants/{demo_project.workspace.slug}/api/v2/agents/{demo_project.id}/conversations/"
            f"{conversation.id}")


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_over_the_file_limit_is_413_with_nothing_stored(url, project_key, chunked):
    files = [("small.csv", b"a,b\n1,2\n"), ("big.bin", b"x" * (25 * MIB + 1))]
    body = multipart(files) if chunked else b"".join(multipart(files))
    with httpx.Client(timeout=120) as client:
        response = client.post(f"{url}/files", content=body,
                               headers={"Authorization": f"Bearer {project_key}",
                                        "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE" and "big.bin" in response.json()["error"]
    assert not StoredFile.objects.exists() and not DataFrame.objects.exists()


def test_a_malformed_multipart_body_gets_the_apis_json_error(url, project_key):
    """Not Twisted's bare 400: its own parsing of multipart bodies is off (config/api/body_limit.py)."""
    with httpx.Client(timeout=30) as client:
        response = client.post(f"{url}/files", content=b"--b0undary--\r\n",
                               headers={"Authorization": f"Bearer {project_key}",
                                        "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert response.status_code == 400 and response.json()["details"] == {"files": ["At least one file is required."]}


@pytest.mark.parametrize("chunked", [False, True])
def test_a_multi_file_upload_streams_through_and_downloads_whole(url, project_key, chunked):
    data = bytes(range(256)) * 8192  # 2 MiB: past the in-memory spool of the ASGI handler
    files = [("invoice.pdf", b"%PDF-1.4\n" + data), ("sales.csv", b"a,b\n1,2\n3,4\n")]
    headers = {"Authorization": f"Bearer {project_key}"}
    with httpx.Client(timeout=60) as client:
        content = multipart(files) if chunked else b"".join(multipart(files))
        response = client.post(f"{url}/files", content=content,
                               headers={**headers, "Content-Type": "multipart/form-data; boundary=b0undary"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert [f["sha256"] for f in body] == [hashlib.sha256(d).hexdigest() for _n, d in files]
        download = client.get(f"{url}/files/download/", params={"file_ref": body[0]["file_ref"]}, headers=headers)
        assert download.content == files[0][1] and download.headers["content-type"] == "application/pdf"
        frames = client.get(f"{url}/data-frames", params={"num_samples": 5}, headers=headers).json()
        assert frames[0]["sample_rows"] == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
        # the conversation's delete takes its files' bytes with it (the daphne process's own storage)
        assert client.delete(url, headers=headers).status_code == 200
