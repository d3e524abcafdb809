"""Hard inputs for tokenizer parity (also used by benchmarks/tokenize.py)."""

HARD_CASES: list[str] = [
    "",
    " ",
    "\t\n\r \u3000\u00a0\u2028",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "HeLLo WoRLD ÀÉÎÕÜ àéîõü Ångström naïve café façade",
    "e\u0301 a\u0308 o\u0302\u0323 combining \u0301\u0301 marks",
    "中文字符测试，日本語のテキスト。한국어 텍스트입니다",
    "\uf900\ufa6e\u3400\U00020000 CJK compatibility and extension",
    "emoji 😀🎉👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷 ❤️",
    "control \x00\x01\x07\x1b\x7f\x85 chars \u200b\u200d\ufeff\ufffd here",
    "x" * 100,
    "y" * 101,
    "supercalifragilisticexpialidocious" * 4,
    "ab" + "é" * 99 + " " + "é" * 101,
    "mixed\twhitespace\nlines\r\nand  double   spaces\u2003em\u2009thin",
    "punctuation!!! ??? ... ,,, ;;; :: --- ___ ((())) [[]] {{}} <<>> \"'`~@#$%^&*+=|\\/",
    "unicode punct «guillemets» “quotes” ‘single’ — en–dash … ¡¿ § ¶ † ‡ • ‰ ※ ‽",
    "[CLS] special [SEP] tokens [MASK] inside [UNK] text [PAD][SEP][CLS]",
    "[cls] lowercase [sep] not special [SEP",
    "numbers 3.14159 1,000,000 42nd 2024-01-01 0x1F 1e-9",
    "URLs https://example.com/path?q=1&x=y#frag user@example.org",
    "code: def f(x): return x**2 if x > 0 else -x  # comment",
    "Ελληνικά ΣΊΣΥΦΟΣ ς Кириллица ЁЖИК עברית العربية हिन्दी ไทย",
    "İstanbul ǅ ǈ ß ẞ ﬁ ﬀ Ⅻ ⓐ Ａ１ ｆｕｌｌｗｉｄｔｈ",
    "\u0378\u0890\u07fd\u1734 unassigned and newer",
    "tab\tsep\x0bvt\x0cff\x1c\x1d\x1e\x1fsep",
    "a" * 5000,
    "word " * 2000,
    # Removed code points inside words of each kind (plain ASCII, non-ASCII, Hangul), which change how
    # the offsets of the word's pieces are tracked.
    "ab\x00cd жи\x00ши na\u00efve\u200bword 한국\x01어 Ab\x7fCd é\u0301\u0301e",
    # Expansions at the start, middle and end of words, and combining marks with nothing to attach to.
    "İİ xİy zzİ \u0301start a\u0301\u0308b ǅx Ǆ",
    # Long non-ASCII words: lowercase (kept as they are), then one uppercase letter, then a removal.
    "é" * 150 + "A" + "é" * 10 + " " + "ж" * 200 + "\x00ж " + "Ж" * 300,
    "é[SEP]ж[CLS]中[MASK]ÀB",
]
