#include "keys/signing_keys.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "common/crypto.h"
#include "json/json.h"
#include "keys/jwt.h"

namespace meterd::keys {
namespace {

// RAII owners for the OpenSSL objects used here.
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

// The reason of the oldest queued OpenSSL error, for messages; empties this thread's error queue
// so that a failure here cannot be misattributed to a later, unrelated OpenSSL call.
std::string TakeOpenSslError() {
  unsigned long code = ERR_get_error();  // NOLINT(google-runtime-int): OpenSSL's type
  std::string out;
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    out = buf;
  }
  ERR_clear_error();
  return out;
}

Status OpenSslFailure(StatusCode code, std::string what) {
  std::string detail = TakeOpenSslError();
  if (!detail.empty()) what += " (" + detail + ")";
  return Status(code, std::move(what));
}

// PEM_read_* would otherwise fall back to prompting on the terminal for an encrypted key.
int RefusePassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

BioPtr ReadOnlyBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int): OpenSSL's type
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

Result<std::string> BnParamBase64Url(const EVP_PKEY* pkey, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) {
    return OpenSslFailure(StatusCode::kInternal, std::string("RSA key has no parameter ") + name);
  }
  BnPtr bn(raw);
  // BN_bn2bin writes the minimal big-endian form: no leading zero byte, as JWK (RFC 7518 6.3.1.1)
  // requires.
  std::string bytes(static_cast<size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(bytes.data()));
  return Base64UrlEncode(bytes);
}

// Sets RSASSA-PSS with SHA-256 for MGF1 and a salt of exactly 32 bytes on a sign or verify context.
// For verification a fixed positive salt length makes OpenSSL require exactly that length.
bool SetPs256Params(EVP_PKEY_CTX* pctx) {
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, kPs256SaltLength) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", nullptr) > 0;
}

Status CheckRsaKey(EVP_PKEY* pkey, const char* what) {
  // "RSA-PSS" keys (restricted to PSS) are a different type and are refused too: JWKS "kty":"RSA"
  // and sellers' verifiers expect a plain rsaEncryption key.
  if (EVP_PKEY_is_a(pkey, "RSA") != 1) {
    return Status(StatusCode::kInvalidArgument, std::string(what) + " is not an RSA key");
  }
  int bits = EVP_PKEY_get_bits(pkey);
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    return Status(StatusCode::kInvalidArgument, std::string(what) + " has " + std::to_string(bits) +
                                                    " bits; RSA keys must have " +
                                                    std::to_string(kMinRsaBits) + " to " +
                                                    std::to_string(kMaxRsaBits));
  }
  return Status::Ok();
}

Status VerifyWithKey(EVP_PKEY* pkey, std::string_view data, std::string_view signature) {
  // RFC 8017 8.1.2 step 1: the signature is exactly as long as the modulus. OpenSSL would accept
  // a shorter one (as if left-padded with zeros), which would make signatures malleable.
  size_t expected = static_cast<size_t>(EVP_PKEY_get_size(pkey));
  if (signature.size() != expected) {
    return Status(StatusCode::kInvalidArgument, "signature is " + std::to_string(signature.size()) +
                                                    " bytes; the key's signatures are " +
                                                    std::to_string(expected));
  }
  MdCtxPtr mctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by mctx
  if (!mctx ||
      EVP_DigestVerifyInit_ex(mctx.get(), &pctx, "SHA256", nullptr, nullptr, pkey, nullptr) != 1 ||
      !SetPs256Params(pctx)) {
    return OpenSslFailure(StatusCode::kInternal, "cannot set up PS256 verification");
  }
  int rc = EVP_DigestVerify(mctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                            data.size());
  if (rc != 1) {
    TakeOpenSslError();
    return Status(StatusCode::kInvalidArgument, "PS256 signature does not verify");
  }
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SigningKey

SigningKey::SigningKey(EVP_PKEY* pkey) : pkey_(pkey) {}

SigningKey::~SigningKey() { EVP_PKEY_free(pkey_); }

Result<std::shared_ptr<const SigningKey>> SigningKey::Wrap(EVP_PKEY* pkey) {
  std::shared_ptr<SigningKey> key(new SigningKey(pkey));  // owns pkey from here on
  key->bits_ = EVP_PKEY_get_bits(pkey);

  BioPtr priv(BIO_new(BIO_s_mem()));
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY") in OpenSSL 3.
  if (!priv ||
      PEM_write_bio_PrivateKey(priv.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslFailure(StatusCode::kInternal, "cannot encode the private key as PEM");
  }
  key->private_pem_ = BioContents(priv.get());

  BioPtr pub(BIO_new(BIO_s_mem()));
  if (!pub || PEM_write_bio_PUBKEY(pub.get(), pkey) != 1) {
    return OpenSslFailure(StatusCode::kInternal, "cannot encode the public key as PEM");
  }
  key->public_pem_ = BioContents(pub.get());

  auto n = BnParamBase64Url(pkey, OSSL_PKEY_PARAM_RSA_N);
  if (!n.ok()) return n.status();
  auto e = BnParamBase64Url(pkey, OSSL_PKEY_PARAM_RSA_E);
  if (!e.ok()) return e.status();
  key->jwk_n_ = std::move(*n);
  key->jwk_e_ = std::move(*e);
  return std::shared_ptr<const SigningKey>(std::move(key));
}

Result<std::shared_ptr<const SigningKey>> SigningKey::Generate() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  BnPtr e(BN_new());
  if (!ctx || !e || BN_set_word(e.get(), RSA_F4) != 1 || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), kMinRsaBits) <= 0 ||
      EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx.get(), e.get()) <= 0) {
    return OpenSslFailure(StatusCode::kInternal, "cannot set up RSA key generation");
  }
  EVP_PKEY* pkey = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &pkey) != 1 || pkey == nullptr) {
    return OpenSslFailure(StatusCode::kInternal, "RSA key generation failed");
  }
  return Wrap(pkey);
}

