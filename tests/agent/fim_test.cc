#include "agent/fim.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/agent/test_dir.h"

namespace siper::agent {
namespace {

using ::siper::agent::testing::Append;
using ::siper::agent::testing::Overwrite;
using ::siper::agent::testing::TestDir;

// sha256("hello\n") and sha256("") as sha256sum prints them.
constexpr char kHelloSha[] = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
constexpr char kEmptySha[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Change {
  std::string name;  // path relative to the watched directory
  v1::FileChange change;
  bool operator==(const Change&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Change& c) {
  return os << c.name << ":" << v1::FileChange_Name(c.change);
}

class Monitor {
 public:
  Monitor(const TestDir& dir, bool inotify = true, std::vector<std::string> ignore = {},
          uint64_t large = 64 << 20)
      : root_((dir / "watched").string()) {
    FimOptions options;
    options.use_inotify = inotify;
    options.large_file_bytes = large;
    if (!inotify) options.rescan_interval = absl::ZeroDuration();
    fim_ = std::make_unique<FileIntegrityMonitor>(
        std::vector<FimInput>{{root_, true, std::move(ignore)}}, dir / "fim.json", options);
    absl::Status status = fim_->Start();
    EXPECT_TRUE(status.ok()) << status;
  }
  // Polls until something is reported (or a few seconds passed), then once more.
  std::vector<v1::FileEvent> Wait() {
    std::vector<v1::FileEvent> out;
    for (int i = 0; i < 100 && out.empty(); ++i) {
      EXPECT_TRUE(fim_->Poll(absl::Milliseconds(50)).ok());
      for (auto& e : fim_->TakeEvents()) out.push_back(e);
    }
    EXPECT_TRUE(fim_->Poll(absl::Milliseconds(50)).ok());
    for (auto& e : fim_->TakeEvents()) out.push_back(e);
    EXPECT_TRUE(fim_->SaveBaseline().ok());
    return out;
  }
  std::vector<Change> Changes(const std::vector<v1::FileEvent>& events) {
    std::vector<Change> out;
    for (const auto& e : events) {
      out.push_back(
          {std::filesystem::path(e.path()).lexically_relative(root_).string(), e.change()});
    }
    std::sort(out.begin(), out.end(),
              [](const Change& a, const Change& b) { return a.name < b.name; });
    return out;
  }
  std::vector<Change> WaitChanges() { return Changes(Wait()); }
  FileIntegrityMonitor& fim() { return *fim_; }

 private:
  std::string root_;
  std::unique_ptr<FileIntegrityMonitor> fim_;
};

TEST(Sha256FileTest, MatchesSha256sum) {
  TestDir dir;
  Overwrite(dir / "a", "hello\n");
  Overwrite(dir / "empty", "");
  EXPECT_EQ(*Sha256File(dir / "a"), kHelloSha);
  EXPECT_EQ(*Sha256File(dir / "empty"), kEmptySha);
  // Reads smaller than the file give the same digest.
  EXPECT_EQ(*Sha256File(dir / "a", 2), kHelloSha);
  EXPECT_FALSE(Sha256File(dir / "missing").ok());
}

TEST(FimTest, BaselineThenAddModifyChmodDelete) {
  TestDir dir;
  std::filesystem::create_directories(dir / "watched/sub");
  Overwrite(dir / "watched/a.conf", "hello\n");
  Overwrite(dir / "watched/sub/b.conf", "b\n");
  Monitor monitor(dir);
  auto baseline = monitor.fim().TakeEvents();
  EXPECT_EQ(monitor.Changes(baseline),
            (std::vector<Change>{{"a.conf", v1::FILE_CHANGE_BASELINE},
                                 {"sub/b.conf", v1::FILE_CHANGE_BASELINE}}));
  ASSERT_TRUE(monitor.fim().SaveBaseline().ok());

  Overwrite(dir / "watched/sub/new.conf", "hello\n");
  auto added = monitor.Wait();
  ASSERT_EQ(monitor.Changes(added), (std::vector<Change>{{"sub/new.conf", v1::FILE_CHANGE_ADDED}}));
  EXPECT_EQ(added[0].sha256(), kHelloSha);
  EXPECT_EQ(added[0].size(), 6u);
  EXPECT_EQ(added[0].uid(), getuid());
  EXPECT_GT(added[0].mtime_ns(), 0);

  Append(dir / "watched/a.conf", "more\n");
  auto modified = monitor.Wait();
  ASSERT_EQ(monitor.Changes(modified), (std::vector<Change>{{"a.conf", v1::FILE_CHANGE_MODIFIED}}));
  EXPECT_EQ(modified[0].size(), 11u);
  EXPECT_NE(modified[0].sha256(), kHelloSha);

  ASSERT_EQ(chmod((dir / "watched/a.conf").c_str(), 0600), 0);
  auto chmoded = monitor.Wait();
  ASSERT_EQ(monitor.Changes(chmoded),
            (std::vector<Change>{{"a.conf", v1::FILE_CHANGE_ATTRIBUTES}}));
  EXPECT_EQ(chmoded[0].mode() & 07777, 0600u);

  std::filesystem::remove(dir / "watched/sub/b.conf");
  auto deleted = monitor.Wait();
  ASSERT_EQ(monitor.Changes(deleted),
            (std::vector<Change>{{"sub/b.conf", v1::FILE_CHANGE_DELETED}}));
  EXPECT_TRUE(deleted[0].sha256().empty());

  // A directory made later is watched too.
  std::filesystem::create_directories(dir / "watched/later");
  Overwrite(dir / "watched/later/c", "c\n");
  EXPECT_EQ(monitor.WaitChanges(), (std::vector<Change>{{"later/c", v1::FILE_CHANGE_ADDED}}));
}

TEST(FimTest, RestartReportsOnlyWhatChangedWhileStopped) {
  TestDir dir;
  std::filesystem::create_directories(dir / "watched");
  Overwrite(dir / "watched/same", "same\n");
  Overwrite(dir / "watched/edit", "v1\n");
  Overwrite(dir / "watched/gone", "gone\n");
  Overwrite(dir / "watched/perm", "perm\n");
  {
    Monitor monitor(dir);
    EXPECT_EQ(monitor.fim().TakeEvents().size(), 4u);
    ASSERT_TRUE(monitor.fim().SaveBaseline().ok());
  }
  // While the agent is down.
  Overwrite(dir / "watched/edit", "v2, longer\n");
  std::filesystem::remove(dir / "watched/gone");
  Overwrite(dir / "watched/new", "new\n");
  ASSERT_EQ(chmod((dir / "watched/perm").c_str(), 0640), 0);

  Monitor monitor(dir);
  EXPECT_EQ(monitor.Changes(monitor.fim().TakeEvents()),
            (std::vector<Change>{{"edit", v1::FILE_CHANGE_MODIFIED},
                                 {"gone", v1::FILE_CHANGE_DELETED},
                                 {"new", v1::FILE_CHANGE_ADDED},
                                 {"perm", v1::FILE_CHANGE_ATTRIBUTES}}));
  ASSERT_TRUE(monitor.fim().SaveBaseline().ok());
  Monitor again(dir);
  EXPECT_TRUE(again.fim().TakeEvents().empty());
}

TEST(FimTest, UnsavedBaselineReportsAgainAfterRestart) {
  TestDir dir;
  std::filesystem::create_directories(dir / "watched");
  {
    Monitor monitor(dir);
    ASSERT_TRUE(monitor.fim().SaveBaseline().ok());
    Overwrite(dir / "watched/x", "x\n");
    EXPECT_EQ(monitor.WaitChanges().size(), 1u);
    Overwrite(dir / "watched/y", "y\n");
    ASSERT_TRUE(monitor.fim().Poll(absl::Milliseconds(200)).ok());
    EXPECT_EQ(monitor.fim().TakeEvents().size(), 1u);
    // Crash before the baseline was saved (the event was not spooled).
  }
  Monitor monitor(dir);
  EXPECT_EQ(monitor.Changes(monitor.fim().TakeEvents()),
            (std::vector<Change>{{"y", v1::FILE_CHANGE_ADDED}}));
}

TEST(FimTest, IgnoredPathsAreNotReported) {
  TestDir dir;
  std::filesystem::create_directories(dir / "watched/cache");
  Monitor monitor(dir, true, {"*.swp", (dir / "watched/cache").string()});
  ASSERT_TRUE(monitor.fim().SaveBaseline().ok());
  Overwrite(dir / "watched/.a.swp", "x\n");
  Overwrite(dir / "watched/cache/blob", "x\n");
  Overwrite(dir / "watched/kept", "x\n");
  EXPECT_EQ(monitor.WaitChanges(), (std::vector<Change>{{"kept", v1::FILE_CHANGE_ADDED}}));
}

TEST(FimTest, RescanWithoutInotifyFindsChanges) {
  TestDir dir;
  std::filesystem::create_directories(dir / "watched");
  Overwrite(dir / "watched/a", "a\n");
  Monitor monitor(dir, /*inotify=*/false);
  monitor.fim().TakeEvents();
  Overwrite(dir / "watched/a", "changed\n");
  EXPECT_EQ(monitor.WaitChanges(), (std::vector<Change>{{"a", v1::FILE_CHANGE_MODIFIED}}));
}

TEST(FimTest, LargeFilesAreHashedInTheLowPriorityPass) {
  TestDir dir;
  std::filesystem::create_directories(dir / "watched");
  Overwrite(dir / "watched/small", "hello\n");
  Overwrite(dir / "watched/big", std::string(5000, 'b'));
  Monitor monitor(dir, true, {}, /*large=*/1000);
  EXPECT_EQ(monitor.fim().large_files_waiting(), 1u);
  auto first = monitor.fim().TakeEvents();
  ASSERT_EQ(monitor.Changes(first), (std::vector<Change>{{"small", v1::FILE_CHANGE_BASELINE}}));
  ASSERT_TRUE(monitor.fim().Poll(absl::ZeroDuration()).ok());
  auto later = monitor.fim().TakeEvents();
  ASSERT_EQ(monitor.Changes(later), (std::vector<Change>{{"big", v1::FILE_CHANGE_BASELINE}}));
  EXPECT_EQ(later[0].sha256(), *Sha256File(dir / "watched/big"));
  EXPECT_EQ(monitor.fim().large_files_waiting(), 0u);
}

}  // namespace
}  // namespace siper::agent
