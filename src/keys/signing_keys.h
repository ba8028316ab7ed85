// Per-product RSA signing keys for RegisterUsage (spec BEHAVIOUR.md D10;
// docs/BEHAVIOUR-DECISIONS.md "Signing keys").
//
// A product has one RSA key per public-key version. meterd signs RegisterUsage answers with the
// private half; sellers embed the public half (PEM) in their containers, or fetch it as a JWKS.
// Because sellers embed public keys, a stored key is never replaced: the store refuses to import a
// different key for a (product, version) that already has one.
//
// Nothing here throws on the request path; failures are Status values. OpenSSL 3, EVP APIs only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

// Forward declaration so that this header does not pull in OpenSSL.
typedef struct evp_pkey_st EVP_PKEY;  // NOLINT(modernize-use-using)

namespace meterd::keys {

// Bounds on the keys meterd accepts: D10 says RSA 2048; larger keys are allowed for operators who
// import their own, up to a size that keeps a signature cheap.
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;
// PSS salt length of PS256 (RFC 7518 section 3.5: the salt is as long as the SHA-256 output).
inline constexpr int kPs256SaltLength = 32;
// An upper bound on a PEM text we agree to parse (an RSA-8192 PKCS#8 PEM is about 6.4 KB).
inline constexpr size_t kMaxPemBytes = size_t{64} * 1024;

// One RSA private key. Immutable after creation; every method is const and thread-safe to call
// concurrently (each signature uses its own OpenSSL context; the key itself is never modified).
// Shared by std::shared_ptr<const SigningKey>: the store's cache and any number of requests may
// hold the same key.
class SigningKey {
 public:
  // A fresh RSA-2048 key with e = 65537 from OpenSSL's CSPRNG (takes ~50-200 ms).
  static Result<std::shared_ptr<const SigningKey>> Generate();
  // Parses an unencrypted private key: PKCS#8 ("BEGIN PRIVATE KEY") or PKCS#1 ("BEGIN RSA PRIVATE
  // KEY"). The key must be RSA (not RSA-PSS-restricted), between kMinRsaBits and kMaxRsaBits, and
  // internally consistent. Encrypted keys are refused (never prompts for a passphrase).
  // Errors: kInvalidArgument.
  static Result<std::shared_ptr<const SigningKey>> FromPrivatePem(std::string_view pem);

  ~SigningKey();
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;

  // PKCS#8 "-----BEGIN PRIVATE KEY-----" PEM (unencrypted).
  const std::string& PrivatePem() const { return private_pem_; }
  // SubjectPublicKeyInfo "-----BEGIN PUBLIC KEY-----" PEM.
  const std::string& PublicPem() const { return public_pem_; }
  // JWK "n": the modulus, big-endian, no leading zero byte, base64url without padding.
  const std::string& JwkModulus() const { return jwk_n_; }
  // JWK "e": the public exponent, same encoding ("AQAB" for 65537).
  const std::string& JwkExponent() const { return jwk_e_; }
  // Modulus size in bits.
  int Bits() const { return bits_; }
  // True when both keys have the same public half (and therefore are the same RSA key).
  bool SameKeyAs(const SigningKey& other) const;

  // RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32 over `data`. Returns the raw signature
  // bytes (as long as the modulus). Errors: kInternal when OpenSSL fails.
  Result<std::string> SignPs256(std::string_view data) const;
  // Checks a PS256 signature (salt length exactly 32) made by this key. Errors: kInvalidArgument.
  Status VerifyPs256(std::string_view data, std::string_view signature) const;

 private:
  // Takes ownership of `pkey`.
  explicit SigningKey(EVP_PKEY* pkey);
  static Result<std::shared_ptr<const SigningKey>> Wrap(EVP_PKEY* pkey);

  EVP_PKEY* pkey_;  // owned; never modified after construction
  int bits_ = 0;
  // Derived once at construction so that the accessors cannot fail.
  std::string private_pem_;
  std::string public_pem_;
  std::string jwk_n_;
  std::string jwk_e_;
};

// Checks a PS256 signature (RSA-PSS, SHA-256, MGF1-SHA-256, salt length exactly 32) over `data`
// against an RSA public key given as "BEGIN PUBLIC KEY" PEM (kMinRsaBits..kMaxRsaBits). The
// signature must be exactly as long as the modulus. Errors: kInvalidArgument with a message saying
// whether the key or the signature is at fault.
Status VerifyPs256WithPublicPem(std::string_view public_pem, std::string_view data,
                                std::string_view signature);

// Where signing keys live. Thread-safe: every method may be called concurrently. Returned keys
// are shared with the store's cache and stay valid for as long as the caller holds them.
class SigningKeyStore {
 public:
  virtual ~SigningKeyStore() = default;
  // The key of (product, version): the stored one, or a new one generated and stored durably
  // (written to a temp file, fsync'd, renamed, directory fsync'd) before it is returned. Two
  // concurrent first calls for the same pair yield the same key. `product` must be non-empty and
  // `version` >= 1 (the model's minimum), else kInvalidArgument. Errors: kIoError (file system),
  // kCorruption (a stored file that is not a valid key).
  virtual Result<std::shared_ptr<const SigningKey>> GetOrCreate(std::string_view product,
                                                                int64_t version) = 0;
  // Stores a key supplied by the operator (catalog `privateKeyPem`). If a different key is
  // already stored for the pair: kInvalidArgument (never silently replace a key whose public
  // half sellers may have embedded). The same key again: ok, nothing is written.
  virtual Status Import(std::string_view product, int64_t version,
                        std::string_view private_pem) = 0;
};

// Keys as files under `dir`, which is created (with missing parents) mode 0700; an existing `dir`
// with group or other permission bits is narrowed to 0700. One file per key, mode 0600, named
// "<hex(product)>-<version>.pem" (lowercase hex of the product code's bytes, so any product code,
// including ones with '/' or "..", maps to a safe name), or "sha256-<hex(SHA-256(product))>-
// <version>.pem" when the hex form would make the name longer than file systems allow. A new file
// is published with link(2), so even two processes sharing `dir` cannot replace each other's key.
// Keys are cached in memory after first load. Errors: kIoError.
Result<std::unique_ptr<SigningKeyStore>> NewFileSigningKeyStore(const std::string& dir);
// Keys only in memory (tests): same semantics, nothing durable.
std::unique_ptr<SigningKeyStore> NewMemorySigningKeyStore();

// The file name (not path) NewFileSigningKeyStore uses for (product, version). Exposed for tests
// and for operators' tooling.
std::string SigningKeyFileName(std::string_view product, int64_t version);

// Public key set of one product as a JWKS document (RFC 7517):
// {"keys":[{"kty":"RSA","kid":"<version>","use":"sig","alg":"PS256","n":"...","e":"AQAB"}, ...]}
// in the order given. Entries with a null key are skipped.
struct PublicKeyEntry {
  int64_t version;
  std::shared_ptr<const SigningKey> key;
};
std::string Jwks(const std::vector<PublicKeyEntry>& keys);

}  // namespace meterd::keys
