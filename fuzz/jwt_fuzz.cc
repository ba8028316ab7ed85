// libFuzzer target for keys/jwt: the strict base64url decoder and the PS256 JWT verifier
// (`meterd verify-token` feeds them untrusted tokens), with oracles:
//   - a decoded base64url text re-encodes to exactly itself (one accepted encoding per bytes),
//     and any bytes survive an encode/decode round trip;
//   - a token that verifies has a "PS256" header, and its reported parts are its decoded parts;
//   - input "sign:<product>" makes a RegisterUsage token for <product> with a key generated once,
//     which must verify (when <product> is valid UTF-8) and carry <product> back.
//
// The verification key is fixed (compiled in below) so that seeds can hold validly signed tokens;
// its private half was discarded after the seeds were made. No RSA key is generated per input.
//
// Build: clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/jwt_fuzz.cc
//        src/keys/jwt.cc src/keys/signing_keys.cc src/common/status.cc src/common/crypto.cc
//        src/common/time_util.cc src/json/json.cc -lcrypto
// Seeds: fuzz/corpus/jwt/ (jwt-valid-ps256 verifies against kFixedPublicPem).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "json/json.h"
#include "keys/jwt.h"
#include "keys/signing_keys.h"

namespace {

constexpr std::string_view kFixedPublicPem = R"(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxRM9dmCeG1bDUAxNJPz0
gCdEdOkHsfiTzWUBpl5gS9bQBxkD6b6ymrP+BKux5AeuoyAYusXrFGF+Ls8CY0dO
BoOF9Y964L3VzVeCJAooQGlH0Y3OA9LpNnJy5rD+ikGVSvGTETyomgfW0G15QJo9
Wy5UI2C3z7FYMBYgwZm0wf/DG28Pvd6Rpey90deufTLQCrCQa5H4iVClKvAYVjZR
8bW3+xNBjvIjM4Jl3v2DtyHsUbIGxeyC6ar9qBRFty8STaeyFeor+Zwz0V50h5F8
5ctczu+QKKNYa6PHStsZ287MowVH/8XXcokF2Cl8RmP2mFMLsAVbujn07Oc4f6/5
6QIDAQAB
-----END PUBLIC KEY-----
)";

void Check(bool condition) {
  if (!condition) std::abort();
}

// Generated on first use, then shared by every input.
const meterd::keys::SigningKey& SignOracleKey() {
  static const std::shared_ptr<const meterd::keys::SigningKey> key = [] {
    auto generated = meterd::keys::SigningKey::Generate();
    Check(generated.ok());
    return *generated;
  }();
  return *key;
}

void Base64UrlOracles(std::string_view text) {
  using meterd::keys::Base64UrlDecode;
  using meterd::keys::Base64UrlEncode;
  auto decoded = Base64UrlDecode(text);
  if (decoded.ok()) Check(Base64UrlEncode(*decoded) == text);
  auto back = Base64UrlDecode(Base64UrlEncode(text));
  Check(back.ok() && *back == text);
}

void VerifyOracles(std::string_view token) {
  auto verified = meterd::keys::VerifyPs256Jwt(token, kFixedPublicPem);
  if (!verified.ok()) {
    Check(verified.status().code() == meterd::StatusCode::kInvalidArgument);
    return;
  }
  auto header = meterd::json::Parse(verified->header_json);
  Check(header.ok() && header->is_object());
  const auto* alg = header->Find("alg");
  Check(alg != nullptr && alg->is_string() && alg->text() == "PS256");
  size_t dot = token.find('.');
  auto header_bytes = meterd::keys::Base64UrlDecode(token.substr(0, dot));
  Check(header_bytes.ok() && *header_bytes == verified->header_json);
}

void SignOracle(std::string_view product) {
  // Only valid UTF-8 survives a JSON round trip; the catalog guarantees it for product codes.
  std::string quoted;
  meterd::json::AppendQuoted(&quoted, product);
  bool valid_utf8 = meterd::json::Parse(quoted).ok();
  const auto& key = SignOracleKey();
  auto token = meterd::keys::MakeRegisterUsageJwt(key, product, 1, std::string(product), 17);
  Check(token.ok());
  auto verified = meterd::keys::VerifyPs256Jwt(*token, key.PublicPem());
  Check(verified.ok() == valid_utf8);
  if (!valid_utf8) return;
  auto payload = meterd::json::Parse(verified->payload_json);
  Check(payload.ok() && payload->Find("productCode")->text() == product);
  // The same token must not verify against the fixed key.
  Check(!meterd::keys::VerifyPs256Jwt(*token, kFixedPublicPem).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Base64UrlOracles(input);
  VerifyOracles(input);
  constexpr std::string_view kSignPrefix = "sign:";
  // Bounded: an RSA signature costs ~1 ms; product codes are at most 255 bytes.
  if (input.substr(0, kSignPrefix.size()) == kSignPrefix && size <= 300) {
    SignOracle(input.substr(kSignPrefix.size()));
  }
  return 0;
}
