#include "admin/admin_handler.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "audit/audit_event.h"
#include "common/crypto.h"
#include "common/time_util.h"
#include "reports/report.h"

namespace meterd::admin {

namespace {

using control::EntryKey;
using control::FindEntry;
using json::Value;

constexpr std::string_view kAlnumUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::string_view kSecretAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

HttpResponse JsonAnswer(int status, const Value& body) {
  HttpResponse r;
  r.status = status;
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = json::Serialize(body);
  r.body.push_back('\n');
  return r;
}

HttpResponse ErrorAnswer(int status, std::string_view code, std::string_view message) {
  return JsonAnswer(status, Value::Object({{"code", Value::String(std::string(code))},
                                           {"message", Value::String(std::string(message))}}));
}

// The one place where a Status becomes an admin API error.
HttpResponse AdminError(const Status& st) {
  switch (st.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kSerialization:
    case StatusCode::kValidation:
      return ErrorAnswer(400, "InvalidArgument", st.message());
    case StatusCode::kNotFound:
      return ErrorAnswer(404, "NotFound", st.message());
    case StatusCode::kConflict:
      return ErrorAnswer(409, "Conflict", st.message());
    default:
      return ErrorAnswer(500, "InternalError", st.message());
  }
}

HttpResponse NotFound(std::string_view what) { return ErrorAnswer(404, "NotFound", what); }
HttpResponse MethodNotAllowed(std::string_view method) {
  return ErrorAnswer(405, "MethodNotAllowed", std::string(method) + " is not allowed here");
}
HttpResponse BadRequest(std::string_view message) {
  return ErrorAnswer(400, "InvalidArgument", message);
}

// Percent-decoding; `plus_is_space` only in query strings (form encoding), never in paths.
bool DecodePercent(std::string_view in, std::string* out, bool plus_is_space = false) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(plus_is_space && in[i] == '+' ? ' ' : in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      return false;
    }
    out->push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
    i += 2;
  }
  return true;
}

std::string Text(const Value& object, std::string_view name) {
  const Value* v = object.is_object() ? object.Find(name) : nullptr;
  return v != nullptr && v->is_string() ? v->text() : std::string();
}

// Members a client may set on each kind of object; anything else is a typo to refuse.
const std::set<std::string, std::less<>>& AllowedMembers(std::string_view collection) {
  static const std::map<std::string, std::set<std::string, std::less<>>, std::less<>> kAllowed = {
      {"accounts", {"id", "name", "roles", "customerIdentifier"}},
      {"credentials",
       {"accessKeyId", "secretAccessKey", "sessionToken", "enabled", "account", "workload"}},
      {"workloads", {"id", "platform", "region", "account", "stoppedAt"}},
      {"products",
       {"code", "seller", "kind", "integration", "dimensions", "hourlyDimension", "signingKeys"}},
      {"dimensions", {"name", "unit", "description", "pricePerUnit"}},
      {"subscriptions",
       {"account", "product", "status", "licenseArn", "start", "end", "unsubscribedAt",
        "freeTrial"}},
  };
  static const std::set<std::string, std::less<>> kNone;
  auto it = kAllowed.find(collection);
  return it == kAllowed.end() ? kNone : it->second;
}

Status CheckMembers(std::string_view collection, const Value& body) {
  if (!body.is_object()) return Status(StatusCode::kInvalidArgument, "the body must be an object");
  const auto& allowed = AllowedMembers(collection);
  for (const auto& [name, value] : body.members()) {
    if (allowed.count(name) == 0) {
      return Status(StatusCode::kInvalidArgument,
                    "unknown member \"" + name + "\" for " + std::string(collection));
    }
  }
  return Status::Ok();
}

}  // namespace

struct AdminHandler::Call {
  std::string method;
  std::vector<std::string> path;  // decoded segments after "/v1"
  std::map<std::string, std::string> query;
  Result<Value> body = Value::Object({});
  bool has_body = false;

  const std::string* Query(const std::string& name) const {
    auto it = query.find(name);
    return it == query.end() || it->second.empty() ? nullptr : &it->second;
  }
};

HttpResponse AdminHandler::Reject(http::RejectReason reason) {
  HttpResponse r = reason == http::RejectReason::kMalformed
                       ? BadRequest("not a valid HTTP/1.1 request")
                       : ErrorAnswer(413, "InvalidArgument", "the request is too large");
  r.close_connection = true;
  return r;
}

void AdminHandler::Handle(HttpRequest request, http::Responder respond) {
  HttpResponse response = Serve(request);
  // The audit trail: every change, accepted or refused (the one place admin calls are recorded).
  if (audit_ != nullptr && audit::IsAuditedAdminRequest(request.method, request.target)) {
    audit_->RecordAdmin(request, response, Authorized(request));
  }
  respond([response = std::move(response)]() mutable { return std::move(response); });
}

