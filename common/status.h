// Helpers for absl::Status / absl::StatusOr used across Siper.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function when `expr` is not OK.
#define SIPER_RETURN_IF_ERROR(expr)             \
  do {                                          \
    if (absl::Status _st = (expr); !_st.ok()) { \
      return _st;                               \
    }                                           \
  } while (0)

#define SIPER_CONCAT_INNER_(a, b) a##b
#define SIPER_CONCAT_(a, b) SIPER_CONCAT_INNER_(a, b)

// Assigns the value of a StatusOr to `lhs`, or returns its status.
#define SIPER_ASSIGN_OR_RETURN(lhs, expr) \
  SIPER_ASSIGN_OR_RETURN_IMPL_(SIPER_CONCAT_(_statusor_, __LINE__), lhs, expr)
#define SIPER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
