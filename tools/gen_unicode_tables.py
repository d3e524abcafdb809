#!/usr/bin/env python3
"""Generate cpp/src/text/unicode_tables.cc: the Unicode lookup tables of the BERT normalizer,
pre-tokenizer and chunker.

The base data comes from Python's `unicodedata`. HF `tokenizers` (the reference we must match id for
id) uses older Unicode category tables (the `unicode_categories` crate) and newer case tables (Rust std),
so a few hundred code points behave differently there. Those differences live in
tools/unicode_hf_overrides.txt, which `--derive-overrides` re-derives by probing `tokenizers` itself;
generation only reads it, so the output depends on nothing but this script, that file and the
`unicodedata` version (recorded in the output; tests/text/test_unicode_tables.py checks staleness).

Usage:
  python3 tools/gen_unicode_tables.py [--out PATH]       # regenerate the .cc
  python3 tools/gen_unicode_tables.py --derive-overrides  # re-probe tokenizers (needs `tokenizers`)
"""
from __future__ import annotations

import argparse
import sys
import unicodedata as ud
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "cpp" / "src" / "text" / "unicode_tables.cc"
OVERRIDES = ROOT / "tools" / "unicode_hf_overrides.txt"
MAX_CP = 0x110000
BLOCK = 256

# Unicode White_Space (what Rust's char::is_whitespace uses); Python's str.isspace adds U+001C..U+001F.
WHITE_SPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]

F_WS, F_CONTROL, F_PUNCT, F_CJK, F_SENT = 1, 2, 4, 8, 16
MODES = ("lower", "strip", "fold")


def chars():
    for cp in range(MAX_CP):
        if 0xD800 <= cp < 0xE000:
            continue
        yield cp


def base_flags(cp: int) -> int:
    c = chr(cp)
    cat = ud.category(c)
    f = 0
    if cp in WHITE_SPACE:
        f |= F_WS
    if cp not in (9, 10, 13) and (cp == 0 or cp == 0xFFFD or cat in ("Cc", "Cf", "Co", "Cs")):
        f |= F_CONTROL
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126) or cat[0] == "P":
        f |= F_PUNCT
    if any(a <= cp <= b for a, b in CJK_RANGES):
        f |= F_CJK
    if cp in (0x21, 0x2E, 0x3F):  # ! . ?  (sentence ends for the chunker)
        f |= F_SENT
    return f


def base_map(cp: int, mode: str) -> str:
    c = chr(cp)
    if mode == "lower":
        return c.lower()
    s = "".join(x for x in ud.normalize("NFD", c) if ud.category(x) != "Mn")
    return s.lower() if mode == "fold" else s


def parse_overrides():
    flags: dict[int, int] = {}
    maps: dict[str, dict[int, str]] = {m: {} for m in MODES}
    for line in OVERRIDES.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        rng, *kvs = line.split()
        a, _, b = rng.partition("..")
        lo, hi = int(a, 16), int(b or a, 16)
        for kv in kvs:
            k, v = kv.split("=")
            for cp in range(lo, hi + 1):
                if k == "flags":
                    flags[cp] = int(v)
                elif v == "self":
                    maps[k][cp] = chr(cp)
                else:
                    maps[k][cp] = "" if v == "-" else "".join(chr(int(x, 16)) for x in v.split(","))
    return flags, maps