bool AdminHandler::Authorized(const HttpRequest& request) const {
  const std::string* auth = request.FindHeader("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  return auth != nullptr && auth->size() > kBearer.size() &&
         std::string_view(*auth).substr(0, kBearer.size()) == kBearer &&
         ConstantTimeEquals(std::string_view(*auth).substr(kBearer.size()), token_);
}

HttpResponse AdminHandler::Serve(const HttpRequest& request) {
  // Health probes answer without the token; /metrics, as every other route, needs it.
  const std::string_view ops_path =
      std::string_view(request.target)
          .substr(0, std::min(request.target.find('?'), request.target.size()));
  if (ops_ != nullptr && observability::OpsEndpoints::IsProbe(ops_path)) {
    return ops_->Serve(request, ops_path);
  }
  if (!Authorized(request)) {
    const std::string* auth = request.FindHeader("authorization");
    HttpResponse r = ErrorAnswer(
        401, "Unauthorized",
        auth == nullptr ? "missing bearer token (Authorization header)" : "wrong bearer token");
    r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"meterd-admin\""});
    return r;
  }
  if (ops_ != nullptr && observability::OpsEndpoints::IsScrape(ops_path)) {
    return ops_->Serve(request, ops_path);
  }

  Call call;
  call.method = request.method;
  std::string_view target = request.target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  constexpr std::string_view kPrefix = "/v1/";
  if (target.substr(0, kPrefix.size()) != kPrefix) return NotFound("no such route");
  std::string_view rest = target.substr(kPrefix.size());
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string segment;
    if (!DecodePercent(rest.substr(0, slash), &segment)) return BadRequest("bad percent-encoding");
    call.path.push_back(std::move(segment));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string name, value;
    if (!DecodePercent(pair.substr(0, eq), &name, true) ||
        (eq != std::string_view::npos && !DecodePercent(pair.substr(eq + 1), &value, true))) {
      return BadRequest("bad percent-encoding in the query");
    }
    call.query[name] = value;
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  if (request.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    call.has_body = true;
    call.body = json::Parse(request.body);
    if (!call.body.ok()) return BadRequest("the body is not JSON: " + call.body.status().message());
  }
  if (call.path.empty()) return NotFound("no such route");
  return Route(call);
}

HttpResponse AdminHandler::Route(const Call& call) {
  const std::string& head = call.path[0];
  if (head == "status") return StatusRoute(call);
  if (head == "catalog" && call.path.size() == 1) {
    if (call.method != "GET") return MethodNotAllowed(call.method);
    return JsonAnswer(200, control::Redacted(control_->Document()));
  }
  if (head == "apply" && call.path.size() == 1) {
    if (call.method != "POST") return MethodNotAllowed(call.method);
    if (!call.has_body) return BadRequest("the body must be a catalog document");
    auto outcome = control_->Apply(*call.body, "POST /v1/apply");
    if (!outcome.ok()) return AdminError(outcome.status());
    auto names = [](const std::vector<std::string>& list) {
      std::vector<Value> items;
      items.reserve(list.size());
      for (const auto& name : list) items.push_back(Value::String(name));
      return Value::Array(std::move(items));
    };
    const bool changed = !outcome->created.empty() || !outcome->updated.empty();
    return JsonAnswer(200, Value::Object({
                               {"changed", Value::Bool(changed)},
                               {"created", names(outcome->created)},
                               {"unchanged", Value::Number(std::to_string(outcome->unchanged))},
                               {"updated", names(outcome->updated)},
                               {"version", Value::Number(std::to_string(control_->version()))},
                           }));
  }
  if (head == "accounts") return Collection(call, "accounts");
  if (head == "credentials") return Credentials(call);
  if (head == "workloads") return Workloads(call);
  if (head == "products") return Products(call);
  if (head == "subscriptions") return Subscriptions(call);
  if (head == "registration-tokens") return RegistrationTokens(call);
  if (head == "regions") return Regions(call);
  if (head == "settings") return SettingsRoute(call);
  if (head == "clock") return Clock(call);
  if (head == "faults") return Faults(call);
  if (head == "audit") return AuditRoute(call);
  if (head == "usage") return UsageRoute(call);
  if (head == "reports") return ReportsRoute(call);
  return NotFound("no such route");
}

namespace {

// The subscription as the admin API shows it: its id, and the status in force now (an
// unsubscribe-pending subscription past its hour of grace reads "unsubscribed").
Value SubscriptionView(const Value& entry, int64_t now_ms) {
  Value view = control::Redacted(entry);
  view = control::WithMember(view, "id", Value::String(EntryKey("subscriptions", entry)));
  if (Text(entry, "status") == "unsubscribe-pending") {
    auto at = ParseIso8601(Text(entry, "unsubscribedAt"));
    if (at && now_ms >= *at + catalog::kUnsubscribeGraceMillis) {
      view = control::WithMember(view, "status", Value::String("unsubscribed"));
    }
  }
  return control::Canonical(view);
}

}  // namespace

