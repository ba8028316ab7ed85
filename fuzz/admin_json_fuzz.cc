// Fuzzes what the admin API does with a client's JSON body before anything is stored: the
// declarative merge of a catalog (MergeCatalog, StampTimes, then the whole-catalog validation),
// a merge-patch of an entry, redaction, and fault-rule parsing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "catalog/catalog.h"
#include "control/document.h"
#include "json/json.h"
#include "metering/faults.h"

namespace {
constexpr std::string_view kStored = R"({"accounts":[
  {"id":"111122223333","name":"seller","roles":["seller"]},
  {"id":"444455556666","name":"buyer","roles":["buyer"],"customerIdentifier":"cust-1"}],
 "products":[{"code":"p1","seller":"111122223333","kind":"saas","dimensions":[{"name":"d"}]}],
 "subscriptions":[{"account":"444455556666","product":"p1","status":"unsubscribe-pending"}],
 "settings":{"tokenTtlHours":2}})";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meterd;
  auto body = json::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!body.ok()) return 0;
  static const json::Value stored = control::StampTimes(*json::Parse(kStored), 1700000000000);
  auto merged = control::MergeCatalog(stored, *body);
  if (merged.ok()) {
    json::Value next = control::StampTimes(merged->document, 1700000000000);
    (void)catalog::Catalog::FromJson(json::Serialize(next), 1700000000000);
    auto again = control::MergeCatalog(next, *body);
    // Applying the same document twice must change nothing the second time.
    if (again.ok() && (!again->created.empty() || !again->updated.empty())) __builtin_trap();
  }
  for (std::string_view collection : control::kCollections) {
    for (const json::Value& entry : control::Entries(stored, collection)) {
      (void)control::MergePatch(entry, *body);
    }
  }
  (void)control::Redacted(*body);
  (void)metering::ParseFaultRule(*body);
  return 0;
}
