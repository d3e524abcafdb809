// The Python face of a native tokenizer, shared by the text bindings (which make it) and the
// runtime bindings (whose chunk_text and tokenize stages run the very tokenizer a user loaded).
#pragma once
#include <memory>

#include "dflow/text/tokenizer.h"

namespace dflow_py {

struct PyTokenizer {
  std::shared_ptr<const dflow::text::WordPieceTokenizer> tok;
};

}  // namespace dflow_py
