// The daemon's log fields: what `--log-format json` turns into keys.
#include <gtest/gtest.h>

#include "daemon/logger.h"

namespace prevue {
namespace {

TEST(LogFields, BareAndQuotedValues) {
  auto fields = parse_log_fields("op=up pr=12 reason=" + json_quoted("a \"quoted\" reason, with spaces") + " ok=true");
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[0], (std::pair<std::string, std::string>{"op", "up"}));
  EXPECT_EQ(fields[1].second, "12");
  EXPECT_EQ(fields[2], (std::pair<std::string, std::string>{"reason", "a \"quoted\" reason, with spaces"}));
  EXPECT_EQ(fields[3].second, "true");
}

TEST(LogFields, HostileTextStaysInItsValue) {
  // A branch name or error message is quoted by json_quoted: its "=" and spaces do not make new keys.
  auto fields = parse_log_fields("error=" + json_quoted("x=1 y=\"2\" \\ \n end"));
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0].second, "x=1 y=\"2\" \\ \n end");
  EXPECT_TRUE(parse_log_fields("").empty());
  EXPECT_EQ(parse_log_fields("unterminated=\"abc").size(), 1u);
}

TEST(LogFormat, Names) {
  EXPECT_EQ(log_format_from_string("json"), LogFormat::kJson);
  EXPECT_EQ(log_format_from_string("text"), LogFormat::kText);
  EXPECT_FALSE(log_format_from_string("yaml"));
}

}  // namespace
}  // namespace prevue
