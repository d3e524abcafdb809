// WordPiece tokenizer: BertNormalizer + BertPreTokenizer + WordPiece + template post-processing, fused
// into one pass over the UTF-8 input. Per code point we look up precomputed Unicode tables (ASCII has
// its own 128-entry table), build each pre-tokenized word in a reused buffer with the source code point
// of every byte, and split the word greedily with open-addressing hash maps of views into one arena.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>

#include "dflow/parallel.h"
#include "dflow/text/tokenizer.h"
#include "json.h"
#include "unicode_tables.h"
#include "utf8.h"

namespace dflow::text {
namespace {

// The little-endian value of p[0, n) for n in 1..7, reading only those bytes (two overlapping loads
// instead of a variable-length memcpy, which compiles to a library call).
inline uint64_t load_tail(const char* p, size_t n) {
  if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return lo | (uint64_t(hi) << (8 * (n - 4)));
  }
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return u[0] | (uint64_t(u[n / 2]) << (8 * (n / 2))) | (uint64_t(u[n - 1]) << (8 * (n - 1)));
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) h = (h ^ load_tail(p, n)) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 32;
  h *= 0xFF51AFD7ED558CCDull;
  return h ^ (h >> 29);
}

inline bool eq_bytes(const char* a, const char* b, size_t n) {
  while (n >= 8) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  return n == 0 || load_tail(a, n) == load_tail(b, n);
}

// string -> id over views into an arena owned by the tokenizer (offsets, so the arena may grow).
class VocabMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
  }
  void insert(const std::string& arena, uint32_t off, uint32_t len, int32_t id) {
    if ((size_ + 1) * 2 > slots_.size()) grow(arena);
    place(arena, off, len, id, true);
  }
  int32_t find(const char* arena, const char* p, size_t n) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash_bytes(p, n);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && s.len == n && eq_bytes(arena + s.off, p, n)) return s.id;
    }
  }
  size_t max_len() const { return max_len_; }
  size_t size() const { return size_; }

  // Builds the index that split() probes by: the id of every one-byte token, and for each first two
  // bytes the set of lengths (bit L - 2 for L in 2..32, bit 31 for any longer) its tokens have, so
  // the longest-match search only hashes candidate lengths that exist.
  void build_length_index() {
    single_.assign(256, -1);
    lengths_.assign(size_t(1) << 16, 0);
  }
  void index_token(const char* tok, uint32_t len, int32_t id) {
    if (len == 1) {
      single_[static_cast<unsigned char>(tok[0])] = id;
    } else if (len >= 2) {
      lengths_[prefix2(tok)] |= len <= 32 ? 1u << (len - 2) : 1u << 31;
    }
  }
  int32_t single(unsigned char b) const { return single_[b]; }
  uint32_t lengths(const char* p) const { return lengths_[prefix2(p)]; }
  template <class Fn>
  void for_each(Fn fn) const {
    for (const Slot& s : slots_)
      if (s.id >= 0) fn(s.off, s.len, s.id);
  }

 private:
  struct Slot {
    uint32_t off = 0, len = 0, tag = 0;
    int32_t id = -1;
  };
  void place(const std::string& arena, uint32_t off, uint32_t len, int32_t id, bool count) {
    const uint64_t h = hash_bytes(arena.data() + off, len);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = Slot{off, len, tag, id};
        if (count) ++size_;
        max_len_ = std::max<size_t>(max_len_, len);
        return;
      }
      if (s.tag == tag && s.len == len && std::memcmp(arena.data() + s.off, arena.data() + off, len) == 0) {
        s.id = id;  // a later duplicate wins, as in HF's HashMap insert
        return;
      }
    }
  }
  void grow(const std::string& arena) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(std::max<size_t>(16, old.size() * 2), Slot{});
    mask_ = slots_.size() - 1;
    for (const Slot& s : old)
      if (s.id >= 0) place(arena, s.off, s.len, s.id, false);
  }
  static uint32_t prefix2(const char* p) {
    return static_cast<unsigned char>(p[0]) | (uint32_t(static_cast<unsigned char>(p[1])) << 8);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0, max_len_ = 0;
  std::vector<int32_t> single_;
  std::vector<uint32_t> lengths_;
};

// What a byte starts, for the main loop: an ASCII character of one of four classes, a multi-byte
// code point, or (kAdded) possibly an added token, which is checked before the byte's own class.
// kUpper: an ASCII word character that lowercasing changes.
enum ByteClass : uint8_t { kWord, kUpper, kSpace, kRemove, kPunctChar, kMultiByte, kAdded };

struct Piece {
  int32_t id;
  uint32_t begin, end;  // byte range in the normalized word
};