// GET/POST on /v1/<collection>, GET/PATCH/DELETE on /v1/<collection>/<id>.
HttpResponse AdminHandler::Collection(const Call& call, std::string_view collection) {
  auto view = [&](const Value& entry) {
    return collection == "subscriptions" ? SubscriptionView(entry, control_->Now())
                                         : control::Redacted(entry);
  };
  const std::string description = call.method + " /v1/" + std::string(collection);
  if (call.path.size() == 1) {
    if (call.method == "GET") {
      std::vector<Value> items;
      for (const Value& entry : control::Entries(control_->Document(), collection)) {
        if (collection == "subscriptions") {
          const std::string* account = call.Query("account");
          const std::string* product = call.Query("product");
          if (account && Text(entry, "account") != *account) continue;
          if (product && Text(entry, "product") != *product) continue;
        }
        items.push_back(view(entry));
      }
      return JsonAnswer(200, Value::Array(std::move(items)));
    }
    if (call.method != "POST") return MethodNotAllowed(call.method);
    if (!call.has_body) return BadRequest("the body must be a JSON object");
    if (Status st = CheckMembers(collection, *call.body); !st.ok()) return AdminError(st);
    const std::string key = EntryKey(collection, *call.body);
    if (key.empty()) return BadRequest("the identifying member is missing");
    auto changed =
        control_->Change(description + " " + key, [&](const Value& doc) -> Result<Value> {
          if (FindEntry(doc, collection, key) != nullptr) {
            return Status(StatusCode::kConflict,
                          std::string(collection) + "/" + key + " exists already");
          }
          return control::PutEntry(doc, collection, *call.body);
        });
    if (!changed.ok()) return AdminError(changed.status());
    return JsonAnswer(201, view(*FindEntry(*changed, collection, key)));
  }
  if (call.path.size() != 2) return NotFound("no such route");
  const std::string& id = call.path[1];
  const Value current = control_->Document();
  if (FindEntry(current, collection, id) == nullptr) {
    return NotFound(std::string(collection) + "/" + id + " does not exist");
  }
  if (call.method == "GET") return JsonAnswer(200, view(*FindEntry(current, collection, id)));
  if (call.method == "PATCH") {
    if (!call.has_body) return BadRequest("the body must be a JSON object");
    if (Status st = CheckMembers(collection, *call.body); !st.ok()) return AdminError(st);
    auto changed = control_->Change(description + " " + id, [&](const Value& doc) -> Result<Value> {
      const Value* entry = FindEntry(doc, collection, id);
      if (entry == nullptr) return Status(StatusCode::kNotFound, id + " does not exist");
      Value patched = control::MergePatch(*entry, *call.body);
      if (EntryKey(collection, patched) != id) {
        return Status(StatusCode::kInvalidArgument, "the identifying members cannot change");
      }
      return control::PutEntry(doc, collection, std::move(patched));
    });
    if (!changed.ok()) return AdminError(changed.status());
    return JsonAnswer(200, view(*FindEntry(*changed, collection, id)));
  }
  if (call.method == "DELETE") {
    auto changed = control_->Change(description + " " + id, [&](const Value& doc) -> Result<Value> {
      bool removed = false;
      return control::RemoveEntry(doc, collection, id, &removed);
    });
    if (!changed.ok()) {
      // What the catalog refuses after a removal is a reference to the removed object.
      if (changed.status().code() == StatusCode::kInvalidArgument) {
        return ErrorAnswer(409, "Conflict",
                           std::string(collection) + "/" + id +
                               " is still referenced: " + changed.status().message());
      }
      return AdminError(changed.status());
    }
    return JsonAnswer(
        200, Value::Object({{"deleted", Value::String(std::string(collection) + "/" + id)}}));
  }
  return MethodNotAllowed(call.method);
}

HttpResponse AdminHandler::Credentials(const Call& call) {
  if (call.path.size() == 1 && call.method == "POST") {
    if (!call.has_body) return BadRequest("the body must be a JSON object");
    if (Status st = CheckMembers("credentials", *call.body); !st.ok()) return AdminError(st);
    // Missing key id and secret are generated; the secret is shown in this answer only.
    Value entry = *call.body;
    if (Text(entry, "accessKeyId").empty()) {
      entry = control::WithMember(entry, "accessKeyId",
                                  Value::String("AKIA" + SecureRandomString(kAlnumUpper, 16)));
    }
    if (Text(entry, "secretAccessKey").empty()) {
      entry = control::WithMember(entry, "secretAccessKey",
                                  Value::String(SecureRandomString(kSecretAlphabet, 40)));
    }
    const std::string key = Text(entry, "accessKeyId");
    auto changed =
        control_->Change("POST /v1/credentials " + key, [&](const Value& doc) -> Result<Value> {
          if (FindEntry(doc, "credentials", key) != nullptr) {
            return Status(StatusCode::kConflict, "credentials/" + key + " exists already");
          }
          return control::PutEntry(doc, "credentials", entry);
        });
    if (!changed.ok()) return AdminError(changed.status());
    Value shown = control::Redacted(*FindEntry(*changed, "credentials", key));
    shown = control::WithMember(shown, "secretAccessKey",
                                Value::String(Text(entry, "secretAccessKey")));
    return JsonAnswer(201, control::Canonical(shown));
  }
  return Collection(call, "credentials");
}

HttpResponse AdminHandler::Workloads(const Call& call) {
  if (call.path.size() == 3 && call.path[2] == "stop") {
    if (call.method != "POST") return MethodNotAllowed(call.method);
    const std::string& id = call.path[1];
    auto changed = control_->Change("stop workload " + id, [&](const Value& doc) -> Result<Value> {
      const Value* entry = FindEntry(doc, "workloads", id);
      if (entry == nullptr) return Status(StatusCode::kNotFound, "workloads/" + id);
      if (entry->Find("stoppedAt") != nullptr) return doc;  // stopped already
      return control::PutEntry(
          doc, "workloads",
          control::WithMember(*entry, "stoppedAt", Value::String(FormatIso8601(control_->Now()))));
    });
    if (!changed.ok()) return AdminError(changed.status());
    return JsonAnswer(200, control::Redacted(*FindEntry(*changed, "workloads", id)));
  }
  return Collection(call, "workloads");
}

