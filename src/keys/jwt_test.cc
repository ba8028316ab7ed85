#include "keys/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <random>

#include "json/json.h"

namespace meterd::keys {
namespace {

// RSA generation is slow: the tests share two keys generated once.
const SigningKey& Key() {
  static const std::shared_ptr<const SigningKey> key = *SigningKey::Generate();
  return *key;
}
const SigningKey& OtherKey() {
  static const std::shared_ptr<const SigningKey> key = *SigningKey::Generate();
  return *key;
}

std::string Encode(std::string_view s) { return Base64UrlEncode(s); }

// A token with the given header and payload JSON, signed with PS256 by `key`.
std::string SignedToken(const SigningKey& key, std::string_view header, std::string_view payload) {
  std::string input = Encode(header) + "." + Encode(payload);
  return input + "." + Encode(*key.SignPs256(input));
}

// The same with RSASSA-PKCS1-v1_5 (RS256), made directly with EVP.
std::string Rs256Token(const SigningKey& key, std::string_view header, std::string_view payload) {
  std::string input = Encode(header) + "." + Encode(payload);
  const std::string& pem = key.PrivatePem();
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EVP_MD_CTX* mctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit_ex(mctx, &pctx, "SHA256", nullptr, nullptr, pkey, nullptr), 1);
  EXPECT_GT(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 0);
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  EXPECT_EQ(EVP_DigestSign(mctx, nullptr, &len, in, input.size()), 1);
  std::string sig(len, '\0');
  EXPECT_EQ(
      EVP_DigestSign(mctx, reinterpret_cast<unsigned char*>(sig.data()), &len, in, input.size()),
      1);
  sig.resize(len);
  EVP_MD_CTX_free(mctx);
  EVP_PKEY_free(pkey);
  return input + "." + Encode(sig);
}

void ExpectRejected(std::string_view token, std::string_view message_part,
                    const SigningKey& key = Key()) {
  auto r = VerifyPs256Jwt(token, key.PublicPem());
  ASSERT_FALSE(r.ok()) << token;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(message_part), std::string::npos)
      << "message: " << r.status().message() << "\nexpected to contain: " << message_part;
}

