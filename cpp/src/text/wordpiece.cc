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
  if (n > 0) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
  }
  h ^= h >> 32;
  h *= 0xFF51AFD7ED558CCDull;
  return h ^ (h >> 29);
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
      if (s.tag == tag && s.len == n && std::memcmp(arena + s.off, p, n) == 0) return s.id;
    }
  }
  size_t max_len() const { return max_len_; }
  size_t size() const { return size_; }

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
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0, max_len_ = 0;
};

enum AsciiClass : uint8_t { kWord, kSpace, kRemove, kPunctChar };

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
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

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
  // Makes the cache valid for tokenizer `owner` and not full.
  void prepare(uint64_t owner) {
    if (slots_.empty()) slots_.assign(kSlots, Entry{});
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
  std::vector<Entry> slots_;
  std::string keys_;
  std::vector<Piece> pieces_;
  size_t used_ = 0;
  uint64_t owner_ = 0;
};

struct Scratch {
  std::string word;
  // Source code point of each byte of `word`. While `direct`, it is not filled: byte i of the word
  // comes from code point cp0 + i (a word of plain ASCII input with nothing removed inside it).
  std::vector<int64_t> src;
  bool direct = true;
  int64_t cp0 = 0;
  std::vector<Piece> pieces;
  WordCache cache;

  void undirect() {
    if (!direct) return;
    src.resize(word.size());
    for (size_t i = 0; i < word.size(); ++i) src[i] = cp0 + static_cast<int64_t>(i);
    direct = false;
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
  bool added_first[256] = {};
  uint8_t ascii_class[128];
  char ascii_char[128];
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
    added_first[static_cast<unsigned char>(content[0])] = true;
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
    for (uint32_t c = 0; c < 128; ++c) {
      const uint8_t f = unicode::flags(c);
      ascii_char[c] = static_cast<char>(norm.lowercase && c >= 'A' && c <= 'Z' ? c + 32 : c);
      if (norm.clean_text && (f & unicode::kControl)) ascii_class[c] = kRemove;
      else if (f & unicode::kWhitespace) ascii_class[c] = kSpace;
      else if (f & unicode::kPunct) ascii_class[c] = kPunctChar;
      else ascii_class[c] = kWord;
    }
  }

  // Greedy longest-match split of the word into s.pieces (one [UNK] piece for the whole word if any
  // part has no match or the word is too long).
  void split(const std::string& w, std::vector<Piece>& pieces) const {
    const size_t n = w.size();
    pieces.clear();
    size_t nchars = 0;
    for (unsigned char c : w) nchars += !utf8::is_continuation(c);
    if (nchars > max_chars_per_word) {
      pieces.push_back({unk_id, 0, static_cast<uint32_t>(n)});
      return;
    }
    size_t start = 0;
    const char* a = arena.data();
    while (start < n) {
      const VocabMap& m = start == 0 ? vocab : cont;
      size_t e = std::min(n, start + m.max_len());
      while (e > start && e < n && utf8::is_continuation(static_cast<unsigned char>(w[e]))) --e;
      int32_t id = -1;
      while (e > start) {
        id = m.find(a, w.data() + start, e - start);
        if (id >= 0) break;
        --e;
        while (e > start && utf8::is_continuation(static_cast<unsigned char>(w[e]))) --e;
      }
      if (id < 0) {
        pieces.clear();
        pieces.push_back({unk_id, 0, static_cast<uint32_t>(n)});
        return;
      }
      pieces.push_back({id, static_cast<uint32_t>(start), static_cast<uint32_t>(e)});
      start = e;
    }
  }

  template <class Sink>
  inline void emit(const Scratch& s, const Piece* p, uint32_t n, Sink& sink) const {
    if (s.direct) {
      for (uint32_t i = 0; i < n; ++i) sink(p[i].id, s.cp0 + p[i].begin, s.cp0 + p[i].end);
    } else {
      for (uint32_t i = 0; i < n; ++i) sink(p[i].id, s.src[p[i].begin], s.src[p[i].end - 1] + 1);
    }
  }

  template <class Sink>
  void word_piece(Scratch& s, Sink& sink) const {
    const std::string& w = s.word;
    const uint32_t n = static_cast<uint32_t>(w.size());
    if (n <= WordCache::kMaxWordBytes) {
      const uint64_t h = hash_bytes(w.data(), n);
      uint32_t np = 0;
      size_t slot = 0;
      Piece one;
      const Piece* hit = nullptr;
      if (s.cache.find(w.data(), n, h, &one, &hit, &np, &slot)) {
        emit(s, hit, np, sink);
        return;
      }
      split(w, s.pieces);
      s.cache.insert(slot, w.data(), n, h, s.pieces.data(), static_cast<uint32_t>(s.pieces.size()));
    } else {
      split(w, s.pieces);
    }
    emit(s, s.pieces.data(), static_cast<uint32_t>(s.pieces.size()), sink);
  }

