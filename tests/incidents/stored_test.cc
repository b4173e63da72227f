// The stored form of incidents (stored.h) through the book: what a growing incident writes,
// restarts that reload incidents with many alerts, merge/split moving alert items, the older
// whole-record form, and stored data that does not add up.
#include "server/incidents/stored.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/incidents/audit.h"
#include "server/incidents/clock.h"
#include "server/incidents/incident_book.h"
#include "server/incidents/json.h"
#include "server/incidents/workflow.h"
#include "tests/incidents/test_util.h"

namespace siper::incidents {
namespace {

// The storage semantics of Store::PutIncidents in memory: heads replaced by id, clears run
// before the puts of the same write, items keyed (incident, kind, seq), audit append-only.
struct FakeStore {
  std::map<std::string, std::string> heads;
  std::map<std::tuple<std::string, char, uint64_t>, std::string> items;
  std::map<uint64_t, std::string> audit;
  int writes = 0;

  void Apply(const StoredWrite& w) {
    ++writes;
    for (const auto& [seq, text] : w.audit) {
      ASSERT_EQ(audit.count(seq), 0u) << "audit seq " << seq << " written twice";
      audit[seq] = text;
    }
    for (const auto& [id, text] : w.incidents) heads[id] = text;
    for (const std::string& id : w.clear_items) {
      auto it = items.lower_bound({id, 0, 0});
      while (it != items.end() && std::get<0>(it->first) == id) it = items.erase(it);
    }
    for (const StoredItem& i : w.items) items[{i.incident_id, i.kind, i.seq}] = i.json;
  }
  void Persist(IncidentBook& book) { Apply(Serialize(book.TakePendingWrite())); }