// Per-thread cache: normalized word -> its pieces, for one tokenizer at a time. Cleared when full.
// A slot is 32 bytes and holds words of up to 20 bytes and single-piece results inline, so a hit on a
// common word touches one cache line.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 48;
  static constexpr size_t kInlineKey = 20;
  static constexpr size_t kSlots = size_t(1) << 15;
  static constexpr size_t kMaxEntries = kSlots / 2;

  // Looks the word up. Hit: returns true with the pieces in *p/*n (a single piece is written to *one).
  // Miss: returns false with *slot where to insert it.
  bool find(const char* w, uint32_t len, uint64_t h, Piece* one, const Piece** p, uint32_t* n, size_t* slot) const {
    const uint32_t tag = static_cast<uint32_t>(h >> 32) | 1u;
    for (size_t i = h & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
      const Entry& e = slots_[i];
      if (e.tag == 0) {
        *slot = i;
        return false;
      }
      if (e.tag == tag && e.len == len && eq_bytes(key_of(e), w, len)) {
        if (e.npieces == 1) {
          *one = Piece{static_cast<int32_t>(e.val), 0, len};
          *p = one;
          *n = 1;
        } else {
          *p = pieces_.data() + e.val;
          *n = e.npieces;
        }
        return true;
      }
    }
  }
  void insert(size_t slot, const char* w, uint32_t len, uint64_t h, const Piece* p, uint32_t n) {
    if (used_ >= kMaxEntries || n > 0xFFFF) return;  // full: the caller clears at the start of the next text
    Entry& e = slots_[slot];
    e.tag = static_cast<uint32_t>(h >> 32) | 1u;
    e.len = static_cast<uint16_t>(len);
    e.npieces = static_cast<uint16_t>(n);
    if (len <= kInlineKey) {
      std::memcpy(e.key, w, len);
    } else {
      const uint32_t off = static_cast<uint32_t>(keys_.size());
      std::memcpy(e.key, &off, sizeof off);
      keys_.append(w, len);
    }
    if (n == 1) {
      e.val = static_cast<uint32_t>(p[0].id);
    } else {
      e.val = static_cast<uint32_t>(pieces_.size());
      pieces_.insert(pieces_.end(), p, p + n);
    }
    ++used_;
  }
  // Words of one code point (CJK characters, punctuation) skip hashing: a direct-mapped table by code
  // point holds their single id.
  static constexpr size_t kCpSlots = 4096;
  bool find_cp(uint32_t cp, int32_t* id) const {
    const CpEntry& e = cps_[cp & (kCpSlots - 1)];
    *id = e.id;
    return e.key == cp + 1;
  }
  void insert_cp(uint32_t cp, int32_t id) { cps_[cp & (kCpSlots - 1)] = CpEntry{cp + 1, id}; }

  // Makes the cache valid for tokenizer `owner` and not full.
  void prepare(uint64_t owner) {
    if (slots_.empty()) slots_.assign(kSlots, Entry{});
    if (cps_.empty() || owner != owner_) cps_.assign(kCpSlots, CpEntry{});
    if (owner != owner_ || used_ >= kMaxEntries) {
      if (used_) std::fill(slots_.begin(), slots_.end(), Entry{});
      keys_.clear();
      pieces_.clear();
      used_ = 0;
      owner_ = owner;
    }
  }

 private:
  struct Entry {
    uint32_t tag = 0;
    uint16_t len = 0, npieces = 0;
    uint32_t val = 0;  // npieces == 1: the id (the piece is the whole word); else offset into pieces_
    char key[kInlineKey] = {};  // the word, or (longer words) its uint32 offset into keys_
  };
  static_assert(sizeof(Entry) == 32, "cache slots are half a cache line");
  const char* key_of(const Entry& e) const {
    if (e.len <= kInlineKey) return e.key;
    uint32_t off;
    std::memcpy(&off, e.key, sizeof off);
    return keys_.data() + off;
  }
  struct CpEntry {
    uint32_t key = 0;  // code point + 1; 0: empty
    int32_t id = -1;
  };
  std::vector<Entry> slots_;
  std::vector<CpEntry> cps_;
  std::string keys_;
  std::vector<Piece> pieces_;
  size_t used_ = 0;
  uint64_t owner_ = 0;
};

// How the source code point of each byte of the current word is known (offsets only):
// kBytes: byte i comes from code point cp0 + i (plain ASCII, nothing removed inside the word);
// kCps: the word's code points come one to one from consecutive input code points from cp0 (a
// non-ASCII letter, or one mapped to exactly one code point), so a byte's source is cp0 + the number
// of code points before it; kExplicit: src[i] holds it (something was removed or expanded).
enum class SrcMode : uint8_t { kBytes, kCps, kExplicit };

inline uint32_t count_leads(const char* p, uint32_t n) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; ++i) k += !utf8::is_continuation(static_cast<unsigned char>(p[i]));
  return k;
}

struct Scratch {
  // The word being built: word[0, len). While its bytes are a run of the input unchanged (a lowercase
  // word, most often) it is a view of the input and nothing is copied; otherwise it lives in buf
  // (which only grows; its size is the capacity).
  const char* word = nullptr;
  uint32_t len = 0;
  bool in_buf = false;
  SrcMode mode = SrcMode::kBytes;
  int64_t cp0 = 0;
  std::string buf = std::string(256, '\0');
  std::vector<uint32_t> src;  // kExplicit: source code point - cp0, per byte of the word
  std::vector<Piece> pieces;
  WordCache cache;