  template <class Sink>
  inline void flush(Scratch& s, Sink& sink) const {
    if (s.word.empty()) return;
    word_piece(s, sink);
    s.word.clear();
    s.src.clear();
    s.direct = true;
  }

  template <class Sink>
  inline void push_normalized(Scratch& s, Sink& sink, uint32_t c, int64_t cpi) const {
    const uint8_t f = unicode::flags(c);
    if (f & unicode::kWhitespace) {
      flush(s, sink);
      return;
    }
    const bool punct = f & unicode::kPunct;
    if (punct) flush(s, sink);
    if (s.word.empty()) s.direct = false;  // an empty word is always direct (nothing to convert)
    else s.undirect();
    const size_t before = s.word.size();
    utf8::append(s.word, c);
    s.src.insert(s.src.end(), s.word.size() - before, cpi);
    if (punct) flush(s, sink);
  }

  // `stop`, when given, is polled before each input character: a sink that has seen enough tokens
  // sets it, and the rest of the text is never normalized (truncating a 10 MB text costs its prefix).
  template <class Sink>
  void tokenize(std::string_view text, Sink& sink, const bool* stop = nullptr) const {
    Scratch& s = scratch();
    s.cache.prepare(uid);
    s.word.clear();
    s.src.clear();
    s.direct = true;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    int64_t cpi = 0;
    const bool has_added = !added.empty();
    while (p < end) {
      if (stop && *stop) return;
      const unsigned char b = *p;
      if (has_added && added_first[b]) {
        const Added* hit = nullptr;
        for (const Added& t : added) {
          if (static_cast<size_t>(end - p) >= t.content.size() &&
              std::memcmp(p, t.content.data(), t.content.size()) == 0) {
            hit = &t;
            break;
          }
        }
        if (hit) {
          flush(s, sink);
          sink(hit->id, cpi, cpi + hit->n_cps);
          p += hit->content.size();
          cpi += hit->n_cps;
          continue;
        }
      }
      if (b < 0x80) {
        switch (ascii_class[b]) {
          case kWord:
            if (s.word.empty()) s.cp0 = cpi;
            s.word.push_back(ascii_char[b]);
            if (!s.direct) s.src.push_back(cpi);
            break;
          case kSpace:
            flush(s, sink);
            break;
          case kRemove:
            if (!s.word.empty()) s.undirect();
            break;
          case kPunctChar:
            flush(s, sink);
            s.cp0 = cpi;
            s.word.push_back(static_cast<char>(b));
            flush(s, sink);
            break;
        }
        ++p;
        ++cpi;
        continue;
      }
      size_t len;
      const uint32_t cp = utf8::decode(p, end, &len);
      p += len;
      const uint8_t f = unicode::flags(cp);
      if (norm.clean_text && (f & unicode::kControl)) {
        if (!s.word.empty()) s.undirect();
      } else {
        if (f & unicode::kWhitespace) {
          flush(s, sink);
        } else {
          const bool cjk = norm.handle_chinese_chars && (f & unicode::kCjk);
          if (cjk) flush(s, sink);
          // Mapped code points may change length or vanish: track sources byte by byte from here.
          if (!s.word.empty()) s.undirect();
          const uint32_t entry = unicode::map_entry(cp, mode);
          if (entry == 0) {
            push_normalized(s, sink, cp, cpi);
          } else {
            const uint32_t* m = unicode::map_chars(entry);
            for (uint32_t i = 0, n = unicode::map_len(entry); i < n; ++i) push_normalized(s, sink, m[i], cpi);
          }
          if (cjk) flush(s, sink);
        }
      }
      ++cpi;
    }
    flush(s, sink);
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
    im.tokenize(utf8, sink);
  } else {
    auto sink = [&](int32_t id, int64_t, int64_t) { ids->push_back(id); };
    im.tokenize(utf8, sink);
  }
  if (add_special_tokens) {
    ids->insert(ids->end(), im.suffix_ids.begin(), im.suffix_ids.end());
    if (offsets) offsets->insert(offsets->end(), im.suffix_ids.size(), TokenSpan{0, 0});
  }
}

void WordPieceTokenizer::token_spans(std::string_view utf8, std::vector<TokenSpan>* offsets) const {
  auto sink = [offsets](int32_t, int64_t b, int64_t e) { offsets->push_back({b, e}); };
  impl_->tokenize(utf8, sink);
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
  if (!full) im.tokenize(utf8, sink, &full);
  if (add_special_tokens) ids->insert(ids->end(), im.suffix_ids.begin(), im.suffix_ids.end());
}

int64_t WordPieceTokenizer::count(std::string_view utf8) const {
  int64_t n = 0;
  auto sink = [&](int32_t, int64_t, int64_t) { ++n; };
  impl_->tokenize(utf8, sink);
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
