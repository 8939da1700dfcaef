#include "core/duration.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

TEST(Duration, Parses) {
  EXPECT_EQ(parse_duration("250ms")->count(), 250);
  EXPECT_EQ(parse_duration("30s")->count(), 30'000);
  EXPECT_EQ(parse_duration("10m")->count(), 600'000);
  EXPECT_EQ(parse_duration("72h")->count(), 72LL * 3'600'000);
  EXPECT_EQ(parse_duration("7d")->count(), 7LL * 86'400'000);
  EXPECT_EQ(parse_duration("1h30m")->count(), 5'400'000);
}

TEST(Duration, RejectsGarbage) {
  for (const char* bad : {"", "10", "s", "10x", "-5s", "1.5h", "10 s", "99999999999999999999h"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("invalid duration"), std::string::npos);
    }
  }
}

TEST(Duration, FormatsRoundTrip) {
  for (const char* text : {"250ms", "30s", "10m", "3d", "1h30m"}) EXPECT_EQ(format_duration(*parse_duration(text)), text);
}

}  // namespace
}  // namespace prevue
