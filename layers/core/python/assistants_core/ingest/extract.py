"""The text of an uploaded file, for the file types OpenAI's file_search accepted.

The type comes from the file name's extension, checked against the content where that is cheap
(a ``.pdf`` must start like a PDF, a ``.docx`` like a zip). Supported: plain text and Markdown,
HTML (visible text), JSON (as is, once validated), source code and similar text (as is), PDF
(pypdf) and Word ``.docx`` (python-docx). Text must be UTF-8 (a BOM is allowed), UTF-16 with a
BOM, or ASCII, as OpenAI required.

A file whose extension we do not know (or that has none) is read as text when its bytes decode
as such text and look like text (no NUL bytes, almost no control characters): a ``.csv``,
``.yaml`` or ``README`` is searchable. Binary content with such a name is unsupported.

Failures raise ``UnsupportedFile`` or ``InvalidFile``; their ``code`` is the vector store file's
``last_error.code`` and their ``message`` is one sentence the user can act on.
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any, ClassVar, Literal

# --- errors -------------------------------------------------------------------------------


class ExtractionError(Exception):
    """A file whose text we cannot extract; ``code`` is the vector store file's last_error.code."""

    code: ClassVar[Literal["invalid_file", "unsupported_file"]] = "invalid_file"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFile(ExtractionError):
    """A type we do not parse (``.doc``, ``.pptx``, images, archives, binary data)."""

    code: ClassVar[Literal["invalid_file", "unsupported_file"]] = "unsupported_file"


class InvalidFile(ExtractionError):
    """A supported type whose content is broken, encrypted, wrongly encoded or empty."""

    code: ClassVar[Literal["invalid_file", "unsupported_file"]] = "invalid_file"


SUPPORTED_SUMMARY = "PDF, Word (.docx), text, Markdown, HTML, JSON and source code files"

NOT_TEXT = "This file is not UTF-8, UTF-16 or ASCII text; save it as UTF-8 and upload it again."
NO_TEXT = "This file contains no text to search."
PDF_NOT_PDF = "This file's name ends in .pdf but it is not a PDF document; check the file and upload it again."
PDF_DAMAGED = "This PDF could not be read because it is damaged; re-save or re-export it and upload it again."
PDF_ENCRYPTED = "This PDF is password-protected; remove the password and upload it again."
PDF_NO_TEXT = "This PDF contains no selectable text (it may be scanned images); upload a version with selectable text."
DOCX_NOT_DOCX = "This file's name ends in .docx but it is not a Word document; check the file and upload it again."
DOCX_PROTECTED = (
    "This .docx file is password-protected or in the older .doc format; "
    "remove the password or save it as .docx and upload it again."
)
DOCX_DAMAGED = "This Word document could not be read because it is damaged; re-save it and upload it again."
DOCX_NO_TEXT = "This Word document contains no text to search."

# --- file types ---------------------------------------------------------------------------

PLAIN_TEXT_EXTENSIONS = frozenset({"txt", "text", "md", "markdown", "mdx", "rst", "log"})
# OpenAI's list (c cpp cs css go java js php py rb sh tex ts) and their close relatives.
CODE_EXTENSIONS = frozenset(
    {
        "c", "h", "cpp", "cc", "cxx", "hpp", "hh", "hxx", "cs", "css", "scss", "less", "go", "java",
        "kt", "kts", "scala", "groovy", "js", "mjs", "cjs", "jsx", "ts", "tsx", "php", "py", "pyi",
        "rb", "sh", "bash", "zsh", "ps1", "tex", "bib", "rs", "swift", "m", "mm", "r", "lua", "pl",
        "pm", "sql", "vue", "svelte", "dart", "ex", "exs", "erl", "hs", "clj", "fs", "vb", "asm",
        "yaml", "yml", "toml", "ini", "cfg", "conf", "xml", "csv", "tsv", "proto", "graphql",
    }
)  # fmt: skip
HTML_EXTENSIONS = frozenset({"html", "htm", "xhtml"})

