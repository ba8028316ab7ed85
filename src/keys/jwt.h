// Compact JWS/JWT with PS256 (RFC 7515, RFC 7518 section 3.5): the RegisterUsage signature (spec
// BEHAVIOUR.md D10) and a strict verifier for it (`meterd verify-token`, tests).
//
// All functions are pure and thread-safe. Nothing throws; failures are Status values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "keys/signing_keys.h"

namespace meterd::keys {

// Tokens longer than this are refused before any decoding (a RegisterUsage token is < 1 KB).
inline constexpr size_t kMaxJwtBytes = size_t{64} * 1024;

// Base64url (RFC 4648 section 5) without padding.
std::string Base64UrlEncode(std::string_view bytes);
// Strict inverse of Base64UrlEncode: refuses '=' padding, '+', '/', whitespace and any other byte
// outside [A-Za-z0-9_-], a length of 1 mod 4, and non-zero unused bits in the last character (so
// that every byte string has exactly one accepted encoding). Errors: kInvalidArgument.
Result<std::string> Base64UrlDecode(std::string_view text);

// The RegisterUsage signature (BEHAVIOUR.md D10): header exactly {"alg":"PS256","typ":"JWT"},
// payload {"productCode":"...","publicKeyVersion":N,"nonce":"..." (only when `nonce` has a value,
// even ""),"iat":SECONDS} in that key order, compact, signed with PS256 over
// base64url(header) "." base64url(payload). Errors: kInternal when OpenSSL fails.
Result<std::string> MakeRegisterUsageJwt(const SigningKey& key, std::string_view product_code,
                                         int64_t public_key_version,
                                         const std::optional<std::string>& nonce,
                                         int64_t iat_seconds);

// The decoded parts of a verified token (both valid JSON objects).
struct VerifiedJwt {
  std::string header_json;
  std::string payload_json;
};

// Verifies a compact JWS against an RSA "BEGIN PUBLIC KEY" PEM. Requires: at most kMaxJwtBytes;
// exactly three strict base64url parts; a header that is a JSON object with "alg" exactly "PS256"
// ("none", "RS256", "ps256", ... are refused), no "crit", and "typ" absent or "JWT"; a payload
// that is a JSON object; an RSA-PSS SHA-256 MGF1-SHA-256 signature with salt length exactly 32 (no
// auto-detection) and exactly as long as the modulus. Errors: kInvalidArgument, with a message
// naming the first check that failed.
Result<VerifiedJwt> VerifyPs256Jwt(std::string_view token, std::string_view public_key_pem);

}  // namespace meterd::keys
