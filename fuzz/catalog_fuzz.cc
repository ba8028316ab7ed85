// Fuzzes the catalog loader (a file an operator hands to meterd; later also the admin API).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "catalog/catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto catalog = meterd::catalog::Catalog::FromJson(text, 1700000000000);
  if (catalog.ok()) {
    for (const auto& p : (*catalog)->products()) {
      (void)(*catalog)->SubscriptionsOf("444455556666", p.code);
    }
  }
  return 0;
}
