// AWS Signature Version 4 verification (and signing) for the metering API.
//
// The server side of SigV4 as the AWS SDKs speak it: header-based signing only (no presigned
// query strings, no chunked/streaming payload signing, no SigV4a). Verification follows the
// order of checks in docs/BEHAVIOUR-DECISIONS.md ("Order of checks", step 2) so that each
// failure maps to exactly the error AWS returns for it (spec BEHAVIOUR.md D8).
//
// Nothing here throws on the request path; failures are Status values.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/crypto.h"
#include "common/http_message.h"
#include "common/status.h"

namespace meterd::auth {

inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kSigV4Terminator = "aws4_request";
// The credential-scope service of the metering API (its Smithy signingName).
inline constexpr std::string_view kMeteringSigningName = "aws-marketplace";
inline constexpr int64_t kDefaultMaxSkewMs = int64_t{15} * 60 * 1000;
// More names than any SDK signs (the JS SDK signs about ten). The bound keeps the canonical
// request cost (signed names x request headers) small for hostile input.
inline constexpr size_t kMaxSignedHeaders = 128;

// What verification needs about one access key.
struct Credential {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: long-term key; else X-Amz-Security-Token must equal it
  bool enabled = true;
};

// Looks up credentials by access key id. Implementations must be thread-safe (called
// concurrently from every HTTP thread). The returned value is a copy.
class KeyStore {
 public:
  virtual ~KeyStore() = default;
  virtual std::optional<Credential> Find(std::string_view access_key_id) const = 0;
};

// A simple in-memory KeyStore (for tests and for the catalog), immutable after construction and
// therefore safe to share between threads. When two credentials have the same access key id, the
// later one in the vector wins.
class MapKeyStore final : public KeyStore {
 public:
  explicit MapKeyStore(std::vector<Credential> credentials);
  std::optional<Credential> Find(std::string_view access_key_id) const override;

 private:
  // Transparent hashing lets Find look up a string_view without building a std::string.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Credential, Hash, std::equal_to<>> by_id_;
};

// One request header; `name` as received (any case). The HTTP layer's own type, so that a
// request's headers are verified where they are, without a copy.
using Header = ::meterd::HttpHeader;

// The parts of an HTTP request that SigV4 covers. Views only: the caller keeps the storage alive
// for the duration of the call.
struct RequestView {
  std::string_view method;  // as received, case preserved (the canonical request uses it as is)
  std::string_view target;  // request-target in origin form: path plus optional "?query", raw
  const std::vector<Header>* headers = nullptr;  // nullptr is treated as no headers
  std::string_view body;
};

// The identity and scope of a request whose signature checked out.
struct VerifiedRequest {
  std::string access_key_id;
  std::string region;           // the credential-scope region (the region the caller addressed)
  std::string service;          // the credential-scope service (always the verifier's service)
  int64_t request_time_ms = 0;  // X-Amz-Date, milliseconds since the epoch
};

// The fields of an "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." value.
struct ParsedAuthorization {
  std::string access_key_id;
  std::string date;        // credential-scope date, YYYYMMDD (not validated here)
  std::string region;      // credential-scope region (not validated here)
  std::string service;     // credential-scope service (not validated here)
  std::string terminator;  // credential-scope terminator, "aws4_request" when well formed
  std::vector<std::string> signed_headers;  // as sent, in the order sent
  std::string signature;
};

// Parses an Authorization header value. Syntax errors (another algorithm, a missing, repeated or
// unknown component, a credential that is not five '/'-separated parts, an empty or malformed
// SignedHeaders list, more than kMaxSignedHeaders names) are kIncompleteSignature. Whether the
// scope and the signed names are acceptable is Verify's business. Thread-safe (pure function).
Result<ParsedAuthorization> ParseAuthorizationHeader(std::string_view value);

// Builds the canonical request exactly as SigV4 specifies, over exactly `signed_headers`, in the
// order given (clients send them sorted; the list is the client's claim of what it signed):
//   method \n canonical URI \n canonical query \n canonical headers \n signed names \n hash
// Header names are lowercased; values trimmed, internal runs of whitespace (SP, HTAB, CR, LF)
// collapsed to one space, repeated headers joined with ','; a signed name absent from the request
// contributes an empty value. Canonical URI: dot segments and empty segments removed, each
// segment of the raw path URI-encoded again (the double encoding AWS uses for non-S3
// services). Canonical query: names and values percent-decoded, re-encoded, sorted by name
// then value. Fails (kIncompleteSignature) only for an empty list or a name that is not an HTTP
// token. Thread-safe (pure function).
Result<std::string> CanonicalRequest(const RequestView& req,
                                     const std::vector<std::string>& signed_headers,
                                     std::string_view payload_hash_hex);

// HMAC chain "AWS4"+secret -> date -> region -> service -> "aws4_request", uncached.
// Thread-safe (pure function).
Sha256Digest DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                              std::string_view region, std::string_view service);

