"""Tokenizing: daft_flow's native WordPiece vs HF `tokenizers` on the same corpus, same run.

Checks that the ids are identical to HF's on the whole corpus and on the hard cases of
tests/text/text_hard_cases.py, then reports encode_batch throughput ("daft_flow x" = HF time / ours).
Run: python -m benchmarks.tokenize [--max-mb N] [--repeat N]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from benchmarks._text_corpus import load_corpus, mb, print_table, timed


def _hard_cases() -> list[str]:
    path = Path(__file__).resolve().parent.parent / "tests" / "text" / "text_hard_cases.py"
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location("text_hard_cases", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(mod.HARD_CASES)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.tokenize", description=__doc__.splitlines()[0])
    ap.add_argument("--max-mb", type=float, default=0, help="corpus size cap in MB (default 0 = all)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from tokenizers import Tokenizer as HFTokenizer

    from daft_flow.text import Tokenizer

    docs, what = load_corpus(args.max_mb or None)
    size = mb(docs)
    print(f"corpus: {what}, {size:.2f} MB")
    ours = Tokenizer.default()
    hf = HFTokenizer.from_file(ours.path)
    hf.no_truncation()
    hf.no_padding()

    hard = _hard_cases()
    ok = True
    for name, texts in (("corpus", docs), ("hard cases", hard)):
        expected = [e.ids for e in hf.encode_batch(texts)]
        got = ours.encode_batch(texts)
        bad = [i for i in range(len(texts)) if got[i] != expected[i]]
        ntok = sum(len(x) for x in expected)
        print(f"ids identical to HF on {name}: {'yes' if not bad else 'NO'} ({len(texts)} texts, {ntok} ids"
              + (f", {len(bad)} differ" if bad else "") + ")")
        ok &= not bad

    rows = []
    for threads in (1, 2):
        secs, _ = timed(lambda threads=threads: ours.encode_batch(docs, threads=threads), args.repeat)
        rows.append((f"daft_flow Tokenizer.encode_batch ({threads} thread{'s' if threads > 1 else ''})", secs, ""))
    secs, _ = timed(lambda: hf.encode_batch(docs), args.repeat)
    rows.append(("HF tokenizers encode_batch (all cores)", secs, "no truncation/padding"))
    secs, _ = timed(lambda: [ours.count(d) for d in docs], args.repeat)
    rows.append(("daft_flow Tokenizer.count (1 thread, no ids)", secs, ""))
    print_table("encode_batch, all-MiniLM-L6-v2 WordPiece", size, rows,
                "daft_flow Tokenizer.encode_batch (2 threads)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
