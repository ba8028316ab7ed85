// libFuzzer target for the SigV4 module: ParseAuthorizationHeader, the canonicalizer and Verify
// on arbitrary header bytes, plus a SignRequest -> Verify round-trip oracle.
//
// Input layout (so that seeds stay readable and mutations hit every part):
//   line 1   Authorization header value
//   line 2   method
//   line 3   request-target (path and optional ?query)
//   lines    "Name: value" headers, up to the first empty line (a line without ':' becomes a
//            header with that name and an empty value)
//   rest     body
// Lines end at '\n'; a '\r' before it is kept, so CR handling is exercised too.
//
// Build: clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/sigv4_fuzz.cc
//        src/auth/sigv4.cc src/common/status.cc src/common/crypto.cc src/common/time_util.cc
//        -lcrypto
// Seeds: fuzz/corpus/sigv4/.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/sigv4.h"
#include "common/crypto.h"

namespace {

using meterd::auth::Credential;
using meterd::auth::Header;
using meterd::auth::RequestView;

std::string_view NextLine(std::string_view* rest) {
  const size_t nl = rest->find('\n');
  if (nl == std::string_view::npos) {
    std::string_view line = *rest;
    *rest = {};
    return line;
  }
  std::string_view line = rest->substr(0, nl);
  rest->remove_prefix(nl + 1);
  return line;
}

[[noreturn]] void Fail() { __builtin_trap(); }

const meterd::auth::MapKeyStore& Keys() {
  static const meterd::auth::MapKeyStore keys({
      {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", true},
      {"ASIAEXAMPLE", "sessionSecret", "token/with+chars=", true},
      {"AKIDDISABLED", "x", "", false},
  });
  return keys;
}

// 2024-01-02T03:04:05Z, the date the seeds are signed at.
constexpr int64_t kNow = 1704164645000;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // The whole input as one header value: the parser must never crash, and what it accepts must
  // be self-consistent.
  (void)meterd::auth::ParseAuthorizationHeader(input);

  std::string_view rest = input;
  const std::string authorization(NextLine(&rest));
  const std::string method(NextLine(&rest));
  const std::string target(NextLine(&rest));
  std::vector<Header> headers;
  while (!rest.empty()) {
    const std::string_view line = NextLine(&rest);
    if (line.empty()) {
      break;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      headers.push_back({std::string(line), ""});
    } else {
      headers.push_back({std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
  }
  const std::string body(rest);
  const std::string body_hash = meterd::HexEncode(meterd::Sha256(body));

  const meterd::Result<meterd::auth::ParsedAuthorization> parsed =
      meterd::auth::ParseAuthorizationHeader(authorization);
  const RequestView req{method, target, &headers, body};
  if (parsed.ok()) {
    if (parsed->access_key_id.empty() || parsed->signed_headers.empty() ||
        parsed->signed_headers.size() > meterd::auth::kMaxSignedHeaders ||
        parsed->signature.empty()) {
      Fail();
    }
    // Parsed names are valid header tokens, so canonicalizing over them cannot fail.
    const meterd::Result<std::string> canonical =
        meterd::auth::CanonicalRequest(req, parsed->signed_headers, body_hash);
    if (!canonical.ok()) {
      Fail();
    }
  }

  // Canonicalize over the request's own header names (which may be anything).
  std::vector<std::string> names;
  names.reserve(headers.size());
  for (const Header& h : headers) {
    names.push_back(h.name);
  }
  (void)meterd::auth::CanonicalRequest(req, names, body_hash);

  // Verify with the Authorization line as the request's header.
  static const meterd::auth::SigV4Verifier verifier(&Keys(), "aws-marketplace");
  std::vector<Header> with_auth = headers;
  with_auth.push_back({"Authorization", authorization});
  const RequestView auth_req{method, target, &with_auth, body};
  (void)verifier.Verify(auth_req, kNow);

  // Oracle: whatever the request looks like, what SignRequest signs Verify accepts (Host is the
  // one thing the signer needs the caller to provide).
  std::vector<Header> signed_headers = headers;
  signed_headers.push_back({"Host", "fuzz.example"});
  const Credential cred = *Keys().Find(size % 2 == 0 ? "AKIDEXAMPLE" : "ASIAEXAMPLE");
  meterd::auth::SignRequest(method, target, &signed_headers, body, cred, "us-east-1",
                            "aws-marketplace", kNow);
  const RequestView signed_req{method, target, &signed_headers, body};
  if (!verifier.Verify(signed_req, kNow).ok()) {
    Fail();
  }
  return 0;
}