  // Starts a word at input code point cpi.
  void start(int64_t cpi, SrcMode m) {
    cp0 = cpi;
    mode = m;
  }
  // Appends bytes that are the input's own bytes at p.
  void append_verbatim(const char* p, size_t nb) {
    if (len == 0) {
      word = p;
      in_buf = false;
    } else if (in_buf || word + len != p) {
      std::memcpy(room(nb), p, nb);
    }
    len += static_cast<uint32_t>(nb);
  }
  // Room for `extra` more bytes at the word's end, in buf (moving the word there first if needed).
  char* room(size_t extra) {
    if (len + extra > buf.size()) buf.resize(std::max(buf.size() * 2, len + extra));
    if (!in_buf) {
      std::memcpy(buf.data(), word, len);
      in_buf = true;
    }
    word = buf.data();
    return buf.data() + len;
  }
  // Room for `extra` more explicit sources.
  uint32_t* src_room(size_t extra) {
    if (len + extra > src.size()) src.resize(std::max(src.size() * 2, len + extra));
    return src.data() + len;
  }
  // The word's sources become explicit (something breaks the one-to-one correspondence).
  void make_explicit() {
    if (mode == SrcMode::kExplicit) return;
    src_room(0);
    if (mode == SrcMode::kBytes) {
      for (uint32_t i = 0; i < len; ++i) src[i] = i;
    } else {
      uint32_t k = 0;
      for (uint32_t i = 0; i < len; ++i) {
        k += !utf8::is_continuation(static_cast<unsigned char>(word[i]));
        src[i] = k - 1;
      }
    }
    mode = SrcMode::kExplicit;
  }
};

// Not inlined: GCC would otherwise specialise callees on the thread-local address and pay a
// __tls_get_addr call on every access inside the hot loops.
__attribute__((noinline)) Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

std::atomic<uint64_t> next_tokenizer_uid{1};

}  // namespace

struct WordPieceTokenizer::Impl {
  std::string arena;
  VocabMap vocab, cont;
  int64_t vocab_size = 0;
  int32_t unk_id = -1;
  size_t max_chars_per_word = 100;
  NormalizerOptions norm;
  unicode::MapMode mode = unicode::MapMode::kNone;
  std::vector<int32_t> prefix_ids, suffix_ids;
  struct Added {
    std::string content;
    int32_t id;
    int64_t n_cps;
  };
  std::vector<Added> added;  // longest first
  uint8_t byte_class[256];   // ByteClass of every first byte
  uint8_t ascii_class[128];  // the class of an ASCII byte that may start an added token
  char ascii_char[128];
  int32_t ascii_id[128];     // the id of an ASCII character as a word of its own
  uint8_t remove_flags = 0, cjk_flags = 0;  // unicode flags that remove a code point / make it a word
  const uint16_t* map_stage1 = nullptr;      // the normalizer's mapping table (nullptr: none)
  const uint32_t* map_stage2 = nullptr;
  uint64_t uid = next_tokenizer_uid.fetch_add(1);

  void add_token(std::string_view tok, int32_t id, const std::string& prefix) {
    const uint32_t off = static_cast<uint32_t>(arena.size());
    arena.append(tok);
    vocab.insert(arena, off, static_cast<uint32_t>(tok.size()), id);
    if (!prefix.empty() && tok.size() > prefix.size() && tok.compare(0, prefix.size(), prefix) == 0)
      cont.insert(arena, static_cast<uint32_t>(off + prefix.size()), static_cast<uint32_t>(tok.size() - prefix.size()), id);
    vocab_size = std::max<int64_t>(vocab_size, int64_t(id) + 1);
  }

  void add_added_token(const std::string& content, int32_t id) {
    if (content.empty()) return;
    int64_t n = 0;
    for (unsigned char c : content) n += !utf8::is_continuation(c);
    added.push_back({content, id, n});
  }

  void finalize() {
    std::stable_sort(added.begin(), added.end(),
                     [](const Added& a, const Added& b) { return a.content.size() > b.content.size(); });
    if (norm.enabled) {
      if (norm.lowercase && norm.strip_accents) mode = unicode::MapMode::kFold;
      else if (norm.lowercase) mode = unicode::MapMode::kLower;
      else if (norm.strip_accents) mode = unicode::MapMode::kStrip;
    } else {
      norm.clean_text = norm.handle_chinese_chars = norm.lowercase = norm.strip_accents = false;
    }
    switch (mode) {
      case unicode::MapMode::kLower: map_stage1 = unicode::kLowerStage1, map_stage2 = unicode::kLowerStage2; break;
      case unicode::MapMode::kStrip: map_stage1 = unicode::kStripStage1, map_stage2 = unicode::kStripStage2; break;
      case unicode::MapMode::kFold: map_stage1 = unicode::kFoldStage1, map_stage2 = unicode::kFoldStage2; break;
      case unicode::MapMode::kNone: break;
    }
    remove_flags = norm.clean_text ? unicode::kControl : 0;
    cjk_flags = norm.handle_chinese_chars ? unicode::kCjk : 0;
    for (uint32_t c = 0; c < 128; ++c) {
      const uint8_t f = unicode::flags(c);
      ascii_char[c] = static_cast<char>(norm.lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c);
      if (f & remove_flags) ascii_class[c] = kRemove;
      else if (f & unicode::kWhitespace) ascii_class[c] = kSpace;
      else if (f & unicode::kPunct) ascii_class[c] = kPunctChar;
      else ascii_class[c] = ascii_char[c] == static_cast<char>(c) ? kWord : kUpper;
    }
    for (uint32_t c = 0; c < 128; ++c) {
      const char ch = static_cast<char>(c);
      ascii_id[c] = max_chars_per_word >= 1 ? vocab.find(arena.data(), &ch, 1) : -1;
      if (ascii_id[c] < 0) ascii_id[c] = unk_id;
    }
    for (uint32_t b = 0; b < 256; ++b) byte_class[b] = b < 128 ? ascii_class[b] : uint8_t{kMultiByte};
    for (const Added& t : added) byte_class[static_cast<unsigned char>(t.content[0])] = kAdded;
    for (VocabMap* m : {&vocab, &cont}) {
      m->build_length_index();
      m->for_each([&](uint32_t off, uint32_t len, int32_t id) { m->index_token(arena.data() + off, len, id); });
    }
  }

