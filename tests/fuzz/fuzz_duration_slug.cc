// Durations and slugs: parse_duration never overflows and round-trips
// through format_duration; make_slug always yields a valid DNS label.
#include <cstdlib>

#include "core/duration.h"
#include "core/slug.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parts = prevue::fuzz::split_input(data, size, 3);
  auto parsed = prevue::parse_duration(parts[0]);
  if (parsed.ok()) {
    if (parsed->count() < 0 || *parsed > prevue::kMaxDuration) std::abort();
    auto again = prevue::parse_duration(prevue::format_duration(*parsed));
    if (!again.ok() || *again != *parsed) std::abort();
  }
  long pr = static_cast<long>(prevue::stable_hash(parts[2]) % 100000) + 1;
  std::string slug = prevue::make_slug(parts[1], pr, parts[2]);
  if (!prevue::is_valid_dns_label(slug)) std::abort();
  std::string words = prevue::dns_words(parts[2], 30);
  if (words.size() > 30 || words.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) std::abort();
  (void)prevue::within_domain(parts[1], parts[2]);
  return 0;
}
