"""Text extraction for file_search: every supported type, encodings, and the two failure codes.

PDF and Word fixtures are built here: PDFs by hand (a Helvetica text stream per page, or an image
only), Word documents with python-docx. Encrypted PDFs come from pypdf's writer.
"""

from __future__ import annotations

import codecs
import io
import json
import zipfile

import docx
import pytest
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls
from pypdf import PdfReader, PdfWriter

from assistants_core.ingest import extract
from assistants_core.ingest.extract import ExtractionError, InvalidFile, UnsupportedFile, extract_text
from tests.harness.documents import make_pdf, save_docx

# --- fixtures -----------------------------------------------------------------------------

_IMAGE_PAGE = None


def encrypt_pdf(data: bytes, user_password: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def rich_docx() -> bytes:
    """Heading, paragraphs, a table with a merged cell, a content control, in that order."""
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in every región.")
    table = document.add_table(rows=3, cols=3)
    for col, header in enumerate(("Name", "Team", "City")):
        table.cell(0, col).text = header
    table.cell(1, 0).text = "Ann"
    table.cell(1, 1).text = "Sales"
    table.cell(1, 2).text = "Oslo"
    table.cell(2, 0).text = "Bo"
    table.cell(2, 1).merge(table.cell(2, 2)).text = "Remote"
    document.add_paragraph("")  # an empty paragraph is not a line of text
    document.add_paragraph("Closing remarks.")
    control = parse_xml(
        f"<w:sdt {nsdecls('w')}><w:sdtContent><w:p><w:r><w:t>Inside a content control</w:t></w:r></w:p>"
        "</w:sdtContent></w:sdt>"
    )
    body = document.element.body
    body.insert(len(body) - 1, control)  # before the section properties, i.e. last
    return save_docx(document)


def error_of(data: bytes, filename: str) -> ExtractionError:
    with pytest.raises(ExtractionError) as info:
        extract_text(data, filename)
    return info.value


def assert_clean_message(error: ExtractionError) -> None:
    """One sentence for a user: no library names, class names or tracebacks."""
    message = error.message
    assert message == str(error)
    assert message.endswith(".") and message[0].isupper()
    assert ". " not in message.rstrip(".")
    for leak in ("Error", "Traceback", "pypdf", "docx.", "lxml", "zipfile", "Exception", "utf-8'", "codec"):
        assert leak not in message, (leak, message)


# --- error classes ------------------------------------------------------------------------


def test_error_codes_are_last_error_codes() -> None:
    assert UnsupportedFile("x").code == "unsupported_file"
    assert InvalidFile("x").code == "invalid_file"
    assert issubclass(UnsupportedFile, ExtractionError) and issubclass(InvalidFile, ExtractionError)
    assert not issubclass(UnsupportedFile, InvalidFile) and not issubclass(InvalidFile, UnsupportedFile)
    error = InvalidFile("Fix it.")
    assert error.message == "Fix it." and str(error) == "Fix it."


# --- text, Markdown, source code ----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "notes.txt",
        "README.md",
        "main.c",
        "main.cpp",
        "Program.cs",
        "site.css",
        "main.go",
        "App.java",
        "app.js",
        "index.php",
        "tool.py",
        "task.rb",
        "build.sh",
        "paper.tex",
        "app.ts",
        "NOTES.TXT",
        "dir/sub/Readme.Md",
    ],
)
def test_text_and_code_are_returned_as_is(name: str) -> None:
    text = "# Title\n\n  indented line\twith tab\r\nint main() { return 0; }  \n"
    assert extract_text(text.encode("utf-8"), name) == text


def test_utf8_with_and_without_bom() -> None:
    text = "naïve café – 日本語 😀\n"
    assert extract_text(text.encode("utf-8"), "a.txt") == text
    assert extract_text(codecs.BOM_UTF8 + text.encode("utf-8"), "a.txt") == text  # BOM dropped


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(codec: str) -> None:
    text = "naïve café – 日本語 😀\n"
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    assert extract_text(bom + text.encode(codec), "a.md") == text


def test_ascii() -> None:
    assert extract_text(b"plain ascii\n", "a.txt") == "plain ascii\n"


