import logging

from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "files"
    verbose_name = "Files"

    def ready(self):
        # Django writes uploads to FILE_UPLOAD_TEMP_DIR and fails if it is missing: made when a process starts, and
        # again before each upload of files and at each sweep (a cleaner of the temporary directory may remove it).
        from files.store import spool_dir

        try:
            spool_dir()
        except OSError:
            logging.getLogger("conduet.files").warning("Could not make FILE_UPLOAD_TEMP_DIR", exc_info=True)
