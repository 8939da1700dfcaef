#include "webhook/signature.h"

#include "core/slug.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace prevue {

namespace {

std::string hmac_sha256_raw(std::string_view key, std::string_view message) {
  // Fetched once: OpenSSL 3 otherwise looks the digest up (under a lock) on every call.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(sha256 ? sha256 : EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string base64_encode(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  out.assign(3 * text.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return false;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return true;
}

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  return to_hex(hmac_sha256_raw(key, message));
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) std::abort();  // no entropy: nothing safe to hand out
  return to_hex(raw);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool verify_prefixed_hmac(std::string_view header, std::string_view secret, std::string_view body) {
  constexpr std::string_view kPrefix = "sha256=";
  if (secret.empty() || header.substr(0, kPrefix.size()) != kPrefix) return false;
  return verify_hex_hmac(header.substr(kPrefix.size()), secret, body);
}

bool verify_hex_hmac(std::string_view header, std::string_view secret, std::string_view body) {
  if (secret.empty() || header.size() != 64) return false;
  std::string given(header);
  for (char& c : given)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  return constant_time_equal(given, hmac_sha256_hex(secret, body));
}

bool verify_token(std::string_view header, std::string_view secret) { return !secret.empty() && constant_time_equal(header, secret); }

bool verify_standard_webhook(std::string_view id, std::string_view timestamp, std::string_view signature_header,
                             std::string_view secret, std::string_view body) {
  if (secret.empty() || id.empty() || timestamp.empty()) return false;
  if (secret.substr(0, 6) == "whsec_") secret.remove_prefix(6);
  std::string key;
  if (!base64_decode(secret, key)) return false;
  std::string signed_content = std::string(id) + "." + std::string(timestamp) + "." + std::string(body);
  std::string expected = "v1," + base64_encode(hmac_sha256_raw(key, signed_content));
  size_t start = 0;
  bool matched = false;
  while (start < signature_header.size()) {
    size_t end = signature_header.find(' ', start);
    if (end == std::string_view::npos) end = signature_header.size();
    matched = constant_time_equal(signature_header.substr(start, end - start), expected) || matched;
    start = end + 1;
  }
  return matched;
}

}  // namespace prevue
