"""Extraction from real files made here: PDFs written with fpdf2, Word documents with python-docx, HTML and CSV
text. Each type's text and metadata, and a clear reason for each file that cannot be read."""
import io

import pytest

from agents.knowledge.extract import ExtractionError, extract, kind_for_upload


def make_pdf(pages: list[tuple[str, str]], *, title: str | None = None, password: str | None = None) -> bytes:
    """A PDF with one page per (heading, body)."""
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if password:
        pdf.set_encryption(owner_password="owner-secret", user_password=password)
    for heading, body in pages:
        pdf.add_page()
        pdf.set_font("helvetica", "B", 20)
        pdf.cell(0, 12, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=11)
        pdf.multi_cell(0, 6, body)
    return bytes(pdf.output())


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Returns policy"
    document.add_heading("Returns", level=1)
    document.add_paragraph("You may return an item within 30 days of delivery.")
    document.add_heading("Damaged items", level=2)
    document.add_paragraph("Send us a photo of the damage and we replace the item.")
    document.add_paragraph("Keep the box", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Plan", "Refund window"
    table.cell(1, 0).text, table.cell(1, 1).text = "Premium", "60 days"
    document.add_paragraph("Refunds are paid to the original card.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_pdf_pages_text_and_metadata():
    data = make_pdf([("Opening hours", "We are open from nine to five on weekdays."),
                     ("Password reset", "Click the link in the email we send you to choose a new password.")],
                    title="Help centre")
    extracted = extract(kind="pdf", data=data, name="help.pdf")
    assert extracted.metadata == {"pages": 2, "title": "Help centre"}
    text = extracted.text
    assert "Opening hours" in text and "open from nine to five" in text
    assert text.index("nine to five") < text.index("Password reset") < text.index("new password")
    assert "\n\n" in text  # the pages are separate paragraphs


def test_pdf_with_a_user_password_is_refused_clearly():
    data = make_pdf([("Secret", "Nothing to see here.")], password="user-secret")
    with pytest.raises(ExtractionError, match="encrypted"):
        extract(kind="pdf", data=data, name="secret.pdf")


def test_pdf_encrypted_with_an_owner_password_only_is_read():
    data = make_pdf([("Shipping", "Parcels leave our warehouse within two days.")], password="")
    assert "two days" in extract(kind="pdf", data=data, name="shipping.pdf").text


@pytest.mark.parametrize("data", [
    b"%PDF-1.7\n1 0 obj <</Type /Catalog /Pages 2 0 R>> garbage \x00\xff trailer",
    b"%PDF-1.4\n",
])
def test_corrupt_pdf_is_refused_clearly(data):
    with pytest.raises(ExtractionError, match="PDF") as caught:
        extract(kind="pdf", data=data, name="broken.pdf")
    assert "Traceback" not in str(caught.value)


def test_truncated_pdf_is_refused_clearly():
    data = make_pdf([("Refunds", "Refunds take five days.")])
    with pytest.raises(ExtractionError, match="PDF"):
        extract(kind="pdf", data=data[: len(data) // 3], name="cut.pdf")


def test_pdf_without_text_is_refused_clearly():
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 50, 50)  # a drawing, no text: what a scanned page looks like to a text extractor
    with pytest.raises(ExtractionError, match="no text"):
        extract(kind="pdf", data=bytes(pdf.output()), name="scan.pdf")


def test_a_pdf_name_on_a_text_file_fails_saying_it_is_not_a_pdf():
    data = b"Just some words, saved as notes.pdf."
    assert kind_for_upload(name="notes.pdf", content_type="application/pdf", head=data[:512]) == "pdf"
    with pytest.raises(ExtractionError, match="not a PDF"):
        extract(kind="pdf", data=data, name="notes.pdf")


def test_docx_headings_paragraphs_lists_and_tables_in_order():
    extracted = extract(kind="docx", data=make_docx(), name="returns.docx")
    assert extracted.metadata == {"title": "Returns policy"}
    assert extracted.text == (
        "# Returns\n\nYou may return an item within 30 days of delivery.\n\n## Damaged items\n\n"
        "Send us a photo of the damage and we replace the item.\n\n- Keep the box\n\n"
        "Plan | Refund window\nPremium | 60 days\n\nRefunds are paid to the original card.")


def test_corrupt_docx_is_refused_clearly():
    with pytest.raises(ExtractionError, match="Word document"):
        extract(kind="docx", data=b"PK\x03\x04 this is not really a zip", name="broken.docx")
    with pytest.raises(ExtractionError, match="Word document"):
        extract(kind="docx", data=b"plain text pretending", name="fake.docx")


HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Refunds · Help centre</title></head><body>
<nav><a href="/">Home</a> | <a href="/blog">Blog</a> | <a href="/careers">Careers</a></nav>
<main><article><h1>Refunds</h1>
<p>You can ask for a refund within 30 days of delivery. We pay back the full price, shipping included.</p>
<h2>How long it takes</h2>
<p>Refunds reach your card within five working days after the parcel is back in our warehouse.</p>
<ul><li>Card: five days</li><li>PayPal: two days</li></ul></article></main>
<footer>© 2026 Example Shop · Privacy · Terms</footer></body></html>"""


def test_html_main_text_as_markdown_with_headings_and_title():
    extracted = extract(kind="html", data=HTML.encode(), name="refunds.html")
    assert extracted.metadata["title"].startswith("Refunds")
    text = extracted.text
    assert text.startswith("# Refunds\n\nYou can ask for a refund within 30 days")
    assert "## How long it takes" in text and "- PayPal: two days" in text
    assert "Careers" not in text and "Privacy" not in text  # navigation and footer are left out


def test_html_in_a_legacy_encoding():
    page = ('<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body><article>'
            "<p>Notre caf\xe9 ouvre \xe0 huit heures du matin, du lundi au samedi, toute l'ann\xe9e.</p>"
            "</article></body></html>")
    assert "café ouvre à huit heures" in extract(kind="html", data=page.encode("latin-1"), name="cafe.html").text


def test_html_without_main_text_is_refused_clearly():
    with pytest.raises(ExtractionError, match="no main text"):
        extract(kind="html", data=b"<html><head><title>Empty</title></head><body>  </body></html>", name="e.html")


def test_markdown_as_is_without_front_matter():
    data = b"---\ntitle: \"Shipping\"\ntags: [help]\n---\n# Shipping\n\nWe ship worldwide.\n"
    extracted = extract(kind="md", data=data, name="shipping.md")
    assert extracted.text == "# Shipping\n\nWe ship worldwide."
    assert extracted.metadata == {"title": "Shipping"}


def test_text_in_utf8_and_in_a_legacy_encoding():
    assert extract(kind="txt", data="Größe: 42\r\n\r\n\r\n\r\nZweiter Absatz\x00".encode(),
                   name="a.txt").text == "Größe: 42\n\nZweiter Absatz"
    legacy = ("Les remboursements sont effectués sous cinq jours ouvrés après réception du colis. "
              "Merci de votre patience.").encode("cp1252")
    assert "effectués sous cinq jours ouvrés" in extract(kind="txt", data=legacy, name="fr.txt").text
    assert extract(kind="text", data=b"Inline text", name="note").text == "Inline text"


def test_csv_rows_become_column_value_paragraphs():
    data = b"question;answer\nWhen are you open?;From 9 to 5\n;\nDo you ship abroad?;Yes, worldwide\n"
    extracted = extract(kind="csv", data=data, name="faq.csv")
    assert extracted.text == ("question: When are you open?\nanswer: From 9 to 5\n\n"
                              "question: Do you ship abroad?\nanswer: Yes, worldwide")
    assert extracted.metadata == {"rows": 2, "columns": ["question", "answer"]}


def test_csv_quoted_commas():
    data = b'name,notes\n"Smith, Jane","Likes tea, not coffee"\n'
    assert extract(kind="csv", data=data, name="p.csv").text == "name: Smith, Jane\nnotes: Likes tea, not coffee"


@pytest.mark.parametrize("kind", ["txt", "md", "csv", "pdf", "docx", "html", "text"])
@pytest.mark.parametrize("data", [b"", b"  \n\t \r\n "])
def test_empty_files_are_refused_clearly(kind, data):
    with pytest.raises(ExtractionError, match="empty"):
        extract(kind=kind, data=data, name=f"empty.{kind}")


def test_whitespace_after_extraction_is_no_text():
    with pytest.raises(ExtractionError, match="The document has no text."):
        extract(kind="txt", data=b"\x00\x01\x02 \n", name="controls.txt")


def test_binary_data_as_text_is_refused_clearly():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    with pytest.raises(ExtractionError, match="not text"):
        extract(kind="txt", data=png, name="image.txt")


def test_unsupported_kind():
    with pytest.raises(ExtractionError, match="not supported"):
        extract(kind="xlsx", data=b"data", name="sheet.xlsx")


@pytest.mark.parametrize(("name", "content_type", "head", "kind"), [
    ("guide.pdf", "application/pdf", b"%PDF-1.7\n", "pdf"),
    ("scan", "application/octet-stream", b"%PDF-1.4\n", "pdf"),
    ("notes.txt", "text/plain", b"%PDF-1.4\n", "pdf"),  # the bytes say PDF whatever the name says
    ("fake.pdf", "text/plain", b"hello", "pdf"),  # fails at extraction, saying it is not a PDF
    ("Policy.DOCX", None, b"PK\x03\x04", "docx"),
    ("download", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK\x03\x04", "docx"),
    ("blob", None, b"PK\x03\x04\x14\x00\x06\x00\x08\x00[Content_Types].xmlword/document.xml", "docx"),
    ("page.htm", "text/html", b"<html>", "html"),
    ("page", "text/html; charset=utf-8", b"<html>", "html"),
    ("readme.md", "application/octet-stream", b"# Hi", "md"),
    ("notes", "text/markdown", b"# Hi", "md"),
    ("faq.csv", "application/vnd.ms-excel", b"a,b", "csv"),
    ("notes.txt", None, b"hello", "txt"),
    ("setup.exe", "application/x-msdownload", b"MZ\x90\x00", None),
    ("photo.png", "image/png", b"\x89PNG\r\n", None),
    ("photo", "image/jpeg", b"\xff\xd8\xff", None),
    ("archive.zip", "application/zip", b"PK\x03\x04", None),
    ("sheet.xlsx", None, b"PK\x03\x04xl/workbook.xml", None),
])
def test_kind_for_upload(name, content_type, head, kind):
    assert kind_for_upload(name=name, content_type=content_type, head=head) == kind
