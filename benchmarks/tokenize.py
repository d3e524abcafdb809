"""Tokenizing: daft_flow's native WordPiece vs HF `tokenizers` on the same corpus, same run.

Two corpora (benchmarks/_text_corpus.py): English (the python3.11-doc reST sources) and multilingual
(translated gettext catalogs in 14 languages: CJK, Cyrillic, Greek, accented Latin, plus emoji). Checks
that ids and offsets are identical to HF's on both and on the hard cases of tests/text/text_hard_cases.py,
then reports encode_batch throughput ("daft_flow x" = HF time / ours) and tokens per second.
Run: python -m benchmarks.tokenize [--max-mb N] [--repeat N]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from benchmarks._text_corpus import LOCALE_DIR, load_corpus, load_multilingual_corpus, mb, print_table, timed


def _hard_cases() -> list[str]:
    path = Path(__file__).resolve().parent.parent / "tests" / "text" / "text_hard_cases.py"
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location("text_hard_cases", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(mod.HARD_CASES)


def _check_ids(ours, hf, name: str, texts: list[str]) -> bool:
    """Ids and offsets identical to HF's on every text; prints one line."""
    encs = hf.encode_batch(texts)
    expected = [e.ids for e in encs]
    got = ours.encode_batch(texts)
    bad = [i for i in range(len(texts)) if got[i] != expected[i]]
    bad_offsets = [i for i, (t, e) in enumerate(zip(texts, encs))
                   if ours.encode_with_offsets(t)[1] != [tuple(o) for o in e.offsets]]
    ntok = sum(len(x) for x in expected)
    ok = not bad and not bad_offsets
    print(f"ids and offsets identical to HF on {name}: {'yes' if ok else 'NO'} ({len(texts)} texts, {ntok} ids"
          + (f", {len(bad)} differ in ids, {len(bad_offsets)} in offsets" if not ok else "") + ")")
    return ok


def _bench(ours, hf, title: str, docs: list[str], repeat: int) -> None:
    size = mb(docs)
    ntok = sum(ours.count_batch(docs))
    rows = []
    for threads in (1, 2):
        secs, _ = timed(lambda threads=threads: ours.encode_batch(docs, threads=threads), repeat)
        rows.append((f"daft_flow Tokenizer.encode_batch ({threads} thread{'s' if threads > 1 else ''})", secs,
                     f"{ntok / secs / 1e6:.2f}M tokens/s"))
    secs, _ = timed(lambda: hf.encode_batch(docs), repeat)
    rows.append(("HF tokenizers encode_batch (all cores)", secs, f"{ntok / secs / 1e6:.2f}M tokens/s"))
    secs, _ = timed(lambda: [ours.count(d) for d in docs], repeat)
    rows.append(("daft_flow Tokenizer.count (1 thread, no ids)", secs, ""))
    print_table(title, size, rows, "daft_flow Tokenizer.encode_batch (2 threads)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.tokenize", description=__doc__.splitlines()[0])
    ap.add_argument("--max-mb", type=float, default=0, help="size cap per corpus in MB (default 0 = all)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from tokenizers import Tokenizer as HFTokenizer

    from daft_flow.text import Tokenizer

    ours = Tokenizer.default()
    hf = HFTokenizer.from_file(ours.path)
    hf.no_truncation()
    hf.no_padding()

    english, english_what = load_corpus(args.max_mb or None)
    multi, multi_what = load_multilingual_corpus(args.max_mb or None)
    print(f"English corpus: {english_what}, {mb(english):.2f} MB")
    print(f"multilingual corpus: {multi_what}, {mb(multi):.2f} MB")
    ok = _check_ids(ours, hf, "the English corpus", english)
    if multi:
        ok &= _check_ids(ours, hf, "the multilingual corpus", multi)
    ok &= _check_ids(ours, hf, "hard cases", _hard_cases())

    _bench(ours, hf, "encode_batch, all-MiniLM-L6-v2 WordPiece, English", english, args.repeat)
    if multi:
        _bench(ours, hf, "encode_batch, all-MiniLM-L6-v2 WordPiece, multilingual", multi, args.repeat)
    else:
        print(f"NOTE: no gettext catalogs under {LOCALE_DIR}; multilingual case skipped", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
