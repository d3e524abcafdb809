"""Shared input for the text benchmarks.

English: the reST sources of Debian's python3.11-doc package. Multilingual ("locale catalogs"): the
translated messages of the gettext catalogs that ship under /usr/share/locale (GTK, GLib, coreutils, PAM,
apt, bash, ISO country and language names) in 14 languages (CJK: zh_CN, ja, ko; Cyrillic: ru, uk; Greek:
el; accented Latin: fr, de, es, pt_BR, pl, cs, vi, tr), with emoji from rich's emoji table (a dependency of
daft_flow) after every fifth message, as chat-like text carries them.
"""

from __future__ import annotations

import gettext
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# No text benchmark uses BLAS, but importing daft_flow imports pyarrow and so numpy, whose OpenBLAS
# starts a spinning worker per core; on a small machine those take the cores the multi-threaded cases
# (ours and HF's) are measuring. One BLAS thread (set before numpy is imported) removes them for all.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

DOC_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
_FALLBACK_PARAGRAPH = (
    "Chunking splits documents into pieces that fit a model's context. This is a synthetic paragraph used "
    "because the python3.11-doc sources are missing; install them with `apt-get install python3.11-doc`.\n\n"
)


def load_corpus(max_mb: float | None) -> tuple[list[str], str]:
    """Returns (documents, description). Falls back to synthetic text, saying so, if the sources are absent."""
    files = sorted(p for p in DOC_SOURCES.rglob("*") if p.is_file() and p.suffix in (".txt", ".rst"))
    if not files:
        print(f"NOTE: {DOC_SOURCES} not found (apt-get install -y python3.11-doc); using synthetic text",
              file=sys.stderr)
        n = int((max_mb or 4) * 1e6 / len(_FALLBACK_PARAGRAPH))
        docs = [_FALLBACK_PARAGRAPH * 50 for _ in range(max(1, n // 50))]
        return docs, f"synthetic fallback text ({len(docs)} documents)"
    docs, total = [], 0
    for p in files:
        text = p.read_text(encoding="utf-8", errors="replace")
        docs.append(text)
        total += len(text.encode("utf-8"))
        if max_mb is not None and total >= max_mb * 1e6:
            break
    what = f"{len(docs)} of {len(files)} reST sources under {DOC_SOURCES} (python3.11-doc)"
    return docs, what


LOCALE_DIR = Path("/usr/share/locale")
MULTILINGUAL_LANGUAGES = ("zh_CN", "ja", "ko", "ru", "uk", "el", "fr", "de", "es", "pt_BR", "pl", "cs", "vi", "tr")
MULTILINGUAL_CATALOGS = ("gtk30", "glib20", "coreutils", "Linux-PAM", "apt", "bash", "iso_3166-1", "iso_639-3",
                         "gdk-pixbuf", "shared-mime-info", "PackageKit")


def load_multilingual_corpus(max_mb: float | None) -> tuple[list[str], str]:
    """One document per (language, catalog): its translated messages, one per line, an emoji after every
    fifth. Returns (documents, description); empty documents if no catalog is installed."""
    from rich._emoji_codes import EMOJI

    emoji = sorted(EMOJI.values())
    docs, total, langs = [], 0, set()
    for lang in MULTILINGUAL_LANGUAGES:
        for domain in MULTILINGUAL_CATALOGS:
            path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.mo"
            if not path.is_file():
                continue
            with path.open("rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # the messages themselves, not a lookup
            lines = []
            for i, (_, msg) in enumerate(sorted((k, v) for k, v in catalog.items() if k and isinstance(k, str))):
                lines.append(msg + (" " + emoji[(len(docs) * 131 + i * 7919) % len(emoji)] if i % 5 == 4 else ""))
            doc = "\n".join(lines)
            if not doc:
                continue
            docs.append(doc)
            langs.add(lang)
            total += len(doc.encode("utf-8"))
            if max_mb is not None and total >= max_mb * 1e6:
                break
        if max_mb is not None and total >= max_mb * 1e6:
            break
    what = (f"locale catalogs: {len(docs)} gettext catalogs under {LOCALE_DIR} in {len(langs)} languages "
            f"({', '.join(lang for lang in MULTILINGUAL_LANGUAGES if lang in langs)}) + rich emoji")
    return docs, what


def load_paragraphs(count: int) -> tuple[list[str], str]:
    """``count`` paragraphs (blank-line separated, non-empty) spread evenly over the whole corpus, in
    corpus order, and a description."""
    docs, what = load_corpus(None)
    paragraphs = [p.strip() for d in docs for p in d.split("\n\n") if p.strip()]
    step = max(1, len(paragraphs) // max(1, count))
    picked = paragraphs[::step][:count]
    return picked, f"{len(picked)} of {len(paragraphs)} paragraphs of {what}"


def mb(docs: list[str]) -> float:
    return sum(len(d.encode("utf-8")) for d in docs) / 1e6


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall time of `repeat` runs, and the result of the last run."""
    best, result = float("inf"), None
    for _ in range(repeat):
        result = None  # free the previous run's result outside the timed region
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def print_table(title: str, size_mb: float, rows: list[tuple[str, float, str]], baseline: str) -> None:
    """rows: (name, seconds, note). Ratios are ours-vs-peer: the baseline's MB/s over each row's."""
    base = next(s for n, s, _ in rows if n == baseline)
    print(f"\n{title}  ({size_mb:.2f} MB)")
    print(f"{'implementation':<52} {'MB/s':>9} {'daft_flow x':>12}  note")
    for name, secs, note in rows:
        ratio = secs / base if base > 0 else float("inf")
        print(f"{name:<52} {size_mb / secs:>9.2f} {ratio:>11.1f}x  {note}")
