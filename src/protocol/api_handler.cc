#include "protocol/api_handler.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string_view>

#include "common/clock.h"
#include "common/crypto.h"
#include "json/json.h"
#include "protocol/codec.h"
#include "protocol/errors.h"

namespace meterd::protocol {

struct PendingCall {
  ApiCall call;
  int64_t start_us = 0;  // steady clock, when the handler took the request
  std::string event_id;  // of the call's audit event, the same on every write of it
  // Built by the seal on the writer thread (the last run wins); sent after the commit.
  std::optional<HttpResponse> sealed;
  // Its audit event but for the answer, prepared on the event loop before the store is asked.
  std::unique_ptr<PreparedAuditEvent> prepared;
  bool audited = false;       // the event committed with the call's store unit
  bool store_failed = false;  // the call's group failed: its event is not waited for
};

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

// The response `r` completes the call: what the observers and the audit event show of it.
void Complete(PendingCall* p, const HttpResponse& r) {
  ApiCall& call = p->call;
  call.http_status = r.status;
  call.latency_us = SteadyMicros() - p->start_us;
  call.error_code.clear();  // a re-run seal completes the call afresh
  call.error_message.clear();
  if (r.status != 200) ReadWireError(r, &call);
  call.response_body = r.body;
}

// The service's completion for one operation. Without an auditor: the server gets a builder that
// encodes the output (or the error) on the connection's event loop. With one (D17): the seal
// builds the response and writes the call's event inside the call's store unit, and the prebuilt
// response is sent once that unit committed; an answer decided before the store, or a store
// failure, goes through Observe, which records the event its own way. `p` (may be null: nothing
// observes) gets the record counts.
template <typename Output>
metering::Completion<Output> Reply(http::Responder respond, std::string request_id,
                                   std::string (*encode)(const Output&),
                                   const std::shared_ptr<PendingCall>& p, CallAuditor* auditor) {
  metering::Completion<Output> completion;
  if (p != nullptr && auditor != nullptr) {
    completion.seal = [request_id, encode, p, auditor](const Result<Output>& out,
                                                       store::Transaction& txn) -> Status {
      HttpResponse r = out.ok() ? JsonResponse(encode(*out), request_id)
                                : ErrorResponse(out.status(), request_id);
      p->call.records = RecordCounts{};
      if (out.ok()) CountRecords(*out, &p->call.records);
      if (p->prepared == nullptr) p->prepared = auditor->PrepareEvent(p->call, p->event_id);
      Complete(p.get(), r);
      METERD_RETURN_IF_ERROR(auditor->WriteEvent(p->call, *p->prepared, txn));
      p->sealed = std::move(r);
      return Status::Ok();
    };
  }
  completion.done = [respond = std::move(respond), request_id = std::move(request_id), encode, p,
                     auditor](Result<Output> out, metering::AnswerPath path) {
    if (p != nullptr) {
      if (path == metering::AnswerPath::kCommitted && p->sealed.has_value()) {
        p->audited = true;
        auditor->EventCommitted();
        return respond([r = std::move(*p->sealed)]() mutable { return std::move(r); });
      }
      p->store_failed = path == metering::AnswerPath::kStoreFailed;
      p->call.records = RecordCounts{};
      if (out.ok()) CountRecords(*out, &p->call.records);
    }
    respond([out = std::move(out), request_id, encode] {
      if (!out.ok()) return ErrorResponse(out.status(), request_id);
      return JsonResponse(encode(*out), request_id);
    });
  };
  return completion;
}

}  // namespace