@pytest.mark.parametrize(
    "data",
    [
        "café résumé".encode("latin-1"),  # Latin-1 is not UTF-8
        "日本語".encode("shift_jis"),
        "hello".encode("utf-16-le"),  # UTF-16 without its BOM: NUL bytes
        codecs.BOM_UTF16_LE + b"h\x00i",  # odd length: broken UTF-16
        codecs.BOM_UTF32_LE + "hi".encode("utf-32-le"),  # UTF-32 is not accepted
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # binary bytes with a text extension
    ],
)
def test_undecodable_text_is_invalid(data: bytes) -> None:
    error = error_of(data, "notes.txt")
    assert isinstance(error, InvalidFile) and error.code == "invalid_file"
    assert "UTF-8" in error.message
    assert_clean_message(error)


@pytest.mark.parametrize(
    "name", ["empty.txt", "empty.md", "empty.py", "empty.html", "empty.json", "notes", "empty.pdf", "empty.docx"]
)
@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n", codecs.BOM_UTF8])
def test_empty_files_are_invalid(name: str, data: bytes) -> None:
    error = error_of(data, name)
    assert error.code == "invalid_file"
    if data != codecs.BOM_UTF8 or not name.endswith((".pdf", ".docx")):
        assert error.message == extract.NO_TEXT
    assert_clean_message(error)


# --- JSON ---------------------------------------------------------------------------------


def test_json_is_returned_as_is() -> None:
    text = '{\n  "name": "café",\n  "items": [1, 2, {"deep": null}]\n}\n'
    assert extract_text(text.encode(), "data.json") == text
    assert json.loads(extract_text(codecs.BOM_UTF8 + text.encode(), "data.JSON")) == json.loads(text)


@pytest.mark.parametrize("text", ['{"a": 1,}', "{'a': 1}", '{"a": 1', "not json", '{"a": 1} trailing'])
def test_invalid_json_is_invalid_file(text: str) -> None:
    error = error_of(text.encode(), "data.json")
    assert error.code == "invalid_file"
    assert "not valid JSON" in error.message and "line 1" in error.message
    assert_clean_message(error)


def test_deeply_nested_json_is_invalid_not_a_crash() -> None:
    error = error_of(b"[" * 100_000 + b"]" * 100_000, "deep.json")
    assert error.code == "invalid_file"
    assert_clean_message(error)


# --- HTML ---------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><title>My  Page</title><meta charset="utf-8">
<style>body { color: red } .secret { display: none }</style>
<script>var s = "<p>script text</p>"; document.write("more script text");</script>
</head>
<body>
<h1>Heading &amp; more</h1>
<p>First   paragraph with <b>bold</b> and <i>italic</i>
text.</p>
<div>Line one<br>Line two</div>
<ul><li>one</li><li>two</li></ul>
<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ann</td><td> 31 </td></tr></table>
<pre>  code
    indented</pre>
