#include "keys/signing_keys.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "json/json.h"
#include "keys/jwt.h"

namespace meterd::keys {
namespace {

// RSA generation takes ~50-200 ms: the tests share two keys generated once.
const std::shared_ptr<const SigningKey>& KeyAPtr() {
  static const std::shared_ptr<const SigningKey> key = *SigningKey::Generate();
  return key;
}
const std::shared_ptr<const SigningKey>& KeyBPtr() {
  static const std::shared_ptr<const SigningKey> key = *SigningKey::Generate();
  return key;
}
const SigningKey& KeyA() { return *KeyAPtr(); }
const SigningKey& KeyB() { return *KeyBPtr(); }

std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> PkeyFromPrivatePem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return {pkey, &EVP_PKEY_free};
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int)
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

// PKCS#1 "BEGIN RSA PRIVATE KEY" of the same key.
std::string Pkcs1Pem(const SigningKey& key) {
  auto pkey = PkeyFromPrivatePem(key.PrivatePem());
  BIO* bio = BIO_new(BIO_s_mem());
  EXPECT_EQ(
      PEM_write_bio_PrivateKey_traditional(bio, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr),
      1);
  return BioText(bio);
}

std::string GeneratedPkcs8Pem(const char* type, const char* arg, size_t bits) {
  EVP_PKEY* pkey = arg != nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, arg)
                                  : EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits);
  EXPECT_NE(pkey, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  EVP_PKEY_free(pkey);
  return BioText(bio);
}

// A fresh directory under the test temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string templ = std::string(base != nullptr ? base : "/tmp") + "/signing_keys_test.XXXXXX";
    path_ = mkdtemp(templ.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  return names;
}

