// The expression engine: typed kernels found by name in a registry, fused into vectorised
// programs that run over a batch's Arrow columns in cache-sized chunks on the thread pool.
#pragma once
#include "dflow/expr/expression_operator.h"
#include "dflow/expr/kernel.h"
#include "dflow/expr/program.h"
#include "dflow/expr/vector.h"
