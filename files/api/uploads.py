"""The upload handler of the files endpoint: each file of a multipart body goes to a temporary file as it is parsed,
hashed and measured on the way, and the upload is refused (413) the moment a file passes CONDUET_FILE_MAX_BYTES or
the files pass CONDUET_FILE_MAX_COUNT — before anything is stored. The body itself has been spooled to disk by the
ASGI handler under the cap of config/api/body_limit.py; no file is ever held whole in memory."""
import hashlib

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from config.api.errors import ApiError, ErrorCode
from files.store import spool_dir

FILES_FIELD = "files"
HEAD_BYTES = 8192


def too_many_files() -> ApiError:
    limit = settings.CONDUET_FILE_MAX_COUNT
    return ApiError(f"At most {limit} files a request (CONDUET_FILE_MAX_COUNT); nothing was stored.",
                    code=ErrorCode.PAYLOAD_TOO_LARGE, details={FILES_FIELD: [f"At most {limit} files."]})


def file_too_large(name: str) -> ApiError:
    limit = settings.CONDUET_FILE_MAX_BYTES
    return ApiError(f"{name}: larger than the limit of {limit:,} bytes a file (CONDUET_FILE_MAX_BYTES); nothing "
                    "was stored.", code=ErrorCode.PAYLOAD_TOO_LARGE, details={FILES_FIELD: [f"{name}: too large."]})


class LimitedUploadHandler(TemporaryFileUploadHandler):
    def __init__(self, request=None):
        super().__init__(request)
        self.count = 0

    def new_file(self, field_name, file_name, *args, **kwargs):
        if field_name != FILES_FIELD:
            raise ApiError(f"Unknown multipart field {field_name!r}: send files in the field `files`.",
                           details={field_name: ["Unknown field."]})
        self.count += 1
        if self.count > settings.CONDUET_FILE_MAX_COUNT:
            raise too_many_files()
        spool_dir()  # TemporaryUploadedFile writes to FILE_UPLOAD_TEMP_DIR, the directory files/sweep.py sweeps
        super().new_file(field_name, file_name, *args, **kwargs)
        self.digest, self.received, self.head = hashlib.sha256(), 0, b""

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.CONDUET_FILE_MAX_BYTES:
            self.file.close()  # a temporary file: closing deletes it
            raise file_too_large(self.file_name)
        self.digest.update(raw_data)
        if len(self.head) < HEAD_BYTES:
            self.head += raw_data[: HEAD_BYTES - len(self.head)]
        self.file.write(raw_data)

    def file_complete(self, file_size):
        upload = super().file_complete(file_size)
        upload.sha256, upload.head = self.digest.hexdigest(), self.head
        return upload
