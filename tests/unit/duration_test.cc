#include "core/duration.h"

#include <gtest/gtest.h>

#include <limits>

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

// Several terms each within the limit used to add up past the int64 range
// (signed overflow, undefined behaviour) and came out negative.
TEST(Duration, RefusesSumsPastTheLimitInsteadOfOverflowing) {
  for (const char* bad : {"53375995583d53375995583d", "9000000000000000000ms", "36501d", "106751991167d1d1d1d"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_EQ(parse_duration("36500d")->count(), kMaxDuration.count());
  EXPECT_FALSE(parse_duration("36500d1ms").ok());
}

TEST(Duration, EveryParsedDurationRoundTripsThroughItsFormatter) {
  for (std::int64_t ms : {std::int64_t{0}, std::int64_t{1}, std::int64_t{999}, std::int64_t{1000}, std::int64_t{86'400'001},
                          kMaxDuration.count() - 1, kMaxDuration.count()}) {
    auto back = parse_duration(format_duration(Millis(ms)));
    ASSERT_TRUE(back.ok()) << format_duration(Millis(ms));
    EXPECT_EQ(back->count(), ms);
  }
  EXPECT_EQ(format_duration(Millis(std::numeric_limits<std::int64_t>::min())), "-9223372036854775808ms");
}

}  // namespace
}  // namespace prevue
