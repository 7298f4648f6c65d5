"""A document's bytes → its text, markdown-like (`#` headings, blank-line paragraphs), which the chunker
(`agents/knowledge/chunking.py`) cuts along that structure. Each type goes through a well-kept library — pypdf,
python-docx, trafilatura (HTML to markdown, the page's main text without its navigation), charset-normalizer (the
encoding of text files), the `csv` module (with its sniffer) — never a parser written here.

Every failure is an `ExtractionError` whose message is the reason a user reads on the failed document ("The PDF is
encrypted."), never a library's traceback. `kind_for_upload` decides what an uploaded file is from its name, its
declared content type and its first bytes.

No Django here.
"""
import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

KINDS = ("text", "pdf", "docx", "html", "md", "txt", "csv")

_EXTENSIONS = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".xhtml": "html", ".md": "md",
               ".markdown": "md", ".txt": "txt", ".text": "txt", ".csv": "csv"}
_CONTENT_TYPES = {"application/pdf": "pdf", "application/x-pdf": "pdf",
                  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
                  "text/html": "html", "application/xhtml+xml": "html", "text/markdown": "md",
                  "text/x-markdown": "md", "text/plain": "txt", "text/csv": "csv"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?P<body>.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(?P<title>.+?)[ \t]*$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
_TRAILING_SPACE = re.compile(r"[ \t\r\f\v]+\n")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # PostgreSQL text refuses NUL; the rest is noise


class ExtractionError(Exception):
    """The document's text cannot be had; `str(error)` is the reason shown to the user."""


@dataclass
class Extracted:
    text: str  # markdown-like: `#` headings, paragraphs separated by blank lines
    metadata: dict = field(default_factory=dict)  # what the document says about itself (title, pages, rows…)


def kind_for_upload(*, name: str, content_type: str | None, head: bytes) -> str | None:
    """The kind of an uploaded file (pdf, docx, html, md, txt, csv), or None when it is none of them (an image, an
    executable, an archive). The extension decides first — a `.pdf` that is not a PDF is still "pdf", so that its
    extraction fails saying so rather than the upload being turned away as unsupported; then the declared content
    type; then the first bytes (`%PDF`; a zip with a Word document inside)."""
    if head.lstrip(b"\xef\xbb\xbf\r\n\t ").startswith(b"%PDF-"):
        return "pdf"
    suffix = PurePosixPath((name or "").replace("\\", "/")).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    declared = kind_for_content_type(content_type)
    if declared:
        return declared
    if head.startswith(b"PK\x03\x04") and b"word/" in head:
        return "docx"
    return None


def kind_for_content_type(content_type: str | None) -> str | None:
    """The kind of a document served with `content_type` (parameters ignored), or None."""
    return _CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())


def extract(*, kind: str, data: bytes, name: str) -> Extracted:
    """The text of a document of `kind` (see KINDS; "url" documents pass the kind of what was fetched). Raises
    ExtractionError for a damaged, encrypted or empty document, or one with no text at all."""
    extractor = _EXTRACTORS.get(kind)
    if extractor is None:
        raise ExtractionError(f"Documents of type {kind!r} are not supported.")
    if not data.strip():
        raise ExtractionError("The document is empty.")
    extracted = extractor(data)
    text = _tidy(extracted.text)
    if not text:
        raise ExtractionError("The document has no text.")
    return Extracted(text, {key: value for key, value in extracted.metadata.items() if value not in (None, "")})


def _tidy(text: str) -> str:
    text = _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


# --- text ------------------------------------------------------------------------------------------------------

