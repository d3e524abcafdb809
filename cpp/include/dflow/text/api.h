// The text subsystem: WordPiece tokenizer and chunkers.
#pragma once
#include "dflow/text/chunker.h"
#include "dflow/text/tokenizer.h"
