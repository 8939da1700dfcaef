#include "http/preview_access.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

constexpr std::int64_t kNow = 1'800'000'000;

TEST(PreviewAccess, ALinkTokenOpensItsPreviewOnlyUntilItExpires) {
  AccessKey key("0123456789abcdef0123456789abcdef");
  std::string token = key.link_token("pr-1-a", "a1b2c3", kNow + 60);
  auto grant = key.verify_link_token(token, "pr-1-a", kNow);
  ASSERT_TRUE(grant);
  EXPECT_EQ(grant->kind, AccessGrant::Kind::kLink);
  EXPECT_EQ(grant->id, "a1b2c3");
  EXPECT_EQ(grant->expires_unix, kNow + 60);
  EXPECT_FALSE(key.verify_link_token(token, "pr-2-b", kNow));       // another preview
  EXPECT_FALSE(key.verify_link_token(token, "pr-1-a", kNow + 60));  // expired
  EXPECT_FALSE(AccessKey("another key").verify_link_token(token, "pr-1-a", kNow));
  std::string later = token;
  later.replace(later.find('.') + 1, std::to_string(kNow + 60).size(), std::to_string(kNow + 6000));  // expiry pushed out by hand
  EXPECT_FALSE(key.verify_link_token(later, "pr-1-a", kNow));
  for (const char* bad : {"", ".", "a1..x", "A1.1.x", "a1.-5.x", "a1.1.2.3", "zz.99999999999.ab"})
    EXPECT_FALSE(key.verify_link_token(bad, "pr-1-a", kNow)) << bad;
}

TEST(PreviewAccess, CookiesNameTheirGrantAndTheLiveLinksAndPasswordDecide) {
  AccessKey key("k-k-k-k-k-k-k-k");
  AccessGrant link{AccessGrant::Kind::kLink, "abc", kNow + 10};
  auto back = key.verify_cookie(key.cookie_value("pr-1-a", link), "pr-1-a", kNow);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, "abc");
  EXPECT_FALSE(key.verify_cookie(key.cookie_value("pr-1-a", link), "pr-1-b", kNow));
  EXPECT_FALSE(key.verify_cookie(key.link_token("pr-1-a", "abc", kNow + 10), "pr-1-a", kNow));  // a token is not a cookie

  AccessPolicy by_link{AccessMode::kLink, "", {"abc"}};
  EXPECT_TRUE(grant_allows(by_link, *back));
  by_link.live_links.clear();  // revoked
  EXPECT_FALSE(grant_allows(by_link, *back));

  AccessPolicy by_password{AccessMode::kPassword, key.password_fingerprint("s3cret"), {}};
  AccessGrant password{AccessGrant::Kind::kPassword, key.password_fingerprint("s3cret"), kNow + 10};
  EXPECT_TRUE(grant_allows(by_password, password));
  EXPECT_FALSE(grant_allows(by_link, password));
  by_password.password_fingerprint = key.password_fingerprint("changed");
  EXPECT_FALSE(grant_allows(by_password, password));  // a new password ends the old one's cookies
  EXPECT_TRUE(grant_allows(AccessPolicy{}, password));
}

TEST(PreviewAccess, PrevuesCookieIsTakenOutOfWhatTheAppReceives) {
  EXPECT_EQ(take_access_cookie("a=1; __prevue_access=xyz; b=2"), (std::pair<std::string, std::string>{"xyz", "a=1; b=2"}));
  EXPECT_EQ(take_access_cookie("__prevue_access=xyz"), (std::pair<std::string, std::string>{"xyz", ""}));
  EXPECT_EQ(take_access_cookie("a=1;b=2"), (std::pair<std::string, std::string>{"", "a=1; b=2"}));
  EXPECT_EQ(take_access_cookie("__prevue_access=old; x=1; __prevue_access=new"), (std::pair<std::string, std::string>{"new", "x=1"}));
  EXPECT_EQ(take_access_cookie("__prevue_accessX=1"), (std::pair<std::string, std::string>{"", "__prevue_accessX=1"}));
}

TEST(PreviewAccess, FormValuesAreDecoded) {
  EXPECT_EQ(form_value("password=a%20b%2Bc+d&next=%2F", "password"), "a b+c d");
  EXPECT_EQ(form_value("next=%2F", "next"), "/");
  EXPECT_EQ(form_value("x=1", "password"), std::nullopt);
  EXPECT_EQ(form_value("password", "password"), "");
  EXPECT_EQ(form_value("password=%zz%4", "password"), "%zz%4");
}

}  // namespace
}  // namespace prevue