_UNSUPPORTED_MESSAGES: dict[frozenset[str], str] = {
    frozenset({"doc", "dot", "rtf", "odt", "pages", "wpd"}): (
        "Files of type .{ext} are not supported; save the document as .docx or PDF and upload it again."
    ),
    frozenset({"ppt", "pptx", "pps", "ppsx", "pptm", "odp", "key"}): (
        "Presentations (.{ext}) are not supported; export the presentation as PDF and upload it again."
    ),
    frozenset({"xls", "xlsx", "xlsm", "ods", "numbers"}): (
        "Spreadsheets (.{ext}) are not supported for file search; export the sheet as PDF or CSV and upload it again."
    ),
    frozenset(
        {"png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff", "heic", "heif", "ico", "avif", "psd"}
    ): "Images (.{ext}) are not supported for file search; upload a document with text, such as a PDF.",
    frozenset({"zip", "tar", "gz", "tgz", "bz2", "xz", "7z", "rar", "zst"}): (
        "Archives (.{ext}) are not supported; extract the files and upload them one by one."
    ),
    frozenset({"mp3", "wav", "m4a", "ogg", "flac", "mp4", "mov", "avi", "mkv", "webm"}): (
        "Audio and video files (.{ext}) are not supported for file search; upload a transcript instead."
    ),
    frozenset({"epub", "mobi", "exe", "dll", "so", "bin", "dmg", "iso", "msi", "class", "jar", "pyc", "wasm"}): (
        "Files of type .{ext} are not supported for file search; upload " + SUPPORTED_SUMMARY + "."
    ),
}

_PDF_MAGIC = b"%PDF-"
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office files, and encrypted OOXML ones


def _extension(filename: str) -> str:
    """The lower-case extension of the file name's last path part, without the dot ("" if none)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return ext.lower().strip() if dot and stem else ""


# --- text ---------------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """Decode UTF-8 (BOM optional, ASCII included) or UTF-16 with a BOM; InvalidFile otherwise."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise InvalidFile(NOT_TEXT)  # UTF-32's LE mark starts like UTF-16's; OpenAI took neither
    try:
        if data.startswith(codecs.BOM_UTF8):
            text = data[len(codecs.BOM_UTF8) :].decode("utf-8")
        elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = data.decode("utf-16")  # reads the BOM, then drops it
        else:
            text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFile(NOT_TEXT) from None
    if "\x00" in text:
        raise InvalidFile(NOT_TEXT)  # binary data, or UTF-16 without its BOM
    return text


_CONTROLS = [chr(c) for c in range(32) if chr(c) not in "\t\n\r\f\v\x1b"]


def _looks_like_text(text: str) -> bool:
    """Decoded bytes that read as text: control characters other than whitespace are rare."""
    return sum(map(text.count, _CONTROLS)) <= len(text) // 100


def _require_text(text: str, message: str = NO_TEXT) -> str:
    if not text.strip():
        raise InvalidFile(message)
    return text


def _plain(data: bytes) -> str:
    return _require_text(decode_text(data))


def _json(data: bytes) -> str:
    text = _require_text(decode_text(data))
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidFile(
            f"This file is not valid JSON ({e.msg.lower()} at line {e.lineno}, column {e.colno}); "
            "fix it and upload it again."
        ) from None
    except RecursionError:
        raise InvalidFile("This JSON file is nested too deeply to read; simplify it and upload it again.") from None
    return text


# --- HTML ---------------------------------------------------------------------------------

