"""Turning an uploaded file into chunks for file_search: text extraction, then token chunking.

``extract.extract_text`` reads the file's text (or raises an ``ExtractionError`` whose ``code``
is the vector store file's ``last_error.code``); ``chunking.chunk_text`` splits it into the
overlapping token windows that get embedded. PDF and Word parsers (pypdf, python-docx) come from
the ingest layer and are imported only when such a file is read.
"""
