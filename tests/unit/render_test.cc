#include "manifest/render.h"

#include <gtest/gtest.h>

namespace prevue {
namespace {

RenderContext context() {
  RenderContext c;
  c.set("pr.number", "42");
  c.set("commit.sha", "0123456789abcdef0123456789abcdef01234567");
  c.set("port.web", "8080");
  c.set("param.greeting", "hi {{ not.expanded }}");
  return c;
}

TEST(Render, Substitutes) {
  auto r = render_text("PR {{pr.number}} on {{ port.web }}: {{  commit.sha  }}", context(), "f");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "PR 42 on 8080: 0123456789abcdef0123456789abcdef01234567");
}

TEST(Render, ValuesAreNotRenderedAgain) {
  auto r = render_text("{{ param.greeting }}", context(), "f");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "hi {{ not.expanded }}");
}

TEST(Render, UnknownPlaceholderNamesFileAndLine) {
  auto r = render_text("line one\nline two\nport={{ port.db }}\n", context(), "deploy/app.env");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "deploy/app.env:3: unknown placeholder 'port.db'");
}

TEST(Render, MalformedPlaceholders) {
  for (const char* text : {"a {{ pr.number", "{{ pr number }}", "{{}}", "{{ .x }}", "{{ a..b }}", "x\n{{ pr.number }"}) {
    auto r = render_text(text, context(), "t.tmpl");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find("malformed placeholder"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.rfind("t.tmpl:", 0), 0u);
  }
}

TEST(Render, EscapedBraces) {
  auto r = render_text("literal \\{{ kept }} and {{ pr.number }}", context(), "f");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "literal {{ kept }} and 42");
}

TEST(Render, SingleBracesAreText) {
  auto r = render_text("{\"a\": {\"b\": 1}}", context(), "f");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "{\"a\": {\"b\": 1}}");
}

TEST(Render, ListsPlaceholders) {
  EXPECT_EQ(placeholders_in("{{ a.b }} \\{{ no }} {{c}}"), (std::vector<std::string>{"a.b", "c"}));
}

}  // namespace
}  // namespace prevue