TEST(SigningKeyTest, GenerateMakesRsa2048WithF4) {
  const SigningKey& key = KeyA();
  EXPECT_EQ(key.Bits(), 2048);
  EXPECT_EQ(key.JwkExponent(), "AQAB");
  EXPECT_EQ(key.PrivatePem().rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
  EXPECT_EQ(key.PublicPem().rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
  EXPECT_FALSE(key.SameKeyAs(KeyB()));
  EXPECT_TRUE(key.SameKeyAs(key));
}

TEST(SigningKeyTest, SignVerifyRoundTrip) {
  const SigningKey& key = KeyA();
  auto sig1 = key.SignPs256("hello");
  auto sig2 = key.SignPs256("hello");
  ASSERT_TRUE(sig1.ok()) << sig1.status().ToString();
  ASSERT_TRUE(sig2.ok());
  EXPECT_EQ(sig1->size(), 256u);
  EXPECT_NE(*sig1, *sig2);  // PSS salts are random
  EXPECT_TRUE(key.VerifyPs256("hello", *sig1).ok());
  EXPECT_TRUE(key.VerifyPs256("hello", *sig2).ok());
  EXPECT_TRUE(VerifyPs256WithPublicPem(key.PublicPem(), "hello", *sig1).ok());
  EXPECT_FALSE(key.VerifyPs256("hellO", *sig1).ok());
  EXPECT_FALSE(KeyB().VerifyPs256("hello", *sig1).ok());
  std::string flipped = *sig1;
  flipped[100] ^= 1;
  EXPECT_FALSE(key.VerifyPs256("hello", flipped).ok());
  auto empty = key.SignPs256("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(key.VerifyPs256("", *empty).ok());
}

TEST(SigningKeyTest, VerifyRequiresExactLength) {
  const SigningKey& key = KeyA();
  auto sig = key.SignPs256("data");
  ASSERT_TRUE(sig.ok());
  Status st = key.VerifyPs256("data", *sig + std::string(1, '\0'));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("257 bytes"), std::string::npos) << st.message();
  EXPECT_FALSE(key.VerifyPs256("data", sig->substr(1)).ok());
  EXPECT_FALSE(key.VerifyPs256("data", "").ok());
}

// A signature over `data` with the given padding and PSS salt length, made directly with EVP.
std::string SignRaw(const SigningKey& key, std::string_view data, int padding, int salt_len) {
  auto pkey = PkeyFromPrivatePem(key.PrivatePem());
  EVP_MD_CTX* mctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit_ex(mctx, &pctx, "SHA256", nullptr, nullptr, pkey.get(), nullptr), 1);
  EXPECT_GT(EVP_PKEY_CTX_set_rsa_padding(pctx, padding), 0);
  if (padding == RSA_PKCS1_PSS_PADDING) {
    EXPECT_GT(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt_len), 0);
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  EXPECT_EQ(EVP_DigestSign(mctx, nullptr, &len, in, data.size()), 1);
  std::string sig(len, '\0');
  EXPECT_EQ(
      EVP_DigestSign(mctx, reinterpret_cast<unsigned char*>(sig.data()), &len, in, data.size()), 1);
  sig.resize(len);
  EVP_MD_CTX_free(mctx);
  return sig;
}

TEST(SigningKeyTest, VerifyRequiresSalt32AndPss) {
  const SigningKey& key = KeyA();
  EXPECT_TRUE(key.VerifyPs256("x", SignRaw(key, "x", RSA_PKCS1_PSS_PADDING, 32)).ok());
  EXPECT_FALSE(key.VerifyPs256("x", SignRaw(key, "x", RSA_PKCS1_PSS_PADDING, 20)).ok());
  EXPECT_FALSE(key.VerifyPs256("x", SignRaw(key, "x", RSA_PKCS1_PSS_PADDING, 0)).ok());
  EXPECT_FALSE(key.VerifyPs256("x", SignRaw(key, "x", RSA_PKCS1_PSS_PADDING, 64)).ok());
  EXPECT_FALSE(key.VerifyPs256("x", SignRaw(key, "x", RSA_PKCS1_PADDING, 0)).ok());
}

TEST(SigningKeyTest, ImportsPkcs8AndPkcs1) {
  const SigningKey& key = KeyA();
  auto from8 = SigningKey::FromPrivatePem(key.PrivatePem());
  ASSERT_TRUE(from8.ok()) << from8.status().ToString();
  EXPECT_TRUE((*from8)->SameKeyAs(key));
  EXPECT_EQ((*from8)->PrivatePem(), key.PrivatePem());
  EXPECT_EQ((*from8)->PublicPem(), key.PublicPem());
  EXPECT_EQ((*from8)->JwkModulus(), key.JwkModulus());

  std::string pkcs1 = Pkcs1Pem(key);
  ASSERT_EQ(pkcs1.rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u) << pkcs1;
  auto from1 = SigningKey::FromPrivatePem(pkcs1);
  ASSERT_TRUE(from1.ok()) << from1.status().ToString();
  EXPECT_TRUE((*from1)->SameKeyAs(key));
  // Re-exported as PKCS#8.
  EXPECT_EQ((*from1)->PrivatePem(), key.PrivatePem());
  auto sig = (*from1)->SignPs256("abc");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(key.VerifyPs256("abc", *sig).ok());
}

TEST(SigningKeyTest, RefusesSmallAndNonRsaKeys) {
  auto small = SigningKey::FromPrivatePem(GeneratedPkcs8Pem("RSA", nullptr, 1024));
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(small.status().message().find("1024 bits"), std::string::npos)
      << small.status().message();

  auto ec = SigningKey::FromPrivatePem(GeneratedPkcs8Pem("EC", "P-256", 0));
  ASSERT_FALSE(ec.ok());
  EXPECT_EQ(ec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ec.status().message().find("not an RSA key"), std::string::npos);
}

TEST(SigningKeyTest, RefusesGarbageAndEncryptedPem) {
  const std::string pem = KeyA().PrivatePem();
  std::string corrupted = pem;
  corrupted[pem.size() / 2] = corrupted[pem.size() / 2] == 'A' ? 'B' : 'A';
  for (const std::string& text :
       {std::string(), std::string("garbage"), KeyA().PublicPem(), pem.substr(0, pem.size() / 2),
        corrupted, std::string("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
        std::string(kMaxPemBytes + 1, 'A')}) {
    auto r = SigningKey::FromPrivatePem(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  // An encrypted PKCS#8 key is refused without prompting on the terminal.
  auto pkey = PkeyFromPrivatePem(pem);
  BIO* bio = BIO_new(BIO_s_mem());
  char pass[] = "secret";
  ASSERT_EQ(
      PEM_write_bio_PKCS8PrivateKey(bio, pkey.get(), EVP_aes_256_cbc(), pass, 6, nullptr, nullptr),
      1);
  std::string encrypted = BioText(bio);
  ASSERT_NE(encrypted.find("ENCRYPTED PRIVATE KEY"), std::string::npos);
  EXPECT_FALSE(SigningKey::FromPrivatePem(encrypted).ok());
}

TEST(SigningKeyTest, PublicPemVerifierRefusesBadKeys) {
  auto sig = KeyA().SignPs256("d");
  ASSERT_TRUE(sig.ok());
  EXPECT_FALSE(VerifyPs256WithPublicPem("", "d", *sig).ok());
  EXPECT_FALSE(VerifyPs256WithPublicPem(KeyA().PrivatePem(), "d", *sig).ok());
  EXPECT_FALSE(VerifyPs256WithPublicPem(KeyB().PublicPem(), "d", *sig).ok());
}

// Rebuilds an RSA public key from JWK n/e, as a JWKS consumer would.
std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> PkeyFromJwk(const std::string& n_b64,
                                                                const std::string& e_b64) {
  std::string n = *Base64UrlDecode(n_b64);
  std::string e = *Base64UrlDecode(e_b64);
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* pkey = nullptr;
  EXPECT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
  EXPECT_EQ(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  return {pkey, &EVP_PKEY_free};
}

bool VerifyWithPkey(EVP_PKEY* pkey, std::string_view data, std::string_view sig) {
  EVP_MD_CTX* mctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = EVP_DigestVerifyInit_ex(mctx, &pctx, "SHA256", nullptr, nullptr, pkey, nullptr) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) > 0 &&
            EVP_DigestVerify(mctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(mctx);
  return ok;
}

TEST(JwksTest, NAndEMatchTheKey) {
  std::string doc = Jwks({{1, KeyAPtr()}, {7, nullptr}, {2, KeyBPtr()}});
  auto parsed = json::Parse(doc);
  ASSERT_TRUE(parsed.ok()) << doc;
  const json::Value* keys = parsed->Find("keys");
  ASSERT_NE(keys, nullptr);
  ASSERT_TRUE(keys->is_array());
  ASSERT_EQ(keys->items().size(), 2u);  // the null entry is skipped
  const SigningKey* expected[] = {&KeyA(), &KeyB()};
  const char* kids[] = {"1", "2"};
  for (size_t i = 0; i < 2; ++i) {
    const json::Value& jwk = keys->items()[i];
    ASSERT_EQ(jwk.members().size(), 6u);
    EXPECT_EQ(jwk.Find("kty")->text(), "RSA");
    EXPECT_EQ(jwk.Find("kid")->text(), kids[i]);
    EXPECT_TRUE(jwk.Find("kid")->is_string());
    EXPECT_EQ(jwk.Find("use")->text(), "sig");
    EXPECT_EQ(jwk.Find("alg")->text(), "PS256");
    EXPECT_EQ(jwk.Find("e")->text(), "AQAB");
    const std::string& n = jwk.Find("n")->text();
    EXPECT_EQ(n, expected[i]->JwkModulus());
    auto n_bytes = Base64UrlDecode(n);
    ASSERT_TRUE(n_bytes.ok());
    EXPECT_EQ(n_bytes->size(), 256u);
    EXPECT_NE((*n_bytes)[0], '\0');  // no leading zero byte

    auto pkey = PkeyFromJwk(n, jwk.Find("e")->text());
    ASSERT_NE(pkey.get(), nullptr);
    auto sig = expected[i]->SignPs256("jwks");
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(VerifyWithPkey(pkey.get(), "jwks", *sig));
    EXPECT_FALSE(VerifyWithPkey(pkey.get(), "jwkS", *sig));
  }
  EXPECT_EQ(Jwks({}), R"({"keys":[]})");
}

TEST(SigningKeyFileNameTest, SafeForAnyProductCode) {
  EXPECT_EQ(SigningKeyFileName("ab/c", 3), "61622f63-3.pem");
  for (const std::string& product :
       {std::string("a/b/../../etc"), std::string(".."), std::string("x=:_.@-"),
        std::string(100, 'z'), std::string(101, 'z'), std::string(255, '/')}) {
    std::string name = SigningKeyFileName(product, 9223372036854775807);
    EXPECT_LE(name.size(), 255u);
    EXPECT_EQ(name.find('/'), std::string::npos);
    EXPECT_NE(name[0], '.');
    EXPECT_EQ(name.find_first_not_of("0123456789abcdefsh-.pem"), std::string::npos) << name;
  }
  EXPECT_EQ(SigningKeyFileName(std::string(101, 'z'), 1).rfind("sha256-", 0), 0u);
  EXPECT_NE(SigningKeyFileName(std::string(101, 'z'), 1),
            SigningKeyFileName(std::string(102, 'z'), 1));
  EXPECT_NE(SigningKeyFileName("a", 1), SigningKeyFileName("a", 11));
}

TEST(MemoryStoreTest, GetOrCreateIsStableAndImportGuarded) {
  auto store = NewMemorySigningKeyStore();
  auto k1 = store->GetOrCreate("prod", 1);
  ASSERT_TRUE(k1.ok()) << k1.status().ToString();
  auto again = store->GetOrCreate("prod", 1);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(k1->get(), again->get());

  EXPECT_TRUE(store->Import("prod", 2, KeyA().PrivatePem()).ok());
  auto k2 = store->GetOrCreate("prod", 2);
  ASSERT_TRUE(k2.ok());
  EXPECT_TRUE((*k2)->SameKeyAs(KeyA()));
  EXPECT_TRUE(store->Import("prod", 2, Pkcs1Pem(KeyA())).ok());  // same key, other encoding
  Status refused = store->Import("prod", 2, KeyB().PrivatePem());
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("already stored"), std::string::npos);
  EXPECT_EQ(store->Import("prod", 1, KeyB().PrivatePem()).code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(store->GetOrCreate("", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->GetOrCreate("prod", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Import("prod", -1, KeyA().PrivatePem()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Import("prod", 3, "garbage").code(), StatusCode::kInvalidArgument);
}

TEST(FileStoreTest, PersistsWithPrivateModes) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/data/keys/";
  std::string public_pem;
  {
    auto store = NewFileSigningKeyStore(dir);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto key = (*store)->GetOrCreate("a/b", 1);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    public_pem = (*key)->PublicPem();
  }
  EXPECT_EQ(ModeOf(tmp.path() + "/data/keys"), 0700u);
  const std::string file = tmp.path() + "/data/keys/" + SigningKeyFileName("a/b", 1);
  EXPECT_EQ(ModeOf(file), 0600u);
  EXPECT_EQ(ListDir(tmp.path() + "/data/keys"),
            std::vector<std::string>{SigningKeyFileName("a/b", 1)});  // no temporaries left
  std::ifstream in(file);
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(contents.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);

  auto reopened = NewFileSigningKeyStore(tmp.path() + "/data/keys");
  ASSERT_TRUE(reopened.ok());
  auto key = (*reopened)->GetOrCreate("a/b", 1);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ((*key)->PublicPem(), public_pem);
  EXPECT_EQ((*key)->PrivatePem(), contents);
}

TEST(FileStoreTest, NarrowsAnExistingDirectory) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/keys";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  ASSERT_TRUE(NewFileSigningKeyStore(dir).ok());
  EXPECT_EQ(ModeOf(dir), 0700u);
}

TEST(FileStoreTest, RefusesAFileAsDirectory) {
  TempDir tmp;
  const std::string file = tmp.path() + "/f";
  std::ofstream(file) << "x";
  auto store = NewFileSigningKeyStore(file);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIoError);
}

TEST(FileStoreTest, ConcurrentFirstCallsYieldOneKey) {
  TempDir tmp;
  auto store = NewFileSigningKeyStore(tmp.path() + "/keys");
  ASSERT_TRUE(store.ok());
  constexpr int kThreads = 8;
  std::vector<std::shared_ptr<const SigningKey>> got(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto key = (*store)->GetOrCreate("prod-concurrent", 4);
      if (key.ok()) got[i] = *key;
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> moduli;
  for (const auto& key : got) {
    ASSERT_NE(key, nullptr);
    moduli.insert(key->JwkModulus());
  }
  EXPECT_EQ(moduli.size(), 1u);
  EXPECT_EQ(ListDir(tmp.path() + "/keys").size(), 1u);
}

TEST(FileStoreTest, ImportIsDurableAndNeverReplaces) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/keys";
  {
    auto store = NewFileSigningKeyStore(dir);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Import("imp", 1, Pkcs1Pem(KeyA())).ok());
    EXPECT_TRUE((*store)->Import("imp", 1, KeyA().PrivatePem()).ok());
    EXPECT_EQ((*store)->Import("imp", 1, KeyB().PrivatePem()).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(ModeOf(dir + "/" + SigningKeyFileName("imp", 1)), 0600u);
  auto store = NewFileSigningKeyStore(dir);
  ASSERT_TRUE(store.ok());
  // A fresh instance (empty cache) still refuses a different key, from the file.
  EXPECT_EQ((*store)->Import("imp", 1, KeyB().PrivatePem()).code(), StatusCode::kInvalidArgument);
  auto key = (*store)->GetOrCreate("imp", 1);
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE((*key)->SameKeyAs(KeyA()));
  // A generated key is protected the same way.
  auto generated = (*store)->GetOrCreate("imp", 2);
  ASSERT_TRUE(generated.ok());
  EXPECT_EQ((*store)->Import("imp", 2, KeyA().PrivatePem()).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*store)->Import("imp", 2, (*generated)->PrivatePem()).ok());
}

TEST(FileStoreTest, CorruptFileIsReported) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/keys";
  auto store = NewFileSigningKeyStore(dir);
  ASSERT_TRUE(store.ok());
  std::ofstream(dir + "/" + SigningKeyFileName("bad", 1)) << "not a key";
  auto key = (*store)->GetOrCreate("bad", 1);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kCorruption);
  EXPECT_EQ((*store)->Import("bad", 1, KeyA().PrivatePem()).code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace meterd::keys