HttpResponse AdminHandler::Products(const Call& call) {
  if (call.path.size() >= 3 && (call.path[2] == "keys" || call.path[2] == "jwks")) {
    return SigningKeys(call, call.path[1]);
  }
  if (call.path.size() < 3 || call.path[2] != "dimensions") return Collection(call, "products");
  const std::string& code = call.path[1];
  if (call.path.size() > 4) return NotFound("no such route");
  if (call.path.size() == 3 && call.method != "POST") return MethodNotAllowed(call.method);
  if (call.path.size() == 4 && call.method != "PATCH" && call.method != "DELETE") {
    return MethodNotAllowed(call.method);
  }
  if (call.method != "DELETE") {
    if (!call.has_body) return BadRequest("the body must be a JSON object");
    if (Status st = CheckMembers("dimensions", *call.body); !st.ok()) return AdminError(st);
  }
  const std::string name = call.path.size() == 4 ? call.path[3] : Text(*call.body, "name");
  if (name.empty()) return BadRequest("the dimension needs a \"name\"");
  auto changed = control_->Change(
      call.method + " /v1/products/" + code + "/dimensions/" + name,
      [&](const Value& doc) -> Result<Value> {
        const Value* product = FindEntry(doc, "products", code);
        if (product == nullptr) return Status(StatusCode::kNotFound, "products/" + code);
        std::vector<Value> dimensions;
        if (const Value* list = product->Find("dimensions"); list && list->is_array()) {
          dimensions = list->items();
        }
        auto it = std::find_if(dimensions.begin(), dimensions.end(),
                               [&](const Value& d) { return Text(d, "name") == name; });
        if (call.method == "POST") {
          if (it != dimensions.end()) {
            return Status(StatusCode::kConflict, "dimension " + name + " exists already");
          }
          dimensions.push_back(*call.body);
        } else if (it == dimensions.end()) {
          return Status(StatusCode::kNotFound, "products/" + code + " has no dimension " + name);
        } else if (call.method == "PATCH") {
          Value patched = control::MergePatch(*it, *call.body);
          if (Text(patched, "name") != name) {
            return Status(StatusCode::kInvalidArgument, "a dimension's name cannot change");
          }
          *it = std::move(patched);
        } else {
          dimensions.erase(it);
        }
        return control::PutEntry(
            doc, "products",
            control::WithMember(*product, "dimensions", Value::Array(std::move(dimensions))));
      });
  if (!changed.ok()) {
    if (call.method == "DELETE" && changed.status().code() == StatusCode::kInvalidArgument) {
      return ErrorAnswer(409, "Conflict", changed.status().message());
    }
    return AdminError(changed.status());
  }
  return JsonAnswer(call.method == "POST" ? 201 : 200,
                    control::Redacted(*FindEntry(*changed, "products", code)));
}

HttpResponse AdminHandler::SigningKeys(const Call& call, const std::string& code) {
  auto key_refs = [&](const Value& doc) -> std::vector<Value> {
    const Value* product = FindEntry(doc, "products", code);
    const Value* keys = product != nullptr ? product->Find("signingKeys") : nullptr;
    return keys != nullptr && keys->is_array() ? keys->items() : std::vector<Value>();
  };
  auto version_of = [](const Value& ref) {
    int64_t v = 0;
    const Value* version = ref.is_object() ? ref.Find("version") : nullptr;
    return version != nullptr && version->GetInt64(&v) ? v : int64_t{0};
  };
  auto key_view = [&](const Value& ref) -> Result<Value> {
    auto key = signing_keys_->GetOrCreate(code, version_of(ref));
    if (!key.ok()) return key.status();
    return control::Canonical(control::WithMember(control::Redacted(ref), "publicKeyPem",
                                                  Value::String((*key)->PublicPem())));
  };
  if (signing_keys_ == nullptr) return NotFound("this server keeps no signing keys");
  if (FindEntry(control_->Document(), "products", code) == nullptr) {
    return NotFound("products/" + code + " does not exist");
  }
  if (call.path[2] == "jwks") {
    if (call.path.size() != 3) return NotFound("no such route");
    if (call.method != "GET") return MethodNotAllowed(call.method);
    std::vector<keys::PublicKeyEntry> entries;
    for (const Value& ref : key_refs(control_->Document())) {
      auto key = signing_keys_->GetOrCreate(code, version_of(ref));
      if (!key.ok()) return AdminError(key.status());
      entries.push_back(keys::PublicKeyEntry{version_of(ref), *key});
    }
    auto parsed = json::Parse(keys::Jwks(entries));
    if (!parsed.ok()) return AdminError(parsed.status());
    return JsonAnswer(200, *parsed);
  }
  if (call.path.size() == 3) {
    if (call.method == "GET") {
      std::vector<Value> items;
      for (const Value& ref : key_refs(control_->Document())) {
        auto view = key_view(ref);
        if (!view.ok()) return AdminError(view.status());
        items.push_back(std::move(*view));
      }
      return JsonAnswer(200, Value::Array(std::move(items)));
    }
    if (call.method != "POST") return MethodNotAllowed(call.method);
    Value body = call.has_body ? *call.body : Value::Object({});
    if (!body.is_object()) return BadRequest("the body must be a JSON object");
    for (const auto& [name, value] : body.members()) {
      if (name != "privateKeyPem") return BadRequest("unknown member \"" + name + "\" for keys");
    }
    int64_t version = 0;
    auto changed = control_->Change(
        "POST /v1/products/" + code + "/keys", [&](const Value& doc) -> Result<Value> {
          std::vector<Value> refs = key_refs(doc);
          for (const Value& ref : refs) version = std::max(version, version_of(ref));
          ++version;
          Value ref = Value::Object({{"version", Value::Number(std::to_string(version))}});
          if (const Value* pem = body.Find("privateKeyPem"); pem != nullptr) {
            ref = control::WithMember(ref, "privateKeyPem", *pem);
          }
          refs.push_back(std::move(ref));
          return control::PutEntry(
              doc, "products",
              control::WithMember(*FindEntry(doc, "products", code), "signingKeys",
                                  Value::Array(std::move(refs))));
        });
    if (!changed.ok()) return AdminError(changed.status());
    for (const Value& ref : key_refs(*changed)) {
      if (version_of(ref) != version) continue;
      auto view = key_view(ref);
      return view.ok() ? JsonAnswer(201, *view) : AdminError(view.status());
    }
    return AdminError(Status(StatusCode::kInternal, "the new key version vanished"));
  }
  int64_t version = 0;
  for (char c : call.path[3]) {
    if (c < '0' || c > '9' || version > 1000000) return NotFound("no such key version");
    version = version * 10 + (c - '0');
  }
  auto find_ref = [&](const Value& doc) -> std::optional<Value> {
    for (const Value& ref : key_refs(doc)) {
      if (version_of(ref) == version) return ref;
    }
    return std::nullopt;
  };
  if (!find_ref(control_->Document())) return NotFound("no key version " + call.path[3]);
  if (call.path.size() == 4) {
    if (call.method != "GET") return MethodNotAllowed(call.method);
    auto view = key_view(*find_ref(control_->Document()));
    return view.ok() ? JsonAnswer(200, *view) : AdminError(view.status());
  }
  if (call.path.size() != 5 || call.path[4] != "expire") return NotFound("no such route");
  if (call.method != "POST") return MethodNotAllowed(call.method);
  auto changed = control_->Change(
      "expire key " + code + " " + call.path[3], [&](const Value& doc) -> Result<Value> {
        std::vector<Value> refs = key_refs(doc);
        for (Value& ref : refs) {
          if (version_of(ref) == version)
            ref = control::WithMember(ref, "expired", Value::Bool(true));
        }
        return control::PutEntry(doc, "products",
                                 control::WithMember(*FindEntry(doc, "products", code),
                                                     "signingKeys", Value::Array(std::move(refs))));
      });
  if (!changed.ok()) return AdminError(changed.status());
  auto view = key_view(*find_ref(*changed));
  return view.ok() ? JsonAnswer(200, *view) : AdminError(view.status());
}

