"""Text operators: a native WordPiece tokenizer and chunkers."""

from daft_flow.text.chunker import chunk_offsets
from daft_flow.text.tokenizer import Tokenizer, UnsupportedTokenizer

__all__ = ["Tokenizer", "UnsupportedTokenizer", "chunk_offsets"]
