#include "auth/sigv4.h"

#include <algorithm>
#include <array>
#include <utility>

#include "common/time_util.h"

namespace meterd::auth {
namespace {

constexpr std::string_view kMismatchMessage =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";
constexpr std::string_view kUnrecognizedMessage =
    "The security token included in the request is invalid.";

// ---------------------------------------------------------------------------------------------
// Small string helpers (ASCII only: header names and SigV4 syntax are ASCII by definition).

// A SHA-256 as 64 lowercase hex digits in a fixed buffer: std::string would not fit it in the
// small-string buffer, and this runs two or three times per request.
using Hex64 = std::array<char, 64>;

void HexInto(const Sha256Digest& digest, Hex64* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < digest.size(); ++i) {
    (*out)[2 * i] = kDigits[digest[i] >> 4];
    (*out)[2 * i + 1] = kDigits[digest[i] & 0xf];
  }
}

std::string_view View(const Hex64& hex) { return {hex.data(), hex.size()}; }

bool IsOws(char c) { return c == ' ' || c == '\t'; }

// Whitespace folded inside canonical header values. SP and HTAB are the only whitespace a field
// value can carry on the wire; CR and LF are folded too because both SDKs fold them (botocore
// splits on any whitespace, the JS signer maps [\r\n] to a space), so an obs-fold that an HTTP
// layer passes through still verifies.
bool IsFoldSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) {
      return false;
    }
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsOws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 9110 tchar: what a header name may consist of.
bool IsTokenChar(char c) {
  if (IsAlnum(c)) {
    return true;
  }
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// SigV4 "unreserved": the only bytes UriEncode leaves alone.
bool IsUnreserved(char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.' || c == '~'; }

void AppendUriEncoded(std::string_view s, std::string* out) {
  static constexpr char kUpper[] = "0123456789ABCDEF";
  for (char c : s) {
    if (IsUnreserved(c)) {
      out->push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out->push_back('%');
      out->push_back(kUpper[u >> 4]);
      out->push_back(kUpper[u & 0xf]);
    }
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Decodes %XX escapes; a '%' not followed by two hex digits stays literal (it is re-encoded as
// %25, which is what a client that encoded the raw text would have signed). '+' is literal:
// SigV4 query strings are RFC 3986, not HTML forms.
std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Client-supplied text echoed in an error message: printable ASCII only and bounded, so that a
// hostile header cannot inject control bytes into logs or bloat the response.
std::string Sanitized(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out;
  const size_t n = std::min(s.size(), kMax);
  out.reserve(n + 3);
  for (size_t i = 0; i < n; ++i) {
    const char c = s[i];
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (s.size() > kMax) {
    out.append("...");
  }
  return out;
}

Status Incomplete(std::string message) {
  return Status(StatusCode::kIncompleteSignature, std::move(message));
}

Status ScopeError(std::string message) {
  return Status(StatusCode::kInvalidSignatureScope, std::move(message));
}

// A per-thread scratch string, cleared for reuse. Capacity survives between requests (no
// allocation in the steady state) unless one unusually large request inflated it.
std::string& Scratch(std::string& s) {
  constexpr size_t kKeepCapacity = size_t{64} * 1024;
  if (s.capacity() > kKeepCapacity) {
    std::string().swap(s);
  }
  s.clear();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Authorization header parsing.

// A parsed Authorization value as views into the header: parsing allocates nothing.
struct AuthView {
  std::string_view access_key_id;
  std::string_view date;
  std::string_view region;
  std::string_view service;
  std::string_view terminator;
  std::string_view signed_headers;  // raw "a;b;c", already validated
  std::string_view signature;
};

// Calls f(name) for each name of a validated ';'-separated list.
template <typename F>
void ForEachSignedName(std::string_view list, F&& f) {
  size_t start = 0;
  while (true) {
    const size_t end = list.find(';', start);
    if (end == std::string_view::npos) {
      f(list.substr(start));
      return;
    }
    f(list.substr(start, end - start));
    start = end + 1;
  }
}

Status ValidateSignedName(std::string_view name) {
  if (name.empty()) {
    return Incomplete("SignedHeaders contains an empty header name.");
  }
  for (char c : name) {
    if (!IsTokenChar(c)) {
      return Incomplete("SignedHeaders contains an invalid header name: '" + Sanitized(name) +
                        "'.");
    }
  }
  return Status::Ok();
}

Status ValidateSignedHeaderList(std::string_view list) {
  if (list.empty()) {
    return Incomplete("SignedHeaders must name at least one header.");
  }
  size_t count = 0;
  Status status;
  ForEachSignedName(list, [&](std::string_view name) {
    ++count;
    if (status.ok()) {
      status = ValidateSignedName(name);
    }
  });
  METERD_RETURN_IF_ERROR(status);
  if (count > kMaxSignedHeaders) {
    return Incomplete("SignedHeaders names too many headers.");
  }
  return Status::Ok();
}

// Splits "AKID/YYYYMMDD/region/service/aws4_request" into its five parts.
Status ParseCredential(std::string_view credential, AuthView* out) {
  std::array<std::string_view, 5> parts;
  size_t start = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const size_t slash = credential.find('/', start);
    const bool last = i + 1 == parts.size();
    if (last != (slash == std::string_view::npos)) {
      return Incomplete(
          "Credential must have exactly 5 slash-delimited elements, e.g. "
          "keyid/date/region/service/term, got '" +
          Sanitized(credential) + "'");
    }
    parts[i] = last ? credential.substr(start) : credential.substr(start, slash - start);
    start = slash + 1;
  }
  if (parts[0].empty()) {
    return Incomplete("Credential must name an access key id.");
  }
  out->access_key_id = parts[0];
  out->date = parts[1];
  out->region = parts[2];
  out->service = parts[3];
  out->terminator = parts[4];
  return Status::Ok();
}

Status ParseAuthView(std::string_view value, AuthView* out) {
  value = TrimOws(value);
  // The algorithm is separated from the components by whitespace; "AWS4-HMAC-SHA256" alone
  // falls through to the missing-component errors below.
  const size_t alg_end = std::min(value.find_first_of(" \t"), value.size());
  const std::string_view algorithm = value.substr(0, alg_end);
  if (algorithm != kSigV4Algorithm) {
    return Incomplete("Unsupported Authorization algorithm '" + Sanitized(algorithm) +
                      "': only 'AWS4-HMAC-SHA256' is accepted.");
  }
  std::string_view rest = value.substr(alg_end);

  std::string_view credential;
  bool have_credential = false, have_signed_headers = false, have_signature = false;
  while (!rest.empty()) {
    const size_t comma = std::min(rest.find(','), rest.size());
    const std::string_view component = TrimOws(rest.substr(0, comma));
    rest.remove_prefix(comma == rest.size() ? comma : comma + 1);
    if (component.empty()) {
      continue;  // tolerate ", ," and a trailing comma
    }
    const size_t eq = component.find('=');
    if (eq == std::string_view::npos) {
      return Incomplete("Invalid key=value pair (missing equal-sign) in Authorization header.");
    }
    const std::string_view key = TrimOws(component.substr(0, eq));
    const std::string_view val = TrimOws(component.substr(eq + 1));
    std::string_view* slot = nullptr;
    bool* seen = nullptr;
    if (key == "Credential") {
      slot = &credential;
      seen = &have_credential;
    } else if (key == "SignedHeaders") {
      slot = &out->signed_headers;
      seen = &have_signed_headers;
    } else if (key == "Signature") {
      slot = &out->signature;
      seen = &have_signature;
    } else {
      return Incomplete("Unknown component '" + Sanitized(key) + "' in Authorization header.");
    }
    if (*seen) {
      return Incomplete("Authorization header repeats the '" + std::string(key) + "' parameter.");
    }
    *seen = true;
    *slot = val;
  }
  if (!have_credential || !have_signed_headers || !have_signature) {
    std::string message;
    if (!have_credential) {
      message += "Authorization header requires 'Credential' parameter. ";
    }
    if (!have_signature) {
      message += "Authorization header requires 'Signature' parameter. ";
    }
    if (!have_signed_headers) {
      message += "Authorization header requires 'SignedHeaders' parameter. ";
    }
    message.pop_back();
    return Incomplete(std::move(message));
  }
  METERD_RETURN_IF_ERROR(ParseCredential(credential, out));
  METERD_RETURN_IF_ERROR(ValidateSignedHeaderList(out->signed_headers));
  if (out->signature.empty()) {
    return Incomplete("Authorization header has an empty 'Signature' parameter.");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Canonical request.

// Normalizes like botocore's remove_dot_segments and the JS signer's getCanonicalPath (drop
// empty and "." segments, ".." pops one), then URI-encodes each raw segment. The raw path is
// already percent-encoded on the wire, so this is the "double encoding" of non-S3 services.
void AppendCanonicalUri(std::string_view path, std::string* out) {
  if (path.empty()) {
    out->push_back('/');
    return;
  }
  const size_t start = out->size();
  const bool leading_slash = path.front() == '/';
  size_t kept = 0;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    const std::string_view segment = path.substr(pos, end - pos);
    pos = end + 1;
    if (segment.empty() || segment == ".") {
      continue;
    }
    if (segment == "..") {
      if (kept > 0) {
        --kept;
        // Encoded segments contain no '/', so the last '/' at or after `start` begins the
        // segment being dropped (the first segment of a relative path has none).
        const size_t slash = out->rfind('/');
        out->resize(slash == std::string::npos || slash < start ? start : slash);
      }
      continue;
    }
    if (kept > 0 || leading_slash) {
      out->push_back('/');
    }
    AppendUriEncoded(segment, out);
    ++kept;
  }
  if (kept == 0) {
    if (leading_slash) {
      out->push_back('/');
    }
  } else if (path.back() == '/') {
    out->push_back('/');
  }
}

void AppendCanonicalQuery(std::string_view query, std::string* out) {
  if (query.empty()) {
    return;
  }
  std::vector<std::pair<std::string, std::string>> params;
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string_view::npos) {
      end = query.size();
    }
    const std::string_view param = query.substr(pos, end - pos);
    pos = end + 1;
    if (param.empty()) {
      continue;
    }
    const size_t eq = std::min(param.find('='), param.size());
    std::pair<std::string, std::string> encoded;
    AppendUriEncoded(PercentDecode(param.substr(0, eq)), &encoded.first);
    if (eq < param.size()) {
      AppendUriEncoded(PercentDecode(param.substr(eq + 1)), &encoded.second);
    }
    params.push_back(std::move(encoded));
  }
  // By encoded name, then encoded value: byte order, as SigV4 specifies.
  std::sort(params.begin(), params.end());
  for (size_t i = 0; i < params.size(); ++i) {
    if (i > 0) {
      out->push_back('&');
    }
    out->append(params[i].first);
    out->push_back('=');
    out->append(params[i].second);
  }
}

// Trims the value and collapses each internal run of whitespace to one space.
void AppendFoldedValue(std::string_view value, std::string* out) {
  bool pending_space = false;
  bool any = false;
  for (char c : value) {
    if (IsFoldSpace(c)) {
      pending_space = any;
      continue;
    }
    if (pending_space) {
      out->push_back(' ');
      pending_space = false;
    }
    out->push_back(c);
    any = true;
  }
}

void AppendLower(std::string_view s, std::string* out) {
  for (char c : s) {
    out->push_back(ToLower(c));
  }
}

// `signed_list` is a validated ';'-separated list of names.
void AppendCanonicalRequest(const RequestView& req, std::string_view signed_list,
                            std::string_view payload_hash_hex, std::string* out) {
  out->append(req.method);
  out->push_back('\n');
  const size_t question = std::min(req.target.find('?'), req.target.size());
  AppendCanonicalUri(req.target.substr(0, question), out);
  out->push_back('\n');
  if (question < req.target.size()) {
    AppendCanonicalQuery(req.target.substr(question + 1), out);
  }
  out->push_back('\n');
  ForEachSignedName(signed_list, [&](std::string_view name) {
    AppendLower(name, out);
    out->push_back(':');
    bool first = true;
    if (req.headers != nullptr) {
      for (const Header& header : *req.headers) {
        if (!EqualsIgnoreCase(header.name, name)) {
          continue;
        }
        if (!first) {
          out->push_back(',');
        }
        first = false;
        AppendFoldedValue(header.value, out);
      }
    }
    out->push_back('\n');
  });
  out->push_back('\n');
  AppendLower(signed_list, out);
  out->push_back('\n');
  out->append(payload_hash_hex);
}

void AppendStringToSign(std::string_view amz_date, std::string_view scope_date,
                        std::string_view region, std::string_view service,
                        std::string_view canonical_request, std::string* out) {
  Hex64 canonical_hash;
  HexInto(Sha256(canonical_request), &canonical_hash);
  out->append(kSigV4Algorithm);
  out->push_back('\n');
  out->append(amz_date);
  out->push_back('\n');
  out->append(scope_date);
  out->push_back('/');
  out->append(region);
  out->push_back('/');
  out->append(service);
  out->push_back('/');
  out->append(kSigV4Terminator);
  out->push_back('\n');
  out->append(View(canonical_hash));
}

// ---------------------------------------------------------------------------------------------
// Signing-key cache.

// Deriving the key costs four HMACs; a client re-derives it once a day per region, so a steady
// stream from one key should cost only the final HMAC. The cache is per thread (no locks, no
// sharing) and keyed by the secret itself, not the access key id, so a rotated or changed secret
// can never hit a stale entry. Secrets of revoked keys may linger here until evicted; they are
// only ever used after the KeyStore has returned the same secret again.
struct SigningKeyCache {
  struct Entry {
    std::string secret;
    std::string date;
    std::string region;
    std::string service;
    Sha256Digest key{};
    bool used = false;
  };
  static constexpr size_t kEntries = 8;
  std::array<Entry, kEntries> entries;
  size_t next = 0;
};

Sha256Digest CachedSigningKey(std::string_view secret, std::string_view date,
                              std::string_view region, std::string_view service) {
  thread_local SigningKeyCache cache;
  for (const SigningKeyCache::Entry& e : cache.entries) {
    // The secret is compared last and with ordinary equality: it comes from the KeyStore, not
    // from the client, so its comparison time reveals nothing an attacker chose.
    if (e.used && e.date == date && e.region == region && e.service == service &&
        e.secret == secret) {
      return e.key;
    }
  }
  SigningKeyCache::Entry& e = cache.entries[cache.next];
  cache.next = (cache.next + 1) % SigningKeyCache::kEntries;
  e.secret.assign(secret);
  e.date.assign(date);
  e.region.assign(region);
  e.service.assign(service);
  e.key = DeriveSigningKey(secret, date, region, service);
  e.used = true;
  return e.key;
}

bool IsValidRegion(std::string_view region) {
  if (region.empty() || region.size() > 64) {
    return false;
  }
  return std::all_of(region.begin(), region.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::string SkewMinutes(int64_t max_skew_ms) {
  return std::to_string(max_skew_ms / kMillisPerMinute) + " min.)";
}

}  // namespace

// ---------------------------------------------------------------------------------------------

MapKeyStore::MapKeyStore(std::vector<Credential> credentials) {
  by_id_.reserve(credentials.size());
  for (Credential& c : credentials) {
    std::string id = c.access_key_id;
    by_id_.insert_or_assign(std::move(id), std::move(c));
  }
}

std::optional<Credential> MapKeyStore::Find(std::string_view access_key_id) const {
  auto it = by_id_.find(access_key_id);
  if (it == by_id_.end()) {
    return std::nullopt;
  }
  return it->second;
}

Result<ParsedAuthorization> ParseAuthorizationHeader(std::string_view value) {
  AuthView view;
  METERD_RETURN_IF_ERROR(ParseAuthView(value, &view));
  ParsedAuthorization parsed;
  parsed.access_key_id = std::string(view.access_key_id);
  parsed.date = std::string(view.date);
  parsed.region = std::string(view.region);
  parsed.service = std::string(view.service);
  parsed.terminator = std::string(view.terminator);
  ForEachSignedName(view.signed_headers,
                    [&](std::string_view name) { parsed.signed_headers.emplace_back(name); });
  parsed.signature = std::string(view.signature);
  return parsed;
}

Result<std::string> CanonicalRequest(const RequestView& req,
                                     const std::vector<std::string>& signed_headers,
                                     std::string_view payload_hash_hex) {
  if (signed_headers.empty()) {
    return Incomplete("SignedHeaders must name at least one header.");
  }
  std::string list;
  for (const std::string& name : signed_headers) {
    METERD_RETURN_IF_ERROR(ValidateSignedName(name));
    if (!list.empty()) {
      list.push_back(';');
    }
    list.append(name);
  }
  std::string out;
  AppendCanonicalRequest(req, list, payload_hash_hex, &out);
  return out;
}

Sha256Digest DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                              std::string_view region, std::string_view service) {
  std::string k_secret;
  k_secret.reserve(4 + secret_access_key.size());
  k_secret.append("AWS4").append(secret_access_key);
  const Sha256Digest k_date = HmacSha256(k_secret, date);
  const Sha256Digest k_region = HmacSha256(AsStringView(k_date), region);
  const Sha256Digest k_service = HmacSha256(AsStringView(k_region), service);
  return HmacSha256(AsStringView(k_service), kSigV4Terminator);
}

SigV4Verifier::SigV4Verifier(const KeyStore* keys, std::string service, int64_t max_skew_ms)
    : keys_(keys), service_(std::move(service)), max_skew_ms_(max_skew_ms) {}

Result<VerifiedRequest> SigV4Verifier::Verify(const RequestView& req, int64_t now_ms) const {
  // One pass over the headers for the three SigV4 itself reads.
  const Header* authorization = nullptr;
  const Header* amz_date = nullptr;
  const Header* token = nullptr;
  int authorization_count = 0, amz_date_count = 0, token_count = 0;
  if (req.headers != nullptr) {
    for (const Header& h : *req.headers) {
      if (EqualsIgnoreCase(h.name, "authorization")) {
        authorization = &h;
        ++authorization_count;
      } else if (EqualsIgnoreCase(h.name, "x-amz-date")) {
        amz_date = &h;
        ++amz_date_count;
      } else if (EqualsIgnoreCase(h.name, "x-amz-security-token")) {
        token = &h;
        ++token_count;
      }
    }
  }

  // 1. Presence.
  if (authorization_count == 0) {
    return Status(StatusCode::kMissingAuthenticationToken, "Missing Authentication Token");
  }
  // 2. Syntax.
  if (authorization_count > 1) {
    return Incomplete("Only one Authorization header is allowed.");
  }
  AuthView auth;
  METERD_RETURN_IF_ERROR(ParseAuthView(authorization->value, &auth));
  bool signs_host = false;
  ForEachSignedName(auth.signed_headers, [&](std::string_view name) {
    signs_host = signs_host || EqualsIgnoreCase(name, "host");
  });
  if (!signs_host) {
    return Incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  if (amz_date_count == 0) {
    return Incomplete("Authorization header requires existence of a 'X-Amz-Date' header.");
  }
  if (amz_date_count > 1) {
    return Incomplete("Only one X-Amz-Date header is allowed.");
  }
  const std::string_view date_value = TrimOws(amz_date->value);
  const std::optional<int64_t> request_ms = ParseAmzDate(date_value);
  if (!request_ms) {
    return Incomplete("Date must be in ISO-8601 'basic format'. Got '" + Sanitized(date_value) +
                      "'. See http://en.wikipedia.org/wiki/ISO_8601");
  }

  // 3-4. Scope.
  if (auth.service != service_) {
    return ScopeError("Credential should be scoped to correct service: '" + service_ + "'. ");
  }
  if (!IsValidRegion(auth.region)) {
    return ScopeError("Credential should be scoped to a valid region. ");
  }
  if (auth.terminator != kSigV4Terminator) {
    return ScopeError("Credential should be scoped with a valid terminator: 'aws4_request', not '" +
                      Sanitized(auth.terminator) + "'. ");
  }
  const std::string_view day = date_value.substr(0, 8);
  if (auth.date != day) {
    return ScopeError(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '" +
        Sanitized(auth.date) + "' != '" + std::string(day) + "', from '" + std::string(date_value) +
        "'.");
  }

  // 5-6. Identity.
  const std::optional<Credential> cred = keys_->Find(auth.access_key_id);
  if (!cred || !cred->enabled) {
    return Status(StatusCode::kUnrecognizedClient, std::string(kUnrecognizedMessage));
  }
  const bool token_ok =
      cred->session_token.empty()
          ? token_count == 0
          : token_count == 1 && ConstantTimeEquals(TrimOws(token->value), cred->session_token);
  if (!token_ok) {
    return Status(StatusCode::kUnrecognizedClient, std::string(kUnrecognizedMessage));
  }

  // 7. Freshness.
  if (*request_ms < now_ms - max_skew_ms_) {
    return Status(StatusCode::kInvalidSignature,
                  "Signature expired: " + std::string(date_value) + " is now earlier than " +
                      FormatAmzDate(now_ms - max_skew_ms_) + " (" + FormatAmzDate(now_ms) + " - " +
                      SkewMinutes(max_skew_ms_));
  }
  if (*request_ms > now_ms + max_skew_ms_) {
    return Status(StatusCode::kInvalidSignature,
                  "Signature not yet current: " + std::string(date_value) +
                      " is still later than " + FormatAmzDate(now_ms + max_skew_ms_) + " (" +
                      FormatAmzDate(now_ms) + " + " + SkewMinutes(max_skew_ms_));
  }

  // 8. Signature. Scratch buffers are per thread so the steady state allocates nothing here.
  Hex64 body_hash;
  HexInto(Sha256(req.body), &body_hash);
  thread_local std::string canonical_buffer;
  std::string& canonical = Scratch(canonical_buffer);
  AppendCanonicalRequest(req, auth.signed_headers, View(body_hash), &canonical);
  thread_local std::string string_to_sign_buffer;
  std::string& string_to_sign = Scratch(string_to_sign_buffer);
  AppendStringToSign(date_value, auth.date, auth.region, auth.service, canonical, &string_to_sign);
  const Sha256Digest key =
      CachedSigningKey(cred->secret_access_key, auth.date, auth.region, auth.service);
  Hex64 expected;
  HexInto(HmacSha256(AsStringView(key), string_to_sign), &expected);
  if (!ConstantTimeEquals(auth.signature, View(expected))) {
    return Status(StatusCode::kInvalidSignature, std::string(kMismatchMessage));
  }

  VerifiedRequest verified;
  verified.access_key_id = std::string(auth.access_key_id);
  verified.region = std::string(auth.region);
  verified.service = std::string(auth.service);
  verified.request_time_ms = *request_ms;
  return verified;
}

void SignRequest(std::string_view method, std::string_view target, std::vector<Header>* headers,
                 std::string_view body, const Credential& cred, std::string_view region,
                 std::string_view service, int64_t now_ms) {
  std::erase_if(*headers, [](const Header& h) {
    return EqualsIgnoreCase(h.name, "authorization") || EqualsIgnoreCase(h.name, "x-amz-date") ||
           EqualsIgnoreCase(h.name, "x-amz-security-token");
  });
  const std::string amz_date = FormatAmzDate(now_ms);
  const std::string_view day = std::string_view(amz_date).substr(0, 8);
  headers->push_back({"X-Amz-Date", amz_date});
  if (!cred.session_token.empty()) {
    headers->push_back({"X-Amz-Security-Token", cred.session_token});
  }

  // Sorted, as SigV4 requires of the SignedHeaders list.
  static constexpr std::string_view kSignable[] = {"content-type", "host", "x-amz-date",
                                                   "x-amz-security-token", "x-amz-target"};
  std::string signed_list;
  for (std::string_view name : kSignable) {
    const bool present = std::any_of(headers->begin(), headers->end(), [&](const Header& h) {
      return EqualsIgnoreCase(h.name, name);
    });
    if (present) {
      if (!signed_list.empty()) {
        signed_list.push_back(';');
      }
      signed_list.append(name);
    }
  }

  Hex64 body_hash;
  HexInto(Sha256(body), &body_hash);
  const RequestView req{method, target, headers, body};
  std::string canonical;
  AppendCanonicalRequest(req, signed_list, View(body_hash), &canonical);
  std::string string_to_sign;
  AppendStringToSign(amz_date, day, region, service, canonical, &string_to_sign);
  const Sha256Digest key = CachedSigningKey(cred.secret_access_key, day, region, service);
  Hex64 signature;
  HexInto(HmacSha256(AsStringView(key), string_to_sign), &signature);

  std::string authorization;
  authorization.reserve(200 + cred.access_key_id.size() + region.size() + service.size() +
                        signed_list.size());
  authorization.append(kSigV4Algorithm)
      .append(" Credential=")
      .append(cred.access_key_id)
      .append("/")
      .append(day)
      .append("/")
      .append(region)
      .append("/")
      .append(service)
      .append("/")
      .append(kSigV4Terminator)
      .append(", SignedHeaders=")
      .append(signed_list)
      .append(", Signature=")
      .append(View(signature));
  headers->push_back({"Authorization", std::move(authorization)});
}

}  // namespace meterd::auth