<noscript>Please enable JavaScript</noscript>
<script type="module">import x from "y"; console.log("module script text")</script>
<p>Caf&eacute; &#x1F600; &lt;tag&gt;</p>
</body></html>
"""


def test_html_visible_text_with_block_breaks() -> None:
    assert extract_text(PAGE.encode(), "page.html") == (
        "My Page\n\n"
        "Heading & more\n\n"
        "First paragraph with bold and italic text.\n\n"
        "Line one\nLine two\n\n"
        "one\ntwo\n\n"
        "Name\tAge\nAnn\t31\n\n"
        "  code\n    indented\n\n"
        "Café 😀 <tag>"
    )


def test_html_drops_scripts_and_styles() -> None:
    text = extract_text(PAGE.encode(), "page.htm")
    for hidden in ("script text", "color: red", "display", "console.log", "enable JavaScript", "<p>"):
        assert hidden not in text


def test_html_inline_elements_do_not_add_spaces() -> None:
    assert extract_text(b"<p>Hel<b>lo</b> wor<i>ld</i>!</p>", "a.html") == "Hello world!"


def test_html_in_utf16_and_bad_encoding() -> None:
    page = "<p>日本語</p>"
    assert extract_text(codecs.BOM_UTF16_LE + page.encode("utf-16-le"), "a.html") == "日本語"
    assert error_of("<p>café</p>".encode("latin-1"), "a.html").code == "invalid_file"


def test_html_with_only_markup_is_invalid() -> None:
    error = error_of(b"<html><head><script>alert(1)</script></head><body><img src=x></body></html>", "a.html")
    assert error.code == "invalid_file"


# --- PDF ----------------------------------------------------------------------------------


def test_pdf_pages_joined_with_blank_lines() -> None:
    data = make_pdf([["Hello world", "Café (with parentheses)"], ["Second page"], ["Third page"]])
    assert extract_text(data, "report.pdf") == "Hello world\nCafé (with parentheses)\n\nSecond page\n\nThird page"


def test_pdf_skips_pages_without_text() -> None:
    data = make_pdf([["Before"], _IMAGE_PAGE, ["After"]])
    assert extract_text(data, "Report.PDF") == "Before\n\nAfter"


def test_image_only_pdf_is_invalid() -> None:
    error = error_of(make_pdf([_IMAGE_PAGE, _IMAGE_PAGE]), "scan.pdf")
    assert error.code == "invalid_file" and error.message == extract.PDF_NO_TEXT
    assert_clean_message(error)


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_password_protected_pdf_is_invalid(algorithm: str) -> None:
    data = encrypt_pdf(make_pdf([["Secret text"]]), "user-secret", algorithm)
    error = error_of(data, "locked.pdf")
    assert error.code == "invalid_file" and error.message == extract.PDF_ENCRYPTED
    assert_clean_message(error)


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_pdf_encrypted_without_a_user_password_is_read(algorithm: str) -> None:
    # "Secured" PDFs: only an owner password (permissions); anyone may open and read them.
    data = encrypt_pdf(make_pdf([["Readable text"]]), "", algorithm)
    assert PdfReader(io.BytesIO(data)).is_encrypted
    assert extract_text(data, "secured.pdf") == "Readable text"


@pytest.mark.parametrize(
    "data",
    [
        make_pdf([["Hello"]])[:200],  # truncated
        b"%PDF-1.4\n" + bytes(range(256)) * 20,  # garbage after the header
        b"%PDF-1.7\n",
    ],
)
def test_corrupt_pdf_is_invalid(data: bytes) -> None:
    error = error_of(data, "broken.pdf")
    assert error.code == "invalid_file" and error.message == extract.PDF_DAMAGED
    assert_clean_message(error)


@pytest.mark.parametrize("data", [b"just some text", rich_docx()])
def test_pdf_name_with_other_content_is_invalid(data: bytes) -> None:
    error = error_of(data, "fake.pdf")
    assert error.code == "invalid_file" and error.message == extract.PDF_NOT_PDF
    assert_clean_message(error)


# --- Word ---------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_document_order() -> None:
    assert extract_text(rich_docx(), "report.docx") == (
        "Quarterly report\n"
        "Revenue grew in every región.\n"
        "Name\tTeam\tCity\n"
        "Ann\tSales\tOslo\n"
        "Bo\tRemote\n"
        "Closing remarks.\n"
        "Inside a content control"
    )


def test_docx_nested_table_and_multi_paragraph_cell() -> None:
    document = docx.Document()
    table = document.add_table(rows=1, cols=2)
    cell = table.cell(0, 0)
    cell.text = "first"
    cell.add_paragraph("second")
    inner = table.cell(0, 1).add_table(rows=1, cols=2)
    inner.cell(0, 0).text = "in"
    inner.cell(0, 1).text = "ner"
    assert extract_text(save_docx(document), "t.docx") == "first second\tin\tner"


def test_empty_docx_is_invalid() -> None:
    document = docx.Document()
    document.add_paragraph("   ")
    document.add_table(rows=2, cols=2)
    error = error_of(save_docx(document), "blank.docx")
    assert error.code == "invalid_file" and error.message == extract.DOCX_NO_TEXT


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"PK\x03\x04" + b"not really a zip" * 10,
        rich_docx()[:1500],  # truncated
        _zip({"hello.txt": "a zip, but no Word parts"}),
        _zip({"[Content_Types].xml": "<Types", "word/document.xml": "<w:document"}),  # broken XML
    ],
)
def test_corrupt_docx_is_invalid(data: bytes) -> None:
    error = error_of(data, "broken.docx")
    assert error.code == "invalid_file" and error.message == extract.DOCX_DAMAGED
    assert_clean_message(error)


def test_docx_that_is_an_ole_file_is_invalid() -> None:
    # Password-protected .docx files, and .doc files renamed, are OLE compound files.
    error = error_of(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "locked.docx")
    assert error.code == "invalid_file" and error.message == extract.DOCX_PROTECTED
    assert_clean_message(error)


def test_docx_name_with_other_content_is_invalid() -> None:
    error = error_of(b"plain text", "fake.docx")
    assert error.code == "invalid_file" and error.message == extract.DOCX_NOT_DOCX


# --- unsupported and unknown types --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "hint"),
    [
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), ".docx or PDF"),
        ("slides.pptx", _zip({"ppt/presentation.xml": "<p/>"}), "as PDF"),
        ("slides.ppt", b"\xd0\xcf\x11\xe0" + bytes(100), "as PDF"),
        ("sheet.xlsx", _zip({"xl/workbook.xml": "<w/>"}), "CSV"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(50), "Images"),
        ("photo.JPG", b"\xff\xd8\xff\xe0" + bytes(50), "Images"),
        ("bundle.zip", _zip({"a.txt": "text inside"}), "extract the files"),
        ("backup.tar.gz", b"\x1f\x8b\x08" + bytes(50), "extract the files"),
        ("talk.mp3", b"ID3" + bytes(50), "transcript"),
        # Even text content: these names promise a format we do not parse.
        ("notes.doc", b"plain words", ".docx or PDF"),
    ],
)
def test_unsupported_types(name: str, data: bytes, hint: str) -> None:
    error = error_of(data, name)
    assert isinstance(error, UnsupportedFile) and error.code == "unsupported_file"
    assert hint in error.message
    assert_clean_message(error)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("blob", bytes(range(256)) * 4),  # no extension, binary
        ("blob.dat", b"\x00\x01\x02\x03" * 100),
        ("image", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)),
        ("data.bin", "café".encode("latin-1") * 10),  # not UTF-8: not text
        ("controls.xyz", b"\x01\x02\x03\x04\x05abc"),  # decodes, but is mostly control bytes
    ],
)
def test_unknown_binary_is_unsupported(name: str, data: bytes) -> None:
    error = error_of(data, name)
    assert error.code == "unsupported_file"
    assert_clean_message(error)


def test_unknown_name_with_pdf_or_docx_content_says_how_to_fix() -> None:
    assert "rename it to end in .pdf" in error_of(make_pdf([["Hi"]]), "report").message
    assert "rename it to end in .docx" in error_of(rich_docx(), "report.dat").message


@pytest.mark.parametrize("name", ["README", "data.csv", "config.yaml", "notes.org", ".bashrc", "weird.name."])
def test_unknown_name_with_text_content_is_text(name: str) -> None:
    text = "key: value\nname,age\nnaïve 日本語\n"
    assert extract_text(text.encode(), name) == text


def test_extension_parsing() -> None:
    assert extract._extension("a/b.c/report.PDF") == "pdf"
    assert extract._extension("C:\\docs\\file.DocX") == "docx"
    assert extract._extension("archive.tar.gz") == "gz"
    assert extract._extension(".bashrc") == ""
    assert extract._extension("noext") == ""
    assert extract._extension("trailing.") == ""


def test_every_openai_file_search_type_has_a_decision() -> None:
    # OpenAI's file_search list: each one is either read or refused with unsupported_file.
    openai_types = [
        "c", "cpp", "cs", "css", "doc", "docx", "go", "html", "java", "js", "json",
        "md", "pdf", "php", "pptx", "py", "rb", "sh", "tex", "ts", "txt",
    ]  # fmt: skip
    refused = {"doc", "pptx"}
    assert set(openai_types) - refused <= extract.SUPPORTED_EXTENSIONS
    for ext in refused:
        assert error_of(b"x", f"f.{ext}").code == "unsupported_file"