Result<std::shared_ptr<const SigningKey>> SigningKey::FromPrivatePem(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) {
    return Status(StatusCode::kInvalidArgument,
                  "private key PEM is longer than " + std::to_string(kMaxPemBytes) + " bytes");
  }
  BioPtr bio = ReadOnlyBio(pem);
  if (!bio) return OpenSslFailure(StatusCode::kInternal, "cannot allocate a BIO");
  // Decodes PKCS#8 and the traditional PKCS#1 "BEGIN RSA PRIVATE KEY" alike.
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, RefusePassphrase, nullptr));
  if (!pkey) {
    return OpenSslFailure(StatusCode::kInvalidArgument,
                          "not an unencrypted PKCS#8 or PKCS#1 private key PEM");
  }
  METERD_RETURN_IF_ERROR(CheckRsaKey(pkey.get(), "private key"));
  // An operator-supplied key must be consistent (n = p*q, d inverts e, ...): a broken key would
  // produce signatures no seller can verify.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_pairwise_check(check.get()) != 1) {
    return OpenSslFailure(StatusCode::kInvalidArgument, "private key is not a consistent RSA key");
  }
  return Wrap(pkey.release());
}

bool SigningKey::SameKeyAs(const SigningKey& other) const {
  // EVP_PKEY_eq compares the public components; an RSA private key is determined by them.
  return EVP_PKEY_eq(pkey_, other.pkey_) == 1;
}

Result<std::string> SigningKey::SignPs256(std::string_view data) const {
  MdCtxPtr mctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by mctx
  if (!mctx ||
      EVP_DigestSignInit_ex(mctx.get(), &pctx, "SHA256", nullptr, nullptr, pkey_, nullptr) != 1 ||
      !SetPs256Params(pctx)) {
    return OpenSslFailure(StatusCode::kInternal, "cannot set up PS256 signing");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  size_t len = 0;
  if (EVP_DigestSign(mctx.get(), nullptr, &len, in, data.size()) != 1) {
    return OpenSslFailure(StatusCode::kInternal, "PS256 signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(mctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                     data.size()) != 1) {
    return OpenSslFailure(StatusCode::kInternal, "PS256 signing failed");
  }
  sig.resize(len);
  return sig;
}

Status SigningKey::VerifyPs256(std::string_view data, std::string_view signature) const {
  return VerifyWithKey(pkey_, data, signature);
}

Status VerifyPs256WithPublicPem(std::string_view public_pem, std::string_view data,
                                std::string_view signature) {
  if (public_pem.size() > kMaxPemBytes) {
    return Status(StatusCode::kInvalidArgument,
                  "public key PEM is longer than " + std::to_string(kMaxPemBytes) + " bytes");
  }
  BioPtr bio = ReadOnlyBio(public_pem);
  if (!bio) return OpenSslFailure(StatusCode::kInternal, "cannot allocate a BIO");
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, RefusePassphrase, nullptr));
  if (!pkey) {
    return OpenSslFailure(StatusCode::kInvalidArgument,
                          "not a \"BEGIN PUBLIC KEY\" (SubjectPublicKeyInfo) PEM");
  }
  METERD_RETURN_IF_ERROR(CheckRsaKey(pkey.get(), "public key"));
  return VerifyWithKey(pkey.get(), data, signature);
}

// ---------------------------------------------------------------------------------------------
// Stores

