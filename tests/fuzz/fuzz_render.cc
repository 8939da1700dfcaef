// The template renderer: any text against a context with the usual names.
#include <cstdlib>
#include <string_view>

#include "manifest/render.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const prevue::RenderContext context = [] {
    prevue::RenderContext c;
    c.set("pr.number", "42");
    c.set("port.web", "8080");
    c.set("env.slug", "pr-42-x-abcdef");
    c.set("secret.KEY", "{{ nested }}");
    return c;
  }();
  auto rendered = prevue::render_text(text, context, "fuzz.tmpl");
  (void)prevue::placeholders_in(text);
  // Text without "{{" renders to itself.
  if (text.find("{{") == std::string_view::npos && text.find('\\') == std::string_view::npos && (!rendered.ok() || *rendered != text))
    std::abort();
  return 0;
}
