// meterctl: the command line of meterd's admin API (docs/CONTROL-PLANE.md).
//
//   meterctl --data ./data accounts list
//   meterctl -o json products get acmesaas01
//   TOKEN=$(meterctl tokens issue --product acmesaas01 --account 444455556666)
//
// Nouns then verbs; each command is one request (keys export pem reads the key list). This is the
// only translation unit that includes CLI11; AdminClient (admin_client.cc) speaks HTTP.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/time_util.h"
#include "ctl/admin_client.h"
#include "ctl/table.h"
#include "json/json.h"

namespace {

using meterd::Result;
using meterd::Status;
using meterd::StatusCode;
using meterd::json::Value;
namespace ctl = meterd::ctl;
namespace json = meterd::json;

constexpr char kFooter[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  the server refused the request (400 InvalidArgument, or another 4xx not below)\n"
    "  2  command-line usage error: bad arguments, no admin token found, an unreadable or\n"
    "     non-JSON input file (nothing was sent)\n"
    "  3  not found (404)\n"
    "  4  conflict (409)\n"
    "  5  unauthorized (401): no or wrong admin token\n"
    "  6  the server cannot be reached, timed out, or failed (5xx)\n"
    "Errors are printed on stderr as \"meterctl: <code>: <message>\".\n"
    "The admin token is taken from --token, --token-file or --data DIR (DIR/admin-token), else\n"
    "from $METERD_ADMIN_TOKEN, else from ./data/admin-token.";

int Fail(const std::string& code, const std::string& message, int exit_code) {
  std::cerr << "meterctl: " << code << ": " << message << std::endl;
  return exit_code;
}

int UsageFail(const std::string& message) { return Fail("UsageError", message, ctl::kExitUsage); }

bool ReadFile(const std::string& path, std::string* out) {
  if (path == "-") {
    out->assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return !std::cin.bad();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return !in.bad();
}

std::string TrimSpace(std::string text) {
  size_t end = text.find_last_not_of(" \t\r\n");
  text.erase(end == std::string::npos ? 0 : end + 1);
  size_t begin = text.find_first_not_of(" \t\r\n");
  text.erase(0, begin == std::string::npos ? text.size() : begin);
  return text;
}

bool FileExists(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

std::string Enc(const std::string& segment) { return ctl::PercentEncode(segment); }

// Option values that are sent as JSON numbers keep their text (exact decimals).
const CLI::Validator kNumber(
    [](std::string& text) -> std::string {
      auto parsed = json::Parse(text);
      if (parsed.ok() && parsed->is_number()) return "";
      return "not a number: " + text;
    },
    "NUMBER");
const CLI::Validator kInteger(
    [](std::string& text) -> std::string {
      auto parsed = json::Parse(text);
      int64_t ignored = 0;
      if (parsed.ok() && parsed->is_number() && parsed->GetInt64(&ignored)) return "";
      return "not an integer: " + text;
    },
    "INT");

// A JSON object built from the options that were given.
class Body {
 public:
  Body& Str(const std::string& key, const std::string& value) {
    members_.emplace_back(key, Value::String(value));
    return *this;
  }
  Body& Str(const std::string& key, const std::optional<std::string>& value) {
    if (value.has_value()) Str(key, *value);
    return *this;
  }
  Body& Num(const std::string& key, const std::optional<std::string>& text) {
    if (text.has_value()) members_.emplace_back(key, Value::Number(*text));
    return *this;
  }
  Body& Bool(const std::string& key, std::optional<bool> value) {
    if (value.has_value()) members_.emplace_back(key, Value::Bool(*value));
    return *this;
  }
  Body& StrList(const std::string& key, const std::vector<std::string>& values) {
    std::vector<Value> items;
    items.reserve(values.size());
    for (const std::string& v : values) items.push_back(Value::String(v));
    members_.emplace_back(key, Value::Array(std::move(items)));
    return *this;
  }
  Body& Raw(const std::string& key, Value value) {
    members_.emplace_back(key, std::move(value));
    return *this;
  }
  bool empty() const { return members_.empty(); }
  Value Build() const { return Value::Object(members_); }

 private:
  std::vector<Value::Member> members_;
};

struct Globals {
  std::string endpoint = "http://127.0.0.1:8081";
  std::string token;
  std::string token_file;
  std::string data_dir;
  std::string output = "table";
  int timeout_seconds = 60;
};

// How a successful answer is shown in table mode.
using Renderer = std::function<void(const Value& body)>;

Renderer Detail() {
  return [](const Value& body) {
    if (!body.is_null()) std::cout << ctl::RenderDetail(body);
  };
}

Renderer List(std::string resource, std::string key) {
  return [resource = std::move(resource), key = std::move(key)](const Value& body) {
    const std::vector<Value>* rows = ctl::ListItems(body, key);
    if (rows == nullptr) {
      std::cout << ctl::RenderDetail(body);
      return;
    }
    if (rows->empty()) {
      std::cerr << "no " << resource << std::endl;
      return;
    }
    std::vector<ctl::Column> columns = ctl::ColumnsFor(resource);
    if (columns.empty()) columns = ctl::InferColumns(*rows);
    std::cout << ctl::RenderTable(*rows, columns);
  };
}

Renderer Message(std::string text) {
  return [text = std::move(text)](const Value&) { std::cout << text << std::endl; };
}

class Ctl {
 public:
  Globals g;
  std::function<int()> action;

  // A leaf command: `fn` runs after the command line is parsed.
  CLI::App* Leaf(CLI::App* parent, const std::string& name, const std::string& description,
                 std::function<int()> fn) {
    CLI::App* command = parent->add_subcommand(name, description);
    command->callback([this, fn = std::move(fn)] { action = fn; });
    return command;
  }

  // Sends one request; on a 2xx answer shows it (JSON mode: the body; table mode: `render`).
  int Run(const std::string& method, const std::string& path, const std::optional<Value>& body,
          const Renderer& render) {
    Value parsed;
    std::string raw;
    int rc = Fetch(method, path, body, &parsed, &raw);
    if (rc != ctl::kExitOk) return rc;
    if (g.output == "json" || (!raw.empty() && parsed.is_null())) {
      PrintBody(parsed, raw);
    } else {
      render(parsed);
    }
    return ctl::kExitOk;
  }

  // Sends one request. On a 2xx answer stores the body (`parsed` stays null when the body is
  // empty or not JSON) and returns 0; otherwise prints the error and returns the exit code.
  int Fetch(const std::string& method, const std::string& path, const std::optional<Value>& body,
            Value* parsed, std::string* raw) {
    if (int rc = Connect(); rc != ctl::kExitOk) return rc;
    auto response = client_->Call(method, path, body);
    if (!response.ok()) {
      return Fail("Unreachable", response.status().message(), ctl::kExitUnavailable);
    }
    int rc = ctl::ExitCodeForHttpStatus(response->status);
    if (rc != ctl::kExitOk) {
      ctl::AdminError error = ctl::ErrorFromResponse(*response);
      std::string message = error.message;
      if (response->status == 401) {
        message += " (check --token, --token-file, --data or $METERD_ADMIN_TOKEN)";
      }
      return Fail(error.code, message, rc);
    }
    *raw = std::move(response->body);
    *parsed = Value::Null();
    if (!raw->empty()) {
      auto json = json::Parse(*raw);
      if (json.ok()) *parsed = std::move(json).value();
    }
    return ctl::kExitOk;
  }

  // Sends one GET; on a 2xx answer writes its body as it is to `out` and returns the
  // X-Meterd-Next-Cursor header in `next_cursor`; otherwise prints the error.
  int FetchRaw(const std::string& method, const std::string& path, std::ostream* out,
               std::string* next_cursor) {
    if (int rc = Connect(); rc != ctl::kExitOk) return rc;
    auto response = client_->Call(method, path);
    if (!response.ok()) {
      return Fail("Unreachable", response.status().message(), ctl::kExitUnavailable);
    }
    if (int rc = ctl::ExitCodeForHttpStatus(response->status); rc != ctl::kExitOk) {
      ctl::AdminError error = ctl::ErrorFromResponse(*response);
      return Fail(error.code, error.message, rc);
    }
    *out << response->body;
    *next_cursor = response->next_cursor;
    return ctl::kExitOk;
  }

  // --- Streamed downloads (exports): a 2xx body goes to `out_path` ("-": stdout) as it arrives;
  // a file is written beside and renamed when whole, so a failed export leaves no partial file.
  int Download(const std::string& path, const std::string& out_path) {
    if (int rc = Connect(); rc != ctl::kExitOk) return rc;
    const bool to_stdout = out_path.empty() || out_path == "-";
    const std::string partial = out_path + ".partial";
    std::FILE* out = to_stdout ? stdout : std::fopen(partial.c_str(), "wb");
    if (out == nullptr) return UsageFail("cannot write " + partial);
    auto response = client_->Download(path, [out](std::string_view piece) {
      if (std::fwrite(piece.data(), 1, piece.size(), out) != piece.size()) {
        return Status(StatusCode::kIoError, "cannot write the export");
      }
      return Status::Ok();
    });
    const bool flushed = std::fflush(out) == 0;
    if (!to_stdout) std::fclose(out);
    auto failed = [&](const std::string& code, const std::string& message, int rc) {
      if (!to_stdout) std::remove(partial.c_str());
      return Fail(code, message, rc);
    };
    if (!response.ok())
      return failed("Unreachable", response.status().message(), ctl::kExitUnavailable);
    if (int rc = ctl::ExitCodeForHttpStatus(response->status); rc != ctl::kExitOk) {
      ctl::AdminError error = ctl::ErrorFromResponse(*response);
      return failed(error.code, error.message, rc);
    }
    if (!flushed) return failed("WriteError", "cannot write the export", ctl::kExitUnavailable);
    if (!to_stdout && std::rename(partial.c_str(), out_path.c_str()) != 0) {
      return failed("WriteError", "cannot rename " + partial + " to " + out_path,
                    ctl::kExitUnavailable);
    }
    return ctl::kExitOk;
  }

  static void PrintBody(const Value& parsed, const std::string& raw) {
    if (!parsed.is_null()) {
      std::cout << ctl::PrettyJson(parsed);
    } else if (!raw.empty()) {
      std::cout << raw;
      if (raw.back() != '\n') std::cout << '\n';
    }
  }

 private:
  int Connect() {
    if (client_.has_value()) return ctl::kExitOk;
    auto token = ResolveToken();
    if (!token.ok()) return UsageFail(token.status().message());
    ctl::AdminClientOptions options;
    options.endpoint = g.endpoint;
    options.token = std::move(token).value();
    options.request_timeout = std::chrono::seconds(g.timeout_seconds);
    options.connect_timeout =
        std::min<std::chrono::milliseconds>(std::chrono::seconds(5), options.request_timeout);
    auto client = ctl::AdminClient::Create(std::move(options));
    if (!client.ok()) return UsageFail(client.status().message());
    client_.emplace(std::move(client).value());
    return ctl::kExitOk;
  }

  Result<std::string> ResolveToken() const {
    auto from_file = [](const std::string& path) -> Result<std::string> {
      std::string text;
      if (!ReadFile(path, &text)) {
        return Status(StatusCode::kInvalidArgument, "cannot read the admin token file " + path);
      }
      text = TrimSpace(std::move(text));
      if (text.empty()) {
        return Status(StatusCode::kInvalidArgument, "the admin token file " + path + " is empty");
      }
      return text;
    };
    if (!g.token.empty()) return g.token;
    if (!g.token_file.empty()) return from_file(g.token_file);
    if (!g.data_dir.empty()) return from_file(g.data_dir + "/admin-token");
    if (const char* env = std::getenv("METERD_ADMIN_TOKEN"); env != nullptr && *env != '\0') {
      return std::string(env);
    }
    if (FileExists("./data/admin-token")) return from_file("./data/admin-token");
    return Status(StatusCode::kInvalidArgument,
                  "no admin token: give --token, --token-file or --data DIR, or set "
                  "METERD_ADMIN_TOKEN (meterd writes it to DATA/admin-token on first start)");
  }

  std::optional<ctl::AdminClient> client_;
};

// --- status, catalog, apply ----------------------------------------------------------------

void AddCatalog(CLI::App* app, Ctl* c) {
  c->Leaf(app, "status", "Server facts: version, catalog version, clock, store",
          [c] { return c->Run("GET", "/v1/status", std::nullopt, Detail()); });

  CLI::App* catalog = app->add_subcommand("catalog", "The whole catalog");
  catalog->require_subcommand(1);
  c->Leaf(catalog, "get", "Print the whole catalog (secrets removed)", [c] {
    return c->Run("GET", "/v1/catalog", std::nullopt,
                  [](const Value& body) { std::cout << ctl::RenderCatalog(body); });
  });

  auto file = std::make_shared<std::string>();
  CLI::App* apply =
      c->Leaf(app, "apply", "Upsert every object of a catalog document (never deletes)", [c, file] {
        std::string text;
        if (!ReadFile(*file, &text)) return UsageFail("cannot read " + *file);
        size_t first = text.find_first_not_of(" \t\r\n");
        if (first == std::string::npos || text[first] != '{') {
          return UsageFail("only JSON catalogs are supported: " + *file + " is not a JSON object");
        }
        auto document = json::Parse(text);
        if (!document.ok()) {
          return UsageFail("only JSON catalogs are supported: " + *file +
                           " is not valid JSON: " + document.status().message());
        }
        return c->Run("POST", "/v1/apply", std::move(document).value(),
                      [](const Value& body) { std::cout << ctl::RenderApplyResult(body); });
      });
  apply->add_option("-f,--file", *file, "Catalog JSON file ('-': standard input)")->required();
}

// --- accounts ------------------------------------------------------------------------------

void AddAccounts(CLI::App* app, Ctl* c) {
  CLI::App* accounts = app->add_subcommand("accounts", "Seller and buyer accounts");
  accounts->require_subcommand(1);
  c->Leaf(accounts, "list", "List accounts", [c] {
    return c->Run("GET", "/v1/accounts", std::nullopt, List("accounts", "accounts"));
  });

  auto id = std::make_shared<std::string>();
  CLI::App* get = c->Leaf(accounts, "get", "Show one account", [c, id] {
    return c->Run("GET", "/v1/accounts/" + Enc(*id), std::nullopt, Detail());
  });
  get->add_option("ID", *id, "Account id (12 digits)")->required();

  struct Args {
    std::string id;
    std::optional<std::string> name;
    std::vector<std::string> roles;
    std::optional<std::string> customer_identifier;
  };
  auto a = std::make_shared<Args>();
  auto body = [a](bool create) {
    Body b;
    if (create) b.Str("id", a->id);
    b.Str("name", a->name);
    if (create || !a->roles.empty()) b.StrList("roles", a->roles);
    b.Str("customerIdentifier", a->customer_identifier);
    return b;
  };
  auto add_fields = [a](CLI::App* command, bool create) {
    auto* name = command->add_option("--name", a->name, "Display name");
    auto* role = command->add_option("--role", a->roles, "seller or buyer (repeatable)");
    command->add_option("--customer-identifier", a->customer_identifier,
                        "The buyer's CustomerIdentifier (ResolveCustomer answers it)");
    if (create) {
      name->required();
      role->required();
    }
  };

  CLI::App* create = c->Leaf(accounts, "create", "Create an account", [c, body] {
    return c->Run("POST", "/v1/accounts", body(true).Build(), Detail());
  });
  create->add_option("--id", a->id, "Account id (12 digits)")->required();
  add_fields(create, true);

  CLI::App* update =
      c->Leaf(accounts, "update", "Change the fields given of an account", [c, a, body] {
        Body b = body(false);
        if (b.empty()) {
          return UsageFail("nothing to update: give --name, --role or --customer-identifier");
        }
        return c->Run("PATCH", "/v1/accounts/" + Enc(a->id), b.Build(), Detail());
      });
  update->add_option("ID", a->id, "Account id")->required();
  add_fields(update, false);

  CLI::App* del = c->Leaf(accounts, "delete", "Delete an account", [c, a] {
    return c->Run("DELETE", "/v1/accounts/" + Enc(a->id), std::nullopt,
                  Message("deleted account " + a->id));
  });
  del->add_option("ID", a->id, "Account id")->required();
}

// --- credentials ---------------------------------------------------------------------------

void AddCredentials(CLI::App* app, Ctl* c) {
  CLI::App* credentials =
      app->add_subcommand("credentials", "Access keys: a seller's, or a workload's");
  credentials->require_subcommand(1);
  c->Leaf(credentials, "list", "List access keys (no secrets)", [c] {
    return c->Run("GET", "/v1/credentials", std::nullopt, List("credentials", "credentials"));
  });

  struct Args {
    std::string akid;
    std::optional<std::string> account, workload, access_key_id, secret, session_token;
  };
  auto a = std::make_shared<Args>();
  auto path = [a] { return "/v1/credentials/" + Enc(a->akid); };

  CLI::App* get = c->Leaf(credentials, "get", "Show one access key",
                          [c, path] { return c->Run("GET", path(), std::nullopt, Detail()); });
  get->add_option("AKID", a->akid, "Access key id")->required();

  CLI::App* create =
      c->Leaf(credentials, "create", "Create an access key (the secret is shown once)", [c, a] {
        if (a->account.has_value() == a->workload.has_value()) {
          return UsageFail("give exactly one of --account and --workload");
        }
        Body b;
        b.Str("account", a->account)
            .Str("workload", a->workload)
            .Str("accessKeyId", a->access_key_id)
            .Str("secretAccessKey", a->secret)
            .Str("sessionToken", a->session_token);
        int rc = c->Run("POST", "/v1/credentials", b.Build(), Detail());
        if (rc == ctl::kExitOk) {
          std::cerr << "note: the secretAccessKey is shown only this once: store it now"
                    << std::endl;
        }
        return rc;
      });
  auto* account =
      create->add_option("--account", a->account, "The seller account the key belongs to");
  auto* workload =
      create->add_option("--workload", a->workload, "The workload (instance, task) it belongs to");
  account->excludes(workload);
  create->add_option("--access-key-id", a->access_key_id, "Key id (default: generated)");
  create->add_option("--secret-access-key", a->secret, "Secret (default: generated)");
  create->add_option("--session-token", a->session_token, "Session token (temporary credentials)");

  for (bool enable : {true, false}) {
    CLI::App* toggle =
        c->Leaf(credentials, enable ? "enable" : "disable",
                enable ? "Enable an access key"
                       : "Disable an access key (its calls get UnrecognizedClientException)",
                [c, path, enable] {
                  return c->Run("PATCH", path(), Body().Bool("enabled", enable).Build(), Detail());
                });
    toggle->add_option("AKID", a->akid, "Access key id")->required();
  }

  CLI::App* del = c->Leaf(credentials, "delete", "Delete an access key", [c, a, path] {
    return c->Run("DELETE", path(), std::nullopt, Message("deleted access key " + a->akid));
  });
  del->add_option("AKID", a->akid, "Access key id")->required();
}

// --- workloads -----------------------------------------------------------------------------

void AddWorkloads(CLI::App* app, Ctl* c) {
  CLI::App* workloads =
      app->add_subcommand("workloads", "Buyer workloads: EC2 instances, ECS/EKS tasks, ...");
  workloads->require_subcommand(1);
  c->Leaf(workloads, "list", "List workloads", [c] {
    return c->Run("GET", "/v1/workloads", std::nullopt, List("workloads", "workloads"));
  });

  struct Args {
    std::string id;
    std::optional<std::string> platform, region, account;
  };
  auto a = std::make_shared<Args>();
  auto path = [a] { return "/v1/workloads/" + Enc(a->id); };
  auto body = [a](bool create) {
    Body b;
    if (create) b.Str("id", a->id);
    b.Str("platform", a->platform).Str("region", a->region).Str("account", a->account);
    return b;
  };
  auto add_fields = [a](CLI::App* command, bool create) {
    CLI::Option* options[] = {
        command->add_option("--platform", a->platform,
                            "ec2, ecs, eks, fargate, agentcore or other"),
        command->add_option("--region", a->region, "The region it runs in"),
        command->add_option("--account", a->account, "The buyer account it runs in")};
    if (create) {
      for (CLI::Option* option : options) option->required();
    }
  };

  CLI::App* get = c->Leaf(workloads, "get", "Show one workload",
                          [c, path] { return c->Run("GET", path(), std::nullopt, Detail()); });
  get->add_option("ID", a->id, "Workload id (instance id, task ARN, ...)")->required();

  CLI::App* create = c->Leaf(workloads, "create", "Create a workload", [c, body] {
    return c->Run("POST", "/v1/workloads", body(true).Build(), Detail());
  });
  create->add_option("--id", a->id, "Workload id (instance id, task ARN, ...)")->required();
  add_fields(create, true);

  CLI::App* update =
      c->Leaf(workloads, "update", "Change the fields given of a workload", [c, path, body] {
        Body b = body(false);
        if (b.empty()) {
          return UsageFail("nothing to update: give --platform, --region or --account");
        }
        return c->Run("PATCH", path(), b.Build(), Detail());
      });
  update->add_option("ID", a->id, "Workload id")->required();
  add_fields(update, false);

  CLI::App* del = c->Leaf(workloads, "delete", "Delete a workload", [c, a, path] {
    return c->Run("DELETE", path(), std::nullopt, Message("deleted workload " + a->id));
  });
  del->add_option("ID", a->id, "Workload id")->required();

  CLI::App* stop =
      c->Leaf(workloads, "stop", "The task stopped now: end its metered run",
              [c, path] { return c->Run("POST", path() + "/stop", Value::Object({}), Detail()); });
  stop->add_option("ID", a->id, "Workload id")->required();
}

// --- products and dimensions ---------------------------------------------------------------

// NAME[:UNIT[:PRICE]] -> {"name", "unit"?, "pricePerUnit"?}.
Result<Value> ParseDimensionSpec(const std::string& spec) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() < 2) {
    size_t colon = spec.find(':', start);
    if (colon == std::string::npos) break;
    parts.push_back(spec.substr(start, colon - start));
    start = colon + 1;
  }
  parts.push_back(spec.substr(start));
  if (parts[0].empty()) {
    return Status(StatusCode::kInvalidArgument, "--dimension " + spec + ": no name");
  }
  Body b;
  b.Str("name", parts[0]);
  if (parts.size() > 1 && !parts[1].empty()) b.Str("unit", parts[1]);
  if (parts.size() > 2 && !parts[2].empty()) {
    auto price = json::Parse(parts[2]);
    if (!price.ok() || !price->is_number()) {
      return Status(StatusCode::kInvalidArgument,
                    "--dimension " + spec + ": the price is not a number: " + parts[2]);
    }
    b.Num("pricePerUnit", parts[2]);
  }
  return b.Build();
}

void AddProducts(CLI::App* app, Ctl* c) {
  CLI::App* products = app->add_subcommand("products", "Products and their dimensions");
  products->require_subcommand(1);
  c->Leaf(products, "list", "List products", [c] {
    return c->Run("GET", "/v1/products", std::nullopt, List("products", "products"));
  });

  struct Args {
    std::string code;
    std::optional<std::string> seller, kind, integration, hourly_dimension;
    std::vector<std::string> dimensions;
  };
  auto a = std::make_shared<Args>();
  auto path = [a] { return "/v1/products/" + Enc(a->code); };
  // The body, or a usage error (exit code) in *rc.
  auto body = [a](bool create, int* rc) {
    Body b;
    if (create) b.Str("code", a->code);
    b.Str("seller", a->seller).Str("kind", a->kind).Str("integration", a->integration);
    if (create || !a->dimensions.empty()) {
      std::vector<Value> dimensions;
      for (const std::string& spec : a->dimensions) {
        auto dimension = ParseDimensionSpec(spec);
        if (!dimension.ok()) {
          *rc = UsageFail(dimension.status().message());
          return b;
        }
        dimensions.push_back(std::move(dimension).value());
      }
      b.Raw("dimensions", Value::Array(std::move(dimensions)));
    }
    b.Str("hourlyDimension", a->hourly_dimension);
    return b;
  };
  auto add_fields = [a](CLI::App* command, bool create) {
    auto* seller = command->add_option("--seller", a->seller, "The seller account id");
    auto* kind = command->add_option("--kind", a->kind, "saas, ami or container");
    command->add_option("--integration", a->integration, "legacy or concurrent-agreements");
    command->add_option("--dimension", a->dimensions,
                        "NAME[:UNIT[:PRICE]] (repeatable)" +
                            std::string(create ? "" : "; replaces all the dimensions"));
    command->add_option("--hourly-dimension", a->hourly_dimension,
                        "Container products: the dimension task hours are metered on");
    if (create) {
      seller->required();
      kind->required();
    }
  };

  CLI::App* get = c->Leaf(products, "get", "Show one product",
                          [c, path] { return c->Run("GET", path(), std::nullopt, Detail()); });
  get->add_option("CODE", a->code, "Product code")->required();

  CLI::App* create = c->Leaf(products, "create", "Create a product", [c, body] {
    int rc = ctl::kExitOk;
    Body b = body(true, &rc);
    if (rc != ctl::kExitOk) return rc;
    return c->Run("POST", "/v1/products", b.Build(), Detail());
  });
  create->add_option("--code", a->code, "Product code")->required();
  add_fields(create, true);

  CLI::App* update =
      c->Leaf(products, "update", "Change the fields given of a product", [c, path, body] {
        int rc = ctl::kExitOk;
        Body b = body(false, &rc);
        if (rc != ctl::kExitOk) return rc;
        if (b.empty()) {
          return UsageFail(
              "nothing to update: give --seller, --kind, --integration, "
              "--dimension or --hourly-dimension");
        }
        return c->Run("PATCH", path(), b.Build(), Detail());
      });
  update->add_option("CODE", a->code, "Product code")->required();
  add_fields(update, false);

  CLI::App* del = c->Leaf(products, "delete", "Delete a product", [c, a, path] {
    return c->Run("DELETE", path(), std::nullopt, Message("deleted product " + a->code));
  });
  del->add_option("CODE", a->code, "Product code")->required();
}

void AddDimensions(CLI::App* app, Ctl* c) {
  CLI::App* dimensions = app->add_subcommand("dimensions", "The dimensions of a product");
  dimensions->require_subcommand(1);
  struct Args {
    std::string product, name;
    std::optional<std::string> unit, description, price;
  };
  auto a = std::make_shared<Args>();
  auto fields = [a](Body* b) {
    b->Str("unit", a->unit).Str("description", a->description).Num("pricePerUnit", a->price);
  };
  auto add_fields = [a](CLI::App* command) {
    command->add_option("--unit", a->unit, "Unit (Requests, Hours, GB, ...)");
    command->add_option("--description", a->description, "Description");
    command->add_option("--price", a->price, "Price per unit (a decimal number)")->check(kNumber);
  };
  auto path = [a] { return "/v1/products/" + Enc(a->product) + "/dimensions"; };

  CLI::App* add = c->Leaf(dimensions, "add", "Add a dimension to a product", [c, a, fields, path] {
    Body b;
    b.Str("name", a->name);
    fields(&b);
    return c->Run("POST", path(), b.Build(), Detail());
  });
  add->add_option("PRODUCT", a->product, "Product code")->required();
  add->add_option("--name", a->name, "Dimension name")->required();
  add_fields(add);

  CLI::App* update =
      c->Leaf(dimensions, "update", "Change the fields given of a dimension", [c, a, fields, path] {
        Body b;
        fields(&b);
        if (b.empty()) {
          return UsageFail("nothing to update: give --unit, --description or --price");
        }
        return c->Run("PATCH", path() + "/" + Enc(a->name), b.Build(), Detail());
      });
  update->add_option("PRODUCT", a->product, "Product code")->required();
  update->add_option("NAME", a->name, "Dimension name")->required();
  add_fields(update);

  CLI::App* del = c->Leaf(dimensions, "delete", "Delete a dimension", [c, a, path] {
    return c->Run("DELETE", path() + "/" + Enc(a->name), std::nullopt,
                  Message("deleted dimension " + a->name + " of product " + a->product));
  });
  del->add_option("PRODUCT", a->product, "Product code")->required();
  del->add_option("NAME", a->name, "Dimension name")->required();
}

// --- signing keys --------------------------------------------------------------------------

// `keys export --format pem`: the publicKeyPem of one version (default: the highest) from the
// key list.
int ExportPem(Ctl* c, const std::string& product, const std::optional<int64_t>& version) {
  Value body;
  std::string raw;
  int rc = c->Fetch("GET", "/v1/products/" + Enc(product) + "/keys", std::nullopt, &body, &raw);
  if (rc != ctl::kExitOk) return rc;
  const std::vector<Value>* keys = ctl::ListItems(body, "keys");
  if (keys == nullptr) return Fail("UnexpectedAnswer", "the key list is not a list", 6);
  const Value* chosen = nullptr;
  int64_t chosen_version = 0;
  for (const Value& key : *keys) {
    const Value* v = key.is_object() ? key.Find("version") : nullptr;
    int64_t n = 0;
    if (v == nullptr || !v->GetInt64(&n)) continue;
    if (version.has_value() ? n == *version : (chosen == nullptr || n > chosen_version)) {
      chosen = &key;
      chosen_version = n;
    }
  }
  if (chosen == nullptr) {
    return Fail("NotFound",
                "product " + product + " has no signing key" +
                    (version.has_value() ? " version " + std::to_string(*version) : ""),
                ctl::kExitNotFound);
  }
  const Value* pem = chosen->Find("publicKeyPem");
  if (pem == nullptr || !pem->is_string()) {
    return Fail("UnexpectedAnswer",
                "key version " + std::to_string(chosen_version) + " has no publicKeyPem",
                ctl::kExitUnavailable);
  }
  std::cout << pem->text();
  if (!pem->text().empty() && pem->text().back() != '\n') std::cout << '\n';
  return ctl::kExitOk;
}

void AddKeys(CLI::App* app, Ctl* c) {
  CLI::App* keys = app->add_subcommand("keys", "Signing keys of container products");
  keys->require_subcommand(1);
  struct Args {
    std::string product;
    std::string private_key_file;
    int64_t version = 0;
    std::optional<int64_t> export_version;
    std::string format = "pem";
  };
  auto a = std::make_shared<Args>();
  auto path = [a] { return "/v1/products/" + Enc(a->product) + "/keys"; };

  CLI::App* list = c->Leaf(keys, "list", "List key versions", [c, path] {
    return c->Run("GET", path(), std::nullopt, List("keys", "keys"));
  });
  list->add_option("PRODUCT", a->product, "Product code")->required();

  CLI::App* create = c->Leaf(keys, "create", "Create the next key version", [c, a, path] {
    Body b;
    if (!a->private_key_file.empty()) {
      std::string pem;
      if (!ReadFile(a->private_key_file, &pem)) {
        return UsageFail("cannot read " + a->private_key_file);
      }
      b.Str("privateKeyPem", pem);
    }
    return c->Run("POST", path(), b.Build(), Detail());
  });
  create->add_option("PRODUCT", a->product, "Product code")->required();
  create->add_option("--private-key-file", a->private_key_file,
                     "Import this RSA private key (PEM) instead of generating one");

  CLI::App* expire =
      c->Leaf(keys, "expire", "Mark a key version expired now (it still signs)", [c, a, path] {
        return c->Run("POST", path() + "/" + std::to_string(a->version) + "/expire",
                      Value::Object({}), Detail());
      });
  expire->add_option("PRODUCT", a->product, "Product code")->required();
  expire->add_option("VERSION", a->version, "Key version")->required();

  CLI::App* export_cmd = c->Leaf(keys, "export", "Print public keys (PEM or JWKS)", [c, a] {
    if (a->format == "jwks") {
      if (a->export_version.has_value()) return UsageFail("--version goes with --format pem");
      return c->Run("GET", "/v1/products/" + Enc(a->product) + "/jwks", std::nullopt,
                    [](const Value& body) { std::cout << ctl::PrettyJson(body); });
    }
    return ExportPem(c, a->product, a->export_version);
  });
  export_cmd->add_option("PRODUCT", a->product, "Product code")->required();
  export_cmd->add_option("--version", a->export_version, "Key version (pem; default: the latest)");
  export_cmd->add_option("--format", a->format, "pem or jwks")
      ->check(CLI::IsMember({"pem", "jwks"}))
      ->capture_default_str();
}

// --- subscriptions -------------------------------------------------------------------------

void AddSubscriptions(CLI::App* app, Ctl* c) {
  CLI::App* subscriptions =
      app->add_subcommand("subscriptions", "Subscriptions (agreements) of buyers to products");
  subscriptions->require_subcommand(1);
  struct Args {
    std::string id, account, product;
    std::optional<std::string> license_arn, start, end, status;
    std::optional<bool> free_trial;
  };
  auto a = std::make_shared<Args>();
  auto path = [a] { return "/v1/subscriptions/" + Enc(a->id); };
  const std::string id_help = "Subscription id: the licenseArn, or ACCOUNT:PRODUCT";

  CLI::App* list = c->Leaf(subscriptions, "list", "List subscriptions", [c, a] {
    std::string path =
        ctl::WithQuery("/v1/subscriptions", {{"account", a->account}, {"product", a->product}});
    return c->Run("GET", path, std::nullopt, List("subscriptions", "subscriptions"));
  });
  list->add_option("--account", a->account, "Only this buyer account's");
  list->add_option("--product", a->product, "Only this product's");

  CLI::App* get = c->Leaf(subscriptions, "get", "Show one subscription",
                          [c, path] { return c->Run("GET", path(), std::nullopt, Detail()); });
  get->add_option("ID", a->id, id_help)->required();

  auto add_period = [a](CLI::App* command) {
    command->add_option("--start", a->start, "Start of the agreement (ISO 8601)");
    command->add_option("--end", a->end, "End of the agreement (ISO 8601)");
    command->add_flag("--free-trial", a->free_trial, "A free trial (--free-trial=false: not one)");
  };
  CLI::App* update =
      c->Leaf(subscriptions, "update", "Change the fields given of a subscription", [c, a, path] {
        Body b;
        b.Str("status", a->status).Str("start", a->start).Str("end", a->end);
        b.Bool("freeTrial", a->free_trial);
        if (b.empty()) {
          return UsageFail("nothing to update: give --status, --start, --end or --free-trial");
        }
        return c->Run("PATCH", path(), b.Build(), Detail());
      });
  update->add_option("ID", a->id, id_help)->required();
  update->add_option("--status", a->status, "active, unsubscribe-pending or unsubscribed");
  add_period(update);

  CLI::App* del = c->Leaf(subscriptions, "delete", "Delete a subscription", [c, a, path] {
    return c->Run("DELETE", path(), std::nullopt, Message("deleted subscription " + a->id));
  });
  del->add_option("ID", a->id, id_help)->required();

  CLI::App* subscribe = c->Leaf(app, "subscribe", "Subscribe a buyer account to a product", [c, a] {
    Body b;
    b.Str("account", a->account).Str("product", a->product).Str("licenseArn", a->license_arn);
    b.Str("start", a->start).Str("end", a->end).Bool("freeTrial", a->free_trial);
    return c->Run("POST", "/v1/subscriptions", b.Build(), Detail());
  });
  subscribe->add_option("--account", a->account, "Buyer account id")->required();
  subscribe->add_option("--product", a->product, "Product code")->required();
  subscribe->add_option("--license-arn", a->license_arn,
                        "LicenseArn (concurrent agreements; default: generated)");
  add_period(subscribe);

  CLI::App* unsubscribe =
      c->Leaf(app, "unsubscribe",
              "Unsubscribe now (unsubscribe-pending: records are accepted for 1 h more)", [c, a] {
                bool by_pair = !a->account.empty() || !a->product.empty();
                if (a->id.empty() == !by_pair) {
                  return UsageFail("give a subscription ID, or --account and --product (not both)");
                }
                if (by_pair && (a->account.empty() || a->product.empty())) {
                  return UsageFail("give both --account and --product");
                }
                std::string id = by_pair ? a->account + ":" + a->product : a->id;
                return c->Run("POST", "/v1/subscriptions/" + Enc(id) + "/unsubscribe",
                              Value::Object({}), Detail());
              });
  unsubscribe->add_option("ID", a->id, id_help);
  unsubscribe->add_option("--account", a->account, "Buyer account id (with --product)");
  unsubscribe->add_option("--product", a->product, "Product code (with --account)");
}

// --- registration tokens -------------------------------------------------------------------

void AddTokens(CLI::App* app, Ctl* c) {
  CLI::App* tokens = app->add_subcommand("tokens", "Registration tokens (ResolveCustomer)");
  tokens->require_subcommand(1);
  struct Args {
    std::string account, product, token;
    std::optional<std::string> license_arn;
  };
  auto a = std::make_shared<Args>();

  CLI::App* list = c->Leaf(tokens, "list", "List registration tokens", [c, a] {
    std::string path = ctl::WithQuery("/v1/registration-tokens",
                                      {{"account", a->account}, {"product", a->product}});
    return c->Run("GET", path, std::nullopt, List("tokens", "registrationTokens"));
  });
  list->add_option("--account", a->account, "Only this buyer account's");
  list->add_option("--product", a->product, "Only this product's");

  CLI::App* issue = c->Leaf(
      tokens, "issue", "Issue a registration token (table mode prints the token alone)", [c, a] {
        Body b;
        b.Str("product", a->product).Str("account", a->account).Str("licenseArn", a->license_arn);
        return c->Run("POST", "/v1/registration-tokens", b.Build(), [](const Value& body) {
          const Value* token = body.is_object() ? body.Find("token") : nullptr;
          if (token != nullptr && token->is_string()) {
            std::cout << token->text() << std::endl;
          } else {
            std::cout << ctl::RenderDetail(body);
          }
        });
      });
  issue->add_option("--product", a->product, "SaaS product code")->required();
  issue->add_option("--account", a->account, "Buyer account id")->required();
  issue->add_option("--license-arn", a->license_arn, "LicenseArn (concurrent agreements)");

  CLI::App* revoke = c->Leaf(tokens, "revoke", "Revoke a registration token", [c, a] {
    return c->Run("DELETE", "/v1/registration-tokens/" + Enc(a->token), std::nullopt,
                  Message("revoked the registration token"));
  });
  revoke->add_option("TOKEN", a->token, "The registration token")->required();
}

// --- regions -------------------------------------------------------------------------------

void AddRegions(CLI::App* app, Ctl* c) {
  CLI::App* regions = app->add_subcommand("regions", "Operations disabled per region");
  regions->require_subcommand(1);
  struct Args {
    std::string region;
    std::vector<std::string> operations;
  };
  auto a = std::make_shared<Args>();
  c->Leaf(regions, "list", "List regions with disabled operations",
          [c] { return c->Run("GET", "/v1/regions", std::nullopt, List("regions", "regions")); });

  CLI::App* disable =
      c->Leaf(regions, "disable", "Disable operations in a region (replaces its list)", [c, a] {
        return c->Run("PUT", "/v1/regions/" + Enc(a->region),
                      Body().StrList("operations", a->operations).Build(), Detail());
      });
  disable->add_option("REGION", a->region, "Region (us-east-1, ...)")->required();
  disable
      ->add_option("--operation", a->operations,
                   "BatchMeterUsage, MeterUsage, RegisterUsage or ResolveCustomer (repeatable)")
      ->required();

  CLI::App* enable = c->Leaf(regions, "enable", "Enable every operation in a region", [c, a] {
    return c->Run("DELETE", "/v1/regions/" + Enc(a->region), std::nullopt,
                  Message("enabled every operation in " + a->region));
  });
  enable->add_option("REGION", a->region, "Region")->required();
}

// --- settings ------------------------------------------------------------------------------

void AddSettings(CLI::App* app, Ctl* c) {
  CLI::App* settings =
      app->add_subcommand("settings", "Windows, token TTL and throttling, changed at run time");
  settings->require_subcommand(1);
  c->Leaf(settings, "get", "Show the effective settings",
          [c] { return c->Run("GET", "/v1/settings", std::nullopt, Detail()); });

  struct Field {
    const char* flag;
    const char* key;
    const char* help;
    std::optional<std::string> value;
  };
  struct Args {
    std::vector<Field> top = {
        {"--batch-window-hours", "batchWindowHours", "BatchMeterUsage: how far back (D1)", {}},
        {"--batch-month-grace-hours",
         "batchMonthGraceHours",
         "BatchMeterUsage: hours into a month that the previous one is accepted",
         {}},
        {"--meter-usage-window-hours",
         "meterUsageWindowHours",
         "MeterUsage: how far back (D1)",
         {}},
        {"--future-skew-minutes", "futureSkewMinutes", "How far ahead of now a record may be", {}},
        {"--token-ttl-hours", "tokenTtlHours", "How long a registration token resolves (D12)", {}},
        {"--audit-retention-days", "auditRetentionDays", "How long audit events are kept", {}},
    };
    std::vector<Field> throttle = {
        {"--throttle-batch-meter-usage", "batchMeterUsage", "BatchMeterUsage requests/s", {}},
        {"--throttle-meter-usage", "meterUsage", "MeterUsage requests/s", {}},
        {"--throttle-register-usage", "registerUsage", "RegisterUsage requests/s", {}},
        {"--throttle-resolve-customer", "resolveCustomer", "ResolveCustomer requests/s", {}},
        {"--throttle-burst-seconds", "burstSeconds", "A full bucket holds this many seconds", {}},
    };
    std::optional<std::string> throttle_enabled;
  };
  auto a = std::make_shared<Args>();
  CLI::App* set = c->Leaf(settings, "set", "Change the settings given (durably)", [c, a] {
    Body b;
    for (const Field& f : a->top) b.Num(f.key, f.value);
    Body throttle;
    if (a->throttle_enabled.has_value()) throttle.Bool("enabled", *a->throttle_enabled == "on");
    for (const Field& f : a->throttle) throttle.Num(f.key, f.value);
    if (!throttle.empty()) b.Raw("throttle", throttle.Build());
    if (b.empty()) return UsageFail("nothing to set: see meterctl settings set --help");
    return c->Run("PATCH", "/v1/settings", b.Build(), Detail());
  });
  for (Field& f : a->top) set->add_option(f.flag, f.value, f.help)->check(kNumber);
  set->add_option("--throttle", a->throttle_enabled, "Throttling (D14): on or off")
      ->check(CLI::IsMember({"on", "off"}));
  for (Field& f : a->throttle) set->add_option(f.flag, f.value, f.help)->check(kNumber);
}

// --- clock ---------------------------------------------------------------------------------

void AddClock(CLI::App* app, Ctl* c) {
  CLI::App* clock =
      app->add_subcommand("clock", "The test clock (meterd serve --clock manual only)");
  clock->require_subcommand(1);
  c->Leaf(clock, "get", "Show the clock mode and time",
          [c] { return c->Run("GET", "/v1/clock", std::nullopt, Detail()); });

  auto time = std::make_shared<std::string>();
  CLI::App* set = c->Leaf(clock, "set", "Move the clock forward to TIME", [c, time] {
    if (!meterd::ParseIso8601(*time).has_value()) {
      return UsageFail("not an ISO 8601 time: " + *time + " (like 2026-11-26T12:00:00Z)");
    }
    return c->Run("PUT", "/v1/clock", Body().Str("now", *time).Build(), Detail());
  });
  set->add_option("TIME", *time, "ISO 8601 time, like 2026-11-26T12:00:00Z")->required();

  auto duration = std::make_shared<std::string>();
  CLI::App* advance =
      c->Leaf(clock, "advance", "Move the clock forward by DURATION", [c, duration] {
        std::optional<int64_t> seconds = ctl::ParseDurationSeconds(*duration);
        if (!seconds.has_value()) {
          return UsageFail("not a duration: " + *duration +
                           " (seconds, or like 90s, 15m, 2h, 1h30m, 3d)");
        }
        return c->Run("POST", "/v1/clock/advance",
                      Body().Raw("seconds", Value::Number(std::to_string(*seconds))).Build(),
                      Detail());
      });
  advance->add_option("DURATION", *duration, "Seconds, or like 90s, 15m, 2h, 1h30m, 3d")
      ->required();
}

// --- faults --------------------------------------------------------------------------------

void AddFaults(CLI::App* app, Ctl* c) {
  CLI::App* faults = app->add_subcommand("faults", "Fault injection (in memory)");
  faults->require_subcommand(1);
  c->Leaf(faults, "list", "List the fault rules and their counts",
          [c] { return c->Run("GET", "/v1/faults", std::nullopt, List("faults", "rules")); });

  struct Args {
    std::string operation, caller;
    std::optional<std::string> throttle_rate, internal_error_rate, unprocessed_rate, latency_ms,
        seed;
  };
  auto a = std::make_shared<Args>();
  CLI::App* set = c->Leaf(
      faults, "set", "Set the rule of an operation (and caller); replaces the same one", [c, a] {
        Body b;
        b.Str("operation", a->operation);
        if (!a->caller.empty()) b.Str("caller", a->caller);
        b.Num("throttleRate", a->throttle_rate)
            .Num("internalErrorRate", a->internal_error_rate)
            .Num("unprocessedRate", a->unprocessed_rate)
            .Num("latencyMs", a->latency_ms)
            .Num("seed", a->seed);
        return c->Run("POST", "/v1/faults", b.Build(), List("faults", "rules"));
      });
  set->add_option("--operation", a->operation,
                  "BatchMeterUsage, MeterUsage, RegisterUsage or ResolveCustomer")
      ->required();
  set->add_option("--caller", a->caller, "Only this caller: an access key id or an account id");
  set->add_option("--throttle-rate", a->throttle_rate, "Share answered ThrottlingException")
      ->check(kNumber);
  set->add_option("--internal-error-rate", a->internal_error_rate,
                  "Share answered InternalServiceErrorException")
      ->check(kNumber);
  set->add_option("--unprocessed-rate", a->unprocessed_rate,
                  "BatchMeterUsage: share of records put into UnprocessedRecords")
      ->check(kNumber);
  set->add_option("--latency-ms", a->latency_ms, "Delay every matched answer")->check(kInteger);
  set->add_option("--seed", a->seed, "Seed of the rule's generator (repeatable tests)")
      ->check(kInteger);

  CLI::App* clear = c->Leaf(
      faults, "clear", "Clear every rule, or the rule of --operation (and --caller)", [c, a] {
        if (!a->caller.empty() && a->operation.empty()) {
          return UsageFail("--caller goes with --operation");
        }
        std::string path =
            ctl::WithQuery("/v1/faults", {{"operation", a->operation}, {"caller", a->caller}});
        return c->Run(
            "DELETE", path, std::nullopt,
            Message(a->operation.empty() ? "cleared every fault rule" : "cleared the fault rule"));
      });
  clear->add_option("--operation", a->operation, "The operation of the rule to clear");
  clear->add_option("--caller", a->caller, "The caller of the rule to clear");
}

// --- audit trail (D17) -----------------------------------------------------------------------

void AddAudit(CLI::App* app, Ctl* c) {
  CLI::App* audit = app->add_subcommand(
      "audit", "The audit trail: every metering API call and admin change (CloudTrail-shaped)");
  audit->require_subcommand(1);
  struct Filters {
    std::string event_name, event_source, from, to, account, access_key, error_code, cursor;
    std::string out;
    int limit = 0;
    std::vector<std::pair<std::string, std::string>> Params() const {
      return {{"eventName", event_name},
              {"eventSource", event_source},
              {"from", from},
              {"to", to},
              {"account", account},
              {"accessKey", access_key},
              {"errorCode", error_code},
              {"cursor", cursor},
              {"limit", limit > 0 ? std::to_string(limit) : ""}};
    }
  };
  auto a = std::make_shared<Filters>();
  auto add_filters = [a](CLI::App* command) {
    command->add_option("--event-name", a->event_name, "An event name (MeterUsage, ...)");
    command->add_option("--event-source", a->event_source,
                        "metering-marketplace.amazonaws.com or meterd-admin");
    command->add_option("--from", a->from, "Events at or after this time (RFC 3339)");
    command->add_option("--to", a->to, "Events before this time (RFC 3339)");
    command->add_option("--account", a->account, "The caller's account");
    command->add_option("--access-key", a->access_key, "The caller's access key id");
    command->add_option("--error-code", a->error_code,
                        "An error code (ThrottlingException, ...), or any: failed calls only");
    command->add_option("--cursor", a->cursor, "Continue where an earlier answer stopped");
  };
  CLI::App* lookup =
      c->Leaf(audit, "lookup", "Events that match the filters, newest first", [c, a]() -> int {
        Value parsed;
        std::string raw;
        int rc = c->Fetch("GET", ctl::WithQuery("/v1/audit/events", a->Params()), std::nullopt,
                          &parsed, &raw);
        if (rc != ctl::kExitOk) return rc;
        if (c->g.output == "json") {
          Ctl::PrintBody(parsed, raw);
          return ctl::kExitOk;
        }
        List("audit events", "events")(parsed);
        if (const Value* next = parsed.is_object() ? parsed.Find("nextCursor") : nullptr;
            next != nullptr && next->is_string()) {
          std::cerr << "more: --cursor " << next->text() << std::endl;
        }
        return ctl::kExitOk;
      });
  add_filters(lookup);
  lookup->add_option("--limit", a->limit, "Events per answer (default 100, at most 1000)")
      ->check(CLI::Range(1, 1000));

  CLI::App* export_cmd = c->Leaf(
      audit, "export", "Every matching event as JSON Lines, newest first (stdout or --out)",
      [c, a]() -> int {
        std::ofstream file;
        if (!a->out.empty()) {
          file.open(a->out, std::ios::binary | std::ios::trunc);
          if (!file) return UsageFail("cannot write " + a->out);
        }
        std::ostream& out = a->out.empty() ? std::cout : file;
        // The server answers a page at a time; X-Meterd-Next-Cursor says where to go on.
        Filters page = *a;
        while (true) {
          std::string next;
          int rc =
              c->FetchRaw("GET", ctl::WithQuery("/v1/audit/export", page.Params()), &out, &next);
          if (rc != ctl::kExitOk) return rc;
          if (next.empty()) break;
          page.cursor = next;
        }
        out.flush();
        return out ? ctl::kExitOk : Fail("IoError", "cannot write the export", ctl::kExitUsage);
      });
  add_filters(export_cmd);
  export_cmd->add_option("--out", a->out, "Write to this file instead of stdout");
}

}  // namespace

// --- usage and reports (docs/REPORTS.md) ---------------------------------------------------

// Ledger records: `usage list` (a page; --cursor for the next) and `usage export` (streamed).
void AddUsage(CLI::App* app, Ctl* c) {
  CLI::App* usage = app->add_subcommand("usage", "Accepted usage records of the ledger");
  usage->require_subcommand(1);
  struct Args {
    std::string product, customer, account, license, workload, dimension, from, to, status;
    std::string limit, cursor, format = "csv", out = "-";
  };
  auto a = std::make_shared<Args>();
  auto filters = [a] {
    return std::vector<std::pair<std::string, std::string>>{
        {"product", a->product},   {"customer", a->customer},
        {"account", a->account},   {"license", a->license},
        {"workload", a->workload}, {"dimension", a->dimension},
        {"from", a->from},         {"to", a->to},
        {"status", a->status}};
  };
  auto add_filters = [a](CLI::App* command) {
    command->add_option("--product", a->product, "Product code");
    command->add_option("--customer", a->customer, "CustomerIdentifier");
    command->add_option("--account", a->account, "Buyer account id");
    command->add_option("--license", a->license, "LicenseArn");
    command->add_option("--workload", a->workload, "Workload id (MeterUsage, task metering)");
    command->add_option("--dimension", a->dimension, "Dimension");
    command->add_option("--from", a->from, "Usage timestamps from (RFC 3339, inclusive)");
    command->add_option("--to", a->to, "Usage timestamps to (RFC 3339, exclusive)");
    command->add_option("--status", a->status, "Success (the ledger holds accepted records)");
  };
  CLI::App* list =
      c->Leaf(usage, "list", "One page of records, oldest usage first", [c, a, filters] {
        auto params = filters();
        params.emplace_back("limit", a->limit);
        params.emplace_back("cursor", a->cursor);
        return c->Run(
            "GET", ctl::WithQuery("/v1/usage", params), std::nullopt, [](const Value& body) {
              const std::vector<Value>* rows = ctl::ListItems(body, "records");
              if (rows == nullptr || rows->empty()) {
                std::cerr << "no records" << std::endl;
              } else {
                std::cout << ctl::RenderTable(
                    *rows, {ctl::Field("TIMESTAMP", "timestamp"), ctl::Field("PRODUCT", "product"),
                            ctl::Field("ACCOUNT", "customerAccount"),
                            ctl::Field("CUSTOMER", "customerIdentifier"),
                            ctl::Field("DIMENSION", "dimension"),
                            ctl::Field("QUANTITY", "quantity"), ctl::Field("UNIT", "unit"),
                            ctl::Field("SOURCE", "source"), ctl::Field("RECORD ID", "recordId")});
              }
              if (const Value* next = body.Find("nextCursor");
                  next != nullptr && next->is_string()) {
                std::cerr << "more: --cursor " << next->text() << std::endl;
              }
            });
      });
  add_filters(list);
  list->add_option("--limit", a->limit, "Records per page (1-1000, default 100)");
  list->add_option("--cursor", a->cursor, "The nextCursor of the previous page");

  CLI::App* exp = c->Leaf(usage, "export", "Every matching record, streamed as CSV or JSON Lines",
                          [c, a, filters] {
                            auto params = filters();
                            params.emplace_back("format", a->format);
                            return c->Download(ctl::WithQuery("/v1/usage/export", params), a->out);
                          });
  add_filters(exp);
  exp->add_option("--format", a->format, "csv or jsonl")
      ->check(CLI::IsMember({"csv", "jsonl"}))
      ->capture_default_str();
  exp->add_option("--out", a->out, "File to write (- : stdout)")->capture_default_str();
}

// Aggregates from the rollups: `report usage` (JSON or a table) and `report export` (streamed).
void AddReports(CLI::App* app, Ctl* c) {
  CLI::App* report = app->add_subcommand("report", "Usage totals per hour, day or month");
  report->require_subcommand(1);
  struct Args {
    std::string granularity = "day", from, to, group_by, product, account, dimension;
    std::string format = "csv", out = "-";
  };
  auto a = std::make_shared<Args>();
  auto params = [a] {
    return std::vector<std::pair<std::string, std::string>>{
        {"granularity", a->granularity}, {"from", a->from},       {"to", a->to},
        {"groupBy", a->group_by},        {"product", a->product}, {"account", a->account},
        {"dimension", a->dimension}};
  };
  auto add_options = [a](CLI::App* command) {
    command->add_option("--granularity", a->granularity, "hour, day or month")
        ->check(CLI::IsMember({"hour", "day", "month"}))
        ->capture_default_str();
    command->add_option("--from", a->from, "Periods starting from (RFC 3339, inclusive)");
    command->add_option("--to", a->to, "Periods starting before (RFC 3339, exclusive)");
    command->add_option("--group-by", a->group_by,
                        "Comma list of product, customer, dimension, tag:KEY (default "
                        "product,customer,dimension)");
    command->add_option("--product", a->product, "Only this product");
    command->add_option("--account", a->account, "Only this buyer account");
    command->add_option("--dimension", a->dimension, "Only this dimension");
  };
  CLI::App* usage =
      c->Leaf(report, "usage", "Totals (with billed amounts of priced dimensions)", [c, params] {
        return c->Run(
            "GET", ctl::WithQuery("/v1/reports/usage", params()), std::nullopt,
            [](const Value& body) {
              const std::vector<Value>* rows = ctl::ListItems(body, "rows");
              if (rows == nullptr || rows->empty()) {
                std::cerr << "no usage" << std::endl;
              } else {
                std::cout << ctl::RenderTable(
                    *rows,
                    {ctl::Field("PERIOD", "period"), ctl::Field("PRODUCT", "product"),
                     ctl::Field("ACCOUNT", "customerAccount"), ctl::Field("DIMENSION", "dimension"),
                     ctl::Field("TAG", "tag.key"), ctl::Field("VALUE", "tag.value"),
                     ctl::Field("QUANTITY", "quantity"), ctl::Field("UNIT", "unit"),
                     ctl::Field("AMOUNT", "amount"), ctl::Field("RECORDS", "records")});
              }
              if (const Value* totals = body.Find("totals")) {
                std::cout << "total: " << ctl::CellText(totals->Find("quantity"));
                if (const Value* s = totals->Find("seconds")) {
                  std::cout << " (and " << ctl::CellText(s) << " task seconds)";
                }
                if (const Value* amount = totals->Find("amount")) {
                  std::cout << ", amount " << ctl::CellText(amount);
                }
                std::cout << std::endl;
              }
            });
      });
  add_options(usage);
  CLI::App* exp =
      c->Leaf(report, "export", "The totals, streamed as CSV or JSON Lines", [c, a, params] {
        auto p = params();
        p.emplace_back("format", a->format);
        return c->Download(ctl::WithQuery("/v1/reports/usage/export", p), a->out);
      });
  add_options(exp);
  exp->add_option("--format", a->format, "csv or jsonl")
      ->check(CLI::IsMember({"csv", "jsonl"}))
      ->capture_default_str();
  exp->add_option("--out", a->out, "File to write (- : stdout)")->capture_default_str();
}

int main(int argc, char** argv) {
  CLI::App app{"meterctl: manage a meterd server through its admin API (docs/CONTROL-PLANE.md)",
               "meterctl"};
  // Set before the subcommands are added, which inherit them: global options anywhere on the
  // line, and a pointer to them at the end of every --help.
  app.fallthrough();
  app.footer(
      "Global options (--endpoint, --token, --token-file, --data, -o, --timeout) and exit "
      "codes: meterctl --help");
  app.require_subcommand(1);

  Ctl c;
  app.add_option("--endpoint", c.g.endpoint, "Admin API URL")
      ->envname("METERD_ADMIN_URL")
      ->capture_default_str();
  auto* token = app.add_option("--token", c.g.token, "Admin token (env METERD_ADMIN_TOKEN)");
  auto* token_file = app.add_option("--token-file", c.g.token_file, "Read the admin token here");
  auto* data = app.add_option("--data", c.g.data_dir, "meterd's data directory: DIR/admin-token");
  token->excludes(token_file)->excludes(data);
  token_file->excludes(data);
  app.add_option("-o,--output", c.g.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--timeout", c.g.timeout_seconds, "Seconds to wait for an answer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  AddCatalog(&app, &c);
  AddAccounts(&app, &c);
  AddCredentials(&app, &c);
  AddWorkloads(&app, &c);
  AddProducts(&app, &c);
  AddDimensions(&app, &c);
  AddKeys(&app, &c);
  AddSubscriptions(&app, &c);
  AddTokens(&app, &c);
  AddRegions(&app, &c);
  AddSettings(&app, &c);
  AddClock(&app, &c);
  AddFaults(&app, &c);
  AddAudit(&app, &c);
  AddUsage(&app, &c);
  AddReports(&app, &c);
  app.footer(kFooter);  // after the subcommands: the whole text on the top level only

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help (and its kind) exits 0; every other parse error is a usage error: 2.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "meterctl: UsageError: " << e.what() << "\n"
              << "Run with --help for more information." << std::endl;
    return ctl::kExitUsage;
  }
  if (!c.action) return UsageFail("no command given; see meterctl --help");
  return c.action();
}