def derive_overrides() -> None:
    from tokenizers import normalizers, pre_tokenizers

    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    norm = {
        "lower": normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True),
        "strip": normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False),
        "fold": normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=True),
    }
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre = pre_tokenizers.BertPreTokenizer()
    rows: list[tuple[int, str]] = []
    for cp in chars():
        c = chr(cp)
        bf = base_flags(cp)
        hf = bf & F_SENT
        if cp in WHITE_SPACE:
            hf |= F_WS
        if clean.normalize_str(c) == "" or (cp in WHITE_SPACE and clean.normalize_str(c) != " "):
            hf |= F_CONTROL
        parts = [p for p, _ in pre.pre_tokenize_str("a" + c + "a")]
        if cp not in WHITE_SPACE and parts == ["a", c, "a"]:
            hf |= F_PUNCT
        if chinese.normalize_str(c) == f" {c} ":
            hf |= F_CJK
        items = []
        if hf != bf:
            items.append(f"flags={hf}")
        for m in MODES:
            got = norm[m].normalize_str(c)
            if got != base_map(cp, m):
                val = "self" if got == c else (",".join(f"{ord(x):X}" for x in got) or "-")
                items.append(f"{m}={val}")
        if items:
            rows.append((cp, " ".join(items)))
    # Merge runs of consecutive code points with identical overrides.
    out, i = [], 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1][0] == rows[j][0] + 1 and rows[j + 1][1] == rows[i][1]:
            j += 1
        rng = f"{rows[i][0]:04X}" + (f"..{rows[j][0]:04X}" if j > i else "")
        out.append(f"{rng} {rows[i][1]}")
        i = j + 1
    import tokenizers

    OVERRIDES.write_text(
        "# Code points where HF tokenizers' BERT normalizer / pre-tokenizer differs from Python's unicodedata\n"
        f"# (unicodedata {ud.unidata_version}, tokenizers {tokenizers.__version__}). Generated by\n"
        "# `tools/gen_unicode_tables.py --derive-overrides`; flags are bit sets (1 ws, 2 control, 4 punct,\n"
        "# 8 cjk, 16 sentence end), mappings are hex code points ('-' = removed,\n# 'self' = unchanged).\n"
        + "\n".join(out) + "\n"
    )
    print(f"wrote {OVERRIDES} ({len(out)} lines)")


def two_level(values: list[int]):
    blocks: dict[tuple, int] = {}
    stage1, stage2 = [], []
    for start in range(0, MAX_CP, BLOCK):
        blk = tuple(values[start:start + BLOCK])
        if blk not in blocks:
            blocks[blk] = len(blocks)
            stage2.extend(blk)
        stage1.append(blocks[blk])
    return stage1, stage2


def fmt(name: str, ctype: str, vals: list[int], per_line: int = 24) -> str:
    lines = [f"const {ctype} {name}[{len(vals)}] = {{"]
    for i in range(0, len(vals), per_line):
        lines.append("    " + ",".join(str(v) for v in vals[i:i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def generate() -> str:
    oflags, omaps = parse_overrides()
    flags = [0] * MAX_CP
    for cp in chars():
        flags[cp] = oflags.get(cp, base_flags(cp))
    pool: list[int] = [0]  # index 0 unused: a zero entry means "maps to itself"
    pool_index: dict[str, int] = {}
    parts = [
        "// GENERATED by tools/gen_unicode_tables.py from Python unicodedata "
        f"{ud.unidata_version} + tools/unicode_hf_overrides.txt. Do not edit.",
        f"// UNIDATA_VERSION {ud.unidata_version}",
        '#include "unicode_tables.h"',
        "",
        "namespace dflow::text::unicode {",
    ]
    s1, s2 = two_level(flags)
    parts += [fmt("kFlagStage1", "uint16_t", s1), fmt("kFlagStage2", "uint8_t", s2)]
    for m in MODES:
        vals = [0] * MAX_CP
        for cp in chars():
            s = omaps[m][cp] if cp in omaps[m] else base_map(cp, m)
            if s == chr(cp):
                continue
            if s not in pool_index:
                pool_index[s] = len(pool)
                pool.extend(ord(x) for x in s)
                if not s:
                    pool.append(0)  # keep distinct offsets for the empty mapping
            assert len(s) < 16
            vals[cp] = (pool_index[s] << 4) | len(s)
        a, b = two_level(vals)
        cap = m.capitalize()
        parts += [fmt(f"k{cap}Stage1", "uint16_t", a), fmt(f"k{cap}Stage2", "uint32_t", b)]
    parts += [fmt("kMapPool", "uint32_t", pool), "", "}  // namespace dflow::text::unicode", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--derive-overrides", action="store_true")
    args = ap.parse_args(argv)
    if args.derive_overrides:
        derive_overrides()
        return 0
    text = generate()
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
