// Webhook signature checks, done on the raw body before anything parses it.
// Every comparison is constant-time.
#pragma once

#include <string>
#include <string_view>

namespace prevue {

std::string hmac_sha256_hex(std::string_view key, std::string_view message);
// `bytes` bytes from OpenSSL's CSPRNG, as hex: ids and keys nobody can guess.
std::string random_hex(size_t bytes);
bool constant_time_equal(std::string_view a, std::string_view b);

// GitHub `X-Hub-Signature-256` and Bitbucket `X-Hub-Signature`: "sha256=<hex>".
bool verify_prefixed_hmac(std::string_view header, std::string_view secret, std::string_view body);
// Gitea/Forgejo `X-Gitea-Signature` / `X-Forgejo-Signature`: "<hex>".
bool verify_hex_hmac(std::string_view header, std::string_view secret, std::string_view body);
// GitLab `X-Gitlab-Token`: the secret itself.
bool verify_token(std::string_view header, std::string_view secret);
// Standard Webhooks (GitLab's signing token): "v1,<base64 HMAC-SHA256>" of
// "<id>.<timestamp>.<body>" keyed with base64decode(secret without "whsec_").
// The header may carry several space-separated signatures.
bool verify_standard_webhook(std::string_view id, std::string_view timestamp, std::string_view signature_header,
                             std::string_view secret, std::string_view body);

}  // namespace prevue
