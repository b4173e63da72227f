// The merge operator of the field_counts family (private to server/storage;
// tests/storage opens raw stores with it too). A value is a count, u64
// big-endian; a merge operand is a count to add. Write adds one operand per
// distinct (hour, field, value) of a commit group instead of reading and
// rewriting the count, so counting costs no read on the write path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/key_codec.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/slice.h"

namespace siper::storage::internal {

class CountAddOperator : public rocksdb::AssociativeMergeOperator {
 public:
  // A value or operand that is not 8 bytes fails the merge, which RocksDB
  // reports as Corruption (DataLoss to callers) instead of a wrong count.
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    if (value.size() != 8 || (existing != nullptr && existing->size() != 8)) return false;
    uint64_t sum = keycodec::DecodeUint64(value.data());
    if (existing != nullptr) sum += keycodec::DecodeUint64(existing->data());
    new_value->clear();
    keycodec::AppendUint64(new_value, sum);
    return true;
  }
  // On disk (OPTIONS file): must not change.
  const char* Name() const override { return "siper.CountAdd"; }
};

inline std::shared_ptr<rocksdb::MergeOperator> NewCountAddOperator() {
  return std::make_shared<CountAddOperator>();
}

}  // namespace siper::storage::internal
