#include "protocol/api_handler.h"

#include <chrono>
#include <string_view>

#include "common/clock.h"
#include "common/crypto.h"
#include "json/json.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

namespace meterd::protocol {

namespace {

std::string_view PathOf(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

// Per-record outcomes for the observers: only the metering operations store records.
void CountRecords(const metering::BatchMeterUsageOutput& out, RecordCounts* counts) {
  for (const auto& r : out.results) {
    switch (r.status) {
      case metering::RecordStatus::kSuccess:
        ++counts->success;
        break;
      case metering::RecordStatus::kDuplicateRecord:
        ++counts->duplicate;
        break;
      case metering::RecordStatus::kCustomerNotSubscribed:
        ++counts->customer_not_subscribed;
        break;
    }
  }
  counts->unprocessed += static_cast<int>(out.unprocessed.size());
}
void CountRecords(const metering::MeterUsageOutput& /*out*/, RecordCounts* counts) {
  ++counts->success;
}
template <typename Output>
void CountRecords(const Output& /*out*/, RecordCounts* /*counts*/) {}

// The service's callback for one operation: hands the server a builder that encodes the output
// (or the error) on the connection's event loop. `call` (may be null) gets the record counts.
template <typename Output>
std::function<void(Result<Output>)> Reply(http::Responder respond, std::string request_id,
                                          std::string (*encode)(const Output&),
                                          std::shared_ptr<ApiCall> call) {
  return [respond = std::move(respond), request_id = std::move(request_id), encode,
          call = std::move(call)](Result<Output> out) {
    if (call != nullptr && out.ok()) CountRecords(*out, &call->records);
    respond([out = std::move(out), request_id, encode] {
      if (!out.ok()) return ErrorResponse(out.status(), request_id);
      return JsonResponse(encode(*out), request_id);
    });
  };
}

int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The error shape name and message of an error response, as the client saw them.
void ReadWireError(const HttpResponse& r, ApiCall* call) {
  Result<json::Value> body = json::Parse(r.body);
  if (!body.ok() || !body->is_object()) return;
  if (const json::Value* type = body->Find("__type"); type != nullptr && type->is_string()) {
    call->error_code = type->text();
  }
  if (const json::Value* message = body->Find("message");
      message != nullptr && message->is_string()) {
    call->error_message = message->text();
  }
}

}  // namespace

http::Responder ApiHandler::Observe(std::shared_ptr<ApiCall> call, http::Responder respond) const {
  return [observer = observer_, call = std::move(call), start_us = SteadyMicros(),
          inner = std::move(respond)](http::ResponseBuilder build) {
    inner([observer, call, start_us, build = std::move(build)] {
      HttpResponse r = build();
      call->http_status = r.status;
      call->latency_us = SteadyMicros() - start_us;
      if (r.status != 200) ReadWireError(r, call.get());
      call->response_body = r.body;
      observer->OnApiCall(*call);
      return r;
    });
  };
}

HttpResponse ApiHandler::Reject(http::RejectReason reason) {
  HttpResponse r = RejectResponse(reason);
  if (observer_ != nullptr) {
    ApiCall call;
    for (const HttpHeader& h : r.headers) {
      if (h.name == "x-amzn-RequestId") call.request_id = h.value;
    }
    call.received_ms = WallClockMillis();
    call.http_status = r.status;
    ReadWireError(r, &call);
    call.response_body = r.body;
    observer_->OnApiCall(call);
  }
  return r;
}

HttpResponse ApiHandler::RejectResponse(http::RejectReason reason) {
  std::string request_id = RandomUuid();
  switch (reason) {
    case http::RejectReason::kBodyTooLarge:
      return ErrorResponse(Status(StatusCode::kRequestTooLarge,
                                  "Request body must be less than 1048576 bytes (1 MiB)."),
                           request_id);
    case http::RejectReason::kHeaderTooLarge:
      return ErrorResponse(
          Status(StatusCode::kRequestTooLarge,
                 "Request headers must be less than 16 KiB in 100 fields at most."),
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
  std::shared_ptr<ApiCall> call;
  if (observer_ != nullptr) {
    call = std::make_shared<ApiCall>();
    call->request_id = request_id;
    call->received_ms = WallClockMillis();
    call->source_ip = request.remote_address;
    if (const std::string* agent = request.FindHeader("user-agent")) call->user_agent = *agent;
    respond = Observe(call, std::move(respond));
  }
  // Every refusal ends the handling: the body text is no longer needed and goes to the observers
  // as it is (moved, not copied).
  auto fail = [&](Status st) {
    if (call != nullptr) call->request_body = std::move(request.body);
    respond([st = std::move(st), request_id] { return ErrorResponse(st, request_id); });
  };

  std::string_view path = PathOf(request.target);
  if (request.method == "GET" && path.substr(0, 6) == "/keys/") {
    return respond([this, p = std::string(path), request_id] { return PublicKeys(p, request_id); });
  }
  if (request.method != "POST" || path != "/") {
    if (call != nullptr) call->request_body = std::move(request.body);
    return respond([request_id] {
      HttpResponse r = ErrorResponse(
          Status(StatusCode::kUnknownOperation, "Only POST / is served by this endpoint."),
          request_id);
      r.status = 404;
      return r;
    });
  }

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
  if (call != nullptr) {
    // Known before the signature is checked, so that refused calls are named too.
    if (!operation.empty() && model_->HasOperation(operation)) {
      call->operation = std::string(operation);
    }
    if (const std::string* authorization = request.FindHeader("authorization")) {
      if (auto claimed = auth::ParseAuthorizationHeader(*authorization); claimed.ok()) {
        call->claimed_access_key_id = claimed->access_key_id;
        call->claimed_region = claimed->region;
      }
    }
  }

  auth::RequestView view{request.method, request.target, &request.headers, request.body};
  Result<auth::VerifiedRequest> verified = verifier_->Verify(view, WallClockMillis());
  if (!verified.ok()) return fail(verified.status());
  if (operation.empty() || !model_->HasOperation(operation)) {
    return fail(Status(StatusCode::kUnknownOperation,
                       target == nullptr ? "Missing X-Amz-Target header."
                                         : "Unknown operation " + std::string(*target) + "."));
  }

  if (call != nullptr) {
    call->region = verified->region;
    call->access_key_id = verified->access_key_id;
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
  if (call != nullptr) {
    call->account = ctx.caller.account;
    call->workload_id = ctx.caller.workload_id;
  }

  // Fault injection comes before the real throttle, so an injected fault takes no token. Its
  // errors never reach the service: nothing is stored. The record mask of BatchMeterUsage is
  // drawn once the records are decoded (FaultInjector::UnprocessedMask).
  metering::FaultDecision fault;
  if (faults_ != nullptr) {
    fault = faults_->Decide(operation, ctx.caller.access_key_id, ctx.caller.account, 0);
    if (call != nullptr) {
      call->fault_injected = fault.latency_ms > 0 ||
                             fault.action == metering::FaultAction::kThrottle ||
                             fault.action == metering::FaultAction::kInternalError;
    }
    if (fault.latency_ms > 0) {
      // Every answer of the call goes through the delay, the injected errors too.
      respond = [this, delay_ms = fault.latency_ms,
                 inner = std::move(respond)](http::ResponseBuilder build) {
        delays_.RunAfter(delay_ms,
                         [inner, build = std::move(build)]() mutable { inner(std::move(build)); });
      };
    }
    if (fault.action == metering::FaultAction::kThrottle) {
      return fail(Status(StatusCode::kThrottling, "Rate exceeded"));
    }
    if (fault.action == metering::FaultAction::kInternalError) {
      return fail(Status(StatusCode::kInternal,
                         "An internal error occurred (injected by a fault rule). Retry your "
                         "request."));
    }
  }

  // D14: every call counts against its bucket, also the ones that fail validation later.
  if (throttler_ != nullptr && !throttler_->Allow(ctx.caller.account, ctx.region, operation)) {
    if (call != nullptr) call->throttled = true;
    return fail(Status(StatusCode::kThrottling, "Rate exceeded"));
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

  // The observers get the body parsed once, here; the typed input holds its own copies.
  auto hand_over = [&] {
    if (call != nullptr) call->request_json = std::move(body).value();
  };
  // The service answers on the store's writer thread; encoding happens on the event loop.
  if (operation == "BatchMeterUsage") {
    metering::BatchMeterUsageInput input = DecodeBatchMeterUsage(*body);
    hand_over();
    if (faults_ != nullptr) {
      ctx.injected_unprocessed = faults_->UnprocessedMask(fault, input.records.size());
      if (call != nullptr) {
        for (bool injected : ctx.injected_unprocessed) call->fault_injected |= injected;
      }
    }
    return service_->BatchMeterUsage(ctx, std::move(input),
                                     Reply(respond, request_id, EncodeBatchMeterUsage, call));
  }
  if (operation == "MeterUsage") {
    metering::MeterUsageInput input = DecodeMeterUsage(*body);
    hand_over();
    return service_->MeterUsage(ctx, input, Reply(respond, request_id, EncodeMeterUsage, call));
  }
  if (operation == "RegisterUsage") {
    metering::RegisterUsageInput input = DecodeRegisterUsage(*body);
    hand_over();
    return service_->RegisterUsage(ctx, input,
                                   Reply(respond, request_id, EncodeRegisterUsage, call));
  }
  metering::ResolveCustomerInput input = DecodeResolveCustomer(*body);
  hand_over();
  service_->ResolveCustomer(ctx, input, Reply(respond, request_id, EncodeResolveCustomer, call));
}

HttpResponse ApiHandler::PublicKeys(std::string_view path, const std::string& request_id) const {
  auto not_found = [&request_id] {
    HttpResponse r;
    r.status = 404;
    r.headers.push_back({"Content-Type", "application/json"});
    r.headers.push_back({"x-amzn-RequestId", request_id});
    r.body = R"({"message":"No such product or key version."})";
    return r;
  };
  std::string_view rest = path.substr(6);  // after "/keys/"
  std::string_view product_code = rest;
  std::string_view version_part;
  if (size_t slash = rest.rfind('/'); slash != std::string_view::npos) {
    product_code = rest.substr(0, slash);
    version_part = rest.substr(slash + 1);
  }
  std::shared_ptr<const catalog::Catalog> catalog = catalog_->Get();
  const catalog::Product* product = catalog->FindProduct(product_code);
  if (product == nullptr || keys_ == nullptr || product->signing_keys.empty()) {
    // A product code may itself contain '/': try the whole rest as the code.
    product = catalog->FindProduct(rest);
    version_part = {};
    if (product == nullptr || keys_ == nullptr || product->signing_keys.empty()) return not_found();
  }
  if (!version_part.empty()) {
    constexpr std::string_view kSuffix = ".pem";
    if (version_part.size() <= kSuffix.size() ||
        version_part.substr(version_part.size() - kSuffix.size()) != kSuffix) {
      return not_found();
    }
    int64_t version = 0;
    for (char c : version_part.substr(0, version_part.size() - kSuffix.size())) {
      if (c < '0' || c > '9' || version > 1000000) return not_found();
      version = version * 10 + (c - '0');
    }
    if (product->FindSigningKey(version) == nullptr) return not_found();
    auto key = keys_->GetOrCreate(product->code, version);
    if (!key.ok()) return ErrorResponse(key.status(), request_id);
    HttpResponse r;
    r.headers.push_back({"Content-Type", "application/x-pem-file"});
    r.headers.push_back({"x-amzn-RequestId", request_id});
    r.body = (*key)->PublicPem();
    return r;
  }
  std::vector<keys::PublicKeyEntry> entries;
  for (const auto& ref : product->signing_keys) {
    auto key = keys_->GetOrCreate(product->code, ref.version);
    if (!key.ok()) return ErrorResponse(key.status(), request_id);
    entries.push_back(keys::PublicKeyEntry{ref.version, *key});
  }
  HttpResponse r;
  r.headers.push_back({"Content-Type", "application/json"});
  r.headers.push_back({"x-amzn-RequestId", request_id});
  r.body = keys::Jwks(entries);
  return r;
}

}  // namespace meterd::protocol