HttpResponse AdminHandler::Subscriptions(const Call& call) {
  if (call.path.size() == 1 && call.method == "POST") {
    if (!call.has_body) return BadRequest("the body must be a JSON object");
    if (Status st = CheckMembers("subscriptions", *call.body); !st.ok()) return AdminError(st);
    Value entry = *call.body;
    // An agreement of a concurrent-agreements product is a license: give it one.
    const Value current = control_->Document();
    const Value* product = FindEntry(current, "products", Text(entry, "product"));
    if (product != nullptr && Text(*product, "integration") == "concurrent-agreements" &&
        Text(entry, "licenseArn").empty()) {
      entry = control::WithMember(entry, "licenseArn",
                                  Value::String("arn:aws:license-manager::294406891311:license:l-" +
                                                SecureRandomString("0123456789abcdef", 32)));
    }
    Call with_license = call;
    with_license.body = entry;
    return Collection(with_license, "subscriptions");
  }
  if (call.path.size() == 3 && call.path[2] == "unsubscribe") {
    if (call.method != "POST") return MethodNotAllowed(call.method);
    const std::string& id = call.path[1];
    auto changed = control_->Change("unsubscribe " + id, [&](const Value& doc) -> Result<Value> {
      const Value* entry = FindEntry(doc, "subscriptions", id);
      if (entry == nullptr) return Status(StatusCode::kNotFound, "subscriptions/" + id);
      const std::string status = Text(*entry, "status");
      if (!status.empty() && status != "active") return doc;  // already on its way out
      Value next = control::WithMember(*entry, "status", Value::String("unsubscribe-pending"));
      next = control::WithMember(next, "unsubscribedAt",
                                 Value::String(FormatIso8601(control_->Now())));
      return control::PutEntry(doc, "subscriptions", std::move(next));
    });
    if (!changed.ok()) return AdminError(changed.status());
    return JsonAnswer(200,
                      SubscriptionView(*FindEntry(*changed, "subscriptions", id), control_->Now()));
  }
  return Collection(call, "subscriptions");
}

namespace {
Value TokenView(const control::IssuedToken& t, int64_t now_ms) {
  std::vector<Value::Member> members = {
      {"account", Value::String(t.row.customer_account)},
      {"expired", Value::Bool(now_ms >= t.expires_ms)},
      {"expiresAt", Value::String(FormatIso8601(t.expires_ms))},
      {"issuedAt", Value::String(FormatIso8601(t.row.issued_ms))},
      {"product", Value::String(t.row.product_code)},
      {"seller", Value::String(t.row.seller_account)},
      {"token", Value::String(t.row.token)},
  };
  if (!t.row.license_arn.empty()) {
    members.emplace_back("licenseArn", Value::String(t.row.license_arn));
  }
  return control::Canonical(Value::Object(std::move(members)));
}
}  // namespace

HttpResponse AdminHandler::RegistrationTokens(const Call& call) {
  if (call.path.size() == 1 && call.method == "GET") {
    auto tokens = control_->ListTokens();
    if (!tokens.ok()) return AdminError(tokens.status());
    std::vector<Value> items;
    for (const auto& t : *tokens) {
      const std::string* account = call.Query("account");
      const std::string* product = call.Query("product");
      if (account && t.row.customer_account != *account) continue;
      if (product && t.row.product_code != *product) continue;
      items.push_back(TokenView(t, control_->Now()));
    }
    return JsonAnswer(200, Value::Array(std::move(items)));
  }
  if (call.path.size() == 1 && call.method == "POST") {
    if (!call.has_body || !call.body->is_object()) {
      return BadRequest("the body must be {\"product\", \"account\", \"licenseArn\"?}");
    }
    for (const auto& [name, value] : call.body->members()) {
      if (name != "product" && name != "account" && name != "licenseArn") {
        return BadRequest("unknown member \"" + name + "\" for registration tokens");
      }
    }
    auto issued = control_->IssueToken(Text(*call.body, "product"), Text(*call.body, "account"),
                                       Text(*call.body, "licenseArn"));
    if (!issued.ok()) return AdminError(issued.status());
    return JsonAnswer(201, TokenView(*issued, control_->Now()));
  }
  if (call.path.size() == 1) return MethodNotAllowed(call.method);
  if (call.path.size() != 2) return NotFound("no such route");
  if (call.method == "GET") {
    auto tokens = control_->ListTokens();
    if (!tokens.ok()) return AdminError(tokens.status());
    for (const auto& t : *tokens) {
      if (t.row.token == call.path[1]) return JsonAnswer(200, TokenView(t, control_->Now()));
    }
    return NotFound("no registration token " + call.path[1]);
  }
  if (call.method != "DELETE") return MethodNotAllowed(call.method);
  if (Status st = control_->RevokeToken(call.path[1]); !st.ok()) return AdminError(st);
  return JsonAnswer(
      200, Value::Object({{"deleted", Value::String("registration-tokens/" + call.path[1])}}));
}

