#include "protocol/api_handler.h"

#include <string_view>

#include "common/clock.h"
#include "common/crypto.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

namespace meterd::protocol {

namespace {

std::string_view PathOf(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

}  // namespace

HttpResponse ApiHandler::Reject(http::RejectReason reason) {
  std::string request_id = RandomUuid();
  switch (reason) {
    case http::RejectReason::kBodyTooLarge:
      return ErrorResponse(Status(StatusCode::kRequestTooLarge,
                                  "Request body must be less than 1048576 bytes (1 MiB)."),
                           request_id);
    case http::RejectReason::kHeaderTooLarge:
      return ErrorResponse(
          Status(StatusCode::kRequestTooLarge, "Request headers must be less than 16 KiB."),
          request_id);
    case http::RejectReason::kMalformed:
      break;
  }
  HttpResponse r = ErrorResponse(
      Status(StatusCode::kSerialization, "The request is not a valid HTTP/1.1 request."),
      request_id);
  r.close_connection = true;
  return r;
}

void ApiHandler::Handle(HttpRequest request, http::Responder respond) {
  std::string request_id = RandomUuid();
  auto fail = [&](Status st) {
    respond([st = std::move(st), request_id] { return ErrorResponse(st, request_id); });
  };

  if (request.method != "POST" || PathOf(request.target) != "/") {
    return respond([request_id] {
      HttpResponse r = ErrorResponse(
          Status(StatusCode::kUnknownOperation, "Only POST / is served by this endpoint."),
          request_id);
      r.status = 404;
      return r;
    });
  }

  auth::RequestView view{request.method, request.target, &request.headers, request.body};
  Result<auth::VerifiedRequest> verified = verifier_->Verify(view, WallClockMillis());
  if (!verified.ok()) return fail(verified.status());

  const std::string* target = request.FindHeader("x-amz-target");
  std::string_view operation;
  if (target != nullptr) {
    std::string_view t = *target;
    const std::string& prefix = model_->target_prefix();
    if (t.size() > prefix.size() + 1 && t.substr(0, prefix.size()) == prefix &&
        t[prefix.size()] == '.') {
      operation = t.substr(prefix.size() + 1);
    }
  }
  if (operation.empty() || !model_->HasOperation(operation)) {
    return fail(Status(StatusCode::kUnknownOperation,
                       target == nullptr ? "Missing X-Amz-Target header."
                                         : "Unknown operation " + std::string(*target) + "."));
  }

  // An empty body is the empty input (Smithy awsJson).
  Result<json::Value> body = request.body.find_first_not_of(" \t\r\n") == std::string::npos
                                 ? Result<json::Value>(json::Value::Object({}))
                                 : json::Parse(request.body);
  if (!body.ok()) return fail(body.status());
  if (!body->is_object()) {
    return fail(Status(StatusCode::kSerialization, "The request body must be a JSON object."));
  }

  std::vector<model::Violation> violations;
  model_->ValidateInput(operation, *body, &violations);
  if (!violations.empty()) {
    bool only_tags = true;
    for (const auto& v : violations) only_tags = only_tags && v.in_tag;
    if (only_tags) {
      return fail(Status(StatusCode::kInvalidTag,
                         "The tag is invalid, or the number of tags is greater than 5. " +
                             model::FormatViolations(violations)));
    }
    return fail(Status(StatusCode::kValidation, model::FormatViolations(violations)));
  }

  metering::CallContext ctx;
  ctx.request_id = request_id;
  ctx.region = verified->region;
  {
    std::shared_ptr<const catalog::Catalog> catalog = catalog_->Get();
    const catalog::CredentialEntry* cred = catalog->FindCredential(verified->access_key_id);
    if (cred == nullptr) {
      // The key vanished between verification and now (a catalog change).
      return fail(Status(StatusCode::kUnrecognizedClient,
                         "The security token included in the request is invalid."));
    }
    ctx.caller.access_key_id = verified->access_key_id;
    ctx.caller.workload_id = cred->workload;
    if (!cred->workload.empty()) {
      const catalog::Workload* w = catalog->FindWorkload(cred->workload);
      ctx.caller.account = w ? w->account : "";
    } else {
      ctx.caller.account = cred->account;
    }
  }

  // The service answers on the store's writer thread; encoding happens on the event loop.
  if (operation == "BatchMeterUsage") {
    service_->BatchMeterUsage(ctx, DecodeBatchMeterUsage(*body),
                              [respond, request_id](Result<metering::BatchMeterUsageOutput> out) {
                                respond([out = std::move(out), request_id] {
                                  if (!out.ok()) return ErrorResponse(out.status(), request_id);
                                  return JsonResponse(EncodeBatchMeterUsage(*out), request_id);
                                });
                              });
    return;
  }
  if (operation == "MeterUsage") {
    service_->MeterUsage(ctx, DecodeMeterUsage(*body),
                         [respond, request_id](Result<metering::MeterUsageOutput> out) {
                           respond([out = std::move(out), request_id] {
                             if (!out.ok()) return ErrorResponse(out.status(), request_id);
                             return JsonResponse(EncodeMeterUsage(*out), request_id);
                           });
                         });
    return;
  }
  fail(Status(StatusCode::kInternal,
              std::string(operation) + " is not implemented yet in this version of meterd."));
}

}  // namespace meterd::protocol
