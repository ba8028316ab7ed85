#include "protocol/errors.h"

#include "json/json.h"

namespace meterd::protocol {

WireError ToWireError(StatusCode code) {
  switch (code) {
    case StatusCode::kMissingAuthenticationToken:
      return {403, "MissingAuthenticationTokenException"};
    case StatusCode::kIncompleteSignature:
      return {400, "IncompleteSignatureException"};
    case StatusCode::kInvalidSignature:
      return {403, "InvalidSignatureException"};
    case StatusCode::kInvalidSignatureScope:
      return {400, "InvalidSignatureException"};
    case StatusCode::kUnrecognizedClient:
      return {403, "UnrecognizedClientException"};
    case StatusCode::kAccessDenied:
      return {400, "AccessDeniedException"};
    case StatusCode::kUnknownOperation:
      return {400, "UnknownOperationException"};
    case StatusCode::kSerialization:
      return {400, "SerializationException"};
    case StatusCode::kValidation:
    case StatusCode::kRequestTooLarge:
      return {400, "ValidationException"};
    case StatusCode::kCustomerNotEntitled:
      return {400, "CustomerNotEntitledException"};
    case StatusCode::kDisabledApi:
      return {400, "DisabledApiException"};
    case StatusCode::kDuplicateRequest:
      return {400, "DuplicateRequestException"};
    case StatusCode::kExpiredToken:
      return {400, "ExpiredTokenException"};
    case StatusCode::kIdempotencyConflict:
      return {409, "IdempotencyConflictException"};
    case StatusCode::kInvalidCustomerIdentifier:
      return {400, "InvalidCustomerIdentifierException"};
    case StatusCode::kInvalidEndpointRegion:
      return {400, "InvalidEndpointRegionException"};
    case StatusCode::kInvalidLicense:
      return {400, "InvalidLicenseException"};
    case StatusCode::kInvalidProductCode:
      return {400, "InvalidProductCodeException"};
    case StatusCode::kInvalidPublicKeyVersion:
      return {400, "InvalidPublicKeyVersionException"};
    case StatusCode::kInvalidRegion:
      return {400, "InvalidRegionException"};
    case StatusCode::kInvalidTag:
      return {400, "InvalidTagException"};
    case StatusCode::kInvalidToken:
      return {400, "InvalidTokenException"};
    case StatusCode::kInvalidUsageAllocations:
      return {400, "InvalidUsageAllocationsException"};
    case StatusCode::kInvalidUsageDimension:
      return {400, "InvalidUsageDimensionException"};
    case StatusCode::kPlatformNotSupported:
      return {400, "PlatformNotSupportedException"};
    case StatusCode::kThrottling:
      return {400, "ThrottlingException"};
    case StatusCode::kTimestampOutOfBounds:
      return {400, "TimestampOutOfBoundsException"};
    case StatusCode::kDryRunOperation:
      return {412, "DryRunOperation"};
    // Internal conditions never leak their own names: the client sees a retryable 500.
    case StatusCode::kOk:
    case StatusCode::kInternal:
    case StatusCode::kIoError:
    case StatusCode::kCorruption:
    case StatusCode::kNotFound:
    case StatusCode::kInvalidArgument:
    case StatusCode::kConflict:
      return {500, "InternalServiceErrorException"};
  }
  return {500, "InternalServiceErrorException"};
}

namespace {
void AddCommonHeaders(HttpResponse* r, const std::string& request_id) {
  r->headers.push_back({"Content-Type", "application/x-amz-json-1.1"});
  r->headers.push_back({"x-amzn-RequestId", request_id});
}
}  // namespace

HttpResponse ErrorResponse(const Status& status, const std::string& request_id) {
  WireError e = ToWireError(status.code());
  HttpResponse r;
  r.status = e.http_status;
  AddCommonHeaders(&r, request_id);
  std::string message = status.message();
  if (e.http_status == 500 && status.code() != StatusCode::kInternal) {
    message = "An internal error occurred. Retry your request.";
  }
  r.body = "{\"__type\":\"";
  r.body += e.type;
  r.body += "\",\"message\":";
  json::AppendQuoted(&r.body, message);
  r.body += '}';
  if (status.code() == StatusCode::kRequestTooLarge) r.close_connection = true;
  return r;
}

HttpResponse JsonResponse(std::string body, const std::string& request_id) {
  HttpResponse r;
  r.status = 200;
  AddCommonHeaders(&r, request_id);
  r.body = std::move(body);
  return r;
}

}  // namespace meterd::protocol
