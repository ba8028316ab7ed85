// Audit events (D17): one CloudTrail-shaped event per metering API call (accepted or refused) and
// per mutating admin API call, built from what the call was and how it ended. The event is JSON
// with CloudTrail's field names (docs/AUDIT.md); the store keeps it whole beside the columns the
// lookup filters use (store::AuditEventRow).
//
// Secrets never enter an event: request headers (Authorization, SigV4 signatures, the admin
// token) are never read here, admin bodies go through control::Redacted (secretAccessKey,
// sessionToken, privateKeyPem), bodies that do not parse as JSON are left out rather than copied,
// and RegisterUsage's Signature is replaced by kHidden. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "common/status.h"
#include "protocol/api_call.h"
#include "store/store.h"

namespace meterd::audit {

inline constexpr std::string_view kMeteringSource = "metering-marketplace.amazonaws.com";
inline constexpr std::string_view kAdminSource = "meterd-admin";
inline constexpr std::string_view kEventVersion = "1.08";
// What CloudTrail writes in place of a sensitive value.
inline constexpr std::string_view kHidden = "HIDDEN_DUE_TO_SECURITY_REASONS";

// The event of one metering API call. `event_time_ms` is when it happened on the server's clock
// (the test clock when there is one), `event_id` a fresh UUID.
store::AuditEventRow MeteringEvent(const protocol::ApiCall& call, int64_t event_time_ms,
                                   std::string event_id);

// The same event in two steps: what the call's answer does not change (who, when, what was asked:
// the request serialized once), prepared before the answer is known, then finished with the
// answer (responseElements, errorCode, errorMessage, additionalEventData) from the completed
// `call`. MeteringEvent(call, t, id) == FinishMeteringEvent(PrepareMeteringEvent(call, t, id),
// call), byte for byte.
struct PreparedMeteringEvent : protocol::PreparedAuditEvent {
  std::string head;          // `{` and every member up to requestParameters, each with its comma
  std::string tail;          // requestID and the members after it, and the closing `}`
  store::AuditEventRow row;  // every column but error_code and event_json
};
PreparedMeteringEvent PrepareMeteringEvent(const protocol::ApiCall& call, int64_t event_time_ms,
                                           std::string event_id);
store::AuditEventRow FinishMeteringEvent(const PreparedMeteringEvent& prepared,
                                         const protocol::ApiCall& call);

// The event of one admin API request and its answer. `authenticated` tells whether the bearer
// token was right (refused requests are recorded too, with the caller as "Unknown").
store::AuditEventRow AdminEvent(const HttpRequest& request, const HttpResponse& response,
                                bool authenticated, int64_t event_time_ms, std::string event_id);

// The admin event name of a request: "METHOD /v1/<path>" with the identifiers of objects
// replaced by "{id}" ("DELETE /v1/accounts/{id}", "POST /v1/products/{id}/dimensions").
std::string AdminEventName(std::string_view method, std::string_view target);

// Whether an admin request changes something (POST, PUT, PATCH, DELETE on /v1/...): those are
// audited, reads are not.
bool IsAuditedAdminRequest(std::string_view method, std::string_view target);

// The opaque cursor of a page that ended at `position`, and back. Decode refuses anything
// Encode did not make (kInvalidArgument).
std::string EncodeCursor(const store::AuditPosition& position);
Result<store::AuditPosition> DecodeCursor(std::string_view cursor);

}  // namespace meterd::audit