std::string SigningKeyFileName(std::string_view product, int64_t version) {
  // Hex keeps every product code (which may contain '/', "..", ':' or '@') to [0-9a-f]. NAME_MAX
  // is 255 on Linux file systems; a product code of up to 255 bytes would need 510 hex digits,
  // so long codes are named by their SHA-256 instead. The "sha256-" prefix contains letters that
  // hex never does, so the two forms cannot collide.
  constexpr size_t kMaxHexChars = 200;
  std::string name;
  if (product.size() * 2 <= kMaxHexChars) {
    name = HexEncode(reinterpret_cast<const uint8_t*>(product.data()), product.size());
  } else {
    name = "sha256-" + HexEncode(Sha256(product));
  }
  name += '-';
  name += std::to_string(version);
  name += ".pem";
  return name;
}

namespace {

Status ErrnoStatus(const std::string& what, int err) {
  return Status(StatusCode::kIoError, what + ": " + std::strerror(err));
}

Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open directory " + dir, errno);
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus("fsync directory " + dir, err);
  return Status::Ok();
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write " + path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Where keys are kept. One process-wide cache in front of an optional directory.
class SigningKeyStoreImpl final : public SigningKeyStore {
 public:
  // `dir` empty: memory only.
  explicit SigningKeyStoreImpl(std::string dir) : dir_(std::move(dir)) {}

  Result<std::shared_ptr<const SigningKey>> GetOrCreate(std::string_view product,
                                                        int64_t version) override {
    METERD_RETURN_IF_ERROR(CheckPair(product, version));
    std::shared_ptr<Slot> slot = SlotFor(product, version);
    // The slot's mutex makes concurrent first calls for one pair wait for a single load or
    // generation, without blocking other pairs during the slow RSA generation.
    std::lock_guard<std::mutex> lock(slot->mu);
    if (slot->key) return slot->key;
    std::string name = SigningKeyFileName(product, version);
    if (!dir_.empty()) {
      auto loaded = LoadFile(name);
      if (!loaded.ok()) return loaded.status();
      if (*loaded) {
        slot->key = std::move(*loaded);
        return slot->key;
      }
    }
    auto generated = SigningKey::Generate();
    if (!generated.ok()) return generated.status();
    auto published = Publish(name, *generated);
    if (!published.ok()) return published.status();
    slot->key = std::move(*published);
    return slot->key;
  }

  Status Import(std::string_view product, int64_t version, std::string_view private_pem) override {
    METERD_RETURN_IF_ERROR(CheckPair(product, version));
    auto imported = SigningKey::FromPrivatePem(private_pem);
    if (!imported.ok()) return imported.status();
    std::shared_ptr<Slot> slot = SlotFor(product, version);
    std::lock_guard<std::mutex> lock(slot->mu);
    std::string name = SigningKeyFileName(product, version);
    if (!slot->key && !dir_.empty()) {
      auto loaded = LoadFile(name);
      if (!loaded.ok()) return loaded.status();
      slot->key = std::move(*loaded);
    }
    if (!slot->key) {
      auto published = Publish(name, *imported);
      if (!published.ok()) return published.status();
      slot->key = std::move(*published);
    }
    if (!slot->key->SameKeyAs(**imported)) {
      return Status(StatusCode::kInvalidArgument,
                    "a different signing key is already stored for product " +
                        std::string(product) + " version " + std::to_string(version) +
                        "; refusing to replace it (sellers may have embedded its public key)");
    }
    return Status::Ok();
  }

 private:
  struct Slot {
    std::mutex mu;
    std::shared_ptr<const SigningKey> key;  // null until loaded, generated or imported
  };

  static Status CheckPair(std::string_view product, int64_t version) {
    if (product.empty()) return Status(StatusCode::kInvalidArgument, "empty product code");
    if (version < 1) {
      return Status(StatusCode::kInvalidArgument,
                    "public key version must be >= 1, got " + std::to_string(version));
    }
    return Status::Ok();
  }

  std::shared_ptr<Slot> SlotFor(std::string_view product, int64_t version) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = slots_[{std::string(product), version}];
    if (!slot) slot = std::make_shared<Slot>();
    return slot;
  }