HttpResponse AdminHandler::Regions(const Call& call) {
  constexpr std::string_view kCollection = "regions.disabled";
  if (call.path.size() == 1) {
    if (call.method != "GET") return MethodNotAllowed(call.method);
    return JsonAnswer(200, Value::Array(control::Entries(control_->Document(), kCollection)));
  }
  if (call.path.size() != 2) return NotFound("no such route");
  const std::string& region = call.path[1];
  if (call.method == "GET") {
    // Keep the document alive: FindEntry points into it.
    const Value document = control_->Document();
    const Value* entry = FindEntry(document, kCollection, region);
    if (entry != nullptr) return JsonAnswer(200, *entry);
    return JsonAnswer(
        200, Value::Object({{"operations", Value::Array({})}, {"region", Value::String(region)}}));
  }
  if (call.method != "PUT" && call.method != "DELETE") return MethodNotAllowed(call.method);
  Value operations = Value::Array({});
  if (call.method == "PUT") {
    const Value* ops =
        call.has_body && call.body->is_object() ? call.body->Find("operations") : nullptr;
    if (ops == nullptr || !ops->is_array()) {
      return BadRequest("the body must be {\"operations\": [...]}");
    }
    operations = *ops;
  }
  auto changed = control_->Change(
      call.method + " /v1/regions/" + region, [&](const Value& doc) -> Result<Value> {
        bool removed = false;
        if (operations.items().empty()) {
          return control::RemoveEntry(doc, kCollection, region, &removed);
        }
        return control::PutEntry(
            doc, kCollection,
            Value::Object({{"operations", operations}, {"region", Value::String(region)}}));
      });
  if (!changed.ok()) return AdminError(changed.status());
  return JsonAnswer(200,
                    Value::Object({{"operations", operations}, {"region", Value::String(region)}}));
}

HttpResponse AdminHandler::SettingsRoute(const Call& call) {
  if (call.path.size() != 1) return NotFound("no such route");
  if (call.method == "GET") return JsonAnswer(200, control::SettingsJson(control_->settings()));
  if (call.method != "PATCH") return MethodNotAllowed(call.method);
  if (!call.has_body || !call.body->is_object()) return BadRequest("the body must be an object");
  static const std::set<std::string, std::less<>> kTop = {
      "batchWindowHours",  "batchMonthGraceHours", "meterUsageWindowHours",
      "futureSkewMinutes", "tokenTtlHours",        "throttle",
      "auditRetentionDays"};
  static const std::set<std::string, std::less<>> kThrottle = {"enabled",         "batchMeterUsage",
                                                               "meterUsage",      "registerUsage",
                                                               "resolveCustomer", "burstSeconds"};
  for (const auto& [name, value] : call.body->members()) {
    if (kTop.count(name) == 0) return BadRequest("unknown setting \"" + name + "\"");
    if (name == "throttle") {
      if (!value.is_object()) return BadRequest("\"throttle\" must be an object");
      for (const auto& [inner, unused] : value.members()) {
        if (kThrottle.count(inner) == 0) {
          return BadRequest("unknown setting \"throttle." + inner + "\"");
        }
      }
    }
  }
  auto changed = control_->Change("PATCH /v1/settings", [&](const Value& doc) -> Result<Value> {
    const Value* stored = doc.Find("settings");
    return control::WithMember(
        doc, "settings", control::MergePatch(stored ? *stored : Value::Object({}), *call.body));
  });
  if (!changed.ok()) return AdminError(changed.status());
  return JsonAnswer(200, control::SettingsJson(control_->settings()));
}

HttpResponse AdminHandler::Clock(const Call& call) {
  auto clock_view = [&] {
    return Value::Object({{"mode", Value::String(control_->manual_clock() ? "manual" : "system")},
                          {"now", Value::String(FormatIso8601(control_->Now()))}});
  };
  if (call.path.size() == 1 && call.method == "GET") return JsonAnswer(200, clock_view());
  if (call.path.size() == 1 && call.method == "PUT") {
    std::string text = call.has_body ? Text(*call.body, "now") : "";
    auto at = ParseIso8601(text);
    if (!at) return BadRequest("the body must be {\"now\": \"<ISO 8601 time>\"}");
    if (Status st = control_->SetClock(*at); !st.ok()) return AdminError(st);
    return JsonAnswer(200, clock_view());
  }
  if (call.path.size() == 2 && call.path[1] == "advance") {
    if (call.method != "POST") return MethodNotAllowed(call.method);
    const Value* seconds =
        call.has_body && call.body->is_object() ? call.body->Find("seconds") : nullptr;
    if (seconds == nullptr || !seconds->is_number()) {
      return BadRequest("the body must be {\"seconds\": <number>}");
    }
    bool saturated = false;
    const int64_t millis = json::ScaledDecimal(seconds->text(), 3, &saturated);
    if (saturated || millis < 0 || millis > int64_t{10} * 366 * 24 * 3600 * 1000) {
      return BadRequest("\"seconds\" must be between 0 and ten years");
    }
    if (Status st = control_->AdvanceClock(millis); !st.ok()) return AdminError(st);
    return JsonAnswer(200, clock_view());
  }
  if (call.path.size() == 1) return MethodNotAllowed(call.method);
  return NotFound("no such route");
}

