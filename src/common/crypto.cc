#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <random>

namespace meterd {

namespace {

// SHA-256 fetched once: OpenSSL 3 resolves EVP_sha256() on every use through a locked provider
// lookup, which showed up in profiles of the request path (every SigV4 check hashes).
const EVP_MD* Sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

// One digest context per thread, reused (allocation-free hashing).
EVP_MD_CTX* ThreadDigestContext() {
  struct Holder {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Holder() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Holder holder;
  return holder.ctx;
}

Sha256Digest Digest2(std::string_view a, std::string_view b) {
  Sha256Digest out{};
  unsigned int len = 0;
  EVP_MD_CTX* ctx = ThreadDigestContext();
  if (Sha256Md() == nullptr || ctx == nullptr || EVP_DigestInit_ex(ctx, Sha256Md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx, b.data(), b.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, out.data(), &len) != 1) {
    abort();  // a broken crypto library: no hash can be trusted
  }
  return out;
}

}  // namespace

Sha256Digest Sha256(std::string_view data) { return Digest2(data, {}); }

// HMAC-SHA256 (RFC 2104) on the cached digest: H((K ^ opad) || H((K ^ ipad) || data)).
Sha256Digest HmacSha256(std::string_view key, std::string_view data) {
  constexpr size_t kBlock = 64;
  unsigned char block[kBlock] = {};
  if (key.size() > kBlock) {
    Sha256Digest hashed = Sha256(key);
    std::copy(hashed.begin(), hashed.end(), block);
  } else {
    std::copy(key.begin(), key.end(), block);
  }
  char ipad[kBlock], opad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = static_cast<char>(block[i] ^ 0x36);
    opad[i] = static_cast<char>(block[i] ^ 0x5c);
  }
  Sha256Digest inner = Digest2(std::string_view(ipad, kBlock), data);
  return Digest2(std::string_view(opad, kBlock), AsStringView(inner));
}

std::string HexEncode(const uint8_t* data, size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {
// A per-thread 64-bit generator seeded from the OS CSPRNG: ids must be unique, not secret.
std::mt19937_64& ThreadRng() {
  thread_local std::mt19937_64 rng = [] {
    uint64_t seed[4] = {};
    if (RAND_bytes(reinterpret_cast<unsigned char*>(seed), sizeof(seed)) != 1) {
      std::random_device rd;
      for (auto& s : seed) s = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    }
    std::seed_seq seq{seed[0], seed[1], seed[2], seed[3]};
    return std::mt19937_64(seq);
  }();
  return rng;
}

// The canonical 8-4-4-4-12 lower-case text of 16 bytes.
std::string FormatUuid(const uint8_t (&b)[16]) {
  std::string hex = HexEncode(b, 16);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
}
}  // namespace

std::string RandomUuid() {
  uint8_t b[16];
  auto& rng = ThreadRng();
  uint64_t hi = rng(), lo = rng();
  for (int i = 0; i < 8; ++i) {
    b[i] = static_cast<uint8_t>(hi >> (8 * i));
    b[8 + i] = static_cast<uint8_t>(lo >> (8 * i));
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return FormatUuid(b);
}

std::string TimeOrderedUuid() {
  uint8_t b[16];
  // b[6..7] seed a new millisecond's counter; b[8..15] are rand_b.
  if (RAND_bytes(b + 6, 10) != 1) abort();  // no entropy: nothing safe to do
  int64_t ms;
  uint16_t counter;
  {
    // The last (timestamp, counter) handed out, process-wide: each id is greater than the last.
    static std::mutex mu;
    static int64_t last_ms = 0;
    static uint16_t last_counter = 0;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    std::lock_guard<std::mutex> lock(mu);
    if (now > last_ms) {
      last_ms = now;
      // A random start below 0x800 leaves at least 2048 ids in the millisecond.
      last_counter = static_cast<uint16_t>(((b[6] << 8) | b[7]) & 0x7ff);
    } else if (last_counter < 0xfff) {
      ++last_counter;  // same millisecond, or the clock stepped back: count on
    } else {
      ++last_ms;  // the counter is spent: borrow the next millisecond (RFC 9562 6.2)
      last_counter = 0;
    }
    ms = last_ms;
    counter = last_counter;
  }
  for (int i = 0; i < 6; ++i)
    b[i] = static_cast<uint8_t>(static_cast<uint64_t>(ms) >> (40 - 8 * i));
  b[6] = static_cast<uint8_t>(0x70 | (counter >> 8));
  b[7] = static_cast<uint8_t>(counter & 0xff);
  b[8] = (b[8] & 0x3f) | 0x80;
  return FormatUuid(b);
}

std::string SecureRandomString(std::string_view alphabet, size_t length) {
  std::string out;
  out.reserve(length);
  // Rejection sampling keeps every character equally likely.
  const unsigned limit = 256 - (256 % static_cast<unsigned>(alphabet.size()));
  unsigned char buffer[64];
  while (out.size() < length) {
    if (RAND_bytes(buffer, sizeof(buffer)) != 1) abort();  // no entropy: nothing safe to do
    for (unsigned char b : buffer) {
      if (b >= limit || out.size() == length) continue;
      out.push_back(alphabet[b % alphabet.size()]);
    }
  }
  return out;
}

}  // namespace meterd