  // Greedy longest-match split of w[0, n) into pieces (one [UNK] piece for the whole word if any part
  // has no match or the word is too long). Candidate lengths come from the maps' length index,
  // longest first; a match ends on a code point boundary, as the vocabulary holds whole characters.
  void split(const char* w, size_t n, std::vector<Piece>& pieces) const {
    pieces.clear();
    if (n > max_chars_per_word && count_leads(w, static_cast<uint32_t>(n)) > max_chars_per_word) {
      pieces.push_back({unk_id, 0, static_cast<uint32_t>(n)});
      return;
    }
    const char* a = arena.data();
    auto boundary = [&](size_t e) { return e >= n || !utf8::is_continuation(static_cast<unsigned char>(w[e])); };
    size_t start = 0;
    while (start < n) {
      const VocabMap& m = start == 0 ? vocab : cont;
      const size_t rem = n - start;
      int32_t id = -1;
      size_t e = start;
      if (rem >= 2) {
        uint32_t lens = m.lengths(w + start);
        if (lens >> 31) {  // some tokens with this prefix are longer than 32 bytes: probe those first
          for (size_t len = std::min(rem, m.max_len()); len > 32 && id < 0; --len)
            if (boundary(start + len) && (id = m.find(a, w + start, len)) >= 0) e = start + len;
        }
        lens &= 0x7FFFFFFFu;
        if (rem < 32) lens &= (1u << (rem - 1)) - 1;  // lengths 2..rem
        while (id < 0 && lens) {
          const int bit = 31 - __builtin_clz(lens);
          const size_t len = static_cast<size_t>(bit) + 2;
          lens &= ~(1u << bit);
          if (boundary(start + len) && (id = m.find(a, w + start, len)) >= 0) e = start + len;
        }
      }
      if (id < 0 && boundary(start + 1) && (id = m.single(static_cast<unsigned char>(w[start]))) >= 0) e = start + 1;
      if (id < 0) {
        pieces.clear();
        pieces.push_back({unk_id, 0, static_cast<uint32_t>(n)});
        return;
      }
      pieces.push_back({id, static_cast<uint32_t>(start), static_cast<uint32_t>(e)});
      start = e;
    }
  }

  template <bool kOffsets, class Sink>
  inline void emit(const Scratch& s, const Piece* p, uint32_t n, Sink& sink) const {
    if constexpr (!kOffsets) {
      for (uint32_t i = 0; i < n; ++i) sink(p[i].id, 0, 0);
    } else if (s.mode == SrcMode::kBytes) {
      for (uint32_t i = 0; i < n; ++i) sink(p[i].id, s.cp0 + p[i].begin, s.cp0 + p[i].end);
    } else if (s.mode == SrcMode::kCps) {
      int64_t cp = s.cp0;  // pieces are contiguous from the word's start
      for (uint32_t i = 0; i < n; ++i) {
        const int64_t b = cp;
        cp += count_leads(s.word + p[i].begin, p[i].end - p[i].begin);
        sink(p[i].id, b, cp);
      }
    } else {
      for (uint32_t i = 0; i < n; ++i) sink(p[i].id, s.cp0 + s.src[p[i].begin], s.cp0 + s.src[p[i].end - 1] + 1);
    }
  }

  template <bool kOffsets, class Sink>
  void word_piece(Scratch& s, Sink& sink) const {
    const char* w = s.word;
    const uint32_t n = s.len;
    if (n <= WordCache::kMaxWordBytes) {
      const uint64_t h = hash_bytes(w, n);
      uint32_t np = 0;
      size_t slot = 0;
      Piece one;
      const Piece* hit = nullptr;
      if (s.cache.find(w, n, h, &one, &hit, &np, &slot)) {
        emit<kOffsets>(s, hit, np, sink);
        return;
      }
      split(w, n, s.pieces);
      s.cache.insert(slot, w, n, h, s.pieces.data(), static_cast<uint32_t>(s.pieces.size()));
    } else {
      split(w, n, s.pieces);
    }
    emit<kOffsets>(s, s.pieces.data(), static_cast<uint32_t>(s.pieces.size()), sink);
  }

