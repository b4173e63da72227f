// Paths shared by the rules tests.
#pragma once

#include <filesystem>
#include <string>

namespace siper::rules::testing {

inline std::filesystem::path SourceDir() { return SIPER_SOURCE_DIR; }
inline std::filesystem::path SharedData() { return SIPER_SHARED_DATA_DIR; }

// Skips the calling test when the shared data folder (../shared/data) is absent.
#define SIPER_REQUIRE_SHARED(rel)                                                            \
  do {                                                                                       \
    if (!std::filesystem::exists(::siper::rules::testing::SharedData() / (rel))) {           \
      GTEST_SKIP() << "shared test data " << (::siper::rules::testing::SharedData() / (rel)) \
                   << " is absent (expected at ../shared/data from the project root)";       \
    }                                                                                        \
  } while (0)

}  // namespace siper::rules::testing