HttpResponse AdminHandler::Faults(const Call& call) {
  if (faults_ == nullptr) return NotFound("fault injection is not available on this server");
  if (call.path.size() != 1) return NotFound("no such route");
  auto rules = [&] {
    auto parsed = json::Parse(metering::FaultRulesJson(faults_->List()));
    return parsed.ok() ? *parsed : Value::Object({});
  };
  if (call.method == "GET") return JsonAnswer(200, rules());
  if (call.method == "POST") {
    if (!call.has_body) return BadRequest("the body must be a fault rule");
    auto rule = metering::ParseFaultRule(*call.body);
    if (!rule.ok()) return AdminError(rule.status());
    if (Status st = faults_->SetRule(std::move(*rule)); !st.ok()) return AdminError(st);
    return JsonAnswer(200, rules());
  }
  if (call.method == "DELETE") {
    const std::string* operation = call.Query("operation");
    const std::string* caller = call.Query("caller");
    if (operation == nullptr && caller == nullptr) {
      faults_->Clear();
    } else if (operation == nullptr ||
               !faults_->ClearRule(*operation, caller == nullptr ? "" : *caller)) {
      return NotFound("no fault rule for that operation and caller");
    }
    return JsonAnswer(200, rules());
  }
  return MethodNotAllowed(call.method);
}

HttpResponse AdminHandler::StatusRoute(const Call& call) {
  if (call.path.size() != 1) return NotFound("no such route");
  if (call.method != "GET") return MethodNotAllowed(call.method);
  return JsonAnswer(
      200,
      Value::Object({
          {"catalogVersion", Value::Number(std::to_string(control_->version()))},
          {"clock",
           Value::Object({{"mode", Value::String(control_->manual_clock() ? "manual" : "system")},
                          {"now", Value::String(FormatIso8601(control_->Now()))}})},
          {"service", Value::String("meterd")},
          {"version", Value::String(METERD_VERSION)},
          {"store", Value::String(store_name_)},
      }));
}

Result<std::string> LoadOrCreateAdminToken(const std::string& path, bool* created) {
  *created = false;
  std::ifstream in(path);
  if (in) {
    std::string token;
    std::getline(in, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.size() < 16) {
      return Status(StatusCode::kInvalidArgument,
                    "the admin token in " + path + " is shorter than 16 characters");
    }
    return token;
  }
  std::string token = SecureRandomString("0123456789abcdef", 64);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kIoError, "cannot create " + path + ": " + std::strerror(errno));
  }
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) return Status(StatusCode::kIoError, "cannot write " + path);
  *created = true;
  return token;
}

// --- audit trail (D17): GET /v1/audit, /v1/audit/events, /v1/audit/export ----------------------

namespace {

constexpr size_t kAuditPageDefault = 100;
constexpr size_t kAuditPageMax = 1000;
constexpr size_t kAuditExportDefault = 10000;
constexpr size_t kAuditExportMax = 100000;

// The filters, limit and cursor of an audit query string.
Result<store::AuditQuery> ParseAuditQuery(const std::map<std::string, std::string>& query,
                                          bool export_format, size_t default_limit,
                                          size_t max_limit) {
  store::AuditQuery q;
  q.limit = default_limit;
  for (const auto& entry : query) {
    const std::string& name = entry.first;
    const std::string& value = entry.second;
    auto time = [&](std::optional<int64_t>* out) -> Status {
      auto at = ParseIso8601(value);
      if (!at)
        return Status(StatusCode::kInvalidArgument, "\"" + name + "\" is not an RFC 3339 time");
      *out = *at;
      return Status::Ok();
    };
    if (value.empty()) continue;
    if (name == "eventName") {
      q.event_name = value;
    } else if (name == "eventSource") {
      q.event_source = value;
    } else if (name == "account") {
      q.account_id = value;
    } else if (name == "accessKey") {
      q.access_key_id = value;
    } else if (name == "errorCode") {
      if (value == "any") {
        q.errors_only = true;
      } else {
        q.error_code = value;
      }
    } else if (name == "from") {
      METERD_RETURN_IF_ERROR(time(&q.from_ms));
    } else if (name == "to") {
      METERD_RETURN_IF_ERROR(time(&q.to_ms));
    } else if (name == "limit") {
      size_t limit = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || limit > max_limit) {
          limit = max_limit + 1;
          break;
        }
        limit = limit * 10 + static_cast<size_t>(c - '0');
      }
      if (limit < 1 || limit > max_limit) {
        return Status(StatusCode::kInvalidArgument,
                      "\"limit\" must be between 1 and " + std::to_string(max_limit));
      }
      q.limit = limit;
    } else if (name == "cursor") {
      auto after = audit::DecodeCursor(value);
      if (!after.ok()) return after.status();
      q.after = *after;
    } else if (name == "format" && export_format) {
      if (value != "jsonl") {
        return Status(StatusCode::kInvalidArgument, "\"format\" must be jsonl");
      }
    } else {
      return Status(StatusCode::kInvalidArgument, "unknown parameter \"" + name + "\"");
    }
  }
  return q;
}

}  // namespace