  template <bool kOffsets, class Sink>
  inline void flush(Scratch& s, Sink& sink) const {
    if (s.len == 0) return;
    word_piece<kOffsets>(s, sink);
    s.len = 0;
  }

  // Appends the UTF-8 bytes of one code point that came from input code point cpi, alone (one to
  // one); `verbatim`: the bytes are the input's own.
  template <bool kOffsets>
  inline void append_char(Scratch& s, const unsigned char* bytes, size_t nb, int64_t cpi, bool verbatim) const {
    if (s.len == 0) s.start(cpi, SrcMode::kBytes);
    if constexpr (kOffsets) {
      if (s.mode == SrcMode::kExplicit) {
        uint32_t* src = s.src_room(nb);
        for (size_t i = 0; i < nb; ++i) src[i] = static_cast<uint32_t>(cpi - s.cp0);
      } else if (nb > 1) {
        s.mode = SrcMode::kCps;
      }
    }
    if (verbatim) {
      s.append_verbatim(reinterpret_cast<const char*>(bytes), nb);
    } else {
      char* out = s.room(nb);
      for (size_t i = 0; i < nb; ++i) out[i] = static_cast<char>(bytes[i]);
      s.len += static_cast<uint32_t>(nb);
    }
  }
  // Appends one of several code points that input code point cpi maps to.
  template <bool kOffsets>
  inline void append_expanded(Scratch& s, const unsigned char* bytes, size_t nb, int64_t cpi) const {
    if constexpr (kOffsets) {
      if (s.len == 0) s.start(cpi, SrcMode::kExplicit);
      else s.make_explicit();
    }
    append_char<kOffsets>(s, bytes, nb, cpi, false);
  }

  // A code point the normalizer produced (mapped from input code point cpi): whitespace splits,
  // punctuation is a word of its own, anything else joins the word.
  template <bool kOffsets, class Sink>
  inline void push_mapped(Scratch& s, Sink& sink, uint32_t c, int64_t cpi, bool expanded) const {
    const uint8_t f = unicode::flags(c);
    if (f & unicode::kWhitespace) {
      flush<kOffsets>(s, sink);
      return;
    }
    unsigned char bytes[4];
    const size_t nb = utf8::encode(c, bytes);
    if (f & unicode::kPunct) {
      flush<kOffsets>(s, sink);
      append_char<kOffsets>(s, bytes, nb, cpi, false);
      flush<kOffsets>(s, sink);
    } else if (expanded) {
      append_expanded<kOffsets>(s, bytes, nb, cpi);
    } else {
      append_char<kOffsets>(s, bytes, nb, cpi, false);
    }
  }

  // A word of the one code point cp (UTF-8 bytes[0, nb)), from input code point cpi; the word
  // being built is empty. Its pieces are the code point's token if the vocabulary has it, else [UNK].
  template <class Sink>
  inline void single(Scratch& s, Sink& sink, uint32_t cp, const unsigned char* bytes, size_t nb, int64_t cpi) const {
    int32_t id;
    if (!s.cache.find_cp(cp, &id)) {
      id = max_chars_per_word >= 1 ? vocab.find(arena.data(), reinterpret_cast<const char*>(bytes), nb) : -1;
      if (id < 0) id = unk_id;
      s.cache.insert_cp(cp, id);
    }
    sink(id, cpi, cpi + 1);
  }

  // The longest added token at p, or nullptr.
  const Added* added_at(const unsigned char* p, const unsigned char* end) const {
    for (const Added& t : added)
      if (static_cast<size_t>(end - p) >= t.content.size() && std::memcmp(p, t.content.data(), t.content.size()) == 0)
        return &t;
    return nullptr;
  }

  // One multi-byte (or invalid) code point at p: its normalization and pre-tokenization.
  template <bool kOffsets, class Sink>
  inline const unsigned char* non_ascii(Scratch& s, Sink& sink, const unsigned char* p, const unsigned char* end,
                                        int64_t cpi) const {
    size_t len;
    const uint32_t cp = utf8::decode(p, end, &len);
    const uint8_t f = unicode::flags(cp);
    if (f & remove_flags) {  // removed by clean_text: the code points around it are no longer consecutive
      if constexpr (kOffsets) {
        if (s.len) s.make_explicit();
      }
      return p + len;
    }
    if (f & unicode::kWhitespace) {
      flush<kOffsets>(s, sink);
      return p + len;
    }
    const bool cjk = f & cjk_flags;
    if (cjk) flush<kOffsets>(s, sink);
    const uint32_t entry =
        map_stage1 && cp < 0x110000 ? map_stage2[(uint32_t(map_stage1[cp >> 8]) << 8) | (cp & 0xFF)] : 0;
    if (entry == 0) {
      // Canonical input: its bytes are the word's bytes; invalid or overlong input: its decoded code
      // point, re-encoded.
      unsigned char buf[4];
      const unsigned char* bytes = p;
      size_t nb = len;
      if (len != utf8::encoded_length(cp)) {
        nb = utf8::encode(cp, buf);
        bytes = buf;
      }
      if (cjk || (f & unicode::kPunct)) {
        flush<kOffsets>(s, sink);
        single(s, sink, cp, bytes, nb, cpi);
        return p + len;
      }
      append_char<kOffsets>(s, bytes, nb, cpi, bytes == p);
    } else {
      const uint32_t n = unicode::map_len(entry);
      const uint32_t* m = unicode::map_chars(entry);
      if (n == 0) {  // removed (a combining mark stripped with the accents)
        if constexpr (kOffsets) {
          if (s.len) s.make_explicit();
        }
      }
      for (uint32_t i = 0; i < n; ++i) push_mapped<kOffsets>(s, sink, m[i], cpi, n > 1);
    }
    if (cjk) flush<kOffsets>(s, sink);
    return p + len;
  }

