#include "control/document.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "common/time_util.h"

namespace meterd::control {

namespace {

constexpr std::string_view kRegions = "regions.disabled";

const char* KeyMember(std::string_view collection) {
  if (collection == "accounts" || collection == "workloads") return "id";
  if (collection == "credentials") return "accessKeyId";
  if (collection == "products") return "code";
  if (collection == "registrationTokens") return "token";
  if (collection == kRegions) return "region";
  return nullptr;  // subscriptions: composite
}

std::string StringMember(const json::Value& object, std::string_view name) {
  const json::Value* v = object.is_object() ? object.Find(name) : nullptr;
  return v != nullptr && v->is_string() ? v->text() : std::string();
}

json::Value ReplaceList(const json::Value& doc, std::string_view collection,
                        std::vector<json::Value> items) {
  if (collection == kRegions) {
    const json::Value* regions = doc.Find("regions");
    json::Value inner =
        regions != nullptr && regions->is_object() ? *regions : json::Value::Object({});
    return Canonical(
        WithMember(doc, "regions", WithMember(inner, "disabled", json::Value::Array(items))));
  }
  return Canonical(WithMember(doc, collection, json::Value::Array(std::move(items))));
}

// The same entry as stored, with the stamped times of `stored` where `incoming` lacks them.
json::Value CarryStamps(std::string_view collection, const json::Value& stored,
                        json::Value incoming) {
  if (collection == "subscriptions") {
    if (incoming.Find("unsubscribedAt") == nullptr && stored.Find("unsubscribedAt") != nullptr &&
        StringMember(incoming, "status") == StringMember(stored, "status")) {
      incoming = WithMember(incoming, "unsubscribedAt", *stored.Find("unsubscribedAt"));
    }
  } else if (collection == "workloads") {
    // A stopped task stays stopped: its metered run is closed for good.
    if (incoming.Find("stoppedAt") == nullptr && stored.Find("stoppedAt") != nullptr) {
      incoming = WithMember(incoming, "stoppedAt", *stored.Find("stoppedAt"));
    }
  } else if (collection == "products") {
    const json::Value* in_keys = incoming.Find("signingKeys");
    const json::Value* old_keys = stored.Find("signingKeys");
    if (in_keys != nullptr && in_keys->is_array() && old_keys != nullptr && old_keys->is_array()) {
      std::vector<json::Value> keys;
      for (const json::Value& key : in_keys->items()) {
        json::Value merged = key;
        const json::Value* version = key.is_object() ? key.Find("version") : nullptr;
        for (const json::Value& old : old_keys->items()) {
          const json::Value* old_version = old.is_object() ? old.Find("version") : nullptr;
          if (version == nullptr || old_version == nullptr || !version->is_number() ||
              !old_version->is_number() || version->text() != old_version->text()) {
            continue;
          }
          if (key.Find("expiredAt") == nullptr && old.Find("expiredAt") != nullptr) {
            const json::Value* expired = key.Find("expired");
            if (expired != nullptr && expired->is_bool() && expired->as_bool()) {
              merged = WithMember(merged, "expiredAt", *old.Find("expiredAt"));
            }
          }
        }
        keys.push_back(std::move(merged));
      }
      incoming = WithMember(incoming, "signingKeys", json::Value::Array(std::move(keys)));
    }
  }
  return incoming;
}

}  // namespace

json::Value Canonical(const json::Value& value) {
  if (value.is_array()) {
    std::vector<json::Value> items;
    items.reserve(value.items().size());
    for (const auto& item : value.items()) items.push_back(Canonical(item));
    return json::Value::Array(std::move(items));
  }
  if (!value.is_object()) return value;
  std::vector<json::Value::Member> members;
  members.reserve(value.members().size());
  for (const auto& [name, member] : value.members()) members.emplace_back(name, Canonical(member));
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return json::Value::Object(std::move(members));
}

std::string EntryKey(std::string_view collection, const json::Value& entry) {
  if (const char* member = KeyMember(collection)) return StringMember(entry, member);
  std::string license = StringMember(entry, "licenseArn");
  if (!license.empty()) return license;
  std::string account = StringMember(entry, "account");
  std::string product = StringMember(entry, "product");
  if (account.empty() || product.empty()) return "";
  return account + ":" + product;
}

std::string EntryName(std::string_view collection, const json::Value& entry) {
  std::string name = collection == kRegions ? "regions" : std::string(collection);
  return name + "/" + EntryKey(collection, entry);
}

namespace {
// The collection's list in `doc`, or null when absent or not a list.
const json::Value* ListOf(const json::Value& doc, std::string_view collection) {
  const json::Value* list = nullptr;
  if (collection == kRegions) {
    const json::Value* regions = doc.is_object() ? doc.Find("regions") : nullptr;
    list = regions != nullptr && regions->is_object() ? regions->Find("disabled") : nullptr;
  } else if (doc.is_object()) {
    list = doc.Find(collection);
  }
  return list != nullptr && list->is_array() ? list : nullptr;
}
}  // namespace

std::vector<json::Value> Entries(const json::Value& doc, std::string_view collection) {
  const json::Value* list = ListOf(doc, collection);
  return list != nullptr ? list->items() : std::vector<json::Value>();
}

const json::Value* FindEntry(const json::Value& doc, std::string_view collection,
                             std::string_view key) {
  const json::Value* list = ListOf(doc, collection);
  if (list == nullptr) return nullptr;
  for (const auto& entry : list->items()) {
    if (EntryKey(collection, entry) == key) return &entry;
  }
  return nullptr;
}

json::Value PutEntry(const json::Value& doc, std::string_view collection, json::Value entry) {
  std::vector<json::Value> items = Entries(doc, collection);
  const std::string key = EntryKey(collection, entry);
  bool replaced = false;
  for (auto& item : items) {
    if (!replaced && EntryKey(collection, item) == key) {
      item = entry;
      replaced = true;
    }
  }
  if (!replaced) items.push_back(std::move(entry));
  return ReplaceList(doc, collection, std::move(items));
}

json::Value RemoveEntry(const json::Value& doc, std::string_view collection, std::string_view key,
                        bool* removed) {
  std::vector<json::Value> items = Entries(doc, collection);
  auto end = std::remove_if(items.begin(), items.end(), [&](const json::Value& item) {
    return EntryKey(collection, item) == key;
  });
  *removed = end != items.end();
  items.erase(end, items.end());
  return ReplaceList(doc, collection, std::move(items));
}

json::Value WithMember(const json::Value& object, std::string_view name, json::Value value) {
  std::vector<json::Value::Member> members;
  bool replaced = false;
  if (object.is_object()) {
    for (const auto& [member_name, member] : object.members()) {
      if (member_name == name) {
        members.emplace_back(member_name, value);
        replaced = true;
      } else {
        members.emplace_back(member_name, member);
      }
    }
  }
  if (!replaced) members.emplace_back(std::string(name), std::move(value));
  return json::Value::Object(std::move(members));
}

json::Value WithoutMember(const json::Value& object, std::string_view name) {
  std::vector<json::Value::Member> members;
  if (object.is_object()) {
    for (const auto& member : object.members()) {
      if (member.first != name) members.push_back(member);
    }
  }
  return json::Value::Object(std::move(members));
}

json::Value MergePatch(const json::Value& base, const json::Value& patch) {
  if (!patch.is_object()) return patch;
  json::Value out = base.is_object() ? base : json::Value::Object({});
  for (const auto& [name, value] : patch.members()) {
    if (value.is_null()) {
      out = WithoutMember(out, name);
    } else if (value.is_object()) {
      const json::Value* existing = out.Find(name);
      out =
          WithMember(out, name, MergePatch(existing ? *existing : json::Value::Object({}), value));
    } else {
      out = WithMember(out, name, value);
    }
  }
  return out;
}

json::Value Redacted(const json::Value& value) {
  static const std::set<std::string, std::less<>> kSecrets = {"secretAccessKey", "sessionToken",
                                                              "privateKeyPem"};
  if (value.is_array()) {
    std::vector<json::Value> items;
    for (const auto& item : value.items()) items.push_back(Redacted(item));
    return json::Value::Array(std::move(items));
  }
  if (!value.is_object()) return value;
  std::vector<json::Value::Member> members;
  for (const auto& [name, member] : value.members()) {
    if (kSecrets.count(name) == 0) members.emplace_back(name, Redacted(member));
  }
  return json::Value::Object(std::move(members));
}

json::Value StampTimes(const json::Value& doc, int64_t now_ms) {
  const json::Value now = json::Value::String(FormatIso8601(now_ms));
  json::Value out = doc;
  std::vector<json::Value> subscriptions = Entries(doc, "subscriptions");
  bool changed = false;
  for (auto& s : subscriptions) {
    if (s.is_object() && StringMember(s, "status") == "unsubscribe-pending" &&
        s.Find("unsubscribedAt") == nullptr) {
      s = WithMember(s, "unsubscribedAt", now);
      changed = true;
    }
  }
  if (changed) out = ReplaceList(out, "subscriptions", std::move(subscriptions));
  std::vector<json::Value> products = Entries(out, "products");
  changed = false;
  for (auto& p : products) {
    const json::Value* keys = p.is_object() ? p.Find("signingKeys") : nullptr;
    if (keys == nullptr || !keys->is_array()) continue;
    std::vector<json::Value> stamped;
    bool product_changed = false;
    for (const auto& key : keys->items()) {
      const json::Value* expired = key.is_object() ? key.Find("expired") : nullptr;
      if (expired != nullptr && expired->is_bool() && expired->as_bool() &&
          key.Find("expiredAt") == nullptr) {
        stamped.push_back(WithMember(key, "expiredAt", now));
        product_changed = true;
      } else {
        stamped.push_back(key);
      }
    }
    if (product_changed) {
      p = WithMember(p, "signingKeys", json::Value::Array(std::move(stamped)));
      changed = true;
    }
  }
  if (changed) out = ReplaceList(out, "products", std::move(products));
  return Canonical(out);
}

Result<MergeOutcome> MergeCatalog(const json::Value& current, const json::Value& incoming) {
  if (!incoming.is_object()) {
    return Status(StatusCode::kInvalidArgument, "the catalog must be a JSON object");
  }
  static const std::set<std::string, std::less<>> kTopLevel = {
      "accounts",      "workloads",          "credentials", "products",
      "subscriptions", "registrationTokens", "regions",     "settings"};
  for (const auto& [name, value] : incoming.members()) {
    if (kTopLevel.count(name) == 0) {
      return Status(StatusCode::kInvalidArgument, "unknown catalog member \"" + name + "\"");
    }
  }
  MergeOutcome out;
  out.document = Canonical(current.is_object() ? current : json::Value::Object({}));
  for (std::string_view collection : kCollections) {
    const json::Value* list = incoming.Find(collection);
    if (collection == kRegions) {
      const json::Value* regions = incoming.Find("regions");
      if (regions != nullptr && !regions->is_null() && !regions->is_object()) {
        return Status(StatusCode::kInvalidArgument, "\"regions\" must be an object");
      }
      list = regions != nullptr && regions->is_object() ? regions->Find("disabled") : nullptr;
    }
    if (list == nullptr || list->is_null()) continue;
    if (!list->is_array()) {
      return Status(StatusCode::kInvalidArgument,
                    "\"" + std::string(collection) + "\" must be a list");
    }
    // One pass over the list with an index by key: catalogs of many thousands of buyers must
    // apply in linear time (ReplaceList once per collection, not once per entry).
    std::vector<json::Value> items = Entries(out.document, collection);
    std::map<std::string, size_t, std::less<>> index;
    for (size_t i = 0; i < items.size(); ++i) index.emplace(EntryKey(collection, items[i]), i);
    bool changed = false;
    std::set<std::string> seen;
    for (size_t i = 0; i < list->items().size(); ++i) {
      const json::Value& item = list->items()[i];
      const std::string where = std::string(collection) + "[" + std::to_string(i) + "]";
      if (!item.is_object()) {
        return Status(StatusCode::kInvalidArgument, where + " must be an object");
      }
      const std::string key = EntryKey(collection, item);
      if (key.empty()) {
        return Status(StatusCode::kInvalidArgument, where + " has no identifying member");
      }
      if (!seen.insert(key).second) {
        return Status(StatusCode::kInvalidArgument, where + ": duplicate " + std::string(key));
      }
      auto found = index.find(key);
      const json::Value* stored = found == index.end() ? nullptr : &items[found->second];
      json::Value entry = Canonical(stored ? CarryStamps(collection, *stored, item) : item);
      if (stored == nullptr) {
        out.created.push_back(EntryName(collection, entry));
        index.emplace(key, items.size());
        items.push_back(std::move(entry));
      } else if (json::Serialize(*stored) == json::Serialize(entry)) {
        ++out.unchanged;
        continue;
      } else {
        out.updated.push_back(EntryName(collection, entry));
        items[found->second] = std::move(entry);
      }
      changed = true;
    }
    if (changed) out.document = ReplaceList(out.document, collection, std::move(items));
  }
  if (const json::Value* settings = incoming.Find("settings");
      settings != nullptr && !settings->is_null()) {
    if (!settings->is_object()) {
      return Status(StatusCode::kInvalidArgument, "\"settings\" must be an object");
    }
    const json::Value* stored = out.document.Find("settings");
    json::Value merged =
        Canonical(MergePatch(stored ? *stored : json::Value::Object({}), *settings));
    if (stored != nullptr && json::Serialize(*stored) == json::Serialize(merged)) {
      ++out.unchanged;
    } else {
      (stored ? out.updated : out.created).push_back("settings");
      out.document = Canonical(WithMember(out.document, "settings", std::move(merged)));
    }
  }
  return out;
}

}  // namespace meterd::control
