// Memtable insert hints (RocksDB `memtable_insert_with_hint_prefix_extractor`):
// for each family, the key prefix under which new keys arrive in increasing
// order, so a memtable insert starts from where the last key of that prefix
// went instead of searching the skip list from the top. Options only: keys and
// values on disk are unchanged, and a store opened without hints reads the same.
//
// RocksDB 7.8 keeps one hint per prefix for a memtable's point keys *and* its
// range tombstones (two skip lists): a DeleteRange whose begin key is in the
// hint's domain reuses a point-key hint in the tombstone list and aborts the
// process (inlineskiplist.h assertion). So the domain is exactly the complete
// keys a write puts (fixed size, see keys.h), and every retention range starts
// at a key outside it (a shorter bound, or seq 0 for event_seq). A family that
// gets a range delete starting at a complete key (the chain) has no hint.
#pragma once

#include <cstddef>
#include <memory>

#include "rocksdb/slice_transform.h"

namespace siper::storage::internal {

// Keys made of a fixed head of `head` bytes, `fields` length-prefixed
// (u32 big-endian length | bytes) components, and a tail of exactly `tail`
// bytes; the prefix is the head and the components. Any other key (and, with
// `nonzero_tail`, a key whose tail is all zero bytes) is outside the domain
// and is inserted without a hint.
class InsertHint : public rocksdb::SliceTransform {
 public:
  InsertHint(const char* name, size_t head, int fields, size_t tail, bool nonzero_tail = false);
  const char* Name() const override { return name_; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override;
  bool InDomain(const rocksdb::Slice& key) const override;

  // Length of the prefix of `key`, or -1 when `key` is not in the domain.
  long PrefixLength(const rocksdb::Slice& key) const;

 private:
  const char* name_;
  size_t head_;
  int fields_;
  size_t tail_;
  bool nonzero_tail_;
};

// The hint for family `cf` (a store_impl.h `Cf`), or null for families written
// rarely, in no useful order, or with range deletes that start at a complete key.
std::shared_ptr<const rocksdb::SliceTransform> InsertHintPrefix(size_t cf);

}  // namespace siper::storage::internal
