// The catalog document: the control-plane state as one JSON value (the catalog file format,
// docs/CONTROL-PLANE.md), and the pure edits the admin API makes to it.
//
// Documents are canonical: object members sorted by name at every level, so that two equal
// catalogs serialize to the same bytes whatever order a file or a client wrote them in. Every
// function here is pure (no clock, no I/O) and thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "json/json.h"

namespace meterd::control {

// The keyed lists of a catalog, in the order they are applied (references point backwards).
// "regions.disabled" is the list inside the "regions" object.
inline constexpr std::string_view kCollections[] = {
    "accounts",      "workloads",          "credentials",     "products",
    "subscriptions", "registrationTokens", "regions.disabled"};

// Object members sorted by name, recursively; arrays keep their order.
json::Value Canonical(const json::Value& value);

// The key that identifies `entry` in `collection` ("" when the entry lacks it): accounts and
// workloads by "id", credentials by "accessKeyId", products by "code", registration tokens by
// "token", disabled regions by "region", subscriptions by "licenseArn" or else
// "ACCOUNT:PRODUCT".
std::string EntryKey(std::string_view collection, const json::Value& entry);
// What a person calls the entry: "accounts/111122223333".
std::string EntryName(std::string_view collection, const json::Value& entry);

// The entries of a collection (empty when absent).
std::vector<json::Value> Entries(const json::Value& doc, std::string_view collection);
const json::Value* FindEntry(const json::Value& doc, std::string_view collection,
                             std::string_view key);
// Replaces the entry with the same key, or appends it. Result is canonical.
json::Value PutEntry(const json::Value& doc, std::string_view collection, json::Value entry);
// Removes the entry with `key`; `*removed` tells whether there was one.
json::Value RemoveEntry(const json::Value& doc, std::string_view collection, std::string_view key,
                        bool* removed);

// Object helpers: a copy of `object` with member `name` set to `value` / removed.
json::Value WithMember(const json::Value& object, std::string_view name, json::Value value);
json::Value WithoutMember(const json::Value& object, std::string_view name);
// `base` with every member of `patch` replacing (objects: merged recursively; null: removed).
json::Value MergePatch(const json::Value& base, const json::Value& patch);

// The entry without secrets (secretAccessKey, sessionToken, privateKeyPem), at any depth.
json::Value Redacted(const json::Value& value);

// Fills the times the server stamps and a file may leave out: `unsubscribedAt` of an
// unsubscribe-pending subscription, `expiredAt` of an expired signing key.
json::Value StampTimes(const json::Value& doc, int64_t now_ms);

// Declarative apply (upsert): every entry of `incoming` replaces the stored entry with its key or
// is added; stored entries that the file does not name stay. Stamped times the file leaves out
// are carried over from the stored entry, so applying the same file twice changes nothing.
struct MergeOutcome {
  json::Value document;  // canonical
  std::vector<std::string> created, updated;
  int64_t unchanged = 0;
};
Result<MergeOutcome> MergeCatalog(const json::Value& current, const json::Value& incoming);

}  // namespace meterd::control
