#include "core/slug.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace prevue {
namespace {

TEST(Slug, ReadableAndValid) {
  std::string slug = make_slug("/repos/app", 42, "feature/Login-Page");
  EXPECT_TRUE(is_valid_dns_label(slug)) << slug;
  EXPECT_EQ(slug.rfind("pr-42-feature-login-page-", 0), 0u) << slug;
}

TEST(Slug, HostileBranchNamesGiveValidLabels) {
  for (const std::string& branch : std::vector<std::string>{"x;touch${IFS}pwned", "$(touch${IFS}pwned2)", "`id`", "../../etc/passwd", "UPPER_case..dots",
                             std::string(200, 'a'), std::string(300, '-'), "", "\xff\xfe unicode \xc3\xa9"}) {
    std::string slug = make_slug("/repos/app", 7, branch);
    EXPECT_TRUE(is_valid_dns_label(slug)) << "branch '" << branch << "' gave '" << slug << "'";
    EXPECT_LE(slug.size(), kMaxDnsLabel);
  }
}

TEST(Slug, StablePerPrAndUniqueAcrossPrsAndRepos) {
  EXPECT_EQ(make_slug("/r/a", 1, "main"), make_slug("/r/a", 1, "main"));
  std::set<std::string> seen;
  for (long pr = 1; pr <= 2000; ++pr) {
    EXPECT_TRUE(seen.insert(make_slug("/r/a", pr, "same-branch")).second) << pr;
    EXPECT_TRUE(seen.insert(make_slug("/r/b", pr, "same-branch")).second) << pr;
  }
}

TEST(Slug, LongBranchIsTruncatedNotRejected) {
  std::string slug = make_slug("/r/a", 123456, std::string(200, 'b'));
  EXPECT_TRUE(is_valid_dns_label(slug));
  EXPECT_LE(slug.size(), 63u);
}

TEST(Slug, DnsLabelValidation) {
  EXPECT_TRUE(is_valid_dns_label("pr-1-abc"));
  EXPECT_FALSE(is_valid_dns_label("-pr"));
  EXPECT_FALSE(is_valid_dns_label("pr-"));
  EXPECT_FALSE(is_valid_dns_label("Pr"));
  EXPECT_FALSE(is_valid_dns_label(""));
  EXPECT_FALSE(is_valid_dns_label(std::string(64, 'a')));
  EXPECT_FALSE(is_valid_dns_label("a;b"));
}

TEST(Slug, RepoShortName) {
  EXPECT_EQ(repo_short_name("https://github.com/acme/Web-App.git"), "web-app");
  EXPECT_EQ(repo_short_name("git@github.com:acme/api.git"), "api");
  EXPECT_EQ(repo_short_name("/srv/git/shop/"), "shop");
}

}  // namespace
}  // namespace prevue

namespace prevue {
namespace {

TEST(DnsNames, WithinDomainRespectsLabelBoundaries) {
  EXPECT_TRUE(within_domain("example.com", "example.com"));
  EXPECT_TRUE(within_domain("pr-1.preview.example.com", "example.com"));
  EXPECT_FALSE(within_domain("badexample.com", "example.com"));
  EXPECT_FALSE(within_domain("example.com", "pr-1.example.com"));
  EXPECT_FALSE(within_domain(".example.com", "example.com"));
  EXPECT_EQ(ascii_lower("PR-1.Example.COM"), "pr-1.example.com");
}

}  // namespace
}  // namespace prevue