TEST(Base64UrlTest, Rfc4648Vectors) {
  EXPECT_EQ(Encode(""), "");
  EXPECT_EQ(Encode("f"), "Zg");
  EXPECT_EQ(Encode("fo"), "Zm8");
  EXPECT_EQ(Encode("foo"), "Zm9v");
  EXPECT_EQ(Encode("foob"), "Zm9vYg");
  EXPECT_EQ(Encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Encode("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(*Base64UrlDecode("Zm9vYmE"), "fooba");
  EXPECT_EQ(*Base64UrlDecode("-_-_"), "\xfb\xff\xbf");
  EXPECT_EQ(*Base64UrlDecode(""), "");
}

TEST(Base64UrlTest, RoundTripsEveryLength) {
  std::mt19937 rng(42);
  for (size_t len = 0; len < 70; ++len) {
    std::string bytes(len, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    std::string text = Encode(bytes);
    EXPECT_EQ(text.find_first_of("=+/"), std::string::npos);
    auto back = Base64UrlDecode(text);
    ASSERT_TRUE(back.ok()) << text;
    EXPECT_EQ(*back, bytes);
  }
}

TEST(Base64UrlTest, DecodeIsStrict) {
  struct Case {
    std::string text;
    std::string message;
  };
  const Case cases[] = {
      {"Zg==", "padding '='"},
      {"Zm8=", "padding '='"},
      {"+/8A", "'+' (standard base64"},
      {"ab/A", "'/' (standard base64"},
      {"Zm9v YmFy", "byte 32 at offset 4"},
      {"Zm9v\n", "byte 10"},
      {"Zm9v\r\nYmFy", "byte 13"},
      {"Zm9vY", "1 mod 4"},
      {"Z", "1 mod 4"},
      {"Zh", "non-zero unused bits"},   // 'h' = 0b100001: low 4 bits set
      {"Zm9", "non-zero unused bits"},  // '9' = 0b111101: low 2 bits set
      {"Zm*v", "character '*'"},
      {std::string("Zm\0v", 4), "byte 0"},
      {"Zm\xc3\xa9", "byte 195"},
  };
  for (const auto& c : cases) {
    auto r = Base64UrlDecode(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << c.text << ": " << r.status().message();
  }
  EXPECT_TRUE(Base64UrlDecode("Zg").ok());
  EXPECT_TRUE(Base64UrlDecode("Zm8").ok());
}

TEST(RegisterUsageJwtTest, ExactHeaderAndPayload) {
  auto token = MakeRegisterUsageJwt(Key(), "prod-123", 1, std::string("n-1"), 1704164645);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->substr(0, token->find('.')), "eyJhbGciOiJQUzI1NiIsInR5cCI6IkpXVCJ9");
  auto verified = VerifyPs256Jwt(*token, Key().PublicPem());
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->header_json, R"({"alg":"PS256","typ":"JWT"})");
  EXPECT_EQ(verified->payload_json,
            R"({"productCode":"prod-123","publicKeyVersion":1,"nonce":"n-1","iat":1704164645})");
}

TEST(RegisterUsageJwtTest, NonceOnlyWhenGiven) {
  auto without = MakeRegisterUsageJwt(Key(), "p", 3, std::nullopt, 5);
  ASSERT_TRUE(without.ok());
  auto v1 = VerifyPs256Jwt(*without, Key().PublicPem());
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ(v1->payload_json, R"({"productCode":"p","publicKeyVersion":3,"iat":5})");

  auto empty = MakeRegisterUsageJwt(Key(), "p", 3, std::string(), 5);
  ASSERT_TRUE(empty.ok());
  auto v2 = VerifyPs256Jwt(*empty, Key().PublicPem());
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->payload_json, R"({"productCode":"p","publicKeyVersion":3,"nonce":"","iat":5})");
}

TEST(RegisterUsageJwtTest, EscapesStrings) {
  auto token = MakeRegisterUsageJwt(Key(), "a/b=c:d_e.f@g", 2, std::string("q\"\\\n\x01\xc3\xa9"),
                                    1700000000);
  ASSERT_TRUE(token.ok());
  auto v = VerifyPs256Jwt(*token, Key().PublicPem());
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  auto payload = json::Parse(v->payload_json);
  ASSERT_TRUE(payload.ok()) << v->payload_json;
  EXPECT_EQ(payload->Find("productCode")->text(), "a/b=c:d_e.f@g");
  EXPECT_EQ(payload->Find("nonce")->text(), "q\"\\\n\x01\xc3\xa9");
  int64_t version = 0, iat = 0;
  EXPECT_TRUE(payload->Find("publicKeyVersion")->GetInt64(&version));
  EXPECT_TRUE(payload->Find("iat")->GetInt64(&iat));
  EXPECT_EQ(version, 2);
  EXPECT_EQ(iat, 1700000000);
}

TEST(VerifyJwtTest, TamperingFails) {
  std::string token = *MakeRegisterUsageJwt(Key(), "prod", 1, std::string("n"), 100);
  size_t dot1 = token.find('.');
  size_t dot2 = token.find('.', dot1 + 1);
  std::string payload_part = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string sig_part = token.substr(dot2 + 1);

  // Header: same meaning, other bytes.
  ExpectRejected(Encode(R"({"typ":"JWT","alg":"PS256"})") + token.substr(dot1), "does not verify");
  // Payload: another iat.
  ExpectRejected(
      token.substr(0, dot1 + 1) +
          Encode(R"({"productCode":"prod","publicKeyVersion":1,"nonce":"n","iat":101})") +
          token.substr(dot2),
      "does not verify");
  // Signature: one bit flipped.
  std::string sig = *Base64UrlDecode(sig_part);
  sig[10] ^= 0x20;
  ExpectRejected(token.substr(0, dot2 + 1) + Encode(sig), "does not verify");
  // Signature: truncated or extended.
  ExpectRejected(token.substr(0, dot2 + 1) + Encode(sig.substr(1)), "255 bytes");
  ExpectRejected(token.substr(0, dot2 + 1) + Encode(sig + "x"), "257 bytes");
  ExpectRejected(token.substr(0, dot2 + 1), "0 bytes");
  // A non-canonical encoding of the same signature bytes (the last character of a 256-byte
  // signature carries 4 unused bits).
  std::string alt = sig_part;
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  alt.back() = alphabet[alphabet.find(alt.back()) | 1];
  ExpectRejected(token.substr(0, dot2 + 1) + alt, "unused bits");
  // Payload padded.
  ExpectRejected(token.substr(0, dot1 + 1) + payload_part + "=" + token.substr(dot2),
                 "JWT payload");
  // Another key.
  ExpectRejected(token, "does not verify", OtherKey());
}

TEST(VerifyJwtTest, RefusesOtherAlgorithms) {
  const std::string payload = R"({"productCode":"p","publicKeyVersion":1,"iat":1})";
  std::string good = SignedToken(Key(), R"({"alg":"PS256","typ":"JWT"})", payload);
  ASSERT_TRUE(VerifyPs256Jwt(good, Key().PublicPem()).ok());
  std::string good_sig = good.substr(good.rfind('.'));

  ExpectRejected(Encode(R"({"alg":"none","typ":"JWT"})") + "." + Encode(payload) + ".",
                 R"(alg "none" is not accepted)");
  ExpectRejected(Encode(R"({"alg":"none"})") + "." + Encode(payload) + good_sig, R"(alg "none")");
  ExpectRejected(Rs256Token(Key(), R"({"alg":"RS256","typ":"JWT"})", payload), R"(alg "RS256")");
  ExpectRejected(SignedToken(Key(), R"({"alg":"ps256"})", payload), R"(alg "ps256")");
  ExpectRejected(SignedToken(Key(), R"({"alg":"PS384"})", payload), R"(alg "PS384")");
  ExpectRejected(SignedToken(Key(), R"({"alg":"HS256"})", payload), R"(alg "HS256")");
  // PKCS#1 v1.5 signature under a PS256 header.
  ExpectRejected(Rs256Token(Key(), R"({"alg":"PS256","typ":"JWT"})", payload), "does not verify");
  // The header alone decides; PS256 without typ is fine.
  EXPECT_TRUE(
      VerifyPs256Jwt(SignedToken(Key(), R"({"alg":"PS256"})", payload), Key().PublicPem()).ok());
}

TEST(VerifyJwtTest, HeaderChecks) {
  const std::string p = R"({"a":1})";
  ExpectRejected(SignedToken(Key(), R"({"typ":"JWT"})", p), R"(no "alg")");
  ExpectRejected(SignedToken(Key(), R"({"alg":null})", p), "not a string");
  ExpectRejected(SignedToken(Key(), R"({"alg":["PS256"]})", p), "not a string");
  ExpectRejected(SignedToken(Key(), R"({"alg":"PS256","alg":"none"})", p), "not valid JSON");
  ExpectRejected(SignedToken(Key(), R"({"alg":"PS256","crit":["exp"]})", p), R"("crit")");
  ExpectRejected(SignedToken(Key(), R"({"alg":"PS256","typ":"JWS"})", p), R"("typ")");
  ExpectRejected(SignedToken(Key(), R"({"alg":"PS256","typ":1})", p), R"("typ")");
  ExpectRejected(SignedToken(Key(), R"(["PS256"])", p), "header is not a JSON object");
  ExpectRejected(SignedToken(Key(), "", p), "header is not valid JSON");
  ExpectRejected(SignedToken(Key(), R"({"alg":"PS256"})", "[1]"), "payload is not a JSON object");
  ExpectRejected(SignedToken(Key(), R"({"alg":"PS256"})", "{"), "payload is not valid JSON");
  std::string long_alg(100, 'X');
  ExpectRejected(SignedToken(Key(), R"({"alg":")" + long_alg + "\"}", p),
                 "\"" + std::string(40, 'X') + "\"...");
}

TEST(VerifyJwtTest, Structure) {
  std::string token = *MakeRegisterUsageJwt(Key(), "prod", 1, std::nullopt, 1);
  ExpectRejected("", "exactly 3 dot-separated parts, has 1");
  ExpectRejected("a.b", "has 2");
  ExpectRejected(token + ".", "has 4");
  ExpectRejected(token + ".x", "has 4");
  ExpectRejected("..", "JWT header");
  ExpectRejected(" " + token, "JWT header: base64url text has byte 32");
  ExpectRejected(token + "\n", "JWT signature: base64url");
  ExpectRejected(std::string(kMaxJwtBytes + 1, 'a'), "longer than");
}

TEST(VerifyJwtTest, BadPublicKey) {
  std::string token = *MakeRegisterUsageJwt(Key(), "prod", 1, std::nullopt, 1);
  for (const std::string& pem : {std::string(), std::string("x"), Key().PrivatePem()}) {
    auto r = VerifyPs256Jwt(token, pem);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("BEGIN PUBLIC KEY"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace meterd::keys