  // `stop`, when given, is polled before each input character (or run of ASCII word characters): a
  // sink that has seen enough tokens sets it, and the rest of the text is never normalized
  // (truncating a 10 MB text costs its prefix).
  template <bool kOffsets, class Sink>
  void tokenize(std::string_view text, Sink& sink, const bool* stop = nullptr) const {
    Scratch& s = scratch();
    s.cache.prepare(uid);
    s.len = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    int64_t cpi = 0;
    while (p < end) {
      if (stop && *stop) return;
      uint8_t cls = byte_class[*p];
      if (cls == kAdded) {
        if (const Added* hit = added_at(p, end)) {
          flush<kOffsets>(s, sink);
          sink(hit->id, cpi, cpi + hit->n_cps);
          p += hit->content.size();
          cpi += hit->n_cps;
          continue;
        }
        cls = *p < 0x80 ? ascii_class[*p] : uint8_t{kMultiByte};
      }
      switch (cls) {
        case kWord:
        case kUpper: {
          // A run of ASCII word characters in one go: a view of the input if none changes case.
          const unsigned char* q = p + 1;
          uint8_t any_upper = cls, c;
          while (q < end && (c = byte_class[*q]) <= kUpper) {
            any_upper |= c;
            ++q;
          }
          const size_t run = static_cast<size_t>(q - p);
          if (s.len == 0) s.start(cpi, SrcMode::kBytes);
          if constexpr (kOffsets) {
            if (s.mode == SrcMode::kExplicit) {
              uint32_t* src = s.src_room(run);
              for (size_t i = 0; i < run; ++i) src[i] = static_cast<uint32_t>(cpi + int64_t(i) - s.cp0);
            }
          }
          if (!any_upper) {
            s.append_verbatim(reinterpret_cast<const char*>(p), run);
          } else {
            char* out = s.room(run);
            for (size_t i = 0; i < run; ++i) out[i] = ascii_char[p[i]];
            s.len += static_cast<uint32_t>(run);
          }
          p = q;
          cpi += static_cast<int64_t>(run);
          continue;
        }
        case kSpace:
          flush<kOffsets>(s, sink);
          break;
        case kRemove:
          if constexpr (kOffsets) {
            if (s.len) s.make_explicit();
          }
          break;
        case kPunctChar:
          flush<kOffsets>(s, sink);
          sink(ascii_id[*p], cpi, cpi + 1);
          break;
        default:
          p = non_ascii<kOffsets>(s, sink, p, end, cpi);
          ++cpi;
          continue;
      }
      ++p;
      ++cpi;
    }
    flush<kOffsets>(s, sink);
  }
};

namespace {

[[noreturn]] void invalid(const std::string& origin, const std::string& why) {
  throw InvalidTokenizerFile(origin + ": " + why);
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    size_t len;
    const uint32_t cp = utf8::decode(p, end, &len);
    if (cp == 0xFFFD && !(len == 3 && p[0] == 0xEF)) return false;
    p += len;
  }
  return true;
}

std::string type_of(const json::Value* v) {
  if (!v || v->is_null()) return "null";
  const json::Value* t = v->get("type");
  return t && t->is_string() ? t->str : "?";
}

int32_t special_id(const json::Value& v, const std::string& origin) {
  // BertProcessing: ["[CLS]", 101]
  if (!v.is_array() || v.array.size() != 2 || !v.array[1].is_number()) invalid(origin, "malformed post_processor");
  return static_cast<int32_t>(v.array[1].number);
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WordPieceTokenizer::~WordPieceTokenizer() = default;

std::shared_ptr<const WordPieceTokenizer> WordPieceTokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) invalid(path, "cannot open tokenizer file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return from_bytes(ss.str(), path);
}

std::shared_ptr<const WordPieceTokenizer> WordPieceTokenizer::from_bytes(std::string_view data,
                                                                         const std::string& origin) {
  size_t i = 0;
  while (i < data.size() && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) ++i;
  if (i < data.size() && data[i] == '{') return from_json(data, origin);
  const bool txt = origin.size() >= 4 && origin.compare(origin.size() - 4, 4, ".txt") == 0;
  if (!txt) invalid(origin, "not a tokenizer.json (JSON object) or a vocab.txt");
  return from_vocab_txt(data, origin);
}

