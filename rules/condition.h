// A Sigma condition compiled to a flat program, evaluated without recursion.
// The tree form (CondNode: and/or/not over predicates) cost a recursive call,
// a switch and a vector walk per node, ≈190 instructions per candidate rule in
// the default rule set; the program is a short array of ops run by one loop
// that short-circuits by jumping:
//   and(a, b, c) -> a; jump-if-false END; b; jump-if-false END; c; END:
//   or(a, b)     -> a; jump-if-true END; b; END:
//   not(a)       -> a; not
// The result register holds the value of the last evaluated node, so after a
// jump to END it already holds the and's false (or the or's true).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "rules/sigma.h"

namespace siper::rules {

struct CondOp {
  enum class Kind : uint8_t { kPred, kConst, kNot, kJumpIfFalse, kJumpIfTrue };
  Kind kind = Kind::kConst;
  uint32_t arg = 0;  // kPred: predicate index; kConst: 0 or 1; jumps: target op index
};

inline void AppendCondition(const CondNode& n, std::vector<CondOp>* out) {
  using Op = CondNode::Op;
  switch (n.op) {
    case Op::kAnd:
    case Op::kOr: {
      const bool is_and = n.op == Op::kAnd;
      if (n.kids.empty()) {  // the empty and is true, the empty or false
        out->push_back({CondOp::Kind::kConst, is_and ? 1u : 0u});
        return;
      }
      std::vector<size_t> jumps;
      for (size_t i = 0; i < n.kids.size(); ++i) {
        AppendCondition(n.kids[i], out);
        if (i + 1 == n.kids.size()) break;
        jumps.push_back(out->size());
        out->push_back({is_and ? CondOp::Kind::kJumpIfFalse : CondOp::Kind::kJumpIfTrue, 0});
      }
      for (size_t j : jumps) (*out)[j].arg = static_cast<uint32_t>(out->size());
      return;
    }
    case Op::kNot:
      if (n.kids.empty()) {  // not() of nothing: the parser never makes one; false
        out->push_back({CondOp::Kind::kConst, 0});
        return;
      }
      AppendCondition(n.kids[0], out);
      out->push_back({CondOp::Kind::kNot, 0});
      return;
    case Op::kPred:
      out->push_back({CondOp::Kind::kPred, n.pred});
      return;
    case Op::kTrue:
      out->push_back({CondOp::Kind::kConst, 1});
      return;
    case Op::kFalse:
      out->push_back({CondOp::Kind::kConst, 0});
      return;
  }
}

inline std::vector<CondOp> CompileCondition(const CondNode& root) {
  std::vector<CondOp> out;
  AppendCondition(root, &out);
  return out;
}

// Runs a compiled condition; pred(i) is the value of predicate i, called only
// for the predicates the short-circuit reaches.
template <class PredFn>
bool RunCondition(std::span<const CondOp> program, PredFn&& pred) {
  bool r = false;
  const size_t n = program.size();
  for (size_t pc = 0; pc < n;) {
    const CondOp op = program[pc++];
    switch (op.kind) {
      case CondOp::Kind::kPred:
        r = pred(op.arg);
        break;
      case CondOp::Kind::kConst:
        r = op.arg != 0;
        break;
      case CondOp::Kind::kNot:
        r = !r;
        break;
      case CondOp::Kind::kJumpIfFalse:
        if (!r) pc = op.arg;
        break;
      case CondOp::Kind::kJumpIfTrue:
        if (r) pc = op.arg;
        break;
    }
  }
  return r;
}

}  // namespace siper::rules