# Elements whose content is never shown as text. (Not <head>: an unclosed one would hide the
# page, and the only text it holds besides scripts and styles is the <title>, which we keep.)
_HIDDEN = frozenset({"script", "style", "noscript", "template"})
# Block elements: their edges are line breaks; paragraph-like ones leave a blank line.
_PARAGRAPHS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "ul", "ol", "dl", "figure", "hr", "title"}
)
_BLOCKS = _PARAGRAPHS | frozenset(
    {
        "address", "article", "aside", "body", "caption", "dd", "details", "dialog", "div", "dt",
        "fieldset", "figcaption", "footer", "form", "header", "hgroup", "li", "main", "nav", "option",
        "section", "summary", "tr", "legend",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _VisibleText(HTMLParser):
    """Collects an HTML document's visible text: whitespace collapsed, blocks on their own lines.

    ``<title>`` is kept (it names the document); scripts, styles, ``<noscript>`` and templates
    are not. Table cells are separated by tabs, ``<pre>`` keeps its whitespace.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pending = 0  # line breaks owed before the next text: 0, 1 or 2
        self.space = False  # a collapsed space owed before the next text on this line
        self.separated = True  # just after a line break or a tab: no space needed
        self.hidden = 0
        self.in_pre = 0

    def _break(self, lines: int) -> None:
        if self.out:
            self.pending = max(self.pending, lines)
        self.space = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            if self.out:
                self.pending = min(self.pending + 1, 2)
            self.space = False
        elif tag in _CELLS:
            if self.out and not self.pending:
                self.out.append("\t")
                self.separated, self.space = True, False
        elif tag in _BLOCKS:
            self._break(2 if tag in _PARAGRAPHS else 1)
        if tag == "pre":
            self.in_pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in _BLOCKS:
            self._break(2 if tag in _PARAGRAPHS else 1)
        if tag == "pre":
            self.in_pre = max(self.in_pre - 1, 0)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self.hidden or not data:
            return
        if self.in_pre:
            text = data[1:] if self.pending and data.startswith("\n") else data
        else:
            words = data.split()
            if not words:
                self.space = True
                return
            lead = (self.space or data[0].isspace()) and not self.separated and not self.pending
            text = (" " if lead else "") + " ".join(words)
            self.space = data[-1].isspace()
        if self.pending:
            self.out.append("\n" * self.pending)
            self.pending = 0
        self.out.append(text)
        self.separated = text.endswith(("\n", "\t"))

    def text(self) -> str:
        return "".join(self.out)


def html_text(source: str) -> str:
    """The visible text of an HTML document, one block element a line."""
    parser = _VisibleText()
    parser.feed(source)
    parser.close()
    return parser.text()


def _html(data: bytes) -> str:
    return _require_text(html_text(decode_text(data)))


# --- PDF ----------------------------------------------------------------------------------


def _pdf(data: bytes) -> str:
    if _PDF_MAGIC not in data[:1024]:
        raise InvalidFile(PDF_NOT_PDF)
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise InvalidFile(PDF_ENCRYPTED)  # pypdf tried the empty user password: a real one is set
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except ExtractionError:
        raise
    except (FileNotDecryptedError, DependencyError):
        # DependencyError: AES encryption without the cryptography package.
        raise InvalidFile(PDF_ENCRYPTED) from None
    except MemoryError:
        raise
    except Exception:  # pypdf raises many types (and KeyError, ValueError...) on broken files
        raise InvalidFile(PDF_DAMAGED) from None
    return _require_text("\n\n".join(p for p in pages if p), PDF_NO_TEXT)


# --- Word ---------------------------------------------------------------------------------


def _docx_blocks(parent: Any, container: Any) -> Iterator[str]:
    """Paragraph and table texts of a body or cell, in document order (content controls opened)."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in container.iterchildren():
        if child.tag == qn("w:p"):
            yield Paragraph(child, parent).text
        elif child.tag == qn("w:tbl"):
            yield from _docx_table(Table(child, parent))
        elif child.tag == qn("w:sdt"):
            for content in child.iterchildren(qn("w:sdtContent")):
                yield from _docx_blocks(parent, content)


def _docx_table(table: Any) -> Iterator[str]:
    """One line a row, cells separated by tabs; a merged cell appears once."""
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(t.strip() for t in _docx_blocks(cell, cell._tc) if t.strip()))
        if any(cells):
            yield "\t".join(cells)


def _docx(data: bytes) -> str:
    if data.startswith(_OLE_MAGIC):
        raise InvalidFile(DOCX_PROTECTED)
    if not data.startswith(_ZIP_MAGIC):
        raise InvalidFile(DOCX_NOT_DOCX)
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [b for b in _docx_blocks(document, document.element.body) if b.strip()]
    except MemoryError:
        raise
    except Exception:  # a bad zip, a missing part, broken XML, another OOXML type (.xlsx)
        raise InvalidFile(DOCX_DAMAGED) from None
    return _require_text("\n".join(blocks), DOCX_NO_TEXT)


# --- dispatch -----------------------------------------------------------------------------

_READERS: dict[str, Callable[[bytes], str]] = {
    **dict.fromkeys(PLAIN_TEXT_EXTENSIONS | CODE_EXTENSIONS, _plain),
    **dict.fromkeys(HTML_EXTENSIONS, _html),
    "json": _json,
    "pdf": _pdf,
    "docx": _docx,
}
SUPPORTED_EXTENSIONS = frozenset(_READERS)


def _unknown(data: bytes, ext: str) -> str:
    """A name we do not know: text if the bytes are text, else unsupported (with a hint)."""
    try:
        text = decode_text(data)
    except InvalidFile:
        text = None
    if text is not None and _looks_like_text(text):
        return _require_text(text)
    if _PDF_MAGIC in data[:1024]:
        hint = "it looks like a PDF, so rename it to end in .pdf and upload it again."
    elif data.startswith(_ZIP_MAGIC) and b"word/" in data[:4096]:
        hint = "it looks like a Word document, so rename it to end in .docx and upload it again."
    else:
        hint = f"upload {SUPPORTED_SUMMARY}."
    kind = f"Files of type .{ext}" if ext else "Files without an extension that are not text"
    raise UnsupportedFile(f"{kind} are not supported for file search; {hint}")


def extract_text(data: bytes, filename: str) -> str:
    """The text of a file, by its name's extension; raises UnsupportedFile or InvalidFile."""
    ext = _extension(filename)
    reader = _READERS.get(ext)
    if reader is not None:
        if not data.strip():
            raise InvalidFile(NO_TEXT)  # an empty .pdf is empty rather than "not a PDF"
        return reader(data)
    for extensions, message in _UNSUPPORTED_MESSAGES.items():
        if ext in extensions:
            raise UnsupportedFile(message.format(ext=ext))
    return _unknown(data, ext)
