"""Reading an uploaded spreadsheet (XLSX/XLS/ODS) in a child process whose memory and time are bounded.

calamine (through fastexcel) builds each sheet as one dense grid in memory, sized by the cells the sheet names: a
1.4 KB workbook naming cells A1 and XFD1048576 asked for 512 GiB and aborted the process (a Rust allocation failure
is an abort, not an exception: it took the whole server with it), and a 256 KB workbook whose one cell inflates to
256 MiB of text used 5 GB. Neither can be refused by looking at the upload's size, so the workbook is read by
`python -m files.spreadsheet` under an address-space limit (RLIMIT_AS, set by the child itself before it imports
anything heavy) and a time limit: a workbook past either fails its frame with a clear reason, and the server goes on.
The child writes each sheet as an Arrow IPC file and a manifest; the parent reads them back."""
import json
import logging
import os
import subprocess
import sys
import tempfile

log = logging.getLogger("conduet.files")

MEMORY_MB = 2048  # address space of the reading process (polars and its pools included)
TIMEOUT_SECONDS = 120
MANIFEST = "manifest.json"


class SpreadsheetTooLarge(ValueError):
    pass


def sheets_read(path: str) -> list[tuple[str, object, str]]:
    """(sheet name, polars DataFrame or None, error) for each sheet of the workbook at `path`, read in a bounded
    child process. Raises ValueError (a clear reason) when the workbook cannot be read at all."""
    from files.store import spool_dir  # not at the top: the child imports this module without Django

    with tempfile.TemporaryDirectory(prefix="conduet-sheets-", dir=spool_dir()) as out:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "files.spreadsheet", path, out, str(MEMORY_MB)],
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True,
                timeout=TIMEOUT_SECONDS, env={**os.environ, "POLARS_MAX_THREADS": "2"}, check=False)
        except subprocess.TimeoutExpired:
            raise SpreadsheetTooLarge(f"reading it took longer than {TIMEOUT_SECONDS} s") from None
        manifest = os.path.join(out, MANIFEST)
        if done.returncode != 0 or not os.path.exists(manifest):
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            log.warning("The spreadsheet reader exited with %s: %s", done.returncode, tail[0][:300])
            raise SpreadsheetTooLarge(
                f"it needs more than {MEMORY_MB} MB of memory to read (its cells expand too far: a compressed "
                "bomb, or cells far apart in a sheet)")
        with open(manifest) as handle:
            result = json.load(handle)
        if result["error"]:
            raise ValueError(result["error"])
        entries = result["sheets"]
        return [(entry["sheet"], _ipc_read(os.path.join(out, entry["file"])) if entry["file"] else None,
                 entry["error"]) for entry in entries]


def _ipc_read(path: str):
    """The table read into memory (not mapped: its directory goes when we return)."""
    import polars as pl
    import pyarrow as pa

    with pa.OSFile(path, "rb") as source:
        return pl.from_arrow(pa.ipc.open_file(source).read_all())


def _child(path: str, out: str, memory_mb: int) -> None:
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import fastexcel
    import polars as pl

    result = {"error": "", "sheets": []}
    try:
        names = fastexcel.read_excel(path).sheet_names
    except Exception as exc:  # noqa: BLE001 (not a workbook: the parent says why)
        result["error"], names = _reason(exc), []
    for index, sheet in enumerate(names):
        entry = {"sheet": sheet, "file": "", "error": ""}
        try:
            table = pl.read_excel(path, sheet_name=sheet, engine="calamine")
            if table.width == 0:
                raise ValueError("the sheet is empty")
            entry["file"] = f"{index}.arrow"
            table.write_ipc(os.path.join(out, entry["file"]))
        except Exception as exc:  # noqa: BLE001 (one unreadable sheet fails its frame, not the workbook)
            entry["error"] = _reason(exc)
        result["sheets"].append(entry)
    with open(os.path.join(out, MANIFEST), "w") as handle:
        json.dump(result, handle)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