// Verifies SigV4-signed requests against a KeyStore.
class SigV4Verifier {
 public:
  // `keys` is not owned and must outlive the verifier. Thread-safe: Verify may be called
  // concurrently (its only mutable state is a per-thread signing-key cache).
  explicit SigV4Verifier(const KeyStore* keys,
                         std::string service = std::string(kMeteringSigningName),
                         int64_t max_skew_ms = kDefaultMaxSkewMs);

  // `now_ms`: the wall clock (never a test clock: the skew check protects the transport).
  // Checks, in this order, returning the first failure:
  //  1. an Authorization header -> else kMissingAuthenticationToken;
  //  2. it parses (ParseAuthorizationHeader), is not repeated, SignedHeaders names "host", and
  //     there is exactly one well-formed X-Amz-Date header -> else kIncompleteSignature;
  //  3. scope service == service -> else kInvalidSignatureScope
  //     "Credential should be scoped to correct service: '<service>'. ";
  //  4. scope region well formed ([a-z0-9-], 1..64), terminator "aws4_request", scope date ==
  //     the first 8 characters of X-Amz-Date -> else kInvalidSignatureScope;
  //  5. the access key is known and enabled -> else kUnrecognizedClient
  //     "The security token included in the request is invalid.";
  //  6. X-Amz-Security-Token present exactly when the credential has a session token, and equal
  //     to it -> else kUnrecognizedClient (same message);
  //  7. |X-Amz-Date - now| <= max skew -> else kInvalidSignature "Signature expired: ..." (past)
  //     or "Signature not yet current: ..." (future), worded as AWS words them;
  //  8. the signature matches (constant-time compare) -> else kInvalidSignature "The request
  //     signature we calculated does not match the signature you provided. ...".
  // The payload hash in the canonical request is always the SHA-256 of the body actually
  // received, never the client's x-amz-content-sha256 (which is merely a signed header).
  Result<VerifiedRequest> Verify(const RequestView& req, int64_t now_ms) const;

  const std::string& service() const { return service_; }

 private:
  const KeyStore* keys_;
  std::string service_;
  int64_t max_skew_ms_;
};

// Signs a request (for meterd's own load generator and tests). Removes any Authorization,
// X-Amz-Date and X-Amz-Security-Token headers already in `headers`, then adds X-Amz-Date, the
// X-Amz-Security-Token when `cred` has a session token, and Authorization. Signs whichever of
// content-type, host, x-amz-date, x-amz-security-token and x-amz-target are present; the caller
// must have added Host (a request without it is refused by Verify). The payload hash is the
// SHA-256 of `body`. Thread-safe (uses the same per-thread signing-key cache as Verify).
void SignRequest(std::string_view method, std::string_view target, std::vector<Header>* headers,
                 std::string_view body, const Credential& cred, std::string_view region,
                 std::string_view service, int64_t now_ms);

}  // namespace meterd::auth
