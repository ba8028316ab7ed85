#include "keys/jwt.h"

#include <array>
#include <utility>

#include "json/json.h"

namespace meterd::keys {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Sextet value of each byte, or -1 for bytes outside the base64url alphabet.
constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i)
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr std::array<int8_t, 256> kDecode = MakeDecodeTable();

// The fixed header of every token meterd makes (D10), and its encoding.
constexpr std::string_view kHeaderJson = R"({"alg":"PS256","typ":"JWT"})";

// A short, printable rendering of an untrusted value for an error message.
std::string Quoted(std::string_view s) {
  constexpr size_t kMaxShown = 40;
  std::string out;
  json::AppendQuoted(&out, s.substr(0, kMaxShown));
  if (s.size() > kMaxShown) out += "...";
  return out;
}

Status Invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

// Decodes one part of a token and parses it as a JSON object.
Result<json::Value> DecodeJsonPart(std::string_view part, const char* name, std::string* json_out) {
  auto bytes = Base64UrlDecode(part);
  if (!bytes.ok()) return Invalid(std::string("JWT ") + name + ": " + bytes.status().message());
  auto value = json::Parse(*bytes);
  if (!value.ok()) {
    return Invalid(std::string("JWT ") + name + " is not valid JSON: " + value.status().message());
  }
  if (!value->is_object()) return Invalid(std::string("JWT ") + name + " is not a JSON object");
  *json_out = std::move(*bytes);
  return std::move(*value);
}

}  // namespace

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                 (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                 static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i])) << 16) |
                 (static_cast<uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

Result<std::string> Base64UrlDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int acc_bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    int8_t v = kDecode[c];
    if (v < 0) {
      std::string what;
      if (c == '=') {
        what = "padding '='";
      } else if (c == '+' || c == '/') {
        what = std::string("'") + static_cast<char>(c) + "' (standard base64, not base64url)";
      } else if (c > 0x20 && c < 0x7f) {
        what = std::string("character '") + static_cast<char>(c) + "'";
      } else {
        what = "byte " + std::to_string(c);
      }
      return Invalid("base64url text has " + what + " at offset " + std::to_string(i));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    acc_bits += 6;
    if (acc_bits >= 8) {
      acc_bits -= 8;
      out.push_back(static_cast<char>((acc >> acc_bits) & 0xff));
    }
  }
  // 4 characters carry 3 bytes; a lone trailing character carries fewer than 8 bits. (Checked
  // after the characters so that a stray '=' or space is reported as such.)
  if (text.size() % 4 == 1) {
    return Invalid("base64url text of length " + std::to_string(text.size()) +
                   " (1 mod 4) is truncated");
  }
  // The bits left over (2 or 4) must be zero: otherwise several texts would decode to the same
  // bytes, and a token could be altered without touching its signature.
  if (acc_bits > 0 && (acc & ((1u << acc_bits) - 1)) != 0) {
    return Invalid("base64url text has non-zero unused bits in its last character");
  }
  return out;
}

Result<std::string> MakeRegisterUsageJwt(const SigningKey& key, std::string_view product_code,
                                         int64_t public_key_version,
                                         const std::optional<std::string>& nonce,
                                         int64_t iat_seconds) {
  // Key order is fixed (productCode, publicKeyVersion, nonce, iat) so that tokens are
  // reproducible; AppendQuoted escapes whatever the strings contain.
  std::string payload = R"({"productCode":)";
  json::AppendQuoted(&payload, product_code);
  payload += R"(,"publicKeyVersion":)";
  payload += std::to_string(public_key_version);
  if (nonce.has_value()) {
    payload += R"(,"nonce":)";
    json::AppendQuoted(&payload, *nonce);
  }
  payload += R"(,"iat":)";
  payload += std::to_string(iat_seconds);
  payload += '}';

  std::string token = Base64UrlEncode(kHeaderJson);
  token += '.';
  token += Base64UrlEncode(payload);
  auto signature = key.SignPs256(token);
  if (!signature.ok()) return signature.status();
  token += '.';
  token += Base64UrlEncode(*signature);
  return token;
}

Result<VerifiedJwt> VerifyPs256Jwt(std::string_view token, std::string_view public_key_pem) {
  if (token.size() > kMaxJwtBytes) {
    return Invalid("JWT is longer than " + std::to_string(kMaxJwtBytes) + " bytes");
  }
  size_t first_dot = token.find('.');
  size_t second_dot =
      first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos ||
      token.find('.', second_dot + 1) != std::string_view::npos) {
    size_t parts = 1;
    for (char c : token) parts += c == '.' ? 1 : 0;
    return Invalid("JWT must have exactly 3 dot-separated parts, has " + std::to_string(parts));
  }
  std::string_view header_part = token.substr(0, first_dot);
  std::string_view payload_part = token.substr(first_dot + 1, second_dot - first_dot - 1);
  std::string_view signature_part = token.substr(second_dot + 1);

  VerifiedJwt out;
  auto header = DecodeJsonPart(header_part, "header", &out.header_json);
  if (!header.ok()) return header.status();
  // "alg" is checked before anything else is trusted: refusing "none" and every other algorithm
  // here is what stops algorithm-substitution attacks.
  const json::Value* alg = header->Find("alg");
  if (alg == nullptr) return Invalid("JWT header has no \"alg\"");
  if (!alg->is_string()) return Invalid("JWT header \"alg\" is not a string");
  if (alg->text() != "PS256") {
    return Invalid("JWT alg " + Quoted(alg->text()) + " is not accepted; only \"PS256\" is");
  }
  // RFC 7515 4.1.11: a recipient must refuse a token whose "crit" extensions it does not know.
  if (header->Find("crit") != nullptr) return Invalid("JWT header \"crit\" is not supported");
  const json::Value* typ = header->Find("typ");
  if (typ != nullptr && (!typ->is_string() || typ->text() != "JWT")) {
    return Invalid("JWT header \"typ\" must be \"JWT\"");
  }

  auto payload = DecodeJsonPart(payload_part, "payload", &out.payload_json);
  if (!payload.ok()) return payload.status();

  auto signature = Base64UrlDecode(signature_part);
  if (!signature.ok()) return Invalid("JWT signature: " + signature.status().message());
  // The signature covers the encoded text exactly as received.
  Status verified =
      VerifyPs256WithPublicPem(public_key_pem, token.substr(0, second_dot), *signature);
  if (!verified.ok()) {
    return Status(verified.code(), "JWT signature check failed: " + verified.message());
  }
  return out;
}

}  // namespace meterd::keys