  size_t ItemCount(const std::string& id, char kind) const {
    size_t n = 0;
    for (const auto& [key, text] : items) n += std::get<0>(key) == id && std::get<1>(key) == kind;
    return n;
  }
  std::vector<ReadItem> ItemsOf(const std::string& id) const {
    std::vector<ReadItem> out;
    for (const auto& [key, text] : items) {
      if (std::get<0>(key) == id) out.push_back({std::get<1>(key), std::get<2>(key), text});
    }
    return out;
  }
  // What the server does at start-up.
  std::vector<Incident> Load(std::set<std::string>* old_format = nullptr) const {
    std::vector<Incident> out;
    for (const auto& [id, text] : heads) {
      bool old = false;
      absl::StatusOr<Incident> in = AssembleIncident(text, ItemsOf(id), &old);
      EXPECT_TRUE(in.ok()) << in.status();
      if (!in.ok()) continue;
      if (old && old_format != nullptr) old_format->insert(id);
      out.push_back(*std::move(in));
    }
    return out;
  }
  AuditLog RestoreAudit() const {
    std::vector<AuditRecord> records;
    for (const auto& [seq, text] : audit) records.push_back(*AuditRecordFromJsonText(text));
    auto restored = AuditLog::Restore(records);
    EXPECT_TRUE(restored.ok()) << restored.status();
    return restored.ok() ? *std::move(restored) : AuditLog();
  }
};

// Alert `n` of one attack: the same attacker and host, a new user name every 7th alert
// (so the observables grow too), one second apart.
AlertInput Attack(int n, absl::Time start, const std::string& ip = "203.0.113.7") {
  AlertInput a = testing::SshAlert(absl::StrCat("alert-", ip, "-", n), ip, "web01",
                                   start + absl::Seconds(n), n == 0 ? "high" : "medium");
  a.seq = 1000 + static_cast<uint64_t>(n);
  a.fields["user.name"] = absl::StrCat("user", n / 7);
  return a;
}

class StoredTest : public ::testing::Test {
 protected:
  FakeClock clock_{testing::At("2026-11-28T10:00:00Z")};
  AuditLog audit_;
  FakeStore store_;
};

TEST_F(StoredTest, GrowingIncidentWritesOnlyWhatIsNew) {
  IncidentBook book(&testing::Rsit(), &clock_, {}, &audit_);
  const absl::Time start = clock_.Now();
  const std::string id = book.Ingest(Attack(0, start)).incident_id;
  ASSERT_FALSE(id.empty());
  store_.Persist(book);
  // What one more alert writes, at 10, 100 and 1,000 alerts: the same few rows.
  int n = 1;
  for (int size : {10, 100, 1000}) {
    for (; n < size; ++n) {
      ASSERT_EQ(book.Ingest(Attack(n, start)).outcome, IngestResult::Outcome::kAttached);
      if (n % 50 == 0) store_.Persist(book);
    }
    store_.Persist(book);
    ASSERT_EQ(book.Ingest(Attack(n++, start)).outcome, IngestResult::Outcome::kAttached);
    IncidentChanges c = book.TakePendingWrite();
    ASSERT_EQ(c.heads.size(), 1u);
    EXPECT_TRUE(c.heads[0].incident.alerts.empty());
    EXPECT_TRUE(c.heads[0].incident.timeline.empty());
    EXPECT_EQ(c.heads[0].alerts, static_cast<uint64_t>(size + 1));
    EXPECT_TRUE(c.clear_items.empty()) << "at " << size;
    ASSERT_EQ(c.alerts.size(), 1u) << "at " << size;
    EXPECT_EQ(c.alerts[0].seq, static_cast<uint64_t>(size));
    EXPECT_EQ(c.timeline.size(), 1u) << "at " << size;  // alert-attached
    // The observables the alert touched (ip, host, user), not all of them.
    EXPECT_LE(c.observables.size(), 3u) << "at " << size;
    ASSERT_EQ(c.audit.size(), 1u);
    // The audit record is a delta: it does not hold the incident's alerts.
    const std::string& audit_text = c.audit[0].text;
    EXPECT_LT(audit_text.size(), 2000u) << "at " << size;
    const nlohmann::json audit_json = nlohmann::json::parse(audit_text);
    EXPECT_EQ(audit_json["after"]["alert_count"], size + 1);
    EXPECT_EQ(audit_json["after"]["alert"]["id"], Attack(size, start).id);
    const StoredWrite w = Serialize(c);
    size_t bytes = 0;
    for (const auto& [hid, text] : w.incidents) bytes += text.size();
    for (const StoredItem& i : w.items) bytes += i.json.size();
    EXPECT_LT(bytes, 4000u) << "at " << size;
    store_.Apply(w);
  }
  EXPECT_EQ(store_.ItemCount(id, kAlertItem), book.Find(id)->alerts.size());
}

TEST_F(StoredTest, RestartReloadsAnIncidentWithManyAlertsExactly) {
  std::string id;
  std::string manual;
  std::string before_restart;
  std::string manual_before;
  {
    IncidentBook book(&testing::Rsit(), &clock_, {}, &audit_);
    const absl::Time start = clock_.Now();
    id = book.Ingest(Attack(0, start)).incident_id;
    for (int n = 1; n < 2000; ++n) {
      ASSERT_EQ(book.Ingest(Attack(n, start)).outcome, IngestResult::Outcome::kAttached);
      if (n % 100 == 0) store_.Persist(book);  // as batches come
    }
    ASSERT_TRUE(book.Transition(id, State::kTriage, "ayse").ok());
    ASSERT_TRUE(book.Update(id, "ayse", "incident.observable",
                            [](Incident& in, absl::Time now) {
                              return AddObservable(in, ObservableKind::kDomain, "evil.example",
                                                   "ayse", now);
                            })
                    .ok());
    auto created = book.Create({.title = "manual"}, "ayse");
    ASSERT_TRUE(created.ok());
    manual = *created;
    ASSERT_TRUE(book.Update(manual, "ayse", "incident.note",
                            [](Incident& in, absl::Time now) {
                              return AddNote(in, "looked at it", "ayse", now);
                            })
                    .ok());
    store_.Persist(book);
    EXPECT_TRUE(book.TakePendingWrite().empty());
    before_restart = IncidentToJson(*book.Find(id)).dump();
    manual_before = IncidentToJson(*book.Find(manual)).dump();
  }
  EXPECT_EQ(store_.ItemCount(id, kAlertItem), 2000u);
  // The head record holds no alert: its size does not grow with them.
  EXPECT_LT(store_.heads[id].size(), 4000u);
  EXPECT_EQ(store_.heads[id].find("alert-"), std::string::npos);

  // Restart: the same incident, field for field (alerts, event refs, observables with their
  // alert ids, timeline).
  AuditLog audit = store_.RestoreAudit();
  std::set<std::string> old_format;
  IncidentBook book(&testing::Rsit(), &clock_, {}, &audit);
  ASSERT_TRUE(book.Load(store_.Load(&old_format), old_format).ok());
  EXPECT_TRUE(old_format.empty());
  EXPECT_TRUE(book.TakePendingWrite().empty());  // nothing to write after a clean load
  ASSERT_NE(book.Find(id), nullptr);
  EXPECT_EQ(IncidentToJson(*book.Find(id)).dump(), before_restart);
  EXPECT_EQ(IncidentToJson(*book.Find(manual)).dump(), manual_before);
  EXPECT_EQ(book.Find(id)->alerts.size(), 2000u);
  // It goes on growing from where it was, appending after the stored items.
  const absl::Time start = testing::At("2026-11-28T10:00:00Z");
  EXPECT_EQ(book.Ingest(Attack(0, start)).outcome, IngestResult::Outcome::kAlreadyLinked);
  EXPECT_EQ(book.Ingest(Attack(2000, start)).outcome, IngestResult::Outcome::kAttached);
  IncidentChanges c = book.TakePendingWrite();
  ASSERT_EQ(c.alerts.size(), 1u);
  EXPECT_EQ(c.alerts[0].seq, 2000u);
  EXPECT_TRUE(c.clear_items.empty());
  EXPECT_EQ(c.audit.size(), 1u);
  store_.Apply(Serialize(c));
  std::vector<Incident> again = store_.Load();
  EXPECT_EQ(again.front().alerts.size(), 2001u);
}

TEST_F(StoredTest, MergeAndSplitMoveAlertItems) {
  IncidentBook book(&testing::Rsit(), &clock_, {}, &audit_);
  const absl::Time start = clock_.Now();
  const std::string a = book.Ingest(Attack(0, start, "203.0.113.7")).incident_id;
  const std::string b = book.Ingest(Attack(0, start, "198.51.100.9")).incident_id;
  ASSERT_NE(a, b);
  for (int n = 1; n < 300; ++n) {
    ASSERT_EQ(book.Ingest(Attack(n, start, "203.0.113.7")).incident_id, a);
    ASSERT_EQ(book.Ingest(Attack(n, start, "198.51.100.9")).incident_id, b);
    if (n % 60 == 0) store_.Persist(book);
  }
  store_.Persist(book);

  ASSERT_TRUE(book.Merge(a, {b}, "ayse").ok());
  store_.Persist(book);
  EXPECT_EQ(store_.ItemCount(a, kAlertItem), 600u);
  EXPECT_EQ(store_.ItemCount(b, kAlertItem), 0u);
  {
    std::vector<Incident> loaded = store_.Load();
    ASSERT_EQ(loaded.size(), 2u);
    EXPECT_EQ(IncidentToJson(loaded[0]), IncidentToJson(*book.Find(a)));
    EXPECT_EQ(IncidentToJson(loaded[1]), IncidentToJson(*book.Find(b)));
    EXPECT_EQ(loaded[1].merged_into, a);
    // The merged-in attacker's address still names its 300 alerts.
    bool found = false;
    for (const Observable& o : loaded[0].observables) {
      if (o.value == "198.51.100.9") {
        found = true;
        EXPECT_EQ(o.alert_ids.size(), 300u);
      }
    }
    EXPECT_TRUE(found);
  }

  // Split the second attacker out again (and detach one alert of the first).
  std::set<std::string> moved;
  for (int n = 0; n < 300; ++n) moved.insert(Attack(n, start, "198.51.100.9").id);
  auto c = book.Split(a, moved, "second attacker", "ayse");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(book.Detach(a, Attack(5, start).id, "ayse").ok());
  store_.Persist(book);
  EXPECT_EQ(store_.ItemCount(a, kAlertItem), 299u);
  EXPECT_EQ(store_.ItemCount(*c, kAlertItem), 300u);

  // Restart: everything where the book had it; ingest finds the right incidents.
  AuditLog audit = store_.RestoreAudit();
  IncidentBook reloaded(&testing::Rsit(), &clock_, {}, &audit);
  ASSERT_TRUE(reloaded.Load(store_.Load()).ok());
  for (const std::string& id : {a, b, *c}) {
    EXPECT_EQ(IncidentToJson(*reloaded.Find(id)), IncidentToJson(*book.Find(id))) << id;
  }
  EXPECT_EQ(reloaded.Ingest(Attack(7, start, "198.51.100.9")).outcome,
            IngestResult::Outcome::kAlreadyLinked);
  EXPECT_EQ(reloaded.Ingest(Attack(7, start, "198.51.100.9")).incident_id, *c);
  EXPECT_EQ(reloaded.Ingest(Attack(5, start)).outcome, IngestResult::Outcome::kAttached);
  EXPECT_EQ(reloaded.Ingest(Attack(300, start, "198.51.100.9")).incident_id, *c);
}

TEST_F(StoredTest, OldWholeRecordFormIsReadAndRewritten) {
  // An incident as versions before the item form stored it: one JSON with everything.
  Incident old_in;
  std::string id;
  {
    IncidentBook book(&testing::Rsit(), &clock_, {}, &audit_);
    const absl::Time start = clock_.Now();
    id = book.Ingest(Attack(0, start)).incident_id;
    for (int n = 1; n < 40; ++n) (void)book.Ingest(Attack(n, start));
    ASSERT_TRUE(book.Transition(id, State::kTriage, "ayse").ok());
    old_in = *book.Find(id);
  }
  store_.heads[id] = IncidentToJson(old_in).dump();

  std::set<std::string> old_format;
  std::vector<Incident> loaded = store_.Load(&old_format);
  EXPECT_EQ(old_format, std::set<std::string>{id});
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(IncidentToJson(loaded[0]), IncidentToJson(old_in));

  AuditLog audit;
  IncidentBook book(&testing::Rsit(), &clock_, {}, &audit);
  ASSERT_TRUE(book.Load(loaded, old_format).ok());
  IncidentChanges c = book.TakePendingWrite();
  ASSERT_EQ(c.heads.size(), 1u);
  EXPECT_EQ(c.clear_items, std::vector<std::string>{id});
  EXPECT_EQ(c.alerts.size(), 40u);
  EXPECT_EQ(c.timeline.size(), old_in.timeline.size());
  EXPECT_TRUE(c.audit.empty());  // a change of form, not of the incident
  store_.Apply(Serialize(c));

  old_format.clear();
  loaded = store_.Load(&old_format);
  EXPECT_TRUE(old_format.empty());
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(IncidentToJson(loaded[0]), IncidentToJson(old_in));
  EXPECT_EQ(store_.heads[id].find("alert-"), std::string::npos);
}

TEST_F(StoredTest, StoredDataThatDoesNotAddUpIsRefusedByName) {
  IncidentBook book(&testing::Rsit(), &clock_, {}, &audit_);
  const absl::Time start = clock_.Now();
  const std::string id = book.Ingest(Attack(0, start)).incident_id;
  for (int n = 1; n < 10; ++n) (void)book.Ingest(Attack(n, start));
  store_.Persist(book);
  bool old = false;

  // A missing alert item (the fourth).
  std::vector<ReadItem> items = store_.ItemsOf(id);
  std::vector<ReadItem> gap = items;
  gap.erase(gap.begin() + 3);
  absl::StatusOr<Incident> in = AssembleIncident(store_.heads[id], gap, &old);
  EXPECT_EQ(in.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(in.status().message().find(id), std::string_view::npos) << in.status();
  EXPECT_NE(in.status().message().find("linked alert 3 is missing"), std::string_view::npos)
      << in.status();

  // A lost tail: the head counts more alerts than are stored.
  std::vector<ReadItem> tail;
  for (const ReadItem& i : items) {
    if (!(i.kind == kAlertItem && i.seq == 9)) tail.push_back(i);
  }
  in = AssembleIncident(store_.heads[id], tail, &old);
  EXPECT_EQ(in.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(in.status().message().find("10 alerts"), std::string_view::npos) << in.status();

  // A malformed item, and an item of an unknown kind.
  std::vector<ReadItem> bad = items;
  bad[0].json = "{not json";
  EXPECT_EQ(AssembleIncident(store_.heads[id], bad, &old).status().code(),
            absl::StatusCode::kDataLoss);
  bad = items;
  bad.push_back({'z', 0, "{}"});
  EXPECT_EQ(AssembleIncident(store_.heads[id], bad, &old).status().code(),
            absl::StatusCode::kDataLoss);
  // Unchanged, it assembles.
  EXPECT_TRUE(AssembleIncident(store_.heads[id], items, &old).ok());
  EXPECT_FALSE(old);
}

TEST_F(StoredTest, ChangeSetsWrittenTogetherKeepTheirOrder) {
  IncidentBook book(&testing::Rsit(), &clock_, {}, &audit_);
  const absl::Time start = clock_.Now();
  const std::string id = book.Ingest(Attack(0, start)).incident_id;
  for (int n = 1; n < 10; ++n) (void)book.Ingest(Attack(n, start));
  IncidentChanges first = book.TakePendingWrite();  // alerts 0..9
  ASSERT_TRUE(book.Detach(id, Attack(2, start).id, "ayse").ok());
  IncidentChanges second = book.TakePendingWrite();  // rewrite: alerts 0..8
  (void)book.Ingest(Attack(10, start));
  IncidentChanges third = book.TakePendingWrite();  // appends alert 9
  // Written as one batch, as the server's writer does with changes queued together.
  store_.Apply(Serialize({&first, &second, &third}));
  EXPECT_EQ(store_.writes, 1);
  EXPECT_EQ(store_.audit.size(), first.audit.size() + second.audit.size() + third.audit.size());
  std::vector<Incident> loaded = store_.Load();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(IncidentToJson(loaded[0]), IncidentToJson(*book.Find(id)));
  EXPECT_EQ(loaded[0].alerts.size(), 10u);
}

}  // namespace
}  // namespace siper::incidents