def decode_text(data: bytes) -> str:
    """Bytes of a text file → str: UTF-8 (with or without a byte-order mark) when it is that, else the encoding
    charset-normalizer finds; bytes that are no text in any encoding raise ExtractionError."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise ExtractionError("The file is not text in any encoding we recognise (is it a binary file?).")
    return str(best)


def _text(data: bytes) -> Extracted:
    return Extracted(decode_text(data))


def _markdown(data: bytes) -> Extracted:
    """Markdown as it is, less its YAML front matter (whose `---` lines would read as a heading), whose title is
    kept."""
    text = decode_text(data)
    metadata = {}
    front = _FRONT_MATTER.match(text)
    if front:
        title = _FRONT_TITLE.search(front["body"])
        if title:
            metadata["title"] = title["title"].strip("\"'")
        text = text[front.end():]
    return Extracted(text, metadata)


def _csv(data: bytes) -> Extracted:
    """Each row becomes a paragraph of `column: value` lines, the columns named by the first row, so that a chunk
    of rows still says what each value is."""
    text = decode_text(data)
    sample = text[:64 * 1024]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:  # one column, or too little to tell: the standard comma dialect
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise ExtractionError(f"The CSV file cannot be read: {exc}.") from None
    if not rows:
        return Extracted("")
    header = [cell.strip() or f"column {i + 1}" for i, cell in enumerate(rows[0])]
    paragraphs = []
    for row in rows[1:]:
        lines = [f"{header[i] if i < len(header) else f'column {i + 1}'}: {cell.strip()}"
                 for i, cell in enumerate(row) if cell.strip()]
        paragraphs.append("\n".join(lines))
    if not paragraphs:  # a header alone is still the file's only text
        paragraphs = [", ".join(header)]
    return Extracted("\n\n".join(paragraphs), {"rows": len(rows) - 1, "columns": header})


# --- PDF -------------------------------------------------------------------------------------------------------

def _pdf(data: bytes) -> Extracted:
    """Page texts in order, one blank line between pages. A scanned PDF (images only) has no text to extract:
    that fails here (no OCR) rather than indexing nothing."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.lstrip(b"\xef\xbb\xbf\r\n\t ").startswith(b"%PDF-"):
        raise ExtractionError("The file is not a PDF (it does not start with %PDF).")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone still opens for reading
            raise ExtractionError("The PDF is encrypted with a password.")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = str(info.title).strip() if info and info.title else None
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError,
            NotImplementedError, zipfile.BadZipFile, OSError) as exc:
        # pypdf raises many kinds of errors on a damaged file; none of their texts helps a user.
        if "crypt" in type(exc).__name__.lower() or "decrypt" in str(exc).lower():
            raise ExtractionError("The PDF is encrypted with a password.") from None
        raise ExtractionError("The PDF is damaged and cannot be read.") from None
    if not any(page.strip() for page in pages):
        raise ExtractionError("The PDF has no text (scanned pages or images only; text recognition is not "
                              "supported).")
    return Extracted("\n\n".join(page.strip() for page in pages), {"pages": len(pages), "title": title})


# --- Word ------------------------------------------------------------------------------------------------------

def _docx(data: bytes) -> Extracted:
    """Paragraphs and tables in document order; `Heading N` (and `Title`) styles become `#`×N headings, list
    styles `- ` items, a table one paragraph of `cell | cell` rows."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise ExtractionError("The file is not a Word document (.docx), or it is damaged.") from None
    except Exception:  # lxml's XMLSyntaxError and others from a damaged part
        raise ExtractionError("The Word document is damaged and cannot be read.") from None
    blocks = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = []
            for row in item.rows:
                cells = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if value and (not cells or cells[-1] != value):  # a merged cell repeats itself
                        cells.append(value)
                if cells:
                    rows.append(" | ".join(cells))
            blocks.append("\n".join(rows))
            continue
        text = item.text.strip()
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        level = _heading_level(style)
        if level:
            blocks.append("#" * level + " " + " ".join(text.split()))
        elif style.lower().startswith("list"):
            blocks.append("- " + text)
        else:
            blocks.append(text)
    title = (document.core_properties.title or "").strip() or None
    return Extracted("\n\n".join(blocks), {"title": title})


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        number = style.removeprefix("Heading ").strip()
        if number.isdigit():
            return min(max(int(number), 1), 6)
    return 0


# --- HTML ------------------------------------------------------------------------------------------------------

def _html(data: bytes) -> Extracted:
    """The page's main text as markdown (headings, lists, tables kept; navigation, footers and boilerplate left
    out) and its title. trafilatura reads the bytes itself, charset declaration included."""
    import trafilatura

    try:
        text = trafilatura.extract(data, output_format="markdown", include_formatting=True, include_tables=True,
                                   include_comments=False, include_images=False, favor_recall=True)
        metadata = trafilatura.extract_metadata(data)
    except Exception:  # lxml and trafilatura raise various errors on broken markup
        raise ExtractionError("The HTML page cannot be read.") from None
    if not text or not text.strip():
        raise ExtractionError("The HTML page has no main text.")
    title = metadata.title.strip() if metadata is not None and metadata.title else None
    return Extracted(text, {"title": title})


_EXTRACTORS = {"text": _text, "txt": _text, "md": _markdown, "csv": _csv, "pdf": _pdf, "docx": _docx,
               "html": _html}