std::shared_ptr<const WordPieceTokenizer> WordPieceTokenizer::from_vocab_txt(std::string_view text,
                                                                             const std::string& origin) {
  if (text.find('\0') != std::string_view::npos || !valid_utf8(text)) invalid(origin, "vocab.txt is not UTF-8 text");
  auto impl = std::make_unique<Impl>();
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    lines.push_back(line);
    pos = nl + 1;
  }
  impl->vocab.reserve(lines.size());
  impl->cont.reserve(lines.size() / 4 + 1);
  impl->arena.reserve(text.size());
  for (size_t i = 0; i < lines.size(); ++i) impl->add_token(lines[i], static_cast<int32_t>(i), "##");
  const int32_t unk = impl->vocab.find(impl->arena.data(), "[UNK]", 5);
  if (unk < 0) invalid(origin, "vocab.txt has no [UNK] token");
  impl->unk_id = unk;
  const int32_t cls = impl->vocab.find(impl->arena.data(), "[CLS]", 5);
  const int32_t sep = impl->vocab.find(impl->arena.data(), "[SEP]", 5);
  if (cls >= 0 && sep >= 0) {
    impl->prefix_ids = {cls};
    impl->suffix_ids = {sep};
  }
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    const int32_t id = impl->vocab.find(impl->arena.data(), t, std::strlen(t));
    if (id >= 0) impl->add_added_token(t, id);
  }
  impl->finalize();
  return std::shared_ptr<const WordPieceTokenizer>(new WordPieceTokenizer(std::move(impl)));
}

std::shared_ptr<const WordPieceTokenizer> WordPieceTokenizer::from_json(std::string_view text,
                                                                        const std::string& origin) {
  json::Value root;
  try {
    root = json::parse(text);
  } catch (const json::ParseError& e) {
    invalid(origin, e.what());
  }
  const json::Value* model = root.get("model");
  if (!model || !model->is_object()) invalid(origin, "not a tokenizer.json (no \"model\" object)");
  const json::Value* vocab = model->get("vocab");
  const std::string model_type = type_of(model);
  if (model_type != "WordPiece" && !(model_type == "?" && vocab && vocab->is_object() && model->get("unk_token")))
    throw UnsupportedTokenizer(origin + ": tokenizer model type '" + model_type +
                               "' is not supported (only WordPiece)");
  if (!vocab || !vocab->is_object()) invalid(origin, "WordPiece model has no vocab object");

  auto impl = std::make_unique<Impl>();
  std::string prefix = "##";
  if (const auto* v = model->get("continuing_subword_prefix"); v && v->is_string()) prefix = v->str;
  if (const auto* v = model->get("max_input_chars_per_word"); v && v->is_number())
    impl->max_chars_per_word = static_cast<size_t>(v->number);
  impl->vocab.reserve(vocab->object.size());
  impl->cont.reserve(vocab->object.size() / 4 + 1);
  for (const auto& kv : vocab->object) {
    if (!kv.second.is_number()) invalid(origin, "vocab id of '" + kv.first + "' is not a number");
    impl->add_token(kv.first, static_cast<int32_t>(kv.second.number), prefix);
  }
  std::string unk = "[UNK]";
  if (const auto* v = model->get("unk_token"); v && v->is_string()) unk = v->str;
  impl->unk_id = impl->vocab.find(impl->arena.data(), unk.data(), unk.size());
  if (impl->unk_id < 0) invalid(origin, "unk_token '" + unk + "' is not in the vocab");

  const json::Value* norm = root.get("normalizer");
  const std::string norm_type = type_of(norm);
  if (norm_type == "null") {
    impl->norm.enabled = false;
  } else if (norm_type == "BertNormalizer") {
    auto flag = [&](const char* key, bool dflt) {
      const json::Value* v = norm->get(key);
      return v && v->is_bool() ? v->boolean : dflt;
    };
    impl->norm.clean_text = flag("clean_text", true);
    impl->norm.handle_chinese_chars = flag("handle_chinese_chars", true);
    impl->norm.lowercase = flag("lowercase", true);
    impl->norm.strip_accents = flag("strip_accents", impl->norm.lowercase);
  } else {
    throw UnsupportedTokenizer(origin + ": normalizer type '" + norm_type +
                               "' is not supported (only BertNormalizer)");
  }
  const std::string pre_type = type_of(root.get("pre_tokenizer"));
  if (pre_type != "BertPreTokenizer")
    throw UnsupportedTokenizer(origin + ": pre_tokenizer type '" + pre_type +
                               "' is not supported (only BertPreTokenizer)");

  const json::Value* post = root.get("post_processor");
  const std::string post_type = type_of(post);
  if (post_type == "TemplateProcessing") {
    const json::Value* single = post->get("single");
    const json::Value* specials = post->get("special_tokens");
    if (!single || !single->is_array()) invalid(origin, "TemplateProcessing without a 'single' template");
    bool seen_seq = false;
    for (const auto& item : single->array) {
      if (item.get("Sequence")) {
        seen_seq = true;
      } else if (const auto* st = item.get("SpecialToken")) {
        const auto* id = st->get("id");
        const json::Value* entry = id && specials ? specials->get(id->str) : nullptr;
        const json::Value* ids = entry ? entry->get("ids") : nullptr;
        if (!ids || !ids->is_array()) invalid(origin, "TemplateProcessing special token without ids");
        for (const auto& x : ids->array)
          (seen_seq ? impl->suffix_ids : impl->prefix_ids).push_back(static_cast<int32_t>(x.number));
      }
    }
  } else if (post_type == "BertProcessing") {
    const json::Value* cls = post->get("cls");
    const json::Value* sep = post->get("sep");
    if (!cls || !sep) invalid(origin, "BertProcessing without cls/sep");
    impl->prefix_ids = {special_id(*cls, origin)};
    impl->suffix_ids = {special_id(*sep, origin)};
  } else if (post_type != "null") {
    throw UnsupportedTokenizer(origin + ": post_processor type '" + post_type +
                               "' is not supported (only TemplateProcessing, BertProcessing)");
  }

  if (const json::Value* added = root.get("added_tokens"); added && added->is_array()) {
    for (const auto& t : added->array) {
      const auto* content = t.get("content");
      const auto* id = t.get("id");
      const auto* normalized = t.get("normalized");
      if (!content || !content->is_string() || !id || !id->is_number()) invalid(origin, "malformed added_tokens");
      if (normalized && normalized->is_bool() && normalized->boolean) continue;
      impl->add_added_token(content->str, static_cast<int32_t>(id->number));
    }
  }
  impl->finalize();
  return std::shared_ptr<const WordPieceTokenizer>(new WordPieceTokenizer(std::move(impl)));
}