http::Responder ApiHandler::Observe(std::shared_ptr<PendingCall> p, http::Responder respond) const {
  return [observer = observer_, auditor = auditor_, p = std::move(p),
          inner = std::move(respond)](http::ResponseBuilder build) {
    // Hands `r` to the server; the observers see the call as it leaves.
    auto deliver = [observer, p, inner](HttpResponse r) {
      inner([observer, p, r = std::move(r)]() mutable {
        if (observer != nullptr) {
          p->call.latency_us = SteadyMicros() - p->start_us;
          observer->OnApiCall(p->call);
        }
        return std::move(r);
      });
    };
    // Built by the seal inside the call's store unit, whose commit holds the event.
    if (p->audited) return deliver(build());
    if (auditor == nullptr) {
      // Nothing to make durable first: built on the connection's event loop, as it leaves.
      return inner([observer, p, build = std::move(build)] {
        HttpResponse r = build();
        Complete(p.get(), r);
        if (observer != nullptr) observer->OnApiCall(p->call);
        return r;
      });
    }
    HttpResponse r = build();
    Complete(p.get(), r);
    if (p->store_failed) {
      // The call's own group failed: the answer is the store error, its event is not waited for.
      auditor->RecordEvent(p->call, p->event_id, nullptr);
      return deliver(std::move(r));
    }
    // Decided before the store: answered once its event is durable (or its unit failed, which
    // the trail counts and logs).
    auto held = std::make_shared<HttpResponse>(std::move(r));
    auditor->RecordEvent(p->call, p->event_id,
                         [deliver, held](const Status&) { deliver(std::move(*held)); });
  };
}

std::shared_ptr<PendingCall> ApiHandler::NewPendingCall() const {
  if (observer_ == nullptr && auditor_ == nullptr) return nullptr;
  auto p = std::make_shared<PendingCall>();
  p->start_us = SteadyMicros();
  p->event_id = TimeOrderedUuid();
  p->call.received_ms = WallClockMillis();
  return p;
}

HttpResponse ApiHandler::Reject(http::RejectReason reason) {
  HttpResponse r = RejectResponse(reason);
  if (std::shared_ptr<PendingCall> p = NewPendingCall()) {
    ApiCall& call = p->call;
    for (const HttpHeader& h : r.headers) {
      if (h.name == "x-amzn-RequestId") call.request_id = h.value;
    }
    Complete(p.get(), r);
    if (observer_ != nullptr) observer_->OnApiCall(call);
    if (auditor_ != nullptr) auditor_->RecordEvent(call, p->event_id, nullptr);
  }
  return r;
}

void ApiHandler::RejectAsync(http::RejectReason reason, http::Responder respond) {
  HttpResponse r = RejectResponse(reason);
  std::shared_ptr<PendingCall> p = NewPendingCall();
  if (p != nullptr) {
    for (const HttpHeader& h : r.headers) {
      if (h.name == "x-amzn-RequestId") p->call.request_id = h.value;
    }
    respond = Observe(std::move(p), std::move(respond));
  }
  respond([r = std::move(r)]() mutable { return std::move(r); });
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
  std::shared_ptr<PendingCall> pending = NewPendingCall();
  ApiCall* call = pending != nullptr ? &pending->call : nullptr;
  if (call != nullptr) {
    call->request_id = request_id;
    call->source_ip = request.remote_address;
    if (const std::string* agent = request.FindHeader("user-agent")) call->user_agent = *agent;
    respond = Observe(pending, std::move(respond));
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
  // The audit event is prepared here, on the event loop, up to the answer, so that the writer only
  // adds that (the event time: when the call arrived).
  auto hand_over = [&] {
    if (call == nullptr) return;
    call->request_json = std::move(body).value();
    if (auditor_ != nullptr) {
      call->latency_us = SteadyMicros() - pending->start_us;
      pending->prepared = auditor_->PrepareEvent(*call, pending->event_id);
    }
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
    return service_->BatchMeterUsage(
        ctx, std::move(input),
        Reply(respond, request_id, EncodeBatchMeterUsage, pending, auditor_));
  }
  if (operation == "MeterUsage") {
    metering::MeterUsageInput input = DecodeMeterUsage(*body);
    hand_over();
    return service_->MeterUsage(ctx, input,
                                Reply(respond, request_id, EncodeMeterUsage, pending, auditor_));
  }
  if (operation == "RegisterUsage") {
    metering::RegisterUsageInput input = DecodeRegisterUsage(*body);
    hand_over();
    return service_->RegisterUsage(
        ctx, input, Reply(respond, request_id, EncodeRegisterUsage, pending, auditor_));
  }
  metering::ResolveCustomerInput input = DecodeResolveCustomer(*body);
  hand_over();
  service_->ResolveCustomer(ctx, input,
                            Reply(respond, request_id, EncodeResolveCustomer, pending, auditor_));
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