  // The stored key, or null when there is no file for `name`.
  Result<std::shared_ptr<const SigningKey>> LoadFile(const std::string& name) {
    std::string path = dir_ + "/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      if (errno == ENOENT) return std::shared_ptr<const SigningKey>();
      return ErrnoStatus("open " + path, errno);
    }
    std::string text;
    struct stat st {};
    Status status;
    if (fstat(fd, &st) != 0) {
      status = ErrnoStatus("stat " + path, errno);
    } else if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) > kMaxPemBytes) {
      status = Status(StatusCode::kCorruption,
                      "signing key file " + path + " is not a regular file of a sane size");
    } else {
      char buf[4096];
      while (text.size() <= kMaxPemBytes) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          status = ErrnoStatus("read " + path, errno);
          break;
        }
        if (n == 0) break;
        text.append(buf, static_cast<size_t>(n));
      }
    }
    close(fd);
    if (!status.ok()) return status;
    auto key = SigningKey::FromPrivatePem(text);
    if (!key.ok()) {
      return Status(StatusCode::kCorruption,
                    "signing key file " + path + ": " + key.status().message());
    }
    return std::move(*key);
  }

  // Makes `key` the stored key of `name` and returns the key that is stored now: `key` itself, or
  // the one another process published first (link(2) never replaces an existing file).
  Result<std::shared_ptr<const SigningKey>> Publish(const std::string& name,
                                                    std::shared_ptr<const SigningKey> key) {
    if (dir_.empty()) return key;
    std::string path = dir_ + "/" + name;
    // A leading '.' keeps temporaries apart from key names, which start with [0-9a-fs].
    std::string tmp = dir_ + "/." + name + ".tmp-" + RandomUuid();
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return ErrnoStatus("create " + tmp, errno);
    Status status = WriteAll(fd, key->PrivatePem(), tmp);
    // The umask can only narrow the mode; fchmod states it in case the file system ignored it.
    if (status.ok() && fchmod(fd, 0600) != 0) status = ErrnoStatus("chmod " + tmp, errno);
    if (status.ok() && fsync(fd) != 0) status = ErrnoStatus("fsync " + tmp, errno);
    if (close(fd) != 0 && status.ok()) status = ErrnoStatus("close " + tmp, errno);
    bool exists = false;
    if (status.ok() && link(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      if (err == EEXIST) {
        exists = true;
      } else if (err == EPERM || err == EOPNOTSUPP || err == ENOSYS) {
        // File systems without hard links: rename. Within this process the slot's mutex still
        // guarantees one key per pair.
        if (rename(tmp.c_str(), path.c_str()) != 0) status = ErrnoStatus("rename " + tmp, errno);
      } else {
        status = ErrnoStatus("link " + tmp + " to " + path, err);
      }
    }
    unlink(tmp.c_str());  // no-op after a successful rename
    if (!status.ok()) return status;
    if (exists) {
      auto loaded = LoadFile(name);
      if (!loaded.ok()) return loaded.status();
      if (!*loaded) return Status(StatusCode::kIoError, path + " vanished while being published");
      return std::move(*loaded);
    }
    METERD_RETURN_IF_ERROR(FsyncDir(dir_));
    return key;
  }

  const std::string dir_;
  std::mutex mu_;  // guards slots_ (not the slots' contents)
  std::map<std::pair<std::string, int64_t>, std::shared_ptr<Slot>> slots_;
};

}  // namespace

Result<std::unique_ptr<SigningKeyStore>> NewFileSigningKeyStore(const std::string& dir) {
  std::string clean = dir;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  if (clean.empty()) return Status(StatusCode::kInvalidArgument, "empty signing key directory");
  std::error_code ec;
  bool created = std::filesystem::create_directories(clean, ec);
  if (ec) return Status(StatusCode::kIoError, "create directory " + clean + ": " + ec.message());
  struct stat st {};
  if (stat(clean.c_str(), &st) != 0) return ErrnoStatus("stat " + clean, errno);
  if (!S_ISDIR(st.st_mode)) {
    return Status(StatusCode::kIoError, clean + " is not a directory");
  }
  // Private keys live here: nobody but meterd's user may list or read them.
  if ((st.st_mode & 077) != 0 && chmod(clean.c_str(), 0700) != 0) {
    return ErrnoStatus("chmod 0700 " + clean, errno);
  }
  if (created) {
    // Make the new directory's own entry durable, or the keys in it could vanish with it.
    std::string parent = std::filesystem::path(clean).parent_path().string();
    METERD_RETURN_IF_ERROR(FsyncDir(parent.empty() ? "." : parent));
  }
  return std::unique_ptr<SigningKeyStore>(std::make_unique<SigningKeyStoreImpl>(clean));
}

std::unique_ptr<SigningKeyStore> NewMemorySigningKeyStore() {
  return std::make_unique<SigningKeyStoreImpl>(std::string());
}

std::string Jwks(const std::vector<PublicKeyEntry>& keys) {
  std::string out = "{\"keys\":[";
  bool first = true;
  for (const auto& entry : keys) {
    if (!entry.key) continue;
    if (!first) out += ',';
    first = false;
    out += R"({"kty":"RSA","kid":)";
    json::AppendQuoted(&out, std::to_string(entry.version));
    out += R"(,"use":"sig","alg":"PS256","n":)";
    json::AppendQuoted(&out, entry.key->JwkModulus());
    out += R"(,"e":)";
    json::AppendQuoted(&out, entry.key->JwkExponent());
    out += '}';
  }
  out += "]}";
  return out;
}

}  // namespace meterd::keys