HttpResponse AdminHandler::AuditRoute(const Call& call) {
  if (audit_ == nullptr) return NotFound("this server keeps no audit trail");
  if (call.method != "GET") return MethodNotAllowed(call.method);
  if (call.path.size() == 1) {
    const audit::AuditStats stats = audit_->stats();
    const int64_t days = control_->settings().audit_retention_ms / audit::kDayMillis;
    return JsonAnswer(200, Value::Object({
                               {"lost", Value::Number(std::to_string(stats.lost))},
                               {"pruned", Value::Number(std::to_string(stats.pruned))},
                               {"recorded", Value::Number(std::to_string(stats.recorded))},
                               {"retentionDays", Value::Number(std::to_string(days))},
                           }));
  }
  if (call.path.size() != 2 || (call.path[1] != "events" && call.path[1] != "export")) {
    return NotFound("no such route");
  }
  const bool is_export = call.path[1] == "export";
  auto query =
      ParseAuditQuery(call.query, is_export, is_export ? kAuditExportDefault : kAuditPageDefault,
                      is_export ? kAuditExportMax : kAuditPageMax);
  if (!query.ok()) return AdminError(query.status());

  // The events come out of the store as JSON text; they are spliced, not parsed again. An export
  // reads pages of kAuditPageMax until it has `limit` events.
  // TODO(merge): stream the export with the reports' chunked bodies instead of the whole answer.
  std::string body;
  std::optional<store::AuditPosition> next;
  size_t remaining = query->limit;
  store::AuditQuery page_query = *query;
  bool first = true;
  if (!is_export) body = "{\"events\":[";
  while (true) {
    page_query.limit = std::min(remaining, kAuditPageMax);
    auto page = audit_->Lookup(page_query);
    if (!page.ok()) return AdminError(page.status());
    for (const auto& event : page->events) {
      if (!is_export && !first) body.push_back(',');
      body += event.event_json;
      if (is_export) body.push_back('\n');
      first = false;
    }
    remaining -= page->events.size();
    next.reset();
    if (page->more && !page->events.empty()) {
      next = store::AuditPosition{page->events.back().event_time_ms, page->events.back().event_id};
    }
    if (!next || remaining == 0) break;
    page_query.after = next;
  }
  HttpResponse r;
  r.status = 200;
  if (is_export) {
    r.headers.push_back({"Content-Type", "application/x-ndjson"});
    if (next) r.headers.push_back({"X-Meterd-Next-Cursor", audit::EncodeCursor(*next)});
  } else {
    r.headers.push_back({"Content-Type", "application/json"});
    body += "]";
    if (next) {
      body += ",\"nextCursor\":";
      json::AppendQuoted(&body, audit::EncodeCursor(*next));
    }
    body += "}\n";
  }
  r.body = std::move(body);
  return r;
}
// --- end of audit trail ------------------------------------------------------------------------

}  // namespace meterd::admin

// --- Usage reports (docs/REPORTS.md)

namespace meterd::admin {

namespace {

HttpResponse ExportAnswer(reports::ExportFormat format, std::string_view name,
                          HttpResponse::BodyStream stream) {
  HttpResponse r;
  r.headers.push_back({"Content-Type", reports::ContentType(format)});
  r.headers.push_back(
      {"Content-Disposition", "attachment; filename=\"" + std::string(name) +
                                  (format == reports::ExportFormat::kCsv ? ".csv\"" : ".jsonl\"")});
  r.stream = std::move(stream);
  return r;
}

}  // namespace

// GET /v1/usage, GET /v1/usage/export.
HttpResponse AdminHandler::UsageRoute(const Call& call) {
  if (usage_reader_ == nullptr) return NotFound("usage reports are not enabled");
  const bool is_export = call.path.size() == 2 && call.path[1] == "export";
  if (call.path.size() != 1 && !is_export) return NotFound("no such route");
  if (call.method != "GET") return MethodNotAllowed(call.method);
  auto request = reports::ParseUsageListRequest(call.query);
  if (!request.ok()) return AdminError(request.status());
  if (!is_export) {
    if (call.query.count("format")) return BadRequest("format applies to /v1/usage/export only");
    auto body = reports::UsagePageJson(usage_reader_, *request);
    if (!body.ok()) return AdminError(body.status());
    HttpResponse r;
    r.headers.push_back({"Content-Type", "application/json"});
    r.body = std::move(body).value();
    return r;
  }
  if (call.query.count("limit") || call.query.count("cursor")) {
    return BadRequest("an export has every matching record: limit and cursor do not apply");
  }
  auto format = reports::ParseExportFormat(call.query);
  if (!format.ok()) return AdminError(format.status());
  return ExportAnswer(*format, "usage",
                      reports::UsageExportStream(usage_reader_, request->filter, *format));
}

// GET /v1/reports/usage, GET /v1/reports/usage/export.
HttpResponse AdminHandler::ReportsRoute(const Call& call) {
  if (usage_reader_ == nullptr) return NotFound("usage reports are not enabled");
  const bool is_export = call.path.size() == 3 && call.path[2] == "export";
  if (call.path.size() < 2 || call.path[1] != "usage" || (call.path.size() != 2 && !is_export)) {
    return NotFound("no such route");
  }
  if (call.method != "GET") return MethodNotAllowed(call.method);
  auto request = reports::ParseReportRequest(call.query);
  if (!request.ok()) return AdminError(request.status());
  std::optional<reports::ExportFormat> format;
  if (is_export) {
    auto parsed = reports::ParseExportFormat(call.query);
    if (!parsed.ok()) return AdminError(parsed.status());
    format = *parsed;
  } else if (call.query.count("format")) {
    return BadRequest("format applies to /v1/reports/usage/export only");
  }
  // The prices in force now, and their catalog version (stated in the answer).
  const int64_t catalog_version = control_->version();
  std::shared_ptr<const catalog::Catalog> catalog = catalog_->Get();
  auto report = reports::BuildReport(usage_reader_, *catalog, *request);
  if (!report.ok()) return AdminError(report.status());
  if (!format) {
    HttpResponse r;
    r.headers.push_back({"Content-Type", "application/json"});
    r.body = reports::ReportJson(*report, catalog_version);
    return r;
  }
  return ExportAnswer(*format, "usage-report",
                      reports::ReportExportStream(
                          std::make_shared<const reports::Report>(std::move(*report)), *format));
}

}  // namespace meterd::admin
