// The admin API (docs/CONTROL-PLANE.md, docs/admin-api.openapi.yaml): JSON over HTTP on its own
// listener, every request authenticated with the bearer token. It turns requests into control
// plane changes (ControlPlane), fault-injection rules (FaultInjector) and clock moves; errors are
// {"code","message"} with the HTTP status of AdminError in admin_handler.cc, the one place that
// maps a Status to an admin error.
//
// Thread-safe. Handle blocks until a change is durable, so the admin listener runs on its own
// event loop, apart from the metering API's.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_trail.h"
#include "control/control_plane.h"
#include "http/http_server.h"
#include "json/json.h"
#include "keys/signing_keys.h"
#include "metering/faults.h"
#include "observability/ops_endpoints.h"
#include "reports/report.h"

namespace meterd::admin {

class AdminHandler final : public http::HttpHandler {
 public:
  // None of the pointers is owned; all must outlive the handler. `faults` may be null (fault
  // injection routes answer 404 then). `token` is the bearer token clients must present.
  AdminHandler(control::ControlPlane* control, keys::SigningKeyStore* signing_keys,
               metering::FaultInjector* faults, std::string token, std::string store_name)
      : control_(control),
        signing_keys_(signing_keys),
        faults_(faults),
        token_(std::move(token)),
        store_name_(std::move(store_name)) {}

  void Handle(HttpRequest request, http::Responder respond) override;
  HttpResponse Reject(http::RejectReason reason) override;

  // The request, routed and answered (exposed for unit tests; Handle calls it).
  HttpResponse Serve(const HttpRequest& request);

  // /healthz, /readyz (no token) and /metrics (token) go to `ops` (not owned; set before the
  // listener starts). Without it those paths are 404 like any unknown route.
  void SetOpsEndpoints(observability::OpsEndpoints* ops) { ops_ = ops; }

  // The audit trail (D17): Handle records every mutating request in it, and the /v1/audit
  // routes read it. Not owned; set before the listener starts. Without it /v1/audit is 404.
  void SetAuditTrail(audit::AuditTrail* audit) { audit_ = audit; }
  // --- Usage reports (docs/REPORTS.md): the ledger's reader and the catalog whose prices bill
  // the aggregates. Neither is owned; both must outlive the handler. Call before serving;
  // without it the /v1/usage and /v1/reports routes answer 404.
  void SetUsageReports(reports::UsageReader* reader, catalog::CatalogHolder* catalog) {
    usage_reader_ = reader;
    catalog_ = catalog;
  }

 private:
  struct Call;  // one parsed request
  HttpResponse Route(const Call& call);
  HttpResponse Collection(const Call& call, std::string_view collection);
  HttpResponse Credentials(const Call& call);
  HttpResponse Workloads(const Call& call);
  HttpResponse Products(const Call& call);
  HttpResponse SigningKeys(const Call& call, const std::string& code);
  HttpResponse Subscriptions(const Call& call);
  HttpResponse RegistrationTokens(const Call& call);
  HttpResponse Regions(const Call& call);
  HttpResponse SettingsRoute(const Call& call);
  HttpResponse Clock(const Call& call);
  HttpResponse Faults(const Call& call);
  HttpResponse StatusRoute(const Call& call);
  HttpResponse AuditRoute(const Call& call);
  bool Authorized(const HttpRequest& request) const;
  // --- Usage reports
  HttpResponse UsageRoute(const Call& call);
  HttpResponse ReportsRoute(const Call& call);

  control::ControlPlane* control_;
  keys::SigningKeyStore* signing_keys_;
  metering::FaultInjector* faults_;
  const std::string token_;
  const std::string store_name_;
  observability::OpsEndpoints* ops_ = nullptr;
  audit::AuditTrail* audit_ = nullptr;
  // --- Usage reports
  reports::UsageReader* usage_reader_ = nullptr;
  catalog::CatalogHolder* catalog_ = nullptr;
};

// Reads the admin token at `path`, or creates it (0600, 32 random bytes as hex) when the file
// does not exist; `*created` tells which, so that a new token is printed once.
Result<std::string> LoadOrCreateAdminToken(const std::string& path, bool* created);

}  // namespace meterd::admin
