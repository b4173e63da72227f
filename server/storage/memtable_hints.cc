#include "server/storage/memtable_hints.h"

#include "common/key_codec.h"
#include "server/storage/keys.h"
#include "server/storage/store_impl.h"

namespace siper::storage::internal {

InsertHint::InsertHint(const char* name, size_t head, int fields, size_t tail, bool nonzero_tail)
    : name_(name), head_(head), fields_(fields), tail_(tail), nonzero_tail_(nonzero_tail) {}

long InsertHint::PrefixLength(const rocksdb::Slice& key) const {
  size_t at = head_;
  if (key.size() < at) return -1;
  for (int i = 0; i < fields_; ++i) {
    if (key.size() - at < 4) return -1;
    const size_t len = keycodec::DecodeUint32(key.data() + at);
    at += 4;
    if (key.size() - at < len) return -1;
    at += len;
  }
  if (key.size() - at != tail_) return -1;
  if (nonzero_tail_) {
    bool zero = true;
    for (size_t i = at; i < key.size() && zero; ++i) zero = key.data()[i] == 0;
    if (zero) return -1;
  }
  return static_cast<long>(at);
}

rocksdb::Slice InsertHint::Transform(const rocksdb::Slice& key) const {
  const long n = PrefixLength(key);
  return rocksdb::Slice(key.data(), n < 0 ? 0 : static_cast<size_t>(n));
}

bool InsertHint::InDomain(const rocksdb::Slice& key) const { return PrefixLength(key) >= 0; }

std::shared_ptr<const rocksdb::SliceTransform> InsertHintPrefix(size_t cf) {
  using keys::kAlertKeySize;
  using keys::kEventKeySize;
  switch (cf) {
    // Keys start with the server time, which the store sets when it prepares
    // a write (README "Server time"): a write's time is later than that of
    // the writes committed before it, but for writes prepared concurrently.
    // New keys go at or near the end. One hint for the family.
    case kEvents:
      return std::make_shared<InsertHint>("siper.hint.events", 0, 0, kEventKeySize);
    case kAlerts:
      return std::make_shared<InsertHint>("siper.hint.alerts", 0, 0, kAlertKeySize);
    // agent_num u32, then time or seq, which grow per agent. Retention's
    // ranges start at a 12-byte time bound, or at seq 0 for event_seq.
    case kEventSeq:
      return std::make_shared<InsertHint>("siper.hint.event_seq", 4, 0, 8, /*nonzero_tail=*/true);
    case kEventsByAgent:
      return std::make_shared<InsertHint>("siper.hint.events_by_agent", 4, 0, 8 + 8);
    case kAlertsByAgent:
      return std::make_shared<InsertHint>("siper.hint.alerts_by_agent", 4, 0, kAlertKeySize);
    // hour | field | value, then the event key; retention ranges start at an hour.
    case kEventsByField:
      return std::make_shared<InsertHint>("siper.hint.events_by_field", 4, 2, kEventKeySize);
    // rule id, then the alert key; retention ranges start at rule | time.
    case kAlertsByRule:
      return std::make_shared<InsertHint>("siper.hint.alerts_by_rule", 0, 1, kAlertKeySize);
    default:
      return nullptr;
  }
}

}  // namespace siper::storage::internal
