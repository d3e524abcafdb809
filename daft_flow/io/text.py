"""Bytes -> text: Unicode decoding with charset detection as a fallback, HTML to text (selectolax),
PDF to text (pypdf). CSV, JSON, Markdown and other text formats are returned as decoded text."""
from __future__ import annotations

import codecs
import io
import os
from urllib.parse import urlsplit

_HTML_EXT = (".html", ".htm", ".xhtml")
_PDF_EXT = (".pdf",)


def _extension(url: str) -> str:
    path = urlsplit(url).path if "://" in url else url
    return os.path.splitext(path)[1].lower()


def sniff(data: bytes, url: str) -> str:
    """"pdf", "html" or "text", from the magic bytes first and the extension second."""
    if data[:5] == b"%PDF-":
        return "pdf"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or (head.startswith(b"<?xml") and b"<html" in head):
        return "html"
    ext = _extension(url)
    if ext in _HTML_EXT and head.startswith(b"<"):
        return "html"
    if ext in _PDF_EXT:
        return "pdf"  # not a PDF by its bytes: pypdf reports what is wrong
    return "text"


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 0x09 or 0x0E <= b < 0x20 or b == 0x7F)
    return controls / len(sample) > 0.05


_MULTIBYTE = ("utf", "big5", "gb", "euc", "shift_jis", "cp932", "cp949", "cp950", "hz", "iso2022", "johab")


def _letter_share(text: str) -> float:
    """The share of non-ASCII characters that are letters (mojibake is mostly symbols)."""
    sample = [c for c in text[:200_000] if ord(c) > 127]
    return sum(c.isalpha() for c in sample) / len(sample) if sample else 1.0


def _prefer_cp1252(data: bytes, text: str, encoding: str) -> str:
    """Short Western European texts fit several single-byte code pages equally well, and detectors
    often pick a Baltic or Central European one (à read as ą). Windows-1252, what browsers read
    latin-1 as, wins when it makes at least as many letters of the bytes as the detected one."""
    if encoding == "cp1252" or encoding.startswith(_MULTIBYTE):
        return text
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        return text
    return western if _letter_share(western) >= _letter_share(text) else text


def decode(data: bytes, url: str) -> str:
    """UTF-8 (with or without BOM), UTF-16/32 with a BOM, else the encoding charset-normalizer
    detects. Raises ValueError naming the URL for bytes that are not text."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        first_error = e
    if not _looks_binary(data):
        try:
            from charset_normalizer import from_bytes
        except ImportError:  # pragma: no cover - a dependency of the files extra
            from_bytes = None
        if from_bytes is not None:
            best = from_bytes(data).best()
            if best is not None:
                return _prefer_cp1252(data, str(best), best.encoding)
    raise ValueError(f"{url}: cannot read {len(data)} bytes as text: not UTF-8 ({first_error.reason} at byte "
                     f"{first_error.start}) and no other text encoding fits")


def html_to_text(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "head"])
    root = tree.body or tree.root
    if root is None:
        return ""
    lines = (line.strip() for line in root.text(separator="\n").splitlines())
    return "\n".join(line for line in lines if line)


def pdf_to_text(data: bytes, url: str) -> str:
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover
        raise ImportError(f"reading the PDF {url!r} needs pypdf: pip install 'daft-flow[files]'") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except Exception as e:
        raise ValueError(f"{url}: cannot read as PDF: {type(e).__name__}: {e}") from e


def bytes_to_text(data: bytes, url: str) -> str:
    kind = sniff(data, url)
    if kind == "pdf":
        return pdf_to_text(data, url)
    text = decode(data, url)
    return html_to_text(text) if kind == "html" else text
