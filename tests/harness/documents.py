"""Small documents built in memory for the ingestion tests: PDFs and Word files."""

from __future__ import annotations

import io

import docx
import docx.document


def make_pdf(pages: list[list[str] | None]) -> bytes:
    """A minimal valid PDF: each page is lines of WinAnsi text, or None for an image-only page."""
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray"
        b" /BitsPerComponent 8 /Length 4 >>\nstream\n\x00\xff\xff\x00\nendstream",
    }
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(len(pages)))
    objects[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode()
    for i, lines in enumerate(pages):
        if lines is None:  # an image and a filled rectangle, no text operators
            stream = b"q 200 0 0 200 72 500 cm /Im1 Do Q 0 0 1 rg 72 72 100 100 re f"
        else:
            ops = [b"BT /F1 12 Tf 14 TL 72 720 Td"]
            for line in lines:
                escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
                ops.append(b"(" + escaped.encode("cp1252") + b") Tj T*")
            ops.append(b"ET")
            stream = b"\n".join(ops)
        objects[5 + 2 * i] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >>"
            b" /XObject << /Im1 4 0 R >> >> /Contents " + str(6 + 2 * i).encode() + b" 0 R >>"
        )
        objects[6 + 2 * i] = f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in range(1, size))
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def save_docx(document: docx.document.Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_docx(paragraphs: list[str]) -> bytes:
    """A Word file of these paragraphs."""
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    return save_docx(document)