void WordPieceTokenizer::encode(std::string_view utf8, bool add_special_tokens, std::vector<int32_t>* ids,
                                std::vector<TokenSpan>* offsets) const {
  const Impl& im = *impl_;
  if (add_special_tokens) {
    ids->insert(ids->end(), im.prefix_ids.begin(), im.prefix_ids.end());
    if (offsets) offsets->insert(offsets->end(), im.prefix_ids.size(), TokenSpan{0, 0});
  }
  if (offsets) {
    auto sink = [&](int32_t id, int64_t b, int64_t e) {
      ids->push_back(id);
      offsets->push_back({b, e});
    };
    im.tokenize<true>(utf8, sink);
  } else {
    auto sink = [&](int32_t id, int64_t, int64_t) { ids->push_back(id); };
    im.tokenize<false>(utf8, sink);
  }
  if (add_special_tokens) {
    ids->insert(ids->end(), im.suffix_ids.begin(), im.suffix_ids.end());
    if (offsets) offsets->insert(offsets->end(), im.suffix_ids.size(), TokenSpan{0, 0});
  }
}

void WordPieceTokenizer::token_spans(std::string_view utf8, std::vector<TokenSpan>* offsets) const {
  auto sink = [offsets](int32_t, int64_t b, int64_t e) { offsets->push_back({b, e}); };
  impl_->tokenize<true>(utf8, sink);
}

void WordPieceTokenizer::encode_truncated(std::string_view utf8, bool add_special_tokens, int64_t max_length,
                                          std::vector<int32_t>* ids) const {
  const Impl& im = *impl_;
  const int64_t specials =
      add_special_tokens ? static_cast<int64_t>(im.prefix_ids.size() + im.suffix_ids.size()) : 0;
  // HF keeps the special tokens and truncates the content to what is left of max_length.
  const int64_t budget = std::max<int64_t>(0, max_length - specials);
  if (add_special_tokens) ids->insert(ids->end(), im.prefix_ids.begin(), im.prefix_ids.end());
  const size_t first = ids->size();
  bool full = budget == 0;
  auto sink = [&](int32_t id, int64_t, int64_t) {
    if (full) return;  // the rest of the word that crossed the limit
    ids->push_back(id);
    full = static_cast<int64_t>(ids->size() - first) >= budget;
  };
  if (!full) im.tokenize<false>(utf8, sink, &full);
  if (add_special_tokens) ids->insert(ids->end(), im.suffix_ids.begin(), im.suffix_ids.end());
}

int64_t WordPieceTokenizer::count(std::string_view utf8) const {
  int64_t n = 0;
  auto sink = [&](int32_t, int64_t, int64_t) { ++n; };
  impl_->tokenize<false>(utf8, sink);
  return n;
}

std::vector<std::vector<int32_t>> WordPieceTokenizer::encode_batch(const std::string_view* texts, int64_t n,
                                                                   bool add_special_tokens, int threads) const {
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
  parallel_for(n, threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      out[i].reserve(texts[i].size() / 4 + 4);
      encode(texts[i], add_special_tokens, &out[i]);
    }
  });
  return out;
}

int64_t WordPieceTokenizer::vocab_size() const { return impl_->vocab_size; }

int32_t WordPieceTokenizer::token_to_id(std::string_view token) const {
  return impl_->vocab.find(impl_->arena.data(), token.data(), token.size());
}

const NormalizerOptions& WordPieceTokenizer::normalizer() const { return impl_->norm; }

}  // namespace dflow::text
