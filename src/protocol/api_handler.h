// ApiHandler: the metering API on the wire (awsJson1_1). Order of work for every request, as
// docs/BEHAVIOUR-DECISIONS.md lists it: route, SigV4, operation, JSON, model validation, caller,
// then the MeteringService. Thread-safe; holds no per-request state.
#pragma once

#include <functional>

#include "auth/sigv4.h"
#include "catalog/catalog.h"
#include "http/http_server.h"
#include "metering/service.h"
#include "model/service_model.h"

namespace meterd::protocol {

class ApiHandler final : public http::HttpHandler {
 public:
  // None of the pointers is owned; all must outlive the handler.
  ApiHandler(const catalog::CatalogHolder* catalog, const auth::SigV4Verifier* verifier,
             metering::MeteringService* service, const model::ServiceModel* model)
      : catalog_(catalog), verifier_(verifier), service_(service), model_(model) {}

  void Handle(HttpRequest request, http::Responder respond) override;
  HttpResponse Reject(http::RejectReason reason) override;

 private:
  const catalog::CatalogHolder* catalog_;
  const auth::SigV4Verifier* verifier_;
  metering::MeteringService* service_;
  const model::ServiceModel* model_;
};

}  // namespace meterd::protocol
