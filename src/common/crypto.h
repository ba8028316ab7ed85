// Hashing and randomness, on OpenSSL. Thread-safe: every function is reentrant.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace meterd {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
Sha256Digest HmacSha256(std::string_view key, std::string_view data);
std::string HexEncode(const uint8_t* data, size_t size);
inline std::string HexEncode(const Sha256Digest& d) { return HexEncode(d.data(), d.size()); }
inline std::string_view AsStringView(const Sha256Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}
// Compares in time that depends only on the lengths, not on where the inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// A random version-4 UUID ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") from a per-thread generator
// seeded by the OS. Used for request ids and client tokens.
std::string RandomUuid();

// A time-ordered version-7 UUID (RFC 9562): a 48-bit Unix millisecond timestamp, then a 12-bit
// counter (rand_a) that starts at a random value in each millisecond and counts up, then 62 bits
// from OpenSSL's RAND_bytes. Ids made by one process sort (as text and as bytes) in the order
// they were made, even within one millisecond or when the wall clock steps back; consecutive ids
// land next to each other in a b-tree index instead of on a random page. Used for metering record
// ids and audit event ids.
std::string TimeOrderedUuid();

// `length` characters drawn uniformly from `alphabet` by the OS's CSPRNG (secrets, access keys,
// admin tokens).
std::string SecureRandomString(std::string_view alphabet, size_t length);

}  // namespace meterd
