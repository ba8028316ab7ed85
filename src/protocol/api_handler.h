// ApiHandler: the metering API on the wire (awsJson1_1). Order of work for every request, as
// docs/BEHAVIOUR-DECISIONS.md lists it: route, SigV4, operation, JSON, model validation, caller,
// then the MeteringService. Thread-safe; holds no per-request state but the answers that fault
// injection delays (see StopDelays).
#pragma once

#include <functional>
#include <memory>

#include "auth/sigv4.h"
#include "catalog/catalog.h"
#include "http/http_server.h"
#include "keys/signing_keys.h"
#include "metering/faults.h"
#include "metering/service.h"
#include "metering/throttle.h"
#include "model/service_model.h"
#include "protocol/api_call.h"

namespace meterd::protocol {

// One call on its way to its answer (api_handler.cc).
struct PendingCall;

class ApiHandler final : public http::HttpHandler {
 public:
  // None of the pointers is owned; all must outlive the handler.
  // `keys` may be null (no /keys routes then); `throttler` may be null (no throttling);
  // `faults` may be null (no fault injection).
  ApiHandler(const catalog::CatalogHolder* catalog, const auth::SigV4Verifier* verifier,
             metering::MeteringService* service, const model::ServiceModel* model,
             keys::SigningKeyStore* keys, metering::Throttler* throttler,
             metering::FaultInjector* faults = nullptr)
      : catalog_(catalog),
        verifier_(verifier),
        service_(service),
        model_(model),
        keys_(keys),
        throttler_(throttler),
        faults_(faults) {}

  void Handle(HttpRequest request, http::Responder respond) override;
  // Reject answers at once and records the call's event without waiting; RejectAsync (what the
  // server uses) answers once the event is durable.
  HttpResponse Reject(http::RejectReason reason) override;
  void RejectAsync(http::RejectReason reason, http::Responder respond) override;

  // Hands every answer still delayed by fault injection to its responder now; later delays are
  // not waited for. Call it before the HTTP server stops (the responders post to its event
  // loops, which must still exist); the destructor does it too, as a last resort.
  void StopDelays() { delays_.Stop(); }

  // Every call, accepted or refused, is handed to `observer` once its response is built (see
  // api_call.h). Not owned; set it before the server starts; null (the default) observes nothing.
  void SetCallObserver(ApiCallObserver* observer) { observer_ = observer; }
  // The audit trail (D17): every call's event is durable before the call is answered (see
  // CallAuditor in api_call.h). Not owned; set it before the server starts; null: no audit. The
  // observer must not record the calls again.
  void SetCallAuditor(CallAuditor* auditor) { auditor_ = auditor; }

 private:
  // GET /keys/<product> (JWKS) and GET /keys/<product>/<version>.pem: public, no credentials.
  HttpResponse PublicKeys(std::string_view path, const std::string& request_id) const;
  // The response for a request that could not be read whole (Reject, before observing).
  static HttpResponse RejectResponse(http::RejectReason reason);
  // A new call to observe, or null when nothing observes or audits.
  std::shared_ptr<PendingCall> NewPendingCall() const;
  // Wraps `respond` so that the built response completes the call, whose audit event (unless
  // the call's store unit holds it already) is recorded before the response goes to the server,
  // where observer_ sees the call.
  http::Responder Observe(std::shared_ptr<PendingCall> p, http::Responder respond) const;

  const catalog::CatalogHolder* catalog_;
  const auth::SigV4Verifier* verifier_;
  metering::MeteringService* service_;
  const model::ServiceModel* model_;
  keys::SigningKeyStore* keys_;
  metering::Throttler* throttler_;
  metering::FaultInjector* faults_;
  ApiCallObserver* observer_ = nullptr;
  CallAuditor* auditor_ = nullptr;
  // Owned: latencyMs of a fault rule delays the answer here, never on an event loop.
  metering::DelayQueue delays_;
};

}  // namespace meterd::protocol
