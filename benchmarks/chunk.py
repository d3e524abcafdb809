"""Chunking throughput: daft_flow's native chunkers vs semantic-text-splitter, langchain, chonkie.

Every implementation chunks the same documents in the same process run; the table reports MB/s and how
many times faster daft_flow is ("daft_flow x" = peer time / daft_flow time). Every timing includes
building the Python results: daft_flow returns per text a list of (start, end) int tuples, the
splitters return lists of str (chonkie: lists of Chunk objects); the note column says which.
Run: python -m benchmarks.chunk [--max-mb N] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys

from benchmarks._text_corpus import load_corpus, mb, print_table, timed


def _peer(name: str, make, docs, repeat, rows, note="", returns="str"):
    try:
        fn = make()
    except ImportError as e:
        print(f"skipping {name}: {e}", file=sys.stderr)
        return
    secs, out = timed(lambda: [fn(d) for d in docs], repeat)
    rows.append((name, secs, note or f"{sum(len(c) for c in out)} chunks, {returns}"))


def bench_chars(docs, repeat, max_chars=1000, overlap=200):
    from daft_flow.text import chunk_offsets

    rows = []
    for threads in (1, 2):
        secs, out = timed(lambda threads=threads: chunk_offsets(docs, max_chars=max_chars, overlap=overlap, threads=threads),
                          repeat)
        rows.append((f"daft_flow chunk_offsets max_chars ({threads} thread{'s' if threads > 1 else ''})", secs,
                     f"{sum(len(c) for c in out)} chunks, (start, end)"))

    def sts():
        from semantic_text_splitter import TextSplitter

        return TextSplitter(max_chars, overlap=overlap).chunks

    def lc():
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        return RecursiveCharacterTextSplitter(chunk_size=max_chars, chunk_overlap=overlap).split_text

    def chonkie_rec():
        from chonkie import RecursiveChunker

        return RecursiveChunker(chunk_size=max_chars).chunk

    _peer("semantic-text-splitter TextSplitter(capacity)", sts, docs, repeat, rows)
    _peer("langchain RecursiveCharacterTextSplitter", lc, docs, repeat, rows)
    _peer("chonkie RecursiveChunker (no overlap option)", chonkie_rec, docs, repeat, rows, returns="Chunk")
    return rows


def bench_tokens(docs, repeat, max_tokens=256, overlap=32):
    from tokenizers import Tokenizer as HFTokenizer

    from daft_flow.text import Tokenizer, chunk_offsets

    tok = Tokenizer.default()
    rows = []
    for threads in (1, 2):
        secs, out = timed(
            lambda threads=threads: chunk_offsets(docs, max_tokens=max_tokens, overlap_tokens=overlap, tokenizer=tok,
                                                  threads=threads),
            repeat,
        )
        rows.append((f"daft_flow chunk_offsets max_tokens ({threads} thread{'s' if threads > 1 else ''})", secs,
                     f"{sum(len(c) for c in out)} chunks, (start, end)"))

    def hf():
        t = HFTokenizer.from_file(tok.path)
        t.no_truncation()
        t.no_padding()
        return t

    def chonkie_tok():
        from chonkie import TokenChunker

        return TokenChunker(tokenizer=hf(), chunk_size=max_tokens, chunk_overlap=overlap).chunk

    def sts_hf():
        from semantic_text_splitter import TextSplitter

        return TextSplitter.from_huggingface_tokenizer(hf(), max_tokens, overlap=overlap).chunks

    _peer("chonkie TokenChunker (HF MiniLM tokenizer)", chonkie_tok, docs, 1, rows, returns="Chunk")
    _peer("semantic-text-splitter from_huggingface_tokenizer", sts_hf, docs, 1, rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.chunk", description=__doc__.splitlines()[0])
    ap.add_argument("--max-mb", type=float, default=2.0, help="corpus size cap in MB (default 2; 0 = all)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for the fast implementations")
    args = ap.parse_args(argv)
    docs, what = load_corpus(args.max_mb or None)
    size = mb(docs)
    print(f"corpus: {what}, {size:.2f} MB")
    rows = bench_chars(docs, args.repeat)
    print_table("chunk by characters: max 1000, overlap 200", size, rows,
                "daft_flow chunk_offsets max_chars (1 thread)")
    one, two = rows[0][1], rows[1][1]
    print(f"2 threads vs 1 thread: {one / two:.2f}x")
    rows = bench_tokens(docs, args.repeat)
    print_table("chunk by tokens: max 256, overlap 32, all-MiniLM-L6-v2 WordPiece", size, rows,
                "daft_flow chunk_offsets max_tokens (1 thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
